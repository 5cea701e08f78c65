"""The extraction core over fake streams: cursors move only after a durable file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Page, Window
from hearth.extract import extract_backfill, extract_incremental
from hearth.rawzone import RawZone
from hearth.state import StateStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 11, tzinfo=UTC)


class FakeStream:
    """Ten records a day; optionally blows up after some pages."""

    source, name = "fake", "things"

    def __init__(self, fail_after_pages: int | None = None) -> None:
        self.fail_after_pages = fail_after_pages
        self.windows: list[Window] = []

    def pages(self, window: Window) -> Iterator[Page]:
        self.windows.append(window)
        day = window.start
        served = 0
        while day < window.end:
            if self.fail_after_pages is not None and served >= self.fail_after_pages:
                raise RuntimeError("page 3 of http://fake/things was malformed: {'nodes': …")
            records = [{"id": f"{day:%Y%m%d}-{i}", "updatedAt": day.isoformat()} for i in range(10)]
            rejects = [({"updatedAt": day.isoformat()}, "record has no id")] if day == T0 else []
            yield Page(records, rejects, where=f"http://fake/things?day={day:%Y-%m-%d}")
            served += 1
            day += timedelta(days=1)

    def record_id(self, record: dict[str, Any]) -> str:
        return record["id"]

    def record_updated_at(self, record: dict[str, Any]) -> str | None:
        return record["updatedAt"]


@pytest.fixture
def zone_and_state(tmp_path: Path) -> Iterator[tuple[RawZone, StateStore]]:
    with StateStore(tmp_path / "state.sqlite") as state:
        yield RawZone(tmp_path / "raw"), state


def test_incremental_lands_one_file_then_moves_the_cursor(zone_and_state: tuple[RawZone, StateStore]) -> None:
    zone, state = zone_and_state
    result = extract_incremental(FakeStream(), zone, state, now=NOW, initial_start=T0, lag=timedelta(0))
    assert result.rows == 100 and result.quarantined == 1
    assert len(zone.files("fake", "things")) == 1
    assert state.get_cursor("fake", "things") == "2026-01-11T00:00:00Z"

    stream = FakeStream()
    later = extract_incremental(stream, zone, state, now=NOW + timedelta(days=2), initial_start=T0, lag=timedelta(0))
    assert stream.windows == [Window(NOW, NOW + timedelta(days=2))]  # continues at the cursor, half-open
    assert later.rows == 20


def test_a_failing_stream_lands_nothing_and_keeps_its_cursor(zone_and_state: tuple[RawZone, StateStore]) -> None:
    zone, state = zone_and_state
    with pytest.raises(RuntimeError, match="malformed"):
        extract_incremental(FakeStream(fail_after_pages=3), zone, state, now=NOW, initial_start=T0)
    assert zone.files("fake", "things") == []
    assert state.get_cursor("fake", "things") is None
    assert not list(zone.stream_dir("fake", "things").glob("*.parquet"))


def test_min_lag_and_max_history_of_a_stream_are_honoured(zone_and_state: tuple[RawZone, StateStore]) -> None:
    zone, state = zone_and_state
    stream = FakeStream()
    stream.min_lag = timedelta(days=1)  # type: ignore[attr-defined]
    stream.max_history = timedelta(days=3)  # type: ignore[attr-defined]
    extract_incremental(stream, zone, state, now=NOW, initial_start=T0, lag=timedelta(minutes=1))
    assert stream.windows == [Window(NOW - timedelta(days=3), NOW - timedelta(days=1))]


def test_backfill_resumes_after_a_crash_and_never_touches_the_cursor(
    zone_and_state: tuple[RawZone, StateStore],
) -> None:
    zone, state = zone_and_state
    window = Window(T0, NOW)
    crashing = FakeStream()
    done_chunks: list[int] = []

    def crash_on_third(part: Any, done: int, total: int) -> None:
        done_chunks.append(done)
        if done == 2:
            crashing.fail_after_pages = 0  # the next chunk blows up

    with pytest.raises(RuntimeError):
        extract_backfill(crashing, zone, state, window, chunk_days=2, on_chunk=crash_on_third)
    assert done_chunks == [1, 2] and len(zone.files("fake", "things")) == 2

    resumed = FakeStream()
    total = extract_backfill(resumed, zone, state, window, chunk_days=2)
    assert [w.start for w in resumed.windows] == [T0 + timedelta(days=d) for d in (4, 6, 8)]
    assert total.rows == 60  # only the three chunks it had to do
    assert len(zone.files("fake", "things")) == 5
    assert state.get_cursor("fake", "things") is None
