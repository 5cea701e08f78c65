"""The send ledger: a key is claimed once, and a send that may have happened is never repeated."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hearth.ledger import SEND_ID_ARG, Ledger, SendKey, key_of, send_key
from tests.unit.ledger_fixtures import T0, Clock


def keys(n: int, sequence: str = "winback", start: int = 0) -> list[SendKey]:
    return [SendKey(f"c{i}", f"c{i}@example.com", sequence, 1, f"t{i}") for i in range(start, start + n)]


def sent(ledger: Ledger, batch: str, items: list[SendKey], run_id: str = "run-1") -> list[str]:
    ledger.reserve(run_id, items)
    return ledger.mark_sending(batch, [k.send_key for k in items])


def test_send_key_is_sha256_of_the_four_parts() -> None:
    expected = hashlib.sha256(b"c1\x1fwinback\x1f2\x1ft9").hexdigest()
    assert send_key("c1", "winback", 2, "t9") == expected == SendKey("c1", "x@y.z", "winback", 2, "t9").send_key
    assert send_key("c1", "winback", 2, "t9") == send_key("c1", "winback", "2", "t9")  # step as int or text
    assert send_key("c1", "winback", 2, "t9") != send_key("c1", "winback", 3, "t9")


def test_a_key_is_claimed_once(ledger: Ledger) -> None:
    first = ledger.reserve("run-1", keys(5))
    assert [r.customer_key for r in first] == ["c0", "c1", "c2", "c3", "c4"]
    assert {r.run_id for r in first} == {"run-1"} and not any(r.reclaimed for r in first)
    assert ledger.reserve("run-1", keys(5)) == []  # the same run again
    second = ledger.reserve("run-2", keys(7))  # another run, overlapping
    assert [r.customer_key for r in second] == ["c5", "c6"]
    assert ledger.counts_by_status() == {"reserved": 7}


def test_duplicates_within_one_call_are_claimed_once(ledger: Ledger) -> None:
    item = keys(1)[0]
    assert len(ledger.reserve("run-1", [item, item, item])) == 1


def test_lease_expiry_reclaims_only_reserved_rows(ledger: Ledger, clock: Clock) -> None:
    reserved, sending, skipped = keys(3, start=0), keys(3, start=3), keys(2, start=6)
    ledger.reserve("dead-run", reserved)
    sent(ledger, "b1", sending, run_id="dead-run")
    ledger.record_skips("dead-run", [(k, "holdout") for k in skipped])
    clock.advance(minutes=14)
    assert ledger.reserve("run-2", reserved + sending + skipped) == []  # the lease still holds
    clock.advance(minutes=2)
    again = ledger.reserve("run-2", reserved + sending + skipped)
    assert [(r.customer_key, r.reclaimed) for r in again] == [("c0", True), ("c1", True), ("c2", True)]
    assert {ledger.get(k.send_key)["run_id"] for k in reserved} == {"run-2"}  # type: ignore[index]
    assert set(ledger.statuses(k.send_key for k in sending).values()) == {"sending"}


def test_mark_sending_moves_each_key_once(ledger: Ledger) -> None:
    items = keys(3)
    ledger.reserve("run-1", items)
    all_keys = [k.send_key for k in items]
    assert ledger.mark_sending("b1", all_keys[:2]) == all_keys[:2]
    assert ledger.mark_sending("b2", all_keys) == all_keys[2:]  # the first two already went
    assert ledger.mark_sending("b3", ["never-reserved"]) == []


def test_mark_sending_for_a_run_only_moves_its_own_rows(ledger: Ledger, clock: Clock) -> None:
    items = keys(2)
    ledger.reserve("slow-run", items)
    clock.advance(minutes=20)
    ledger.reserve("run-2", items)  # the slow run's lease ran out
    assert ledger.mark_sending("b-slow", [k.send_key for k in items], run_id="slow-run") == []
    assert len(ledger.mark_sending("b2", [k.send_key for k in items], run_id="run-2")) == 2


def test_accepted_records_the_message_id_for_the_batch(ledger: Ledger, clock: Clock) -> None:
    items = keys(3)
    sent(ledger, "b1", items[:2])
    sent(ledger, "b2", items[2:])
    clock.advance(seconds=2)
    assert ledger.mark_accepted("b1", "msg-1") == 2
    rows = [ledger.get(k.send_key) for k in items]
    assert [(r["status"], r["message_id"], r["batch_id"]) for r in rows if r] == [
        ("accepted", "msg-1", "b1"),
        ("accepted", "msg-1", "b1"),
        ("sending", None, "b2"),
    ]
    first = rows[0] or {}
    assert first["created_at"] == first["sending_at"] == T0.isoformat(timespec="microseconds")
    assert first["updated_at"] == (T0 + timedelta(seconds=2)).isoformat(timespec="microseconds")


def test_failed_is_final_and_unknown_is_never_resent(ledger: Ledger, clock: Clock) -> None:
    rejected, timed_out = keys(2, start=0), keys(2, start=2)
    sent(ledger, "b-400", rejected)
    sent(ledger, "b-timeout", timed_out)
    assert ledger.mark_failed([k.send_key for k in rejected], "400 invalid email") == 2
    assert ledger.mark_unknown("b-timeout", "read timeout") == 2
    assert ledger.mark_accepted("b-timeout", "late") == 0  # only sending rows finish a batch
    assert ledger.counts_by_status() == {"failed": 2, "unknown": 2}
    assert ledger.get(rejected[0].send_key)["reason"] == "400 invalid email"  # type: ignore[index]
    clock.advance(days=3)
    assert ledger.reserve("run-2", rejected + timed_out) == []


def test_skips_are_terminal_and_never_overwrite_a_send(ledger: Ledger) -> None:
    items = keys(4)
    sent(ledger, "b1", items[:1])
    ledger.reserve("run-1", items[1:2])
    written = ledger.record_skips("run-1", [(k, "ordered_since_trigger") for k in items])
    assert written == 3  # the reserved row of this run and the two new ones, not the one sending
    statuses = ledger.statuses(k.send_key for k in items)
    assert [statuses[k.send_key] for k in items] == ["sending", "skipped", "skipped", "skipped"]
    assert ledger.record_skips("run-2", [(k, "stale") for k in items]) == 0  # idempotent
    assert ledger.get(items[2].send_key)["reason"] == "ordered_since_trigger"  # type: ignore[index]
    assert ledger.reserve("run-3", items) == []


def test_a_skip_by_another_run_does_not_take_a_reserved_key(ledger: Ledger) -> None:
    item = keys(1)[0]
    ledger.reserve("run-1", [item])
    assert ledger.record_skips("run-2", [(item, "holdout")]) == 0
    assert ledger.statuses([item.send_key]) == {item.send_key: "reserved"}


def test_release_gives_back_only_this_runs_reserved_keys(ledger: Ledger) -> None:
    mine, sending = keys(2), keys(1, start=2)
    ledger.reserve("run-1", mine)
    sent(ledger, "b1", sending)
    assert ledger.release("run-2", [k.send_key for k in mine]) == 0
    assert ledger.release("run-1", [k.send_key for k in mine + sending]) == 2
    assert len(ledger.reserve("run-2", mine + sending)) == 2


def test_recover_turns_sending_of_dead_runs_into_unknown(ledger: Ledger, clock: Clock) -> None:
    crashed, live = keys(2), keys(2, start=2)
    sent(ledger, "b1", crashed, run_id="run-1")
    clock.advance(minutes=10)
    sent(ledger, "b2", live, run_id="run-2")
    ledger.reserve("run-2", keys(1, start=4))  # not handed to SendGrid: stays reserved
    assert ledger.recover(T0 + timedelta(minutes=12)) == []  # both still within the lease
    assert sorted(ledger.recover(T0 + timedelta(minutes=16))) == sorted(k.send_key for k in crashed)
    assert ledger.recover(T0 + timedelta(minutes=12), dead_runs=["run-2"]) == [k.send_key for k in live]
    assert ledger.counts_by_status() == {"unknown": 4, "reserved": 1}
    assert ledger.reserve("run-3", crashed + live) == []


def test_reconcile_moves_unknown_to_accepted_and_reports_the_rest(ledger: Ledger, clock: Clock) -> None:
    confirmed, silent, failed = keys(2), keys(1, start=2), keys(1, start=3)
    sent(ledger, "b1", confirmed + silent)
    ledger.mark_unknown("b1", "502 from SendGrid")
    sent(ledger, "b2", failed)
    ledger.mark_failed([failed[0].send_key], "400")
    events = [
        {"event": "processed", SEND_ID_ARG: confirmed[0].send_key, "sg_message_id": "X1.filter.0"},
        {"event": "delivered", SEND_ID_ARG: confirmed[0].send_key, "sg_message_id": "X1.filter.0"},
        {"event": "bounce", "custom_args": {SEND_ID_ARG: confirmed[1].send_key}, "sg_message_id": "X1.filter.1"},
        {"event": "delivered", SEND_ID_ARG: failed[0].send_key, "sg_message_id": "X2.filter.0"},
        {"event": "open", SEND_ID_ARG: "a-key-we-never-wrote"},
        {"event": "open", "email": "no-key@example.com"},
    ]
    clock.advance(hours=1)
    result = ledger.reconcile(events, grace=timedelta(hours=2))
    assert sorted(result.accepted) == sorted(k.send_key for k in confirmed + failed)
    assert result.unresolved == []  # the silent one is still within its grace
    assert ledger.get(confirmed[1].send_key)["message_id"] == "X1"  # type: ignore[index]
    assert ledger.counts_by_status() == {"accepted": 3, "unknown": 1}
    later = ledger.reconcile(events, now=T0 + timedelta(hours=5), grace=timedelta(hours=2))
    assert later.accepted == [] and later.unresolved == [silent[0].send_key]
    assert ledger.reserve("run-2", silent) == []  # reported, never resent


def test_recent_sends_counts_anything_that_may_have_reached_the_person(ledger: Ledger, clock: Clock) -> None:
    a = SendKey("c1", "c1@example.com", "abandoned_cart", 1, "chk-1")
    b = SendKey("c1", "c1@example.com", "winback", 2, "w-1")
    c = SendKey("c2", "c2@example.com", "winback", 1, "w-2")
    d = SendKey("c3", "c3@example.com", "winback", 1, "w-3")
    sent(ledger, "b1", [a])
    ledger.mark_unknown("b1", "timeout")
    clock.advance(hours=1)
    sent(ledger, "b2", [b, c])
    ledger.mark_accepted("b2", "m")
    sent(ledger, "b3", [d])
    ledger.mark_failed([d.send_key], "400")  # nothing went out
    ledger.reserve("run-1", [SendKey("c4", "c4@example.com", "winback", 1, "w-4")])  # not yet sent
    recent = ledger.recent_sends(["c1", "c2", "c3", "c4", "c5"], since=T0 - timedelta(hours=16))
    assert recent == {
        "c1": [("abandoned_cart", "1", T0), ("winback", "2", T0 + timedelta(hours=1))],
        "c2": [("winback", "1", T0 + timedelta(hours=1))],
    }
    assert ledger.recent_sends(["c1"], since=T0 + timedelta(minutes=30)) == {
        "c1": [("winback", "2", T0 + timedelta(hours=1))]
    }


def test_counts_by_sequence_and_export_since(ledger: Ledger, clock: Clock) -> None:
    ledger.reserve("run-1", keys(2, "winback"))
    clock.advance(minutes=1)
    ledger.record_skips("run-1", [(k, "holdout") for k in keys(3, "abandoned_cart")])
    assert ledger.counts_by_status("abandoned_cart") == {"skipped": 3}
    assert ledger.counts_by_status("winback") == {"reserved": 2}
    assert len(ledger.export_rows()) == 5
    exported = ledger.export_rows(T0 + timedelta(seconds=30))
    assert [(r["sequence"], r["status"], r["reason"]) for r in exported] == [
        ("abandoned_cart", "skipped", "holdout")
    ] * 3
    assert set(exported[0]) >= {"send_key", "customer_key", "email", "step", "trigger_id", "run_id", "created_at"}


def test_rows_only_take_known_statuses(tmp_path: Path) -> None:
    with Ledger(tmp_path / "state.sqlite") as ledger:
        pass
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO sends (send_key, customer_key, email, sequence, step, trigger_id, status,"
            " created_at, updated_at) VALUES ('k', 'c', 'e', 's', '1', 't', 'sent', 'x', 'x')"
        )
    conn.close()
    with Ledger(tmp_path / "state.sqlite") as ledger:  # reopening keeps the schema
        assert ledger.counts_by_status() == {}


def test_naive_times_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        ledger.recent_sends(["c1"], since=datetime(2026, 1, 1))


def test_a_skip_without_an_address_is_still_recorded(tmp_path: Path) -> None:
    with Ledger(tmp_path / "state.sqlite") as ledger:
        nobody = SendKey("c-1", None, "winback", "reminder", "t-1")  # type: ignore[arg-type]
        assert ledger.record_skips("run-1", [(nobody, "invalid_email")]) == 1
        assert ledger.statuses([key_of(nobody)]) == {key_of(nobody): "skipped"}
