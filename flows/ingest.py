"""The `ingest` flow: every configured source, concurrently, into the raw zone.

One task per source (a source's streams share its rate limit, so they run in
order inside it); sources run side by side. A failing source fails its task and
the flow, but never stops the others. Prefect retries a source task only when
the whole call failed for a transient reason — the HTTP layer has already retried
each request, and a wrong credential is not worth retrying.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from connectors._http import AuthError
from flows.progress import observers
from flows.sources import SOURCES, configured_sources, streams_for
from hearth.config import ConfigError, Settings
from hearth.extract import extract_incremental
from hearth.rawzone import RawZone
from hearth.state import StateStore


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except (AuthError, ConfigError):
        return False
    except Exception:
        return True
    return False


@task(
    task_run_name="ingest-{source}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=30,
    retry_condition_fn=_worth_retrying,
)
def ingest_source(source: str, now: datetime) -> list[dict[str, Any]]:
    """Extract every stream of ``source`` since its cursor; one row of summary per stream."""
    logger = get_run_logger()
    settings = Settings.from_env()
    zone, rows, failures = RawZone(settings.raw_dir), [], []
    with StateStore(settings.state_path) as state:
        for stream in streams_for(source, settings):
            try:
                result = extract_incremental(
                    stream,
                    zone,
                    state,
                    now=now,
                    initial_start=settings.history_start,
                    progress=lambda n, s=stream: observers.records(s.source, s.name, n),
                )
            except (AuthError, ConfigError):
                raise  # the other streams of this source would fail the same way
            except Exception as exc:
                logger.error("%s/%s failed: %s", source, stream.name, exc)
                failures.append(f"{stream.name}: {exc}")
                rows.append({"source": source, "stream": stream.name, "status": "failed", "error": str(exc)[:300]})
                continue
            logger.info(
                "%s/%s: %d records (%d quarantined) for %s → %s",
                source, stream.name, result.rows, result.quarantined,
                result.window.start.isoformat(), result.window.end.isoformat(),
            )  # fmt: skip
            rows.append(
                {
                    "source": source,
                    "stream": stream.name,
                    "status": "ok",
                    "rows": result.rows,
                    "quarantined": result.quarantined,
                    "window_start": result.window.start.isoformat(),
                    "window_end": result.window.end.isoformat(),
                }
            )
    if failures:
        raise RuntimeError(f"{source}: {len(failures)} stream(s) failed — " + "; ".join(failures))
    return rows


@flow(name="ingest", log_prints=True)
def ingest(sources: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull what changed since the last run from each source into the raw zone.

    Args:
        sources: which of shopify, amazon, facebook (default: every configured one).
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    chosen = list(sources) if sources else configured_sources(settings)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    now = datetime.now(UTC)
    # Temp files of a load killed mid-write are invisible to readers; clear old ones away.
    swept = RawZone(settings.raw_dir).sweep_temp(older_than_seconds=3600)
    if swept:
        logger.info("removed %d temp file(s) left by interrupted loads", len(swept))
    futures = {source: ingest_source.submit(source, now) for source in chosen}
    summary: list[dict[str, Any]] = []
    failed: list[str] = []
    for source, future in futures.items():
        future.wait()
        state = future.state
        if state.is_completed():
            summary.extend(future.result())
        else:
            failed.append(source)
            message = state.message or "failed"
            summary.append({"source": source, "stream": "*", "status": "failed", "error": message[:300]})
            logger.error("source %s failed: %s", source, message)
    create_table_artifact(key="ingest-summary", table=summary, description="Records landed per stream")
    if failed:
        return Failed(message=f"ingest failed for {', '.join(failed)}; the other sources landed")  # type: ignore[return-value]
    return summary
