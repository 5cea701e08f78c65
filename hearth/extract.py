"""Move one stream's records for a window into the raw zone — the heart of ingestion.

Plain Python over the connector ``Stream`` protocol (``connectors.base``), the raw
zone and the state store; the Prefect flows only wrap these calls in tasks.

Durability: a window's records land in one Parquet file that is renamed and fsynced
when the load closes; only then does the cursor move (incremental) or the window get
marked done (backfill). A crash anywhere before that re-extracts the window on the
next run: duplicates that staging de-duplicates by (id, updated_at), never a gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from connectors.base import Stream, Window, iso
from hearth.rawzone import RawZone
from hearth.state import StateStore

ProgressFn = Callable[[int], None]  # called with the number of records just landed


@dataclass
class ExtractResult:
    source: str
    stream: str
    window: Window
    rows: int = 0
    quarantined: int = 0
    files: list[Path] = field(default_factory=list)
    skipped: bool = False  # backfill window already done in an earlier run

    def merge(self, other: ExtractResult) -> None:
        self.rows += other.rows
        self.quarantined += other.quarantined
        self.files.extend(other.files)


def extract_window(
    stream: Stream,
    zone: RawZone,
    state: StateStore,
    window: Window,
    *,
    progress: ProgressFn | None = None,
    run_key: str | None = None,
) -> ExtractResult:
    """Land every record of ``window`` as one raw file (none if the window is empty)."""
    result = ExtractResult(stream.source, stream.name, window)
    with zone.open_load(stream.source, stream.name) as load:
        for page in stream.pages(window):
            load.write(page.records, id_of=stream.record_id, updated_at_of=stream.record_updated_at)
            for record, reason in page.rejects:
                load.quarantine(record, reason, where=page.where)
            if progress:
                progress(len(page.records))
    landed = load.result
    result.rows, result.quarantined = landed.rows, landed.quarantined
    if landed.path is not None:
        result.files.append(landed.path)
    state.record_load(landed, window_start=iso(window.start), window_end=iso(window.end), run_key=run_key)
    return result


def incremental_window(
    stream: Stream, state: StateStore, *, now: datetime, initial_start: datetime, lag: timedelta
) -> Window:
    """The next window of a stream: from its cursor (or ``initial_start``) to ``now - lag``.

    The lag leaves time for records whose ``updated_at`` is being written as we read;
    a stream may ask for more (``min_lag``: Amazon rejects bounds under two minutes old).
    """
    lag = max(lag, getattr(stream, "min_lag", timedelta(0)))
    cursor = state.get_cursor(stream.source, stream.name)
    if cursor:
        start = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    else:  # a first run asks for all history the API keeps (``max_history``: Facebook's 37 months)
        max_history = getattr(stream, "max_history", None)
        start = max(initial_start, now - max_history) if max_history else initial_start
    return Window(start, max(start, now - lag))


def extract_incremental(
    stream: Stream,
    zone: RawZone,
    state: StateStore,
    *,
    now: datetime,
    initial_start: datetime,
    lag: timedelta = timedelta(minutes=1),
    progress: ProgressFn | None = None,
) -> ExtractResult:
    """Extract since the stream's cursor and move the cursor once the file is durable."""
    window = incremental_window(stream, state, now=now, initial_start=initial_start, lag=lag)
    result = extract_window(stream, zone, state, window, progress=progress)
    state.set_cursor(stream.source, stream.name, iso(window.end))
    return result


def backfill_run_key(window: Window) -> str:
    """Rerunning a backfill with the same window resumes it: the key names the window."""
    return f"backfill:{iso(window.start)}:{iso(window.end)}"


def extract_backfill(
    stream: Stream,
    zone: RawZone,
    state: StateStore,
    window: Window,
    *,
    chunk_days: float,
    progress: ProgressFn | None = None,
    on_chunk: Callable[[ExtractResult, int, int], None] | None = None,
) -> ExtractResult:
    """Re-extract ``window`` chunk by chunk without touching the incremental cursor.

    Finished chunks are recorded, so a rerun after a crash skips them and resumes.
    ``on_chunk(result, done, total)`` reports progress after every chunk.
    """
    run_key = backfill_run_key(window)
    done = state.done_windows(run_key, stream.source, stream.name)
    chunks = window.split(chunk_days)
    total = ExtractResult(stream.source, stream.name, window)
    for index, chunk in enumerate(chunks, start=1):
        if (iso(chunk.start), iso(chunk.end)) in done:
            part = ExtractResult(stream.source, stream.name, chunk, skipped=True)
        else:
            part = extract_window(stream, zone, state, chunk, progress=progress, run_key=run_key)
            state.mark_window_done(run_key, stream.source, stream.name, iso(chunk.start), iso(chunk.end), part.rows)
        total.merge(part)
        if on_chunk:
            on_chunk(part, index, len(chunks))
    return total
