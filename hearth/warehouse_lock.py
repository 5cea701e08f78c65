"""One process at a time on the warehouse, and a published copy analysts can always open.

DuckDB lets one process open a file read-write and then refuses every other
process, even a read-only one. Hearth's flows overlap by schedule (the hourly build
while the 15-minute abandoned-cart run plans), so they take an exclusive ``flock``
on ``$HEARTH_DATA_DIR/warehouse.lock`` around every use of the warehouse: a second
run *waits* for the first instead of failing on DuckDB's lock error. A file lock
covers exactly the scope of DuckDB's own lock (processes on this machine using
this file), works the same from the CLI and from a deployment, and the kernel
releases it when a holder dies, so a killed run never leaves it stuck.

After a build passes the quality gate the transform flow copies the warehouse to
``warehouse_published.duckdb`` (temp file + rename): analysts open that copy at any
time without ever blocking a run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "warehouse.lock"
PUBLISHED_NAME = "warehouse_published.duckdb"
_POLL_SECONDS = 0.2

# Re-entry from the same thread (a flow that holds the lock and calls a helper that
# takes it too) must not deadlock on its own flock: count nesting per thread and path.
_held = threading.local()


class WarehouseLockTimeout(TimeoutError):
    """The warehouse stayed busy longer than the caller would wait."""


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_NAME


def published_path(data_dir: Path) -> Path:
    return Path(data_dir) / PUBLISHED_NAME


@contextmanager
def warehouse_lock(
    data_dir: Path,
    *,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the warehouse exclusively for the ``with`` block; wait while another process holds it.

    Args:
        data_dir: ``$HEARTH_DATA_DIR`` (the lock file lives beside ``warehouse.duckdb``).
        timeout: seconds to wait at most; ``None`` waits as long as it takes.
        on_wait: called once with a message naming the holder when the lock is busy (logging).

    Raises:
        WarehouseLockTimeout: still busy after ``timeout`` seconds.
    """
    path = lock_path(data_dir)
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = str(path.resolve())
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        _acquire(handle, path, timeout, on_wait)
        # Who holds it, for the message of the next waiter (informational only).
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        handle.flush()
        depth[key] = 1
        try:
            yield
        finally:
            depth.pop(key, None)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _acquire(handle: object, path: Path, timeout: float | None, on_wait: Callable[[str], None] | None) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
        return
    except BlockingIOError:
        pass
    holder = path.read_text().strip() or "another process"
    if on_wait is not None:
        on_wait(f"warehouse busy ({holder}); waiting for it in {path}")
    deadline = None if timeout is None else time.monotonic() + timeout
    # Polling instead of a blocking flock keeps the timeout exact and the wait interruptible.
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                raise WarehouseLockTimeout(
                    f"the warehouse stayed busy ({holder}) for {timeout:.0f}s; "
                    f"retry when that run has finished (the lock {path} frees itself when its holder exits)"
                ) from None
            time.sleep(_POLL_SECONDS)


def publish_warehouse(warehouse: Path, data_dir: Path) -> Path:
    """Copy the warehouse to ``warehouse_published.duckdb`` atomically; call while holding the lock.

    The copy is written under a temporary name in the same directory and renamed over
    the old one, so a reader sees either the previous copy or the new one, never half
    of it (a reader holding the old file keeps reading the old inode).
    """
    target = published_path(data_dir)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(warehouse, temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target
