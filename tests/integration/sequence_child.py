"""One sequence run without Prefect, as the `send` flow does it; also the process the crash tests kill.

``python -m tests.integration.sequence_child <sequence> <run_id> <now iso> <kill point> <batch size>``
with ``HEARTH_DATA_DIR`` and the SendGrid sandbox's variables in the environment. The
kill point names where the child SIGKILLs itself (see :data:`KILL_POINTS`); ``none``
runs to the end.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import hearth.mail_batches
from connectors.sendgrid import SendGridClient, SendGridSettings, push_templates
from hearth.ledger import DEFAULT_LEASE, Ledger
from hearth.mail_batches import send_planned
from hearth.sending import Planned, RunSummary, ShopContext, plan
from hearth.sequences import load_sequences
from hearth.suppressions import Suppressions
from hearth.templates import template_payloads
from hearth.warehouse import open_warehouse

SECRET_KEY = "sandbox-only-key-for-unsubscribe-links"
SHOP = ShopContext(
    "Hearth Demo Shop", "https://hearth-demo.myshopify.com", "1 Demo Street", "https://hearth.example", SECRET_KEY
)
KILL_POINTS = ("after_reserve", "after_mark_sending", "after_api_call", "after_first_batch")


def client_from_env(env: Mapping[str, str]) -> SendGridClient:
    return SendGridClient(SendGridSettings.from_env(env))


def template_ids(client: SendGridClient, data_dir: Path) -> dict[str, str]:
    """Push the templates (idempotent) and return ``sequence/step → id``, as the flow does."""
    ids = push_templates(client, template_payloads(), ids_path=data_dir / "sendgrid_templates.json")
    return {name.removeprefix("hearth:"): template_id for name, template_id in ids.items()}


def plan_run(data_dir: Path, sequence: str, *, now: datetime, dead_runs: Iterable[str] = ()) -> list[Planned]:
    """What a run at ``now`` would send (reads the ledger; recovers ``dead_runs``' sends)."""
    with (
        open_warehouse(data_dir / "warehouse.duckdb") as conn,
        Ledger(data_dir / "state.sqlite") as ledger,
        Suppressions(data_dir / "state.sqlite") as suppressions,
    ):
        return plan(conn, load_sequences()[sequence], ledger, suppressions, now=now, shop=SHOP, dead_runs=dead_runs)[0]


def run_sequence(
    data_dir: Path,
    sequence: str,
    client: Any,
    *,
    now: datetime,
    run_id: str,
    lease: timedelta = DEFAULT_LEASE,
    dead_runs: Iterable[str] = (),
    ledger_type: Callable[..., Ledger] = Ledger,
) -> RunSummary:
    """plan → record skips → send_planned, the body of the `send` flow with a fixed ``now``."""
    state = data_dir / "state.sqlite"
    ids = template_ids(client, data_dir)
    with (
        open_warehouse(data_dir / "warehouse.duckdb") as conn,
        ledger_type(state, lease=lease) as ledger,
        Suppressions(state) as suppressions,
    ):
        to_send, skips, summary = plan(
            conn, load_sequences()[sequence], ledger, suppressions, now=now, shop=SHOP, dead_runs=dead_runs
        )
        ledger.record_skips(run_id, skips)
        send_planned(to_send, ledger=ledger, client=client, template_ids=ids, run_id=run_id, summary=summary)
    return summary


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _dying_after(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        method(*args, **kwargs)  # the step completes (and commits), then the process dies
        _die()

    return wrapper


class DyingClient(SendGridClient):
    """The real client, but the process dies as soon as SendGrid has answered the first mail send."""

    def send(self, body: Mapping[str, Any]) -> Any:
        super().send(body)
        _die()


def main(argv: list[str]) -> None:
    sequence, run_id, now, kill_point, batch_size = argv
    data_dir = Path(os.environ["HEARTH_DATA_DIR"])
    hearth.mail_batches.BATCH_SIZE = int(batch_size)  # several batches, so a kill can fall between two
    ledger_type: type[Ledger] = Ledger
    if kill_point in ("after_reserve", "after_mark_sending", "after_first_batch"):
        method = {
            "after_reserve": "reserve",
            "after_mark_sending": "mark_sending",
            "after_first_batch": "mark_accepted",
        }[kill_point]
        ledger_type = type("DyingLedger", (Ledger,), {method: _dying_after(getattr(Ledger, method))})
    elif kill_point not in ("none", "after_api_call"):
        raise SystemExit(f"unknown kill point {kill_point!r}; choose from {KILL_POINTS} or none")
    client_type = DyingClient if kill_point == "after_api_call" else SendGridClient
    client = client_type(SendGridSettings.from_env(os.environ))
    run_sequence(data_dir, sequence, client, now=datetime.fromisoformat(now), run_id=run_id, ledger_type=ledger_type)


if __name__ == "__main__":
    main(sys.argv[1:])
