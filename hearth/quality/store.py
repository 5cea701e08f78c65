"""Gate results in ``state.sqlite`` (table ``quality_runs``): the verdict sends obey.

The row counts of each run are kept with it, so the next gate can tell a mart
that collapsed from one that merely changed. Only passed runs serve as that
baseline: comparing against a broken build would accept the breakage.

The raw-zone loads a run read are kept too (``quality_checked_loads``): a load a
passed gate read is never read again (the raw zone is append-only), so an hourly
gate checks the hour's loads, not three years of them.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hearth.config import Settings
from hearth.state import connect, migrate, transaction

COMPONENT = "quality"
# Append new versions, never edit applied ones (see hearth.state.migrate).
QUALITY_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE quality_runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            checked_at TEXT NOT NULL,
            passed INTEGER NOT NULL,
            failures TEXT NOT NULL,
            docs_path TEXT NOT NULL,
            row_counts TEXT NOT NULL
        )""",
        "CREATE INDEX quality_runs_passed ON quality_runs (passed, seq)",
    ),
    (
        """CREATE TABLE quality_checked_loads (
            run_id TEXT NOT NULL REFERENCES quality_runs (run_id),
            stream TEXT NOT NULL,
            file TEXT NOT NULL,
            PRIMARY KEY (stream, file, run_id)
        )""",
    ),
)


@dataclass(frozen=True)
class GateResult:
    """The verdict of one quality gate run.

    Attributes:
        passed: True when every check passed; sends refuse to run otherwise.
        failures: one human-readable line per failed check: suite, expectation, observed value.
        docs_path: the Data Docs ``index.html`` of the run.
        run_id: unique id of the run (also the GX run name in Data Docs).
        checked_at: the ``now`` the checks were made against (UTC).
        row_counts: rows per mart seen by this run (the baseline for the next one when passed).
    """

    passed: bool
    failures: list[str]
    docs_path: Path
    run_id: str
    checked_at: datetime
    row_counts: dict[str, int] = field(default_factory=dict)

    def summary(self, limit: int = 3) -> str:
        """One line for logs, flow states and the CLI."""
        if self.passed:
            return f"quality gate passed (run {self.run_id}); Data Docs: {self.docs_path}"
        shown = "; ".join(self.failures[:limit]) + (
            f"; … {len(self.failures) - limit} more" if len(self.failures) > limit else ""
        )
        return f"quality gate failed: {shown} — sends are blocked until a build passes; see {self.docs_path}"


def open_store(state_path: Path) -> sqlite3.Connection:
    """Connect to ``state.sqlite`` with the ``quality_runs`` table in place."""
    conn = connect(state_path)
    migrate(conn, COMPONENT, QUALITY_MIGRATIONS)
    return conn


def record(conn: sqlite3.Connection, result: GateResult, loads: Mapping[str, Sequence[str]] | None = None) -> None:
    """Store a gate result (it becomes the latest one) and the raw loads it read.

    Args:
        loads: ``<source>/<stream>`` -> the file names of the loads the run read.
    """
    with transaction(conn):
        conn.execute(
            "INSERT INTO quality_runs (run_id, checked_at, passed, failures, docs_path, row_counts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                result.run_id,
                result.checked_at.isoformat(),
                int(result.passed),
                json.dumps(result.failures),
                str(result.docs_path),
                json.dumps(result.row_counts, sort_keys=True),
            ),
        )
        conn.executemany(
            "INSERT INTO quality_checked_loads (run_id, stream, file) VALUES (?, ?, ?)",
            [(result.run_id, stream, file) for stream, files in (loads or {}).items() for file in files],
        )


def record_build_started(conn: sqlite3.Connection, *, now: datetime, docs_path: Path) -> GateResult:
    """Record that a build is rewriting the warehouse: until a gate passes again, sends refuse.

    A build that dies half-way (killed, out of memory) leaves some tables rebuilt and some
    not, while the last verdict still says "passed". This failed verdict, recorded before
    dbt starts, stays the latest one if the build never reaches its gate. The row-count
    baseline reads the latest *passed* run, so it is unaffected.
    """
    result = GateResult(
        passed=False,
        failures=[
            f"a warehouse build started at {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC and has not finished"
            " (still running, or it died half-way): the warehouse may be half rebuilt"
        ],
        docs_path=docs_path,
        run_id=f"build-started-{uuid.uuid4().hex[:12]}",
        checked_at=now,
    )
    record(conn, result)
    return result


def _from_row(row: sqlite3.Row) -> GateResult:
    return GateResult(
        passed=bool(row["passed"]),
        failures=list(json.loads(row["failures"])),
        docs_path=Path(row["docs_path"]),
        run_id=row["run_id"],
        checked_at=datetime.fromisoformat(row["checked_at"]),
        row_counts={k: int(v) for k, v in json.loads(row["row_counts"]).items()},
    )


def latest(conn: sqlite3.Connection, *, passed_only: bool = False) -> GateResult | None:
    """The most recently recorded gate result (or the latest passed one)."""
    where = " WHERE passed = 1" if passed_only else ""
    row = conn.execute(f"SELECT * FROM quality_runs{where} ORDER BY seq DESC LIMIT 1").fetchone()
    return _from_row(row) if row else None


def passed_loads(conn: sqlite3.Connection, stream: str) -> set[str]:
    """The file names of ``stream``'s loads (``<source>/<stream>``) that a passed gate read."""
    rows = conn.execute(
        "SELECT DISTINCT loads.file FROM quality_checked_loads AS loads"
        " JOIN quality_runs AS runs USING (run_id) WHERE runs.passed = 1 AND loads.stream = ?",
        (stream,),
    ).fetchall()
    return {row[0] for row in rows}


def latest_gate(settings: Settings) -> GateResult | None:
    """The most recent gate result, or None when no gate ever ran (sends must then refuse too)."""
    if not settings.state_path.exists():
        return None
    with closing(open_store(settings.state_path)) as conn:
        return latest(conn)
