"""The quality gate: run every suite as a GX checkpoint, build Data Docs, record the verdict.

A failed gate marks the warehouse unfit for sends (the sequence flows ask
:func:`latest_gate` before sending); it never stops ingestion. Anything that keeps
the gate from checking — a missing mart, an unreadable raw zone, even an error
inside the gate itself — is recorded as a failure too: an unchecked warehouse is
not a fit one.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.execution_engine import pandas_execution_engine

from hearth.config import Settings
from hearth.quality.store import GateResult, latest, open_store, passed_loads, record
from hearth.quality.suites import ORDER_STREAM, GateThresholds, Suite, mart_suites, raw_suites

log = logging.getLogger(__name__)

_SITE = "hearth"
_EXAMPLES = 3
# Arguments worth showing in a failure line (the regex and value sets only add noise).
_SHOWN_KWARGS = ("column", "min_value", "max_value", "mostly")


def quality_dir(settings: Settings) -> Path:
    """Where the gate keeps its Data Docs: ``$HEARTH_DATA_DIR/quality/``."""
    return settings.data_dir / "quality"


def _context(docs_dir: Path) -> Any:
    """An in-memory GX context whose one Data Docs site is ``docs_dir`` (no analytics, no progress bars)."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            _SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _show(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, datetime):  # numpy scalars
        value = value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def _observed(result: dict[str, Any], pii: bool) -> str:
    if "observed_value" in result:
        return f"observed {_show(result['observed_value'])}"
    if "unexpected_count" in result:
        # GX leaves NULLs out of column checks (and of ``mostly``): so does the count shown.
        checked = (result.get("element_count") or 0) - (result.get("missing_count") or 0)
        text = (
            f"{result['unexpected_count']:,} of {checked:,} values "
            f"({result.get('unexpected_percent') or 0:.1f}%) unexpected"
        )
        examples = list(dict.fromkeys(_show(v) for v in result.get("partial_unexpected_list") or []))[:_EXAMPLES]
        if examples and not pii:  # failure lines reach the Prefect UI: no addresses there
            text += f", e.g. {', '.join(examples)}"
        return text
    return "failed"


def describe_failure(suite: Suite, outcome: Any) -> str:
    """``<suite>: <what it checks> [<expectation>(<args>)] — <observed>`` for one failed GX result."""
    config = outcome.expectation_config
    args = ", ".join(f"{k}={_show(config.kwargs[k])}" for k in _SHOWN_KWARGS if config.kwargs.get(k) is not None)
    check = f"{config.type}({args})"
    what = f"{config.description} [{check}]" if config.description else check
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        return f"{suite.name}: {what} — error: {outcome.exception_info.get('exception_message')}"
    pii = config.kwargs.get("column") in suite.pii_columns
    return f"{suite.name}: {what} — {_observed(outcome.result or {}, pii)}"


def _validate(suites: Sequence[Suite], run_id: str, now: datetime, docs_dir: Path) -> list[str]:
    """Run one checkpoint per suite, build Data Docs into ``docs_dir``; return the failure lines."""
    context = _context(docs_dir)
    datasource = context.data_sources.add_pandas("hearth")
    run = RunIdentifier(run_name=run_id, run_time=now)
    failures: list[str] = []
    for suite in suites:
        if suite.frame is None:
            failures.append(f"{suite.name}: {suite.problem}")
            continue
        batch = datasource.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(suite.name)
        gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=suite.expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=f"gate.{suite.name}", validation_definitions=[definition], result_format="SUMMARY")
        )
        # GX fingerprints every frame under 1 GB by hashing all its values, a batch marker that
        # only Data Docs show: ~10 s of the 11.5M-row orders mart alone, most of its validation.
        with mock.patch.object(pandas_execution_engine, "HASH_THRESHOLD", 0):
            result = checkpoint.run(batch_parameters={"dataframe": suite.frame}, run_id=run)
        for validation in result.run_results.values():
            failures.extend(describe_failure(suite, outcome) for outcome in validation.results if not outcome.success)
    context.build_data_docs(site_names=[_SITE])
    return failures


def _publish(staging: Path, docs_dir: Path) -> None:
    """Replace ``docs_dir`` by the freshly built ``staging`` (no stale pages of older runs survive).

    Data Docs only explain a verdict: a gate running at the same time that wins the
    swap is logged, not turned into a failure.
    """
    old = docs_dir.with_name(f".{docs_dir.name}-old-{staging.name}")
    try:
        if docs_dir.exists():
            docs_dir.rename(old)
        staging.rename(docs_dir)
    except OSError as exc:
        log.warning("could not publish Data Docs of %s to %s: %s", staging.name, docs_dir, exc)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _row_counts(suites: Iterable[Suite]) -> dict[str, int]:
    return {
        s.name.removeprefix("marts."): len(s.frame)
        for s in suites
        if s.name.startswith("marts.") and s.frame is not None
    }


def run_gate(
    settings: Settings,
    *,
    now: datetime | None = None,
    thresholds: GateThresholds | None = None,
    upstream_failures: Sequence[str] = (),
) -> GateResult:
    """Check the raw zone and the marts, build Data Docs, record and return the verdict.

    Args:
        settings: where the raw zone, the warehouse and ``state.sqlite`` are.
        now: the instant timestamps must not be after (default: the clock).
        thresholds: the gate's limits (default: :class:`GateThresholds`).
        upstream_failures: failures found before the gate (e.g. a failed dbt build);
            they fail the gate and are recorded with it.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    thresholds = thresholds or GateThresholds()
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    root = quality_dir(settings)
    docs_dir = root / "docs"
    staging = root / f".docs-{run_id}"
    failures = list(upstream_failures)
    counts: dict[str, int] = {}
    loads: dict[str, tuple[str, ...]] = {}
    with closing(open_store(settings.state_path)) as conn:
        baseline = latest(conn, passed_only=True)
        try:
            suites = [
                *raw_suites(settings.raw_dir, thresholds, now, passed_loads(conn, ORDER_STREAM)),
                *mart_suites(settings.warehouse_path, thresholds, now, baseline.row_counts if baseline else {}),
            ]
            counts = _row_counts(suites)
            loads = {s.stream: s.loads for s in suites if s.stream}
            failures += _validate(suites, run_id, now, staging)
            _publish(staging, docs_dir)
        except Exception as exc:  # an unchecked warehouse is not fit for sends: record it as failed
            log.exception("quality gate %s could not run", run_id)
            failures.append(f"gate: could not run the checks — {type(exc).__name__}: {exc}")
            shutil.rmtree(staging, ignore_errors=True)
        result = GateResult(
            passed=not failures,
            failures=failures,
            docs_path=docs_dir / "index.html",
            run_id=run_id,
            checked_at=now,
            row_counts=counts,
        )
        record(conn, result, loads)
    return result
