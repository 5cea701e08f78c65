"""The ledger's set-at-a-time writes: more keys than one statement binds, mixed statuses, input order kept."""

from __future__ import annotations

from datetime import timedelta

from hearth.ledger import Ledger, SendKey
from tests.unit.ledger_fixtures import Clock

N = 1_200  # over the 500 keys bound per statement, so every write spans several chunks


def keys(n: int, start: int = 0) -> list[SendKey]:
    return [SendKey(f"c{i}", f"c{i}@example.com", "winback", 1, f"t{i}") for i in range(start, start + n)]


def test_reserve_claims_new_and_lapsed_keys_in_the_order_given(ledger: Ledger, clock: Clock) -> None:
    items = keys(N)
    lapsed, accepted, held = items[100:200], items[600:700], items[1000:1100]
    ledger.reserve("dead-run", lapsed)
    ledger.reserve("old-run", accepted)
    ledger.mark_sending("b0", [k.send_key for k in accepted])
    ledger.mark_accepted("b0", "m0")
    clock.now += timedelta(minutes=20)  # dead-run's lease is over …
    ledger.reserve("live-run", held)  # … live-run's is not

    order = list(reversed(items))  # any order: the claims follow it
    claimed = ledger.reserve("run-2", [*order, *order[:50]])  # the repeats claim nothing more

    expected = [k for k in order if k not in accepted and k not in held]
    assert [r.customer_key for r in claimed] == [k.customer_key for k in expected]
    assert {r.customer_key for r in claimed if r.reclaimed} == {k.customer_key for k in lapsed}
    assert ledger.counts_by_status() == {"reserved": N - 100, "accepted": 100}
    assert {(ledger.get(k.send_key) or {})["run_id"] for k in held} == {"live-run"}


def test_a_key_without_an_address_is_not_claimed(ledger: Ledger) -> None:
    no_address = SendKey("c-none", None, "winback", 1, "t-none")  # type: ignore[arg-type]
    claimed = ledger.reserve("run-1", [*keys(3), no_address])
    assert [r.customer_key for r in claimed] == ["c0", "c1", "c2"]
    assert ledger.get(no_address.send_key) is None


def test_mark_sending_moves_only_reserved_keys_and_returns_them_in_order(ledger: Ledger) -> None:
    items = keys(N)
    all_keys = [k.send_key for k in items]
    ledger.reserve("run-1", items)
    ledger.reserve("run-2", keys(5, start=N))
    first = ledger.mark_sending("b1", all_keys[::3], run_id="run-1")
    assert first == all_keys[::3]

    shuffled = all_keys[::-1] + [k.send_key for k in keys(5, start=N)] + ["never-reserved"]
    second = ledger.mark_sending("b2", shuffled, run_id="run-1")  # run-2's keys are not run-1's to move

    assert second == [k for k in all_keys[::-1] if k not in set(first)]
    assert ledger.counts_by_status() == {"sending": N, "reserved": 5}
    assert ledger.mark_accepted("b2", "m2") == len(second)


def test_record_skips_inserts_new_rows_and_turns_only_own_reservations(ledger: Ledger) -> None:
    items = keys(N)
    ledger.reserve("run-1", items[:400])
    ledger.reserve("run-2", items[400:500])
    ledger.mark_sending("b1", [k.send_key for k in items[:100]], run_id="run-1")

    changed = ledger.record_skips("run-1", [(k, "holdout") for k in [*items, *items[:10]]])

    # 300 own reservations become skipped, 700 new rows; sending and run-2's rows stay as they are.
    assert changed == 300 + 700
    assert ledger.counts_by_status() == {"skipped": 1000, "sending": 100, "reserved": 100}
    assert (ledger.get(items[450].send_key) or {})["status"] == "reserved"
