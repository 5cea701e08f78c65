"""The `backfill` flow: re-extract a past window without moving the incremental cursors.

The window is cut into chunks; each finished chunk is recorded in the state store,
so a rerun with the same window resumes where the last one stopped. Progress shows
as a Prefect progress artifact and a log line per chunk.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from connectors.base import Window
from flows.progress import observers
from flows.sources import SOURCES, configured_sources, streams_for
from hearth.config import Settings
from hearth.extract import extract_backfill
from hearth.rawzone import RawZone
from hearth.state import StateStore


class _ChunkProgress:
    """Sums finished chunks over every stream of every source into one artifact."""

    def __init__(self, total: int, artifact_id: Any) -> None:
        self.total, self.done, self.artifact_id = max(total, 1), 0, artifact_id
        self._lock = threading.Lock()

    def advance(self) -> float:
        with self._lock:
            self.done += 1
            percent = 100.0 * self.done / self.total
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, progress=percent)
        return percent


def _as_utc(value: date | datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@task(task_run_name="backfill-{source}", cache_policy=NO_CACHE)
def backfill_source(source: str, window: Window, chunk_days: float, progress: _ChunkProgress) -> list[dict[str, Any]]:
    logger = get_run_logger()
    settings = Settings.from_env()
    zone, rows = RawZone(settings.raw_dir), []
    with StateStore(settings.state_path) as state:
        for stream in streams_for(source, settings):

            def on_chunk(part: Any, done: int, total: int, name: str = stream.name) -> None:
                percent = progress.advance()
                observers.chunk(source, name, done, total)
                verb = "already done" if part.skipped else f"{part.rows} records"
                logger.info(
                    "%s/%s chunk %d/%d (%s → %s): %s — backfill %.0f%%",
                    source,
                    name,
                    done,
                    total,
                    part.window.start.date(),
                    part.window.end.date(),
                    verb,
                    percent,
                )

            result = extract_backfill(
                stream, zone, state, window, chunk_days=chunk_days,
                progress=lambda n, name=stream.name: observers.records(source, name, n),
                on_chunk=on_chunk,
            )  # fmt: skip
            rows.append({"source": source, "stream": stream.name, "rows": result.rows,
                         "quarantined": result.quarantined})  # fmt: skip
    return rows


@flow(name="backfill", log_prints=True)
def backfill(
    start: datetime,
    end: datetime,
    sources: list[str] | None = None,
    chunk_days: float = 7.0,
) -> list[dict[str, Any]]:
    """Re-extract ``[start, end)`` from the sources into the raw zone; resumable.

    Args:
        start: first instant of the window (inclusive, UTC when no zone is given).
        end: end of the window (exclusive).
        sources: which of shopify, amazon, facebook (default: every configured one).
        chunk_days: size of a resumable chunk.
    """
    settings = Settings.from_env()
    window = Window(_as_utc(start), _as_utc(end))
    chosen = list(sources) if sources else configured_sources(settings)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    chunks = len(window.split(chunk_days))
    total = sum(chunks * len(streams_for(source, settings)) for source in chosen)
    artifact_id = create_progress_artifact(
        progress=0.0, key="backfill-progress", description=f"Backfill {window.start.date()} → {window.end.date()}"
    )
    progress = _ChunkProgress(total, artifact_id)
    futures = {source: backfill_source.submit(source, window, chunk_days, progress) for source in chosen}
    summary, failed = [], []
    for source, future in futures.items():
        future.wait()
        if future.state.is_completed():
            summary.extend(future.result())
        else:
            failed.append(f"{source}: {future.state.message}")
    create_table_artifact(key="backfill-summary", table=summary, description="Records re-extracted per stream")
    if failed:
        return Failed(message="backfill incomplete (rerun to resume): " + "; ".join(failed))  # type: ignore[return-value]
    return summary
