"""`make demo`: the whole product on the offline sandbox, in one command.

Generates the demo shop (once), starts the four vendor stand-ins and the webhook
receiver on loopback, points Hearth at them and runs the daily pipeline — ingest,
transform with its quality gate, the three email sequences — then prints what it
found and where to look. Rerunning is safe: ingestion is incremental and no email
goes out twice.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

# Quiet, offline Prefect for a terminal demo (set before Prefect is imported).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from rich.console import Console
from rich.table import Table

from hearth.config import Settings
from sandbox.run import DEFAULT_PORT_BASE, DEMO_CUSTOMERS, SandboxSet, ensure_shop, start_sandboxes

console = Console()
SEQUENCES = ("abandoned_cart", "replenishment", "winback")


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def _start(settings: Settings, webhook_url: str) -> SandboxSet:
    try:
        return start_sandboxes(settings.data_dir, port_base=DEFAULT_PORT_BASE, webhook_url=webhook_url)
    except OSError:
        console.print(f"[yellow]Ports {DEFAULT_PORT_BASE}–{DEFAULT_PORT_BASE + 3} are busy; using free ports.[/]")
        return start_sandboxes(settings.data_dir, port_base=0, webhook_url=webhook_url)


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    return table


def _warehouse_summary(settings: Settings) -> None:
    from hearth.warehouse import open_warehouse

    with open_warehouse(settings.warehouse_path) as conn:
        (customers, marketable, revenue) = conn.execute(
            "select count(*), count(*) filter (where is_marketable), sum(total_revenue) from customers"
        ).fetchone()
        rfm = conn.execute(
            "select rfm_code, rfm_class, count(*) from customer_rfm group by all order by rfm_code desc"
        ).fetchall()
        segments = conn.execute("select segment, count(*) from segment_members group by all order by 1").fetchall()
    console.print(f"{customers:,} customers ({marketable:,} marketable), revenue ${revenue:,.2f}")
    console.print(_table("RFM classes (R F M, 1 = better half)", ("code", "class", "customers"), rfm))
    console.print(_table("Segments", ("segment", "members"), segments))


def main() -> int:
    started = time.monotonic()
    settings = Settings.from_env()
    console.rule("[bold]Hearth demo")

    with console.status("Generating the demo shop…"):
        truth = ensure_shop(settings.shop_dir, seed=42, customers=DEMO_CUSTOMERS)
    counts = truth.get("row_counts", {})
    console.print(
        f"Demo shop: {counts.get('customers', 0):,} Shopify customer records, {counts.get('orders', 0):,} orders, "
        f"{counts.get('checkouts', 0):,} abandoned checkouts, {counts.get('amazon_orders', 0):,} Amazon orders, "
        f"{counts.get('fb_insights', 0):,} Facebook ad-days (seed {truth['seed']}, now {truth['now']})."
    )

    webhook_port = _free_port(8710)
    sandboxes = _start(settings, webhook_url=f"http://127.0.0.1:{webhook_port}/webhooks/sendgrid")
    os.environ.update(sandboxes.env())
    os.environ["HEARTH_DATA_DIR"] = str(settings.data_dir)
    os.environ["HEARTH_PUBLIC_URL"] = f"http://127.0.0.1:{webhook_port}"
    settings = Settings.from_env()

    from flows.webhooks_app import WebhookServer
    from hearth.webhooks import WebhookProcessor

    outbox_url = f"{sandboxes.sendgrid.url}/_sandbox/outbox"
    webhooks = WebhookServer(WebhookProcessor.from_settings(settings), port=webhook_port)
    webhooks.start()
    try:
        for server in sandboxes.servers:
            console.print(f"  sandbox {server.name:<9} {server.url}")
        console.print(f"  webhooks          {webhooks.url}")
        if not _pipeline(settings, sandboxes):
            return 1
    finally:
        webhooks.stop()
        sandboxes.stop()

    console.rule("Where to look")
    console.print(f"Emails, rendered: run `.venv/bin/hearth sandbox` and open {outbox_url}")
    console.print(f"  (every accepted mail is also a line in {settings.sandbox_dir / 'sendgrid' / 'outbox.jsonl'})")
    console.print(f"Data Docs of the quality gate: file://{settings.data_dir / 'quality' / 'docs' / 'index.html'}")
    console.print(f"Warehouse (DuckDB): {settings.warehouse_path}; dbt docs: cd dbt_project && ../.venv/bin/dbt docs "
                  "generate --profiles-dir . && ../.venv/bin/dbt docs serve --profiles-dir .")  # fmt: skip
    console.print(f"Raw zone: {settings.raw_dir}; cursors and the send ledger: {settings.state_path}")
    console.print("The Prefect UI with every deployment scheduled over this sandbox: make ui")
    console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f}s.[/]")
    return 0


def _pipeline(settings: Settings, sandboxes: SandboxSet) -> bool:
    from flows.ingest import ingest
    from flows.sequences import send
    from flows.transform import transform

    console.rule("1. Ingest: Shopify, Amazon, Facebook → raw zone")
    state = ingest(return_state=True)
    rows = state.result(raise_on_failure=False)
    rows = rows if isinstance(rows, list) else []
    console.print(_table(f"Landed in {settings.raw_dir}", ("stream", "status", "rows", "quarantined"),
                         [(f"{r['source']}/{r['stream']}", r.get("status", ""), r.get("rows", ""),
                           r.get("quarantined", "")) for r in rows]))  # fmt: skip
    if not state.is_completed():
        console.print(f"[bold red]Ingest failed:[/] {state.message}")
        return False

    console.rule("2. Transform: dbt build + quality gate")
    with console.status("dbt build (each model is a task in Prefect) and the Great Expectations gate…"):
        state = transform(return_state=True)
    if not state.is_completed():
        console.print(f"[bold red]Transform failed:[/] {state.message}")
        return False
    _warehouse_summary(settings)

    console.rule("3. Email sequences → SendGrid (sandbox)")
    results = []
    for sequence in SEQUENCES:
        state = send(sequence=sequence, return_state=True)
        if not state.is_completed():
            console.print(f"[bold red]{sequence} failed:[/] {state.message}")
            return False
        counts = state.result()["counts"]
        skipped = sum(v for k, v in counts.items() if k.startswith("skipped"))
        deferred = sum(v for k, v in counts.items() if k.startswith("deferred"))
        results.append((sequence, counts["sent"], skipped, deferred, state.result()["requests"]))
    sandboxes.sendgrid.flush_events()  # delivery, opens, unsubscribes → webhooks → suppressions and ledger
    console.print(_table("Emails (skips and deferrals by reason are in data/sequences/*.csv)",
                         ("sequence", "sent", "skipped", "deferred", "requests"), results))  # fmt: skip
    console.print("Deferred = outside the recipient's local send window; they go out on a later run.")
    return True


if __name__ == "__main__":
    sys.exit(main())
