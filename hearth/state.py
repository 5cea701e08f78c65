"""Hearth's transactional state: ``$HEARTH_DATA_DIR/state.sqlite``.

Holds the incremental cursors, backfill progress and the load log here; later
modules (the send ledger, suppressions) add their own tables through
:func:`migrate` with their own component name in ``schema_version``.

Durability protocol (ingestion)::

    1. extract a window → RawZone load: temp file, fsync, rename, fsync directory
    2. only then: record_load(...), mark_window_done(...) and set_cursor(...)

The raw file is durable BEFORE the cursor moves. A crash between 1 and 2 leaves a
landed file and an old cursor, so the next run extracts that window again: the
raw zone then holds duplicates, which staging removes by ``(id, updated_at)``.
The reverse order could lose a window for good, which is why it is not used.

Every process opens its own connection (WAL journal, a busy timeout and
``BEGIN IMMEDIATE`` write transactions), so flows running side by side, the CLI
and the webhook server can share the file safely. ``synchronous=FULL`` makes a
committed transaction survive power loss, which the send ledger relies on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

BUSY_TIMEOUT_MS = 30_000

# One entry per schema version of this module; each is a tuple of statements
# applied in one transaction. Append new versions, never edit applied ones.
STATE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE cursors (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (source, stream)
        )""",
        """CREATE TABLE backfill_windows (
            run_key TEXT NOT NULL,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            rows INTEGER NOT NULL,
            done_at TEXT NOT NULL,
            PRIMARY KEY (run_key, source, stream, window_start, window_end)
        )""",
        """CREATE TABLE loads (
            load_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            path TEXT,
            rows INTEGER NOT NULL,
            quarantined INTEGER NOT NULL,
            extracted_at TEXT,
            window_start TEXT,
            window_end TEXT,
            run_key TEXT,
            recorded_at TEXT NOT NULL
        )""",
        "CREATE INDEX loads_by_stream ON loads (source, stream, recorded_at)",
    ),
)


class StateError(RuntimeError):
    """The state file cannot be used as is; the message says why and what to do."""


class LoadLike(Protocol):
    """The fields of :class:`hearth.rawzone.LoadResult` that the load log keeps."""

    @property
    def path(self) -> Path | None: ...
    @property
    def rows(self) -> int: ...
    @property
    def quarantined(self) -> int: ...
    @property
    def load_id(self) -> str: ...


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL, a busy timeout and full sync.

    Statements outside :func:`transaction` commit on their own; group writes in one.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process creates the file.

    The switch can fail at once with "database is locked": SQLite's busy handler does not cover it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on error.

    IMMEDIATE takes the write lock up front, so a read-then-write inside cannot be
    raced by another process.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Sequence[str]]) -> int:
    """Bring ``component``'s tables to ``len(migrations)``; returns the version now in the file.

    Idempotent and safe when several processes open a fresh file at once.

    Raises:
        StateError: the file was written by a newer Hearth (more versions than known).
    """
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL, updated_at TEXT NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_version WHERE component = ?", (component,)).fetchone()
        version = row[0] if row else 0
        if version > len(migrations):
            raise StateError(
                f"state file has {component} schema v{version}, this Hearth knows v{len(migrations)}: "
                "upgrade Hearth (or point HEARTH_DATA_DIR at another directory)."
            )
        for statements in migrations[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (component, version, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (component, len(migrations), _now()),
        )
    return len(migrations)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _instant(value: str) -> datetime:
    """An ISO timestamp (``Z``/offset/none = UTC, or a date) as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cursor value {value!r} is not an ISO-8601 timestamp") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class StateStore:
    """Cursors, backfill progress and the load log in one SQLite file.

    Args:
        path: normally ``Settings.state_path``; created with its schema when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()  # one connection per store, shared by its threads
        migrate(self._conn, "state", STATE_MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this store's connection (for callers grouping several writes)."""
        with self._lock, transaction(self._conn) as conn:
            yield conn

    # -- cursors -----------------------------------------------------------------
    def get_cursor(self, source: str, stream: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM cursors WHERE source = ? AND stream = ?", (source, stream)
            ).fetchone()
        return row[0] if row else None

    def set_cursor(self, source: str, stream: str, value: str) -> str:
        """Move the cursor to ``value`` unless that is not later than where it is; returns the cursor.

        Values compare as instants, so ``…T10:00:00+02:00`` is earlier than ``…T09:00:00Z``.

        Raises:
            ValueError: ``value`` is not an ISO-8601 timestamp.
        """
        new = _instant(value)
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM cursors WHERE source = ? AND stream = ?", (source, stream)).fetchone()
            if row is not None and _instant(row[0]) >= new:
                return str(row[0])
            conn.execute(
                "INSERT INTO cursors (source, stream, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source, stream) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (source, stream, value, _now()),
            )
        return value

    # -- backfill progress ---------------------------------------------------------
    def mark_window_done(
        self, run_key: str, source: str, stream: str, window_start: str, window_end: str, rows: int
    ) -> None:
        """Record that a backfill window landed (idempotent: marking it again updates ``rows``)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO backfill_windows (run_key, source, stream, window_start, window_end, rows, done_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key, source, stream, window_start, window_end) "
                "DO UPDATE SET rows = excluded.rows, done_at = excluded.done_at",
                (run_key, source, stream, window_start, window_end, rows, _now()),
            )

    def done_windows(self, run_key: str, source: str, stream: str) -> set[tuple[str, str]]:
        """The ``(window_start, window_end)`` pairs of a backfill run already landed."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT window_start, window_end FROM backfill_windows WHERE run_key = ? AND source = ? AND stream = ?",
                (run_key, source, stream),
            ).fetchall()
        return {(r[0], r[1]) for r in rows}

    # -- load log --------------------------------------------------------------------
    def record_load(
        self,
        result: LoadLike,
        *,
        source: str | None = None,
        stream: str | None = None,
        window_start: str | None = None,
        window_end: str | None = None,
        run_key: str | None = None,
    ) -> None:
        """Log a load (a :class:`~hearth.rawzone.LoadResult`); source/stream default to the result's own.

        Idempotent on ``load_id``.
        """
        source = source or getattr(result, "source", "") or None
        stream = stream or getattr(result, "stream", "") or None
        if not source or not stream:
            raise ValueError(f"record_load needs source and stream for load {result.load_id}")
        extracted_at = getattr(result, "extracted_at", None)
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO loads (load_id, source, stream, path, rows, quarantined, extracted_at,"
                " window_start, window_end, run_key, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.load_id,
                    source,
                    stream,
                    str(result.path) if result.path else None,
                    result.rows,
                    result.quarantined,
                    extracted_at.isoformat() if isinstance(extracted_at, datetime) else extracted_at,
                    window_start,
                    window_end,
                    run_key,
                    _now(),
                ),
            )

    def loads(
        self, *, source: str | None = None, stream: str | None = None, run_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Logged loads, oldest first, optionally filtered (for run summaries)."""
        where = [f"{col} = ?" for col, v in (("source", source), ("stream", stream), ("run_key", run_key)) if v]
        args = [v for v in (source, stream, run_key) if v]
        sql = "SELECT * FROM loads" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY recorded_at"
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql, args).fetchall()]
