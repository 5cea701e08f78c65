"""The `transform` flow: one ``dbt build`` over the raw zone, then the quality gate.

dbt runs once per flow run (each invocation costs seconds before any model
runs) through prefect-dbt's ``PrefectDbtRunner``, which turns every model, seed and
snapshot into a Prefect task, so they show one by one in the UI; data tests run in
the same build and report through the flow log and the gate. The gate runs
after every build, failed or not: a failed build leaves the warehouse half-built
or stale, so it is recorded as a failed gate and sends stay blocked until a build
passes. Ingestion never looks at the gate.

Analysts run the same project by hand: ``cd dbt_project && dbt build --profiles-dir .``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
from dbt.node_types import NodeType
from dbt_common.events.base_types import EventLevel
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings
from prefect.states import Failed
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

from flows.artifacts import latest_build_instant, publish_transform_artifacts
from flows.warehouse_turn import warehouse_turn
from hearth.config import Settings
from hearth.quality import GateResult, run_gate
from hearth.quality.store import latest, open_store, record_build_started
from hearth.warehouse import (
    FULL_BUILD_THREADS,
    WarehouseError,
    build_threads,
    dbt_project_dir,
    open_warehouse,
    project_fingerprint,
)
from hearth.warehouse_lock import publish_warehouse

FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
RETRIED_STATUSES = FAILED_STATUSES | {"skipped"}  # what `dbt retry` runs again
OUT_OF_MEMORY = "Out of Memory Error"  # DuckDB's message when a query needs more than memory_limit
UNIT_TESTED_RECORD = "unit_tested_project.sha256"  # in the dbt target dir: see unit_tests_due
_MESSAGE_CHARS = 300  # of a dbt error in a failure line; the full text is in the task's log
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class BuildOutcome:
    """What one ``dbt build`` did: node counts by status and one line per failed node.

    ``retried`` is set when nodes that failed for want of memory were rebuilt one at a time.
    """

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retried: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def ran_out_of_memory(self) -> bool:
        return any(OUT_OF_MEMORY in line for line in self.failures)

    def then(self, retry: BuildOutcome) -> BuildOutcome:
        """This build followed by a ``dbt retry`` of its failed and skipped nodes."""
        kept = Counter({status: n for status, n in self.counts.items() if status not in RETRIED_STATUSES})
        return BuildOutcome(counts=dict(kept + Counter(retry.counts)), failures=retry.failures, retried=True)


def parse_as_of(value: str | None) -> str | None:
    """Normalise ``--as-of``: a date stays ``YYYY-MM-DD``, a timestamp becomes ISO with an offset (UTC default).

    Raises:
        ValueError: not an ISO date or timestamp.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"as_of={value!r} is not an ISO date or timestamp (e.g. 2025-06-30)") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def dbt_args(
    full_refresh: bool, as_of: str | None, threads: int = FULL_BUILD_THREADS, unit_tests: bool = True
) -> list[str]:
    """The arguments of the flow's one dbt invocation.

    Args:
        threads: see :func:`hearth.warehouse.build_threads`.
        unit_tests: ``False`` leaves dbt's unit tests out (see :func:`unit_tests_due`).
    """
    args = ["build", "--threads", str(threads)]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if full_refresh:
        args.append("--full-refresh")
    if as_of:
        args += ["--vars", json.dumps({"as_of": as_of})]
    return args


def planned_build(
    settings: Settings, project_dir: Path, full_refresh: bool, as_of: str | None
) -> tuple[list[str], str]:
    """The next build's dbt arguments, and the project's fingerprint to record if it passes.

    Read inside the warehouse's turn: the thread count depends on what the warehouse holds.
    """
    fingerprint = project_fingerprint(project_dir)
    threads = build_threads(full_refresh, settings.warehouse_path)
    return dbt_args(full_refresh, as_of, threads, unit_tests_due(settings, fingerprint)), fingerprint


def unit_tests_due(settings: Settings, fingerprint: str) -> bool:
    """Whether this build runs dbt's unit tests: unless the last passing build ran them on this very project.

    They test the SQL on fixed inputs, so their verdict changes only with the project
    (dbt's advice: run them in development and CI, not on every production build). At 10M
    orders they cost an hourly build ~4 s; an edited model, macro, seed or var brings them back.
    """
    record = settings.dbt_target_dir / UNIT_TESTED_RECORD
    return not record.is_file() or record.read_text() != fingerprint


def record_unit_tested(settings: Settings, fingerprint: str) -> None:
    """After a passing build: its unit tests, run now or by an earlier build, pass on this project."""
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    (settings.dbt_target_dir / UNIT_TESTED_RECORD).write_text(fingerprint)


def _release_dbt_duckdb() -> None:
    """Close the DuckDB connection dbt-duckdb keeps for the life of the process.

    dbt runs inside this process, and while its connection is open nothing else here
    can open the warehouse read-only (DuckDB refuses a second configuration of one file).
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing cached here
        return
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
        DuckDBConnectionManager.close_all_connections()


def _one_line(text: object, limit: int = _MESSAGE_CHARS) -> str:
    """A dbt message as one plain line (dbt colours and indents its unit-test diffs)."""
    plain = " ".join(_ANSI.sub("", str(text or "")).split())
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"


def _outcome(result: Any) -> BuildOutcome:
    nodes = getattr(getattr(result, "result", None), "results", None) or []
    statuses = [(node, str(getattr(node.status, "value", node.status))) for node in nodes]
    failures = [
        f"dbt: {node.node.resource_type} {node.node.name} {status}: {_one_line(node.message)}"
        for node, status in statuses
        if status in FAILED_STATUSES
    ]
    if not getattr(result, "success", False) and not failures:
        failures.append(
            f"dbt: build did not succeed: {_one_line(getattr(result, 'exception', None) or 'see the flow log')}"
        )
    return BuildOutcome(counts=dict(Counter(status for _, status in statuses)), failures=failures)


def _dbt_log_level() -> EventLevel:
    """Prefect's log level in dbt's terms (prefect-dbt's own default breaks on WARNING: dbt calls it "warn")."""
    level = str(get_current_settings().logging.level).lower()
    return {"debug": EventLevel.DEBUG, "warning": EventLevel.WARN, "error": EventLevel.ERROR,
            "critical": EventLevel.ERROR}.get(level, EventLevel.INFO)  # fmt: skip


class ModelTaskRunner(PrefectDbtRunner):
    """A ``PrefectDbtRunner`` that makes a task run of each model, seed and snapshot, and none of a test.

    prefect-dbt 0.7.25 has no option for it, so this overrides its private ``_call_task``
    (the version is pinned; test_transform_flow fails if the override stops working). Each
    task run costs this process ~0.2 s of CPU (it rebuilds the flow context and an API
    client per node), and 244 of a build's ~290 nodes are tests: at 10M orders that was
    ~20 % of an hourly transform (bench/README.md, Orchestration). A failed test still
    fails the build: its line is in the outcome, the flow log and the gate.
    """

    TASK_NODE_TYPES = frozenset({NodeType.Model, NodeType.Seed, NodeType.Snapshot})

    def _call_task(self, task_state: Any, manifest_node: Any, context: dict[str, Any], enable_assets: bool) -> None:
        if manifest_node.resource_type in self.TASK_NODE_TYPES:
            super()._call_task(task_state, manifest_node, context, enable_assets)


def run_dbt_build(project_dir: Path, args: list[str], settings: Settings) -> BuildOutcome:
    """Invoke dbt once; a failed model or test is reported in the outcome, never raised or ignored.

    dbt's target and logs go to the data dir (:attr:`Settings.dbt_target_dir`), not the project:
    the profile names the data dir, so each data dir keeps its own partial parse, builds over
    two data dirs never write one ``target/``, and the project may be read-only.
    """
    dbt_settings = PrefectDbtSettings(project_dir=project_dir, profiles_dir=project_dir,
                                      target_path=settings.dbt_target_dir, log_level=_dbt_log_level())  # fmt: skip
    runner = ModelTaskRunner(settings=dbt_settings, raise_on_failure=False)
    before = set(threading.enumerate())
    try:
        outcome = _invoke(runner, args, settings)
        if outcome.ran_out_of_memory and _threads(args) > 1:
            # Two big queries at once can need more than DuckDB's memory cap where each alone
            # spills to disk: rebuild what failed or was skipped one node at a time.
            outcome = outcome.then(_invoke(runner, ["retry", "--threads", "1"], settings))
    finally:
        _wait_for_node_tasks(before)
        _release_dbt_duckdb()
    return outcome


def _threads(args: list[str]) -> int:
    return int(args[args.index("--threads") + 1]) if "--threads" in args else FULL_BUILD_THREADS  # the profile's


def _invoke(runner: ModelTaskRunner, args: list[str], settings: Settings) -> BuildOutcome:
    try:
        result = runner.invoke([*args, "--log-path", str(settings.dbt_log_dir)])
    except Exception as exc:  # the runner raises for errors before any node ran (parse, profile, lock)
        return BuildOutcome(failures=[f"dbt: {' '.join(args)} could not run: {_one_line(exc, 2 * _MESSAGE_CHARS)}"])
    return _outcome(result)


def _wait_for_node_tasks(before: set[threading.Thread], timeout: float = 600.0) -> None:
    """Wait until every per-node Prefect task prefect-dbt started has finished reporting.

    prefect-dbt 0.7.25 reports each dbt node as a task run from a daemon thread it never
    joins, so ``invoke`` returns while hundreds are still reporting. Left alone they are
    killed at interpreter exit mid-call (the process aborts, exit 134, after a successful
    build) and the UI shows node tasks that never finished.
    """
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        if thread.daemon and thread.name.endswith("(run_task)"):
            thread.join(max(0.0, deadline - time.monotonic()))


def _previous_build_instant(warehouse_path: Path) -> datetime | None:
    """The as-of instant of the build before this one: the boundary of "entries and exits since the last run"."""
    if not warehouse_path.is_file():
        return None
    try:
        with open_warehouse(warehouse_path) as conn:
            return latest_build_instant(conn)
    except (WarehouseError, duckdb.Error):  # an unreadable old warehouse only costs the boundary
        return None


def _mark_build_started(settings: Settings) -> None:
    """Sends refuse from now until this build's gate passes: a build killed half-way never gets there."""
    with closing(open_store(settings.state_path)) as conn:
        previous = latest(conn)
        docs = previous.docs_path if previous else settings.data_dir / "data_docs"
        record_build_started(conn, now=datetime.now(UTC), docs_path=docs)


@task(name="quality-gate", cache_policy=NO_CACHE)
def quality_gate(upstream_failures: list[str]) -> GateResult:
    """Run the GX checkpoint on the raw zone and the marts; record the verdict in state.sqlite."""
    result = run_gate(Settings.from_env(), upstream_failures=upstream_failures)
    logger = get_run_logger()
    for line in result.failures:
        logger.error(line)
    logger.info(result.summary())
    return result


def _markdown(args: list[str], build: BuildOutcome, gate: GateResult) -> str:
    rows = "\n".join(f"| {status} | {count} |" for status, count in sorted(build.counts.items())) or "| — | 0 |"
    failures = "\n".join(f"- {line}" for line in gate.failures) or "- none"
    retried = ""
    if build.retried:
        retried = "Out of memory with several threads: what failed was rebuilt one node at a time.\n\n"
    verdict = "**passed**" if gate.passed else "**failed — sends are blocked until a build passes**"
    return (
        f"## dbt {' '.join(args)}\n\n{retried}| status | nodes |\n|---|---|\n{rows}\n\n"
        f"## Quality gate {verdict}\n\nRun `{gate.run_id}` at {gate.checked_at.isoformat()}; "
        f"Data Docs: `{gate.docs_path}`\n\n{failures}\n"
    )


@flow(name="transform", log_prints=True)
def transform(full_refresh: bool = False, as_of: str | None = None) -> dict[str, Any]:
    """Build the warehouse with dbt (staging → marts → triggers), then run the quality gate.

    Args:
        full_refresh: rebuild incremental models from the whole raw zone.
        as_of: rebuild RFM, lifecycle and triggers as of a past date or instant (a backfill).

    Returns:
        dbt node counts and the gate verdict; the run ends Failed when a model or test
        failed or the gate failed.
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    as_of = parse_as_of(as_of)
    # dbt runs in this process and its profile reads the data dir from the environment.
    os.environ["HEARTH_DATA_DIR"] = str(settings.data_dir)
    project_dir = dbt_project_dir()

    # One process on the warehouse at a time (DuckDB's rule): an overlapping run waits here.
    with warehouse_turn(settings.data_dir):
        args, fingerprint = planned_build(settings, project_dir, full_refresh, as_of)
        logger.info("dbt %s in %s over %s", " ".join(args), project_dir, settings.data_dir)
        previous_build = _previous_build_instant(settings.warehouse_path)
        _mark_build_started(settings)
        build = run_dbt_build(project_dir, args, settings)
        if build.retried:
            logger.warning("DuckDB ran out of memory with several dbt threads; rebuilt what failed one node at a time")
        if build.passed:
            record_unit_tested(settings, fingerprint)
        gate = quality_gate(build.failures)
        if build.passed and gate.passed:
            published = publish_warehouse(settings.warehouse_path, settings.data_dir)
            logger.info("published a read-only copy for analysts: %s", published)
            publish_transform_artifacts(settings.warehouse_path, previous_build)
    create_markdown_artifact(key="transform-summary", markdown=_markdown(args, build, gate), description="dbt and gate")
    summary = {
        "dbt": build.counts,
        "gate": {
            "passed": gate.passed,
            "run_id": gate.run_id,
            "failures": gate.failures,
            "docs_path": str(gate.docs_path),
            "row_counts": gate.row_counts,
        },
    }
    if not build.passed:
        return Failed(message=f"dbt build failed; {gate.summary()}")  # type: ignore[return-value]
    if not gate.passed:
        return Failed(message=gate.summary())  # type: ignore[return-value]
    return summary
