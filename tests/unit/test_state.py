"""The state store: monotonic cursors, backfill windows, the load log, migrations, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hearth.rawzone import LoadResult, RawZone
from hearth.state import STATE_MIGRATIONS, StateError, StateStore, connect, migrate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as s:
        yield s


def test_a_cursor_never_moves_backwards(store: StateStore) -> None:
    assert store.get_cursor("shopify", "orders") is None
    assert store.set_cursor("shopify", "orders", "2026-03-01T10:00:00Z") == "2026-03-01T10:00:00Z"
    assert store.set_cursor("shopify", "orders", "2026-03-01T09:59:59Z") == "2026-03-01T10:00:00Z"
    # Compared as instants, not as strings: 11:30+02:00 is 09:30Z, earlier.
    assert store.set_cursor("shopify", "orders", "2026-03-01T11:30:00+02:00") == "2026-03-01T10:00:00Z"
    assert store.set_cursor("shopify", "orders", "2026-03-01T10:00:00.000001Z") == "2026-03-01T10:00:00.000001Z"
    assert store.get_cursor("shopify", "orders") == "2026-03-01T10:00:00.000001Z"
    assert store.get_cursor("shopify", "customers") is None  # cursors are per stream


def test_a_cursor_must_be_a_timestamp(store: StateStore) -> None:
    with pytest.raises(ValueError, match="'page-7' is not an ISO-8601 timestamp"):
        store.set_cursor("amazon", "orders", "page-7")
    assert store.get_cursor("amazon", "orders") is None


def test_state_persists_and_the_file_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.sqlite"
    with StateStore(path) as first:
        first.set_cursor("facebook", "insights", "2026-02-01")
    with StateStore(path) as second:
        assert second.get_cursor("facebook", "insights") == "2026-02-01"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT component, version FROM schema_version").fetchall() == [
        ("state", len(STATE_MIGRATIONS))
    ]


def test_backfill_windows_are_recorded_per_run_and_idempotent(store: StateStore) -> None:
    store.mark_window_done("bf-1", "shopify", "orders", "2026-01-01", "2026-01-08", 120)
    store.mark_window_done("bf-1", "shopify", "orders", "2026-01-08", "2026-01-15", 80)
    store.mark_window_done("bf-1", "shopify", "orders", "2026-01-08", "2026-01-15", 81)  # a rerun of one window
    store.mark_window_done("bf-2", "shopify", "orders", "2025-01-01", "2025-01-08", 5)
    store.mark_window_done("bf-1", "amazon", "orders", "2026-01-01", "2026-01-08", 7)
    assert store.done_windows("bf-1", "shopify", "orders") == {
        ("2026-01-01", "2026-01-08"),
        ("2026-01-08", "2026-01-15"),
    }
    assert store.done_windows("bf-2", "shopify", "orders") == {("2025-01-01", "2025-01-08")}
    assert store.done_windows("bf-3", "shopify", "orders") == set()
    with store.transaction() as conn:
        rows = conn.execute("SELECT rows FROM backfill_windows WHERE window_start = '2026-01-08'").fetchall()
    assert [r[0] for r in rows] == [81]


def test_the_load_log_keeps_what_landed(store: StateStore, tmp_path: Path) -> None:
    zone = RawZone(tmp_path / "raw", now=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    with zone.open_load("shopify", "orders", load_id="L1") as load:
        load.write([{"id": "1", "u": None}], id_of=lambda r: r["id"], updated_at_of=lambda r: r["u"])
    store.record_load(load.result, window_start="2026-02-28T00:00:00Z", window_end="2026-03-01T00:00:00Z")
    store.record_load(load.result)  # idempotent on load_id (the window is the latest call's)
    store.record_load(LoadResult(None, 0, 2, "L2"), source="amazon", stream="orders", run_key="bf-1")
    shopify = store.loads(source="shopify")
    assert len(shopify) == 1
    assert {k: shopify[0][k] for k in ("load_id", "stream", "path", "rows", "quarantined", "extracted_at")} == {
        "load_id": "L1",
        "stream": "orders",
        "path": str(load.result.path),
        "rows": 1,
        "quarantined": 0,
        "extracted_at": "2026-03-01T00:00:00+00:00",
    }
    assert [(r["load_id"], r["path"], r["quarantined"]) for r in store.loads(run_key="bf-1")] == [("L2", None, 2)]
    assert len(store.loads()) == 2
    with pytest.raises(ValueError, match="needs source and stream"):
        store.record_load(LoadResult(None, 0, 0, "L3"))


def test_other_components_add_tables_through_migrations(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    ledger = [("CREATE TABLE sends (send_key TEXT PRIMARY KEY)",), ("ALTER TABLE sends ADD COLUMN status TEXT",)]
    conn = connect(path)
    assert migrate(conn, "ledger", ledger[:1]) == 1
    assert migrate(conn, "ledger", ledger) == 2
    assert migrate(conn, "ledger", ledger) == 2  # nothing left to apply
    conn.execute("INSERT INTO sends VALUES ('k', 'sent')")
    versions = dict(conn.execute("SELECT component, version FROM schema_version").fetchall())
    assert versions == {"state": len(STATE_MIGRATIONS), "ledger": 2}
    with pytest.raises(StateError, match="ledger schema v2, this Hearth knows v1"):
        migrate(conn, "ledger", ledger[:1])
    conn.close()
    with StateStore(path) as again:  # reopening does not re-run applied migrations
        assert again.get_cursor("x", "y") is None


def test_a_failed_transaction_rolls_back(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO cursors VALUES ('s', 't', '2026-01-01', 'now')")
        raise RuntimeError("crash before commit")
    assert store.get_cursor("s", "t") is None


BASE = datetime(2026, 1, 1, tzinfo=UTC)
ROUNDS = 60


def _writer(path: str, worker: int, start: Any) -> None:
    """One process: its own connection, interleaving cursor moves, loads and windows with the other."""
    start.wait(30)  # both open the fresh file at the same moment
    with StateStore(Path(path)) as store:
        for i in range(ROUNDS):
            stamp = (BASE + timedelta(seconds=2 * i + worker)).isoformat()
            store.set_cursor("shopify", "orders", stamp)
            store.record_load(LoadResult(None, i, 0, f"w{worker}-{i}"), source="shopify", stream="orders")
            store.mark_window_done("bf", "shopify", "orders", f"w{worker}-{i}", f"w{worker}-{i + 1}", i)


def test_two_processes_writing_at_once_do_not_corrupt_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_writer, args=(str(path), w, start)) for w in (0, 1)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    with StateStore(path) as store:
        last = (BASE + timedelta(seconds=2 * (ROUNDS - 1) + 1)).isoformat()
        assert store.get_cursor("shopify", "orders") == last
        assert len(store.loads(source="shopify", stream="orders")) == 2 * ROUNDS
        assert len(store.done_windows("bf", "shopify", "orders")) == 2 * ROUNDS
        with store.transaction() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
