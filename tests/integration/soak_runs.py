"""Runs as a process worker starts them: one OS process per flow run, each with its own log file.

:class:`Run` is one `hearth` command started at a given offset; :func:`holds_warehouse`
tells whether a process holds the warehouse lock right now (the kernel's ``flock``, not
just the holder line the lock file keeps).
"""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hearth.warehouse_lock import lock_path

REPO = Path(__file__).resolve().parents[2]
HEARTH = Path(sys.executable).parent / "hearth"  # the console script of the environment running the tests
# What Hearth and its tools print when two processes collide on a store instead of waiting.
COLLISION_SIGNS = (
    "Could not set lock on file",  # DuckDB: another process holds the warehouse
    "Conflicting lock",
    "is locked by another process",  # hearth.warehouse.WarehouseError
    "database is locked",  # SQLite: state.sqlite past its busy timeout
    "WarehouseLockTimeout",
)


@dataclass
class Run:
    """One flow run as its own process: ``hearth <argv>`` started ``minute`` simulated minutes into the hour."""

    label: str
    argv: tuple[str, ...]
    minute: float
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen([str(HEARTH), *self.argv], cwd=REPO, env=dict(env), stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.label} has not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no final state reported to Prefect."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.label} (exit {self.returncode}) ---\n{self.output()[-chars:]}"


def holds_warehouse(data_dir: Path, pid: int) -> bool:
    """Whether process ``pid`` holds the warehouse lock now.

    The lock file names its latest holder; a non-blocking ``flock`` that fails proves the
    lock is still held (one that succeeds is released at once, so no run ever waits on it).
    """
    path = lock_path(data_dir)
    try:
        holder = path.read_text()
    except FileNotFoundError:
        return False
    if not holder.startswith(f"pid {pid} "):
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return path.read_text().startswith(f"pid {pid} ")
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
