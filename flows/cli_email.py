"""`hearth send | preview | templates push` — the email half of the command line."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hearth.config import ConfigError, Settings

console = Console()
templates_app = typer.Typer(help="The email templates in templates/email/.")


def send(
    sequence: Annotated[str, typer.Argument(help="abandoned_cart, replenishment or winback (files in sequences/).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List who would get what; send nothing.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Send even over HEARTH_SEND_CEILING.")] = False,
) -> None:
    """Send the due steps of one sequence (the `send` flow)."""
    from flows.sequences import send as send_flow

    state = send_flow(sequence=sequence, dry_run=dry_run, approve=approve, return_state=True)
    if not state.is_completed():
        console.print(f"[bold red]{state.name}:[/] {state.message}")
        raise typer.Exit(1)
    result = state.result()
    table = Table(title=f"{sequence}{' (dry run)' if dry_run else ''}: {result['requests']} mail-send request(s)")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for outcome, count in result["counts"].items():
        table.add_row(outcome, str(count))
    console.print(table)
    console.print(f"Every decision: {result['decisions_file']}")


def preview(
    sequence: Annotated[str, typer.Argument(help="The sequence.")],
    step: Annotated[str, typer.Argument(help="The step, e.g. reminder.")],
    customer: Annotated[str | None, typer.Option(help="A customer_key from the trigger table.")] = None,
) -> None:
    """Render exactly what a step would send to one person, from the warehouse, into an HTML file."""
    from hearth.sending import ShopContext, load_candidates, template_data
    from hearth.sequences import load_sequences
    from hearth.templates import render
    from hearth.warehouse import open_warehouse

    settings = Settings.from_env()
    chosen = load_sequences()[sequence]
    shop = settings.shop
    secret = shop.secret_key.reveal() if shop.secret_key else "preview-only"
    context = ShopContext(shop.name, shop.url, shop.address, shop.public_url, secret)
    with open_warehouse(settings.warehouse_path) as conn:
        far_future = datetime(9999, 1, 1, tzinfo=UTC)  # every step counts as due for a preview
        rows = [c for c in load_candidates(conn, chosen, now=far_future) if c.step == step]
    if customer:
        rows = [c for c in rows if c.customer_key == customer]
    if not rows:
        raise ConfigError(f"no row of {chosen.trigger_table} for step {step!r}"
                          + (f" and customer {customer!r}" if customer else ""))  # fmt: skip
    candidate = rows[0]
    email = render(sequence, step, template_data(candidate, chosen.step(step), context))
    out = settings.data_dir / "previews" / f"{sequence}_{step}_{candidate.customer_key[:12]}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(email.html)
    out.with_suffix(".txt").write_text(f"Subject: {email.subject}\n\n{email.text}")
    console.print(f"To: {candidate.email} ({candidate.customer_key})\nSubject: {email.subject}")
    console.print(f"Open in a browser: file://{out}")


@templates_app.command("push")
def templates_push() -> None:
    """Create or update every template as a SendGrid dynamic template (idempotent)."""
    from connectors.sendgrid import SendGridClient, SendGridSettings, push_templates
    from hearth.templates import template_payloads

    settings = Settings.from_env()
    client = SendGridClient(SendGridSettings.from_env(dict(os.environ)))
    ids = push_templates(client, template_payloads(), ids_path=settings.data_dir / "sendgrid_templates.json")
    for name, template_id in sorted(ids.items()):
        console.print(f"  {name:<32} {template_id}")
    console.print(f"{len(ids)} templates pushed; ids in {settings.data_dir / 'sendgrid_templates.json'}")


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(preview)
    app.add_typer(templates_app, name="templates")
