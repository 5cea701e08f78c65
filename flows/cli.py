"""`hearth` — the one command line. Every command runs the same code a deployment runs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from flows.cli_email import register as register_email_commands
from hearth.config import Settings

app = typer.Typer(
    help="Hearth: an owned audience for your shop — ingest, model, and email it.",
    no_args_is_help=True,
    add_completion=False,
)
sandbox_app = typer.Typer(help="The offline stand-ins of Shopify, Amazon, Facebook and SendGrid.")
app.add_typer(sandbox_app, name="sandbox")
webhooks_app = typer.Typer(help="The webhook receiver: SendGrid events and Shopify GDPR topics.")
app.add_typer(webhooks_app, name="webhooks")
console = Console()


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@sandbox_app.callback(invoke_without_command=True)
def sandbox(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(help="Demo-shop size (Shopify customers).")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the demo-shop generator.")] = 42,
    regenerate: Annotated[bool, typer.Option(help="Generate the shop again even if one exists.")] = False,
    faults: Annotated[str, typer.Option(help="Fault knobs, e.g. 'error_rate=0.05,throttle_rate=0.05,seed=7'.")] = "",
    port_base: Annotated[int, typer.Option(help="First of four consecutive loopback ports.")] = 8701,
) -> None:
    """Generate the demo shop if needed, start all four sandbox servers, print their configuration."""
    if ctx.invoked_subcommand is not None:
        return
    from sandbox._server import Faults
    from sandbox.run import ensure_shop, start_sandboxes

    settings = Settings.from_env()
    truth = ensure_shop(settings.shop_dir, seed=seed, customers=customers, regenerate=regenerate)
    sandboxes = start_sandboxes(
        settings.data_dir, faults=Faults.from_spec(faults) if faults else None, port_base=port_base
    )
    env = {"HEARTH_DATA_DIR": str(settings.data_dir), **sandboxes.env()}
    env_file = settings.sandbox_dir / "sandbox.env"
    # Quoted: values such as LWA refresh tokens contain shell metacharacters ("Atzr|…").
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
    console.print(
        f"[bold green]Sandbox running[/] over the demo shop (seed {truth['seed']}, "
        f"{truth['parameters']['customers']} customers, now = {truth['now']})."
    )
    for server in sandboxes.servers:
        console.print(f"  {server.name:<9} {server.url}")
    console.print(f"\nSendGrid outbox, rendered: {sandboxes.sendgrid.url}/_sandbox/outbox")
    console.print("\nPoint Hearth at it (another terminal):")
    console.print(f"  set -a; . {env_file}; set +a", highlight=False)
    console.print("\nCtrl-C stops the servers.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandboxes.stop()
        console.print("Sandbox stopped.")


@sandbox_app.command("generate")
def sandbox_generate(
    out: Annotated[Path | None, typer.Option(help="Shop directory (default $HEARTH_DATA_DIR/sandbox/shop).")] = None,
    customers: Annotated[int, typer.Option(help="Shopify customers (Amazon buyers come on top).")] = 3000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    now: Annotated[str | None, typer.Option(help="End of the history (ISO, UTC); default this hour.")] = None,
    orders_per_customer: Annotated[float | None, typer.Option(help="Scale order volume (benchmarks).")] = None,
    fb_ads: Annotated[int | None, typer.Option(help="Facebook ads (benchmarks; default ~41).")] = None,
) -> None:
    """Generate the deterministic demo shop (Parquet tables + ground_truth.json)."""
    from sandbox.generator import generate_shop

    shop_dir = out or Settings.from_env().shop_dir
    started = datetime.now()
    try:
        truth = generate_shop(shop_dir, seed=seed, customers=customers, now=_parse_now(now),
                              orders_per_customer=orders_per_customer, fb_ads=fb_ads)  # fmt: skip
    except ValueError as exc:  # an option out of range: its message names it (nothing was written)
        console.print(f"[bold red]hearth sandbox generate:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    seconds = (datetime.now() - started).total_seconds()
    counts = ", ".join(f"{n} {t}" for t, n in truth.get("row_counts", {}).items())
    console.print(f"Demo shop written to {shop_dir} in {seconds:.1f}s: {counts}")


SourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--sources", "-s", help="shopify, amazon, facebook (repeatable or comma-separated; default: all configured)."
    ),
]


def _sources(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _run_with_progress(title: str, run: Callable[[], Any]) -> Any:
    """Run a flow in this process with a live progress bar fed by its tasks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.progress import observers

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[records]:>9,} records"), TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        tasks: dict[tuple[str, str], Any] = {}
        lock = threading.Lock()

        def task_for(source: str, stream: str) -> Any:
            with lock:
                key = (source, stream)
                if key not in tasks:
                    tasks[key] = bar.add_task(f"{source}/{stream}", total=None, records=0)
                return tasks[key]

        class _Bar:
            def records(self, source: str, stream: str, count: int) -> None:
                task_id = task_for(source, stream)
                bar.update(task_id, records=bar.tasks[task_id].fields["records"] + count)

            def chunk(self, source: str, stream: str, done: int, total: int) -> None:
                bar.update(task_for(source, stream), completed=done, total=total)

        remove = observers.add(_Bar())
        try:
            return run()
        finally:
            remove()


def _report(rows: Any, title: str) -> None:
    from rich.table import Table

    if not isinstance(rows, list):
        raise typer.Exit(1)
    table = Table(title=title)
    for column in ("source", "stream", "status", "rows", "quarantined"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in ("source", "stream", "status", "rows", "quarantined")))
    console.print(table)


@app.command()
def ingest(sources: SourcesOption = None) -> None:
    """Pull what changed since the last run from each source into the raw zone (the `ingest` flow)."""
    from flows.ingest import ingest as ingest_flow

    state = _run_with_progress("ingest", lambda: ingest_flow(sources=_sources(sources), return_state=True))
    _finish(state, "Ingested")


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="Start of the window (ISO date or timestamp, inclusive).")],
    end: Annotated[str, typer.Option(help="End of the window (exclusive).")],
    sources: SourcesOption = None,
    chunk_days: Annotated[float, typer.Option(help="Resumable chunk size in days.")] = 7.0,
) -> None:
    """Re-extract a past window without moving the cursors; rerun the same command to resume."""
    from flows.backfill import backfill as backfill_flow

    state = _run_with_progress(
        "backfill",
        lambda: backfill_flow(start=_parse_now(start), end=_parse_now(end), sources=_sources(sources),
                              chunk_days=chunk_days, return_state=True),
    )  # fmt: skip
    _finish(state, "Backfilled")


@app.command()
def transform(
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild incremental models.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Rebuild as of a date, e.g. 2025-06-30.")] = None,
) -> None:
    """Build the warehouse with dbt, then run the quality gate (the `transform` flow)."""
    from flows.transform import transform as transform_flow
    from hearth.quality import latest_gate

    with console.status("dbt build and quality gate…"):
        state = transform_flow(full_refresh=full_refresh, as_of=as_of, return_state=True)
    gate = latest_gate(Settings.from_env())
    if state.is_completed():
        counts = state.result()["dbt"]
        console.print("dbt: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        console.print(f"[bold green]Quality gate passed[/] (run {gate.run_id if gate else '?'}).")
        console.print(f"Data Docs: {gate.docs_path if gate else '?'}")
        return
    console.print(f"[bold red]{state.name}:[/] {state.message}")
    for line in gate.failures if gate and not gate.passed else []:
        console.print(f"  • {line}", highlight=False)
    raise typer.Exit(1)


def _finish(state: Any, title: str) -> None:
    """Print the flow's summary; exit non-zero with its message when it failed."""
    if state.is_completed():
        _report(state.result(), title)
        return
    console.print(f"[bold red]{state.name}:[/] {state.message}")
    raise typer.Exit(1)


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (behind a TLS proxy in production).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8710,
) -> None:
    """Serve POST /webhooks/sendgrid, POST /webhooks/shopify and GET /healthz until Ctrl-C."""
    from flows.webhooks_app import serve

    settings = Settings.from_env()
    for name, value in (
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", settings.sendgrid.webhook_public_key),
        ("SHOPIFY_WEBHOOK_SECRET", settings.shopify.webhook_secret),
    ):
        if not value:
            console.print(f"[yellow]{name} is not set:[/] that endpoint answers 503 until it is.")
    console.print(f"Webhooks on http://{host}:{port}/webhooks/{{sendgrid,shopify}} (data in {settings.data_dir})")
    serve(settings, host=host, port=port)


@app.command()
def run(
    sources: SourcesOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide the sends but send nothing.")] = False,
) -> None:
    """Run the daily pipeline once: ingest → transform + gate → the three sequences."""
    from flows.pipeline import pipeline

    state = _run_with_progress("pipeline", lambda: pipeline(sources=_sources(sources), dry_run=dry_run,
                                                            return_state=True))  # fmt: skip
    if not state.is_completed():
        console.print(f"[bold red]{state.name}:[/] {state.message}")
        raise typer.Exit(1)
    for row in state.result()["sequences"]:
        console.print(row)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    port_base: Annotated[int, typer.Option(help="First of the four sandbox ports.")] = 8701,
    customers: Annotated[int, typer.Option(help="Demo-shop size (Shopify customers).")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the demo-shop generator.")] = 42,
    schedules: Annotated[bool, typer.Option(help="Create the scheduled runs of prefect.yaml.")] = True,
) -> None:
    """Start the sandbox, a local Prefect server, Hearth's deployments and a worker; print the UI address."""
    from flows.ui import UiError, UiStack, run_ui

    stack = UiStack(Settings.from_env().data_dir, ui_port=port, sandbox_port_base=port_base, customers=customers,
                    seed=seed, schedules=schedules, say=console.print)  # fmt: skip
    try:
        run_ui(stack)
    except UiError as exc:
        console.print(f"[bold red]hearth ui:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


register_email_commands(app)


def main() -> None:  # pragma: no cover - console-script entry
    app()
