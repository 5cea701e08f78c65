"""One writer at a time: overlapping processes on the warehouse queue on the lock instead of failing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from hearth.warehouse_lock import WarehouseLockTimeout, publish_warehouse, published_path, warehouse_lock

# Each child takes the lock, opens the warehouse read-write, says so, holds it until
# told to let go (a file appears), writes a row and records when it held the lock.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import duckdb
    from hearth.warehouse_lock import warehouse_lock

    data_dir, name = Path(sys.argv[1]), sys.argv[2]
    with warehouse_lock(data_dir, timeout=60):
        start = time.time()
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
            (data_dir / f"{name}.holding").touch()
            deadline = time.monotonic() + 30
            while not (data_dir / f"{name}.release").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.execute("create table if not exists writers (name varchar, started double, ended double)")
            conn.execute("insert into writers values (?, ?, ?)", [name, start, time.time()])
    """
)


def _child(data_dir: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), name], text=True, stderr=subprocess.PIPE)


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_a_second_process_waits_for_the_first_and_both_write(tmp_path: Path) -> None:
    first = _child(tmp_path, "first")
    _wait_for(tmp_path / "first.holding")
    second = _child(tmp_path, "second")
    try:
        # The second is blocked on the lock while the first holds the warehouse read-write.
        time.sleep(1.0)
        assert second.poll() is None
        assert not (tmp_path / "second.holding").exists()
        (tmp_path / "first.release").touch()
        (tmp_path / "second.release").touch()
        assert first.wait(60) == 0, first.stderr.read() if first.stderr else ""
        assert second.wait(60) == 0, second.stderr.read() if second.stderr else ""
    finally:
        for child in (first, second):
            if child.poll() is None:
                child.kill()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute("select name, started, ended from writers order by started").fetchall()
    assert [name for name, _, _ in rows] == ["first", "second"]
    assert rows[1][1] >= rows[0][2]  # the second held it only after the first was done


def test_a_busy_lock_times_out_with_a_message_naming_the_holder(tmp_path: Path) -> None:
    holder = _child(tmp_path, "holder")
    try:
        _wait_for(tmp_path / "holder.holding")
        messages: list[str] = []
        with (
            pytest.raises(WarehouseLockTimeout, match=f"pid {holder.pid}"),
            warehouse_lock(tmp_path, timeout=0.5, on_wait=messages.append),
        ):
            pass
        assert len(messages) == 1 and f"pid {holder.pid}" in messages[0]
    finally:
        (tmp_path / "holder.release").touch()
        assert holder.wait(60) == 0


def test_the_lock_is_reentrant_in_one_thread_and_free_afterwards(tmp_path: Path) -> None:
    with warehouse_lock(tmp_path, timeout=1), warehouse_lock(tmp_path, timeout=1):
        pass
    with warehouse_lock(tmp_path, timeout=0.1):  # released: taken at once
        pass


def test_publish_replaces_the_analysts_copy_atomically(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create table customers as select 1 as customer_key")
    assert publish_warehouse(warehouse, tmp_path) == published_path(tmp_path)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("insert into customers values (2)")
    # An analyst holds the old copy open read-only while the next build publishes.
    with duckdb.connect(str(published_path(tmp_path)), read_only=True) as analyst:
        publish_warehouse(warehouse, tmp_path)
        assert analyst.execute("select count(*) from customers").fetchall() == [(1,)]
    with duckdb.connect(str(published_path(tmp_path)), read_only=True) as conn:
        assert conn.execute("select count(*) from customers").fetchall() == [(2,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb", "warehouse_published.duckdb"]
