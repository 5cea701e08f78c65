"""What every connector stream offers the ingestion core: windows in, pages out.

A stream is one parameterised generator over a source's API: it knows how to ask
for the records changed in a half-open window ``[start, end)`` (ascending, paged),
how to name each record (id, ``updated_at``), and which records it cannot use.
It knows HTTP, not Prefect, and nothing of Hearth's storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware (UTC)")
        if self.end < self.start:
            raise ValueError(f"window end {self.end.isoformat()} is before its start {self.start.isoformat()}")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def split(self, days: float) -> list[Window]:
        """Consecutive sub-windows of at most ``days`` each (the last may be shorter)."""
        from datetime import timedelta

        step = timedelta(days=days)
        parts, cursor = [], self.start
        while cursor < self.end:
            parts.append(Window(cursor, min(cursor + step, self.end)))
            cursor += step
        return parts


def iso(ts: datetime) -> str:
    """``2026-11-24T02:00:00Z`` — the form every vendor API here accepts."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Page:
    """One page of a stream: usable records plus those it had to set aside."""

    records: list[dict[str, Any]]
    rejects: list[tuple[Any, str]] = field(default_factory=list)  # (record, reason)
    where: str = ""  # URL or description, for messages


class Stream(Protocol):
    """A connector stream. Optional attributes the ingestion core honours when present:
    ``min_lag`` (timedelta: the API rejects window ends fresher than this) and
    ``max_history`` (timedelta: how far back the API keeps data, for a first run).
    """

    source: str  # "shopify", "amazon", "facebook"
    name: str  # "orders", "customers", …

    def pages(self, window: Window) -> Iterator[Page]:
        """Every record changed within ``window``, in ascending order, page by page."""
        ...

    def record_id(self, record: dict[str, Any]) -> str: ...

    def record_updated_at(self, record: dict[str, Any]) -> str | None: ...
