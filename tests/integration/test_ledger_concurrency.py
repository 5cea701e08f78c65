"""Two processes on one state.sqlite: each key claimed once; a kill mid-send never leads to a resend."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hearth.ledger import Ledger, SendKey

KEYS = 400
CHUNK = 20  # small reservations, so the two processes interleave


def all_keys() -> list[SendKey]:
    return [SendKey(f"c{i}", f"c{i}@example.com", "winback", 1, f"order-{i}") for i in range(KEYS)]


def _reserve(path: str, run_id: str, indexes: list[int], start: Any, out: Any) -> None:
    """One run: reserve its keys in small chunks, as a sequence flow reserves batch by batch."""
    items = all_keys()
    with Ledger(Path(path)) as ledger:
        start.wait(30)  # both begin at the same moment
        claimed: list[str] = []
        for at in range(0, len(indexes), CHUNK):
            chunk = [items[i] for i in indexes[at : at + CHUNK]]
            claimed += [r.send_key for r in ledger.reserve(run_id, chunk)]
            time.sleep(0.02)  # between batches a real run renders templates; let the other run in
    out.put((run_id, claimed))


def test_two_processes_reserving_overlapping_keys_claim_each_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    # Both start on the shared keys 100..299 in the same order, so they race for the very same
    # chunks at the same moment; then each takes its own keys (0..99, 300..399).
    first = list(range(100, 300)) + list(range(0, 100))
    second = list(range(100, KEYS))
    workers = [
        context.Process(target=_reserve, args=(path, "run-a", first, start, out)),
        context.Process(target=_reserve, args=(path, "run-b", second, start, out)),
    ]
    for process in workers:
        process.start()
    results = dict(out.get(timeout=60) for _ in workers)
    for process in workers:
        process.join(30)
    assert [p.exitcode for p in workers] == [0, 0]

    claims = results["run-a"] + results["run-b"]
    assert len(claims) == len(set(claims)) == KEYS  # no key twice, every key once
    assert set(claims) == {k.send_key for k in all_keys()}
    with Ledger(Path(path)) as ledger:
        assert ledger.counts_by_status() == {"reserved": KEYS}
        owners = {k: (ledger.get(k) or {})["run_id"] for k in claims}
    assert all(owners[k] == "run-a" for k in results["run-a"])
    assert all(owners[k] == "run-b" for k in results["run-b"])


def _send_and_hang(path: str, count: int, ready: Any) -> None:
    """A run that reserves and marks a batch ``sending`` and then hangs inside the API call."""
    with Ledger(Path(path)) as ledger:
        claimed = ledger.reserve("doomed-run", all_keys()[:count])
        ledger.mark_sending("batch-1", [r.send_key for r in claimed])
        ready.set()
        time.sleep(60)  # the "API call": killed long before it returns
        ledger.mark_accepted("batch-1", "never-reached")


def test_a_run_killed_mid_send_leaves_unknown_keys_that_are_never_resent(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=_send_and_hang, args=(path, 50, ready), daemon=True)
    child.start()
    assert ready.wait(60), "the child never marked its batch sending"
    child.kill()  # SIGKILL: no cleanup, no except, no finally
    child.join(30)
    assert child.exitcode == -9

    batch = [k.send_key for k in all_keys()[:50]]
    with Ledger(Path(path)) as ledger:
        assert set(ledger.statuses(batch).values()) == {"sending"}
        later = datetime.now(UTC) + timedelta(minutes=16)  # past the lease: the run is dead
        assert sorted(ledger.recover(later)) == sorted(batch)
        assert set(ledger.statuses(batch).values()) == {"unknown"}
        rerun = ledger.reserve("rerun", all_keys()[:60])
        assert [r.customer_key for r in rerun] == [f"c{i}" for i in range(50, 60)]  # only the untouched keys
    with Ledger(Path(path), clock=lambda: later + timedelta(days=2)) as ledger:  # even days later
        assert ledger.reserve("much-later", all_keys()[:50]) == []
        assert ledger.unresolved() == sorted(batch)  # reported, not retried
