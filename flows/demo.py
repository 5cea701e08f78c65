"""`make demo`: the product end to end on the offline sandbox, in one command.

Generates the demo shop (once), starts the four vendor stand-ins on loopback,
points Hearth at them and runs the pipeline as far as it exists, then prints
where to look. Rerunning is safe: the shop is reused and ingestion is incremental.
"""

from __future__ import annotations

import os
import sys
import time

# Quiet, offline Prefect for a terminal demo (set before Prefect is imported).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from rich.console import Console
from rich.table import Table

from hearth.config import Settings
from sandbox.run import DEFAULT_PORT_BASE, DEMO_CUSTOMERS, ensure_shop, start_sandboxes

console = Console()


def _start(settings: Settings):  # type: ignore[no-untyped-def]
    try:
        return start_sandboxes(settings.data_dir, port_base=DEFAULT_PORT_BASE)
    except OSError:
        console.print(f"[yellow]Ports {DEFAULT_PORT_BASE}–{DEFAULT_PORT_BASE + 3} are busy; using free ports.[/]")
        return start_sandboxes(settings.data_dir, port_base=0)


def main() -> int:
    started = time.monotonic()
    settings = Settings.from_env()
    console.rule("[bold]Hearth demo")

    with console.status("Generating the demo shop…"):
        truth = ensure_shop(settings.shop_dir, seed=42, customers=DEMO_CUSTOMERS)
    counts = truth.get("row_counts", {})
    console.print(
        f"Demo shop: {counts.get('customers', '?'):,} Shopify customer records, {counts.get('orders', '?'):,} orders, "
        f"{counts.get('checkouts', '?'):,} abandoned checkouts, {counts.get('amazon_orders', '?'):,} Amazon orders, "
        f"{counts.get('fb_insights', '?'):,} Facebook ad-days (seed {truth['seed']}, now {truth['now']})."
    )

    sandboxes = _start(settings)
    try:
        os.environ.update(sandboxes.env())
        os.environ["HEARTH_DATA_DIR"] = str(settings.data_dir)
        for server in sandboxes.servers:
            console.print(f"  sandbox {server.name:<9} {server.url}")

        from flows.ingest import ingest

        console.rule("Ingest: Shopify, Amazon, Facebook → raw zone")
        state = ingest(return_state=True)
        rows = state.result(raise_on_failure=False)
        table = Table(title=f"Landed in {settings.raw_dir}")
        for column in ("source", "stream", "status", "rows", "quarantined"):
            table.add_column(column, justify="right" if column in ("rows", "quarantined") else "left")
        for row in rows if isinstance(rows, list) else []:
            table.add_row(*(str(row.get(c, "")) for c in ("source", "stream", "status", "rows", "quarantined")))
        console.print(table)
        if not state.is_completed():
            console.print(f"[bold red]Ingest failed:[/] {state.message}")
            return 1
    finally:
        sandboxes.stop()

    console.rule("Where to look")
    console.print(f"Raw zone (Parquet, one file per load): {settings.raw_dir}")
    console.print(f"Cursors and load log: {settings.state_path}")
    console.print("Serve the sandbox yourself: .venv/bin/hearth sandbox")
    console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f}s.[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
