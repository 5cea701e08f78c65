"""What must hold of the email sequences, checked at the SendGrid sandbox's outbox and in the ledger.

Runs drive ``hearth.sending.plan`` and ``hearth.mail_batches.send_planned`` with a fixed
``now`` (the flow's quiet hours follow the wall clock) against a real SendGrid sandbox over a small demo warehouse
built once per module. Every email is keyed by ``custom_args.hearth_send_key``; the
outbox has one line per recipient, so "sent twice" is a key seen on two lines.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import hearth.mail_batches
from connectors.sendgrid import SendGridClient, SendGridSettings
from hearth.ledger import SEND_ID_ARG, Ledger
from hearth.quality.store import GateResult, open_store, record
from sandbox.run import DEMO_SHOP_ENV
from sandbox.sendgrid import SendGridSandbox
from tests.integration.sequence_child import KILL_POINTS, client_from_env, plan_run, run_sequence
from tests.integration.warehouse_fixture import DEMO_NOW, REPO, fresh_data_dir

NOW = DEMO_NOW
SEQUENCES = ("abandoned_cart", "replenishment", "winback")


@pytest.fixture
def warehouse(demo_warehouse: Path) -> Path:
    return demo_warehouse


class Shop:
    """A test's own data dir (warehouse + state copied) and its own SendGrid sandbox."""

    def __init__(self, data_dir: Path, sendgrid: SendGridSandbox) -> None:
        self.data_dir, self.sendgrid = data_dir, sendgrid

    @property
    def env(self) -> dict[str, str]:
        return {**DEMO_SHOP_ENV, **self.sendgrid.env(), "HEARTH_DATA_DIR": str(self.data_dir)}

    def client(self) -> SendGridClient:
        return client_from_env(self.env)

    def ledger(self, **kwargs: Any) -> Ledger:
        return Ledger(self.data_dir / "state.sqlite", **kwargs)

    def sent_keys(self) -> Counter[str]:
        """How many outbox lines carry each send key."""
        return Counter(r["custom_args"][SEND_ID_ARG] for r in self.sendgrid.outbox())

    def rows(self) -> dict[str, dict[str, Any]]:
        with self.ledger() as ledger:
            return {row["send_key"]: row for row in ledger.export_rows()}


@pytest.fixture
def shop(warehouse: Path, tmp_path: Path) -> Iterator[Shop]:
    data_dir = fresh_data_dir(warehouse, tmp_path / "data")
    sendgrid = SendGridSandbox(data_dir / "sandbox" / "sendgrid")
    sendgrid.start()
    yield Shop(data_dir, sendgrid)
    sendgrid.stop()


def _status(rows: dict[str, dict[str, Any]], keys: set[str]) -> Counter[str]:
    return Counter(rows[k]["status"] for k in keys)


# -- 1. end to end ------------------------------------------------------------------------------


def test_a_run_sends_each_key_once_and_a_second_run_sends_nothing(shop: Shop) -> None:
    client, planned = shop.client(), {}
    for seq in SEQUENCES:
        # Planned just before its run: the frequency cap holds back people an earlier sequence emailed.
        planned[seq] = {p.send_key for p in plan_run(shop.data_dir, seq, now=NOW)}
        summary = run_sequence(shop.data_dir, seq, client, now=NOW, run_id=f"first-{seq}")
        assert summary.sent == len(planned[seq]) > 0 and summary.failed == summary.unknown == 0
    everything = set().union(*planned.values())
    rows = shop.rows()
    accepted = {k for k, r in rows.items() if r["status"] == "accepted"}
    assert accepted == everything
    sent = shop.sent_keys()
    assert set(sent) == accepted and set(sent.values()) == {1}
    # The outbox line is the email the ledger says it is: same address, same step's template data.
    by_key = {r["custom_args"][SEND_ID_ARG]: r for r in shop.sendgrid.outbox()}
    assert all(by_key[k]["to"]["email"] == rows[k]["email"] for k in accepted)
    assert all(by_key[k]["categories"][-1] == f"hearth:{rows[k]['sequence']}:{rows[k]['step']}" for k in accepted)
    # Skips are recorded with their reason, once.
    assert {r["reason"] for r in rows.values() if r["status"] == "skipped"} >= {"not_subscribed", "stale"}

    for seq in SEQUENCES:
        again = run_sequence(shop.data_dir, seq, client, now=NOW, run_id=f"second-{seq}")
        assert (again.sent, again.requests, again.skipped) == (0, 0, {})
        assert sum(again.deferred.values()) == again.considered  # only what was deferred comes back
    assert shop.sent_keys() == sent


# -- 2. crashes at every point of the protocol --------------------------------------------------


@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_a_run_killed_at_any_point_never_leads_to_a_duplicate_or_a_silent_loss(shop: Shop, kill_point: str) -> None:
    sequence, batch_size = "winback", 3
    planned = {p.send_key for p in plan_run(shop.data_dir, sequence, now=NOW)}
    assert len(planned) > 2 * batch_size, "several batches are needed for a kill between two of them"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.sequence_child",
            sequence,
            "dead-run",
            NOW.isoformat(),
            kill_point,
            str(batch_size),
        ],
        cwd=REPO,
        env={**os.environ, **shop.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, f"the child should have been killed {kill_point}: {child.stderr[-2000:]}"
    before = shop.sent_keys()
    assert (
        len(before)
        == {"after_reserve": 0, "after_mark_sending": 0, "after_api_call": batch_size, "after_first_batch": batch_size}[
            kill_point
        ]
    )

    summary = run_sequence(
        shop.data_dir, sequence, shop.client(), now=NOW, run_id="rerun", lease=timedelta(0), dead_runs=["dead-run"]
    )

    sent, rows = shop.sent_keys(), shop.rows()
    assert set(sent.values()) == {1}, "a key reached SendGrid twice"
    assert set(sent) <= planned
    statuses = _status(rows, planned)
    assert set(statuses) <= {"accepted", "unknown"}, f"a planned key was left behind: {statuses}"
    accepted = {k for k in planned if rows[k]["status"] == "accepted"}
    unknown = planned - accepted
    assert accepted <= set(sent)  # accepted → in the outbox exactly once
    # What was handed to SendGrid before the kill is either confirmed or unknown, never resent.
    in_flight = batch_size if kill_point in ("after_mark_sending", "after_api_call") else 0
    assert len(unknown) == in_flight and all(rows[k]["reason"] == "run died while sending" for k in unknown)
    assert summary.sent == len(planned) - len(before) - (in_flight if kill_point == "after_mark_sending" else 0)
    assert set(sent) == accepted | (set(before) & unknown)


# -- 3. two runs at once -------------------------------------------------------------------------


def test_two_runs_started_together_split_the_keys_between_them(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    sequence = "winback"
    expected = {p.send_key for p in plan_run(shop.data_dir, sequence, now=NOW)}
    monkeypatch.setattr(hearth.mail_batches, "BATCH_SIZE", 2)
    start, summaries, errors = threading.Barrier(2), {}, []

    def one_run(run_id: str) -> None:
        try:
            start.wait(30)
            summaries[run_id] = run_sequence(shop.data_dir, sequence, shop.client(), now=NOW, run_id=run_id)
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=one_run, args=(run_id,)) for run_id in ("run-a", "run-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    sent = shop.sent_keys()
    assert set(sent.values()) == {1}
    assert set(sent) == expected
    assert summaries["run-a"].sent + summaries["run-b"].sent == len(expected)
    rows = shop.rows()
    assert {rows[k]["status"] for k in expected} == {"accepted"}


# -- 5. bad input --------------------------------------------------------------------------------


class OneBadBatchClient(SendGridClient):
    """The real client, but the body of the ``bad``-th mail send gets a sender SendGrid refuses (a 400)."""

    def __init__(self, *args: Any, bad: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.bad, self.refused_keys = 0, bad, set[str]()

    def send(self, body: Mapping[str, Any]) -> Any:
        self.calls += 1
        if self.calls == self.bad:
            body = {**body, "from": {"email": "not-an-address"}}
            self.refused_keys = {p["custom_args"][SEND_ID_ARG] for p in body["personalizations"]}
        return super().send(body)


def test_bad_input_is_skipped_or_failed_with_a_reason_and_the_rest_is_sent(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequence = "abandoned_cart"
    planned = plan_run(shop.data_dir, sequence, now=NOW)
    assert len(planned) >= 5
    no_url, bad_address = planned[0], planned[1]
    with duckdb.connect(str(shop.data_dir / "warehouse.duckdb")) as conn:
        conn.execute(
            "update trigger_abandoned_checkouts set checkout_url = '' where trigger_id = ?",
            [no_url.candidate.trigger_id],
        )
        conn.execute(
            "update trigger_abandoned_checkouts set email = 'not-an-address' where trigger_id = ?",
            [bad_address.candidate.trigger_id],
        )
    monkeypatch.setattr(hearth.mail_batches, "BATCH_SIZE", 1)  # one batch per person: the 400 hits one of them
    settings = SendGridSettings.from_env(shop.env)
    client = OneBadBatchClient(settings, bad=2)

    summary = run_sequence(shop.data_dir, sequence, client, now=NOW, run_id="bad-input")

    rows, sent = shop.rows(), shop.sent_keys()
    assert rows[no_url.send_key]["status"] == "skipped"
    assert (
        rows[no_url.send_key]["reason"].startswith("template_error")
        and "checkout_url" in rows[no_url.send_key]["reason"]
    )
    assert any(r["reason"].startswith("template_error") for r in summary.rows)  # in the decisions file too
    assert (rows[bad_address.send_key]["status"], rows[bad_address.send_key]["reason"]) == ("skipped", "invalid_email")
    assert len(client.refused_keys) == 1
    (refused,) = client.refused_keys
    assert rows[refused]["status"] == "failed" and "HTTP 400" in rows[refused]["reason"]
    rest = {p.send_key for p in planned} - {no_url.send_key, bad_address.send_key, refused}
    assert {rows[k]["status"] for k in rest} == {"accepted"}
    assert set(sent) == rest and set(sent.values()) == {1}
    assert (summary.sent, summary.failed, summary.skipped.get("template_error")) == (len(rest), 1, 1)


# -- 4 and 6. the flow refuses what is not safe ---------------------------------------------------


def _point_at(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in shop.env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_refuses_to_send_from_a_backfilled_warehouse(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sequences import SendRefused, send

    _point_at(shop, monkeypatch)  # the warehouse was built as of NOW, days before the wall clock
    with pytest.raises(SendRefused, match="backfill"):
        send("abandoned_cart")
    assert shop.sendgrid.outbox() == []
    assert shop.rows() == {}


def _built_yesterday(data_dir: Path, checked_at: datetime) -> None:
    """The copied warehouse as built for yesterday, its gate passed at ``checked_at``."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("update customer_rfm set as_of = current_date - 1")
    with closing(open_store(data_dir / "state.sqlite")) as conn:
        gate = GateResult(passed=True, failures=[], docs_path=data_dir / "docs.html", run_id=f"gate-{checked_at:%H%M}",
                          checked_at=checked_at)  # fmt: skip
        record(conn, gate)


@pytest.mark.usefixtures("prefect_harness")
def test_just_after_midnight_yesterdays_last_build_still_sends_but_a_backfill_of_yesterday_does_not(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.sequences import SendRefused, send

    _point_at(shop, monkeypatch)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    _built_yesterday(shop.data_dir, checked_at=today - timedelta(minutes=35))  # the 23:25 build
    assert send("abandoned_cart", dry_run=True)["dry_run"] is True  # the 00:00 run is not refused

    _built_yesterday(shop.data_dir, checked_at=datetime.now(UTC))  # yesterday rebuilt today: a backfill
    with pytest.raises(SendRefused, match="backfill"):
        send("abandoned_cart", dry_run=True)
    assert shop.sendgrid.outbox() == []


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_refuses_to_send_after_a_failed_gate(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sequences import SendRefused, send

    _point_at(shop, monkeypatch)
    _as_of_today(shop.data_dir)  # only the gate stands in the way
    with closing(open_store(shop.data_dir / "state.sqlite")) as conn:
        record(
            conn,
            GateResult(
                passed=False,
                failures=["marts.customers: email_consent has 7 unknown values"],
                docs_path=shop.data_dir / "docs.html",
                run_id="failed-gate",
                checked_at=datetime.now(UTC),
            ),
        )
    with pytest.raises(SendRefused, match=r"quality gate .* failed.*email_consent"):
        send("winback", approve=True)
    assert shop.sendgrid.outbox() == []
    assert shop.rows() == {}


@pytest.mark.usefixtures("prefect_harness")
def test_a_dry_run_writes_who_would_get_what_and_sends_nothing(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sequences import send

    _point_at(shop, monkeypatch)
    _as_of_today(shop.data_dir)
    result = send("abandoned_cart", dry_run=True)

    with open(result["decisions_file"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert result["dry_run"] is True and "_dry_run" in result["decisions_file"]
    assert rows and {r["decision"] for r in rows} <= {"send", "skip", "defer"}
    counts = result["counts"]
    assert sum(r["decision"] == "send" for r in rows) == counts["planned"]
    assert len(rows) == sum(v for k, v in counts.items() if k == "planned" or k.startswith(("skipped", "deferred")))
    assert shop.sendgrid.outbox() == []
    assert shop.rows() == {}  # nothing reserved, nothing recorded


def _as_of_today(data_dir: Path) -> None:
    """Make the copied warehouse look built for today (its dates are otherwise the fixed NOW's)."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("update customer_rfm set as_of = current_date")
