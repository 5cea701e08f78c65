"""The suppression list: addresses Hearth must not email, in ``state.sqlite``.

Unsubscribes, bounces and spam reports suppress at once (the webhook handler calls
:meth:`Suppressions.apply_events` as events arrive), before the warehouse has
caught up. One row per ``(email, reason, group)``; adding a row again changes
nothing, so webhook retries are harmless. ``group`` is the SendGrid unsubscribe
group of a ``group_unsubscribe`` and ``NULL`` for everything else, which applies
to all mail. A ``redacted`` row (Shopify's ``customers/redact``) can never be
removed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hearth.state import connect, migrate, transaction

REASONS = ("unsubscribe", "group_unsubscribe", "bounce", "spamreport", "dropped", "redacted", "manual")
PERMANENT = frozenset({"redacted"})
_CHUNK = 500

SUPPRESSION_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE suppressions (
            email TEXT NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN ({", ".join(repr(r) for r in REASONS)})),
            "group" TEXT,
            source TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        # NULLs are distinct in a UNIQUE index; COALESCE makes "no group" one value.
        """CREATE UNIQUE INDEX suppressions_key ON suppressions (email, reason, COALESCE("group", ''))""",
    ),
)

# SendGrid Event Webhook event → suppression reason (group_resubscribe undoes a group_unsubscribe).
EVENT_REASONS = {
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "bounce": "bounce",
    "spamreport": "spamreport",
    "dropped": "dropped",
}


def normalize_email(email: str | None) -> str:
    """Trimmed and lower-cased: the one form every comparison of addresses uses."""
    return (email or "").strip().lower()


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _iso(at: datetime | None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def _row(email: str, reason: str, group: str | int | None, source: str, stamp: str) -> tuple[str | None, ...]:
    """A checked ``(email, reason, group, source, created_at)`` row; ``email`` is empty for a blank address."""
    if reason not in REASONS:
        raise ValueError(f"suppression reason {reason!r} is not one of {', '.join(REASONS)}")
    if group is not None and reason != "group_unsubscribe":
        raise ValueError(f"{reason} for {email!r} has group {group!r}: only group_unsubscribe takes a group")
    if group is None and reason == "group_unsubscribe":
        reason = "unsubscribe"  # no group named: the cautious reading is an unsubscribe from everything
    return (normalize_email(email), reason, None if group is None else str(group), source, stamp)


def _insert(conn: sqlite3.Connection, row: tuple[str | None, ...]) -> int:
    if not row[0]:
        return 0
    return conn.execute(
        'INSERT OR IGNORE INTO suppressions (email, reason, "group", source, created_at) VALUES (?, ?, ?, ?, ?)', row
    ).rowcount


def _delete(conn: sqlite3.Connection, email: str, reason: str, group: str | int | None) -> int:
    if reason in PERMANENT:
        raise ValueError(f"{reason} suppressions are forever; {normalize_email(email)!r} stays suppressed")
    return conn.execute(
        "DELETE FROM suppressions WHERE email = ? AND reason = ? AND COALESCE(\"group\", '') = ?",
        (normalize_email(email), reason, "" if group is None else str(group)),
    ).rowcount


class Suppressions:
    """The ``suppressions`` table.

    Args:
        path: normally ``Settings.state_path``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        migrate(self._conn, "suppressions", SUPPRESSION_MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Suppressions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def suppress(
        self,
        emails: str | Iterable[str],
        reason: str,
        *,
        group: str | int | None = None,
        source: str = "manual",
        at: datetime | None = None,
    ) -> int:
        """Suppress one address or many for ``reason``; returns how many rows are new.

        Raises:
            ValueError: ``reason`` is not one of :data:`REASONS`, or a group is given for
                anything but ``group_unsubscribe`` (or missing for it).
        """
        return self.suppress_many(
            [(e, reason, group) for e in ([emails] if isinstance(emails, str) else emails)], source=source, at=at
        )

    def suppress_many(
        self,
        entries: Iterable[tuple[str, str, str | int | None]],
        *,
        source: str = "manual",
        at: datetime | None = None,
    ) -> int:
        """Add ``(email, reason, group)`` rows in one transaction; returns how many are new."""
        stamp = _iso(at)
        rows = [_row(email, reason, group, source, stamp) for email, reason, group in entries]
        with self._lock, transaction(self._conn) as conn:
            return sum(_insert(conn, row) for row in rows)

    def remove(self, email: str, reason: str, *, group: str | int | None = None) -> int:
        """Lift one suppression (a resubscribe, or a manual entry made in error); returns rows removed.

        Raises:
            ValueError: ``reason`` is ``redacted``: a redacted person is never mailed again.
        """
        with self._lock, transaction(self._conn) as conn:
            return _delete(conn, email, reason, group)

    def apply_events(self, events: Iterable[Mapping[str, Any]], *, source: str = "sendgrid_webhook") -> int:
        """Suppress from SendGrid Event Webhook events, in timestamp order; returns how many rows are new.

        ``unsubscribe``, ``group_unsubscribe`` (with ``asm_group_id``), ``bounce`` (not a
        temporary ``blocked``), ``spamreport`` and ``dropped`` suppress; ``group_resubscribe``
        lifts that group's unsubscribe; other events are ignored.
        """
        stamp, added = _iso(None), 0
        ordered = sorted(events, key=lambda e: float(e.get("timestamp") or 0))
        with self._lock, transaction(self._conn) as conn:
            for event in ordered:
                kind, email, group = event.get("event"), event.get("email") or "", event.get("asm_group_id")
                if kind == "group_resubscribe" and group is not None:
                    _delete(conn, email, "group_unsubscribe", group)
                elif kind in EVENT_REASONS and not (kind == "bounce" and event.get("type") == "blocked"):
                    grouped = group if kind == "group_unsubscribe" else None
                    added += _insert(conn, _row(email, EVENT_REASONS[kind], grouped, source, stamp))
        return added

    def is_suppressed(self, email: str, group: str | int | None = None) -> bool:
        """Whether mail to ``email`` is suppressed.

        With ``group``, an unsubscribe from another group does not count; without one, every
        suppression counts (the cautious reading when the caller does not say which group).
        """
        return bool(self.suppressed_set([email], group=group))

    def suppressed_set(self, emails: Iterable[str], group: str | int | None = None) -> set[str]:
        """The normalised addresses among ``emails`` that are suppressed (see :meth:`is_suppressed`)."""
        wanted = list({normalize_email(e) for e in emails} - {""})
        group_rule = "" if group is None else ' AND ("group" IS NULL OR "group" = ?)'
        found: set[str] = set()
        with self._lock:
            for chunk in _chunks(wanted):
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT DISTINCT email FROM suppressions WHERE email IN ({marks}){group_rule}"
                args = [*chunk] + ([] if group is None else [str(group)])
                found.update(r[0] for r in self._conn.execute(sql, args))
        return found

    def entries(self, email: str | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (all, or one address's), oldest first: for exports and support questions."""
        sql = "SELECT * FROM suppressions" + (" WHERE email = ?" if email else "") + " ORDER BY created_at, email"
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, (normalize_email(email),) if email else ())]


SuppressionList = Suppressions  # an alias, for callers that prefer the longer name
