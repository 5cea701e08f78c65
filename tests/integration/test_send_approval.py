"""A deployment run over the send ceiling pauses for approval in the Prefect UI, then sends once.

The ``send`` flow is registered as a deployment on the session's Prefect server and its
run is executed the way a process worker does it (``python -m prefect.engine`` with the
flow run's id), against a copy of the demo warehouse and a SendGrid sandbox. With
``HEARTH_SEND_CEILING=1`` the run must pause with nothing sent; answering the pause's
input form (what the UI's "Resume" does) with ``approve: true`` lets the same process
send every planned email exactly once.

The flow plans with the wall clock, so every recipient's time zone is set to one where
it is early afternoon now: the send window is open whenever the test runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hearth.ledger import SEND_ID_ARG, Ledger
from sandbox.run import DEMO_SHOP_ENV
from sandbox.sendgrid import SendGridSandbox
from tests.integration.warehouse_fixture import REPO, fresh_data_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

SEQUENCE = "winback"


def _afternoon_zone(now: datetime) -> str:
    """An Etc/GMT zone where it is about 13:00 at ``now`` (POSIX signs: Etc/GMT-3 is UTC+3)."""
    offset = (13 - now.hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def _ready_to_send_today(data_dir: Path) -> None:
    """The copied warehouse as if built today, every recipient inside their send window."""
    zone = _afternoon_zone(datetime.now(UTC))
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("update customer_rfm set as_of = current_date")
        for table in ("customers", "trigger_abandoned_checkouts", "trigger_replenishment", "trigger_winback"):
            conn.execute(f"update {table} set timezone = ?", [zone])


@pytest.fixture
def env(demo_warehouse: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    from prefect.settings import PREFECT_API_URL

    data_dir = fresh_data_dir(demo_warehouse, tmp_path / "data")
    _ready_to_send_today(data_dir)
    sendgrid = SendGridSandbox(data_dir / "sandbox" / "sendgrid")
    sendgrid.start()
    yield {
        **DEMO_SHOP_ENV,
        **sendgrid.env(),
        "HEARTH_DATA_DIR": str(data_dir),
        "HEARTH_SEND_CEILING": "1",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    sendgrid.stop()


def _state(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.type.value


def _wait_for(flow_run_id: Any, states: set[str], process: subprocess.Popen[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(flow_run_id)
        if state in states:
            return state
        if process.poll() is not None and state not in {"PAUSED", "RUNNING", "PENDING", "SCHEDULED"}:
            break
        time.sleep(0.5)
    output = process.stdout.read() if process.poll() is not None and process.stdout else "(still running)"
    raise AssertionError(f"flow run is {_state(flow_run_id)}, not one of {states}; engine output:\n{output[-3000:]}")


def _outbox_keys(env: dict[str, str]) -> Counter[str]:
    outbox = Path(env["HEARTH_DATA_DIR"]) / "sandbox" / "sendgrid" / "outbox.jsonl"
    lines = outbox.read_text().splitlines() if outbox.exists() else []
    return Counter(json.loads(line)["custom_args"][SEND_ID_ARG] for line in lines)


def test_a_run_over_the_ceiling_pauses_until_approved_then_sends_once(env: dict[str, str]) -> None:
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run

    from flows.sequences import send

    send.to_deployment(name="approval-test", parameters={"sequence": SEQUENCE}).apply()
    flow_run = run_deployment(name="send/approval-test", timeout=0)
    engine = subprocess.Popen(
        [sys.executable, "-m", "prefect.engine"],
        cwd=REPO,
        env={**os.environ, **env, "PREFECT__FLOW_RUN_ID": str(flow_run.id)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_for(flow_run.id, {"PAUSED"}, engine) == "PAUSED"
        assert _outbox_keys(env) == Counter()  # nothing goes out while it waits
        with Ledger(Path(env["HEARTH_DATA_DIR"]) / "state.sqlite") as ledger:
            assert [r for r in ledger.export_rows() if r["status"] != "skipped"] == []

        resume_flow_run(flow_run.id, run_input={"approve": True})  # the UI's Resume form
        assert _wait_for(flow_run.id, {"COMPLETED", "FAILED", "CRASHED"}, engine) == "COMPLETED"
    finally:
        try:
            engine.wait(timeout=60)
        finally:
            if engine.poll() is None:
                engine.kill()

    sent = _outbox_keys(env)
    with Ledger(Path(env["HEARTH_DATA_DIR"]) / "state.sqlite") as ledger:
        accepted = {r["send_key"] for r in ledger.export_rows() if r["status"] == "accepted"}
    assert len(sent) > 1  # over the ceiling of one
    assert set(sent) == accepted and max(sent.values()) == 1
