"""The send ledger: at-most-once email, one row per send key in ``state.sqlite``.

SendGrid has no idempotency key, so de-duplication is ours. A send is keyed by
``(customer_key, sequence, step, trigger_id)``; :func:`send_key` is the SHA-256
hex of those four parts (as text) joined by ``\\x1f`` (ASCII unit separator, which
no id contains). The key travels to SendGrid in the personalization's
``custom_args`` under :data:`SEND_ID_ARG` and comes back on every webhook event,
which is how :meth:`Ledger.reconcile` proves a send landed.

Statuses, and the only transitions the code makes::

    reserve        (new) → reserved;  reserved, lease over → reserved by the new run
    release        reserved (own run) → row deleted
    record_skips   (new) → skipped;   reserved (own run) → skipped
    mark_sending   reserved → sending                      BEFORE the API call
    mark_accepted  sending → accepted                      2xx
    mark_failed    reserved | sending → failed             4xx: nothing was sent
    mark_unknown   sending → unknown                       timeout, 5xx, reset: maybe sent
    recover        sending, run dead → unknown
    reconcile      sending | unknown | failed → accepted   a webhook event names the key

``sending`` is committed BEFORE the API call, so a row still ``reserved`` was
provably never handed to SendGrid: only such rows may be released or re-claimed
after their lease. Every other status is final for sending purposes: a key that
exists in the ledger in any of them is never claimed again, and ``unknown`` keys
that no webhook event ever confirms stay ``unknown`` (reported, never resent).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from hearth.state import connect, migrate, transaction

SEND_ID_ARG = "hearth_send_key"  # custom_args key carrying send_key to SendGrid and back on events
DEFAULT_LEASE = timedelta(minutes=15)
DEFAULT_GRACE = timedelta(hours=24)  # how long an unknown send may wait for a webhook before it is reported

STATUSES = ("reserved", "sending", "accepted", "failed", "unknown", "skipped")
SENT_STATUSES = ("sending", "accepted", "unknown")  # may have reached the recipient: count for the cap
_CHUNK = 500  # bound variables per IN (...) query

LEDGER_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE sends (
            send_key TEXT PRIMARY KEY,
            customer_key TEXT NOT NULL,
            email TEXT NOT NULL,
            sequence TEXT NOT NULL,
            step TEXT NOT NULL,
            trigger_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
            reason TEXT,
            message_id TEXT,
            run_id TEXT,
            batch_id TEXT,
            reserved_at TEXT,
            sending_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX sends_by_status ON sends (status, updated_at)",
        "CREATE INDEX sends_by_batch ON sends (batch_id)",
        "CREATE INDEX sends_by_customer ON sends (customer_key, sending_at)",
        "CREATE INDEX sends_by_updated ON sends (updated_at)",
    ),
)


class SendKeyLike(Protocol):
    """What the ledger needs of a candidate (``hearth.policy.Candidate`` fits)."""

    @property
    def customer_key(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def sequence(self) -> str: ...
    @property
    def step(self) -> int | str: ...
    @property
    def trigger_id(self) -> str: ...


def send_key(customer_key: str, sequence: str, step: int | str, trigger_id: str) -> str:
    """The ledger key of one send: sha256 hex of the four parts joined by ``\\x1f``."""
    joined = "\x1f".join(str(part) for part in (customer_key, sequence, step, trigger_id))
    return hashlib.sha256(joined.encode()).hexdigest()


def key_of(item: SendKeyLike) -> str:
    return send_key(item.customer_key, item.sequence, item.step, item.trigger_id)


@dataclass(frozen=True)
class SendKey:
    """A plain send key with the recipient's address (any :class:`SendKeyLike` does as well)."""

    customer_key: str
    email: str
    sequence: str
    step: int | str
    trigger_id: str

    @property
    def send_key(self) -> str:
        return key_of(self)


@dataclass(frozen=True)
class Reservation:
    """A key this run claimed and alone may now send; ``reclaimed`` when taken over from a dead run."""

    send_key: str
    customer_key: str
    email: str
    sequence: str
    step: str
    trigger_id: str
    run_id: str
    reclaimed: bool = False


@dataclass(frozen=True)
class ReconcileResult:
    """What :meth:`Ledger.reconcile` did: keys now ``accepted``, and ``unknown`` keys past their grace."""

    accepted: list[str]
    unresolved: list[str]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} has no timezone: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Ledger:
    """The ``sends`` table of ``state.sqlite``; every write is one ``BEGIN IMMEDIATE`` transaction.

    Args:
        path: normally ``Settings.state_path``.
        lease: how long a ``reserved`` row (or a ``sending`` one, for :meth:`recover`) belongs to its
            run; after that the run is taken to be dead.
        clock: the current UTC time (tests pass a fake one).
    """

    def __init__(
        self, path: Path, *, lease: timedelta = DEFAULT_LEASE, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.path = Path(path)
        self.lease = lease
        self._clock = clock
        self._conn = connect(self.path)
        # Past ~50k sends the key index outgrows SQLite's 2 MB default page cache, and every
        # reserve / mark_sending of a large run pays for re-reading its pages: allow 32 MB.
        self._conn.execute("PRAGMA cache_size = -32768")
        self._lock = threading.RLock()  # one connection per ledger, shared by its threads
        migrate(self._conn, "ledger", LEDGER_MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._conn) as conn:
            yield conn

    # -- claiming ----------------------------------------------------------------------
    def reserve(self, run_id: str, candidates: Iterable[SendKeyLike]) -> list[Reservation]:
        """Claim the keys of ``candidates`` for ``run_id``, in one transaction.

        Returns only the keys this call claimed: new ones, and ``reserved`` rows whose lease ran
        out (their run died before ``mark_sending``, so SendGrid never saw them). A key present in
        any other status, or listed twice, is not returned. Only the returned keys may be sent.
        """
        now = self._clock()
        stamp, expired = _iso(now), _iso(now - self.lease)
        rows: dict[str, tuple[str, str, str, str, str, str, str]] = {}  # first of each key, in the order given
        for item in candidates:
            key = key_of(item)
            if key not in rows:
                rows[key] = (key, item.customer_key, item.email, item.sequence, str(item.step), item.trigger_id, run_id)
        with self._write() as conn:
            # BEGIN IMMEDIATE holds the write lock: what these reads find cannot change before the writes.
            existing = self._existing(conn, list(rows))
            stale = self._existing(conn, list(existing), "+status = 'reserved' AND reserved_at < ?", (expired,))
            # OR IGNORE: a row missing a NOT NULL value (e.g. no address) is not inserted, nor claimed.
            conn.executemany(
                "INSERT OR IGNORE INTO sends (send_key, customer_key, email, sequence, step, trigger_id,"
                " status, run_id, reserved_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?, ?)",
                ((*row, stamp, stamp, stamp) for key, row in rows.items() if key not in existing),
            )
            conn.executemany(
                "UPDATE sends SET run_id = ?, email = ?, reserved_at = ?, updated_at = ?"
                " WHERE send_key = ? AND status = 'reserved' AND reserved_at < ?",
                ((run_id, rows[key][2], stamp, stamp, key, expired) for key in stale),
            )
        return [
            Reservation(*row, reclaimed=key in stale)
            for key, row in rows.items()
            if (key not in existing and None not in row) or key in stale
        ]

    @staticmethod
    def _existing(conn: sqlite3.Connection, keys: list[str], where: str = "1", args: tuple[Any, ...] = ()) -> set[str]:
        """Which of ``keys`` have a row (matching ``where``), in chunks of bound variables.

        One row per query, the keys joined by SQLite: the module releases the GIL for every row it
        steps through, and the send thread must not queue for it a thousand times a batch.
        """
        found: set[str] = set()
        for chunk in _chunks(keys):
            sql = (
                "SELECT group_concat(send_key, char(31)) FROM sends"
                f" WHERE {where} AND send_key IN ({_marks(len(chunk))})"
            )
            (joined,) = conn.execute(sql, (*args, *chunk)).fetchone()
            found.update(joined.split("\x1f") if joined else ())
        return found

    def release(self, run_id: str, send_keys: Iterable[str]) -> int:
        """Give back keys this run reserved but will not send (e.g. the run stops early).

        Only ``reserved`` rows owned by ``run_id`` are deleted: SendGrid never saw them.
        """
        keys, released = list(send_keys), 0
        with self._write() as conn:
            for chunk in _chunks(keys):
                released += conn.execute(
                    "DELETE FROM sends WHERE status = 'reserved' AND run_id = ?"
                    f" AND send_key IN ({_marks(len(chunk))})",
                    (run_id, *chunk),
                ).rowcount
        return released

    def record_skips(self, run_id: str, skips: Iterable[tuple[SendKeyLike, str]]) -> int:
        """Record terminal ``skipped`` rows with their reason; returns how many rows changed.

        New keys are inserted; a key this same run holds as ``reserved`` (e.g. the person ordered
        between the decision and the send) becomes ``skipped``. Any other existing row is left as
        it is: a skip never overwrites a send.
        """
        stamp = _iso(self._clock())
        rows: dict[str, tuple[str, ...]] = {}  # first occurrence wins, as a later insert would be ignored
        for item, reason in skips:
            key = key_of(item)
            if key not in rows:
                # A skip for a missing address still needs its row (email is NOT NULL).
                rows[key] = (key, item.customer_key, item.email or "", item.sequence, str(item.step),
                             item.trigger_id, reason)  # fmt: skip
        with self._write() as conn:
            existing = self._existing(conn, list(rows))
            inserted = conn.executemany(  # OR IGNORE, as for reserve: a row missing a NOT NULL value is dropped
                "INSERT OR IGNORE INTO sends (send_key, customer_key, email, sequence, step, trigger_id,"
                " status, reason, run_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'skipped', ?, ?, ?, ?)",
                ((*row, run_id, stamp, stamp) for key, row in rows.items() if key not in existing),
            ).rowcount
            updated = conn.executemany(
                "UPDATE sends SET status = 'skipped', reason = ?, updated_at = ?"
                " WHERE send_key = ? AND status = 'reserved' AND run_id = ?",
                ((rows[key][6], stamp, key, run_id) for key in rows if key in existing),
            ).rowcount
        return max(inserted, 0) + max(updated, 0)

    # -- around the API call -------------------------------------------------------------
    def mark_sending(self, batch_id: str, send_keys: Iterable[str], *, run_id: str | None = None) -> list[str]:
        """Move ``reserved`` keys to ``sending`` under ``batch_id``; call BEFORE the API request.

        Returns the keys moved, in the order given: send exactly those. A key already past
        ``reserved`` (another run got there first) is left out, so two runs can never both send
        it. With ``run_id``, only rows reserved by that run move.
        """
        stamp, keys, moved = _iso(self._clock()), list(dict.fromkeys(send_keys)), set[str]()
        owner, mine = (" AND run_id = ?", (run_id,)) if run_id is not None else ("", ())
        with self._write() as conn:
            for chunk in _chunks(keys):
                # The write lock is held: the rows found are exactly the rows the UPDATE moves.
                found = self._existing(conn, list(chunk), f"+status = 'reserved'{owner}", mine)
                conn.execute(
                    "UPDATE sends SET status = 'sending', batch_id = ?, sending_at = ?, updated_at = ?"
                    f" WHERE +status = 'reserved'{owner} AND send_key IN ({_marks(len(chunk))})",
                    (batch_id, stamp, stamp, *mine, *chunk),
                )
                moved |= found
        return [key for key in keys if key in moved]

    def mark_accepted(self, batch_id: str, message_id: str | None) -> int:
        """SendGrid answered 2xx for the batch: its ``sending`` rows become ``accepted``."""
        return self._finish_batch(batch_id, "accepted", message_id=message_id)

    def mark_unknown(self, batch_id: str, reason: str) -> int:
        """The request may have reached SendGrid (timeout, 5xx, reset): ``sending`` → ``unknown``."""
        return self._finish_batch(batch_id, "unknown", reason=reason)

    def mark_failed(self, send_keys: Iterable[str], reason: str) -> int:
        """A definitive rejection (a 4xx for the batch or the recipient): nothing was sent.

        ``reserved`` or ``sending`` → ``failed``; ``failed`` is final (the key is not retried).
        """
        keys, stamp, changed = list(send_keys), _iso(self._clock()), 0
        with self._write() as conn:
            for chunk in _chunks(keys):
                changed += conn.execute(
                    "UPDATE sends SET status = 'failed', reason = ?, updated_at = ?"
                    f" WHERE status IN ('reserved', 'sending') AND send_key IN ({_marks(len(chunk))})",
                    (reason, stamp, *chunk),
                ).rowcount
        return changed

    def _finish_batch(
        self, batch_id: str, status: str, *, message_id: str | None = None, reason: str | None = None
    ) -> int:
        with self._write() as conn:
            return conn.execute(
                "UPDATE sends SET status = ?, message_id = COALESCE(?, message_id), reason = ?, updated_at = ?"
                " WHERE batch_id = ? AND status = 'sending'",
                (status, message_id, reason, _iso(self._clock()), batch_id),
            ).rowcount

    # -- after a crash ---------------------------------------------------------------------
    def recover(self, now: datetime | None = None, *, dead_runs: Iterable[str] = ()) -> list[str]:
        """Turn ``sending`` rows of dead runs into ``unknown``; returns their keys.

        A run is dead when its row has been ``sending`` longer than the lease (an API call takes
        seconds) or when the caller names it in ``dead_runs``. Never back to ``reserved``: SendGrid
        may have received the request.
        """
        moment = now or self._clock()
        stamp, expired = _iso(moment), _iso(moment - self.lease)
        runs = list(dict.fromkeys(dead_runs))
        by_run = f" OR run_id IN ({_marks(len(runs))})" if runs else ""
        where = f"status = 'sending' AND (sending_at < ?{by_run})"
        with self._write() as conn:
            keys = [r[0] for r in conn.execute(f"SELECT send_key FROM sends WHERE {where}", (expired, *runs))]
            conn.execute(
                f"UPDATE sends SET status = 'unknown', reason = 'run died while sending', updated_at = ? WHERE {where}",
                (stamp, expired, *runs),
            )
        return keys

    def reconcile(
        self, events: Iterable[Mapping[str, Any]], *, now: datetime | None = None, grace: timedelta = DEFAULT_GRACE
    ) -> ReconcileResult:
        """Use webhook events as proof of receipt: their keys move to ``accepted``.

        Any SendGrid event (processed, delivered, bounce, dropped …) means SendGrid had the message,
        so ``unknown``, ``sending`` and ``failed`` rows named by an event's :data:`SEND_ID_ARG` become
        ``accepted`` with the event's message id (``sg_message_id`` up to its first ``.``, which is the
        ``X-Message-Id`` of the request). Returns those keys and the ``unknown`` keys older than
        ``grace`` that no event confirmed: they stay ``unknown`` and are never resent.
        """
        found: dict[str, str | None] = {}
        for event in events:
            custom = event.get("custom_args")
            key = event.get(SEND_ID_ARG) or (custom.get(SEND_ID_ARG) if isinstance(custom, Mapping) else None)
            if isinstance(key, str) and key:
                sg_id = event.get("sg_message_id")
                found[key] = str(sg_id).split(".", 1)[0] if sg_id else found.get(key)
        moment = now or self._clock()
        accepted: list[str] = []
        with self._write() as conn:
            for key, message_id in found.items():
                if conn.execute(
                    "UPDATE sends SET status = 'accepted', message_id = COALESCE(?, message_id),"
                    " reason = 'confirmed by webhook', updated_at = ?"
                    " WHERE send_key = ? AND status IN ('unknown', 'sending', 'failed')",
                    (message_id, _iso(moment), key),
                ).rowcount:
                    accepted.append(key)
        return ReconcileResult(accepted=accepted, unresolved=self.unresolved(moment, grace=grace))

    def unresolved(self, now: datetime | None = None, *, grace: timedelta = DEFAULT_GRACE) -> list[str]:
        """``unknown`` keys unconfirmed for longer than ``grace`` (to report; they are never resent)."""
        cutoff = _iso((now or self._clock()) - grace)
        with self._lock:
            rows = self._conn.execute(
                "SELECT send_key FROM sends WHERE status = 'unknown' AND updated_at < ? ORDER BY updated_at, send_key",
                (cutoff,),
            ).fetchall()
        return [r[0] for r in rows]

    # -- reading -------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        """One row as a dict, or ``None`` when the key was never recorded."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM sends WHERE send_key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def statuses(self, send_keys: Iterable[str]) -> dict[str, str]:
        """``{send_key: status}`` for the keys that exist."""
        keys, found = list(send_keys), dict[str, str]()
        with self._lock:
            for chunk in _chunks(keys):
                sql = f"SELECT send_key, status FROM sends WHERE send_key IN ({_marks(len(chunk))})"
                found.update({r[0]: r[1] for r in self._conn.execute(sql, chunk)})
        return found

    def counts_by_status(self, sequence: str | None = None) -> dict[str, int]:
        """Rows per status (statuses with no rows are absent), optionally for one sequence."""
        sql = "SELECT status, COUNT(*) FROM sends" + (" WHERE sequence = ?" if sequence else "") + " GROUP BY status"
        with self._lock:
            return {r[0]: r[1] for r in self._conn.execute(sql, (sequence,) if sequence else ())}

    def recent_sends(self, customer_keys: Iterable[str], since: datetime) -> dict[str, list[tuple[str, str, datetime]]]:
        """Sends that may have reached each person since ``since``, for the frequency cap.

        Returns ``{customer_key: [(sequence, step, sending_at), …]}`` (oldest first) over rows in
        ``sending``, ``accepted`` or ``unknown``; people without such sends are absent.
        """
        keys = list(dict.fromkeys(customer_keys))
        result: dict[str, list[tuple[str, str, datetime]]] = {}
        statuses = ", ".join(repr(s) for s in SENT_STATUSES)
        with self._lock:
            for chunk in _chunks(keys):
                rows = self._conn.execute(
                    "SELECT customer_key, sequence, step, sending_at FROM sends"
                    f" WHERE status IN ({statuses}) AND sending_at >= ? AND customer_key IN ({_marks(len(chunk))})"
                    " ORDER BY sending_at",
                    (_iso(since), *chunk),
                ).fetchall()
                for r in rows:
                    result.setdefault(r[0], []).append((r[1], r[2], datetime.fromisoformat(r[3])))
        return result

    def export_rows(self, since_updated_at: datetime | str | None = None) -> list[dict[str, Any]]:
        """Every row updated at or after ``since_updated_at`` (all when ``None``), oldest update first.

        For the raw-zone export that lets dbt rebuild sequence results without this file.
        """
        since = _iso(since_updated_at) if isinstance(since_updated_at, datetime) else since_updated_at
        sql = "SELECT * FROM sends" + (" WHERE updated_at >= ?" if since else "") + " ORDER BY updated_at, send_key"
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, (since,) if since else ())]
