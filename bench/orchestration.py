"""Orchestration stages: what Prefect costs on top of the work it orchestrates.

``orchestration.prefect_overhead`` ingests the shop through the Shopify, Amazon and
Facebook sandboxes (rate limits off, in this process) twice over, into fresh data
directories each time:

- **Prefect**: the ``ingest`` flow (:func:`flows.ingest.ingest`): one flow run, one task
  run per source submitted to Prefect's thread-pool task runner, logs, a table
  artifact, every state change reported to a Prefect server;
- **plain**: the same extraction as plain calls — :func:`hearth.extract.extract_incremental`
  over :func:`flows.sources.streams_for`, one thread per source (as the task runner does).

Prefect's server is a local temporary one (``prefect_test_harness``: a SQLite-backed
server in a subprocess); its start-up is not counted, a deployment's server is already
up. The runs alternate (plain, Prefect, plain, Prefect …) so that both see the same
machine; best of N each. Prefect's share = (Prefect − plain) / Prefect, target ≤ 10 %.
The overhead is roughly a constant per flow and task run (API round trips, the first
run's client and flow registration), so its share falls as the pipeline grows. The
stage uses the 2,000-customer shop at every size (the sandboxes take minutes to load
the big shop, and a first ingest of its 10M orders through them would take hours), so
its share is an upper bound of what a full-size or rate-limited run (minutes) pays.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import Context, Metric, StageResult, stage
from flows.sources import streams_for
from hearth.config import Settings
from hearth.extract import extract_incremental
from hearth.rawzone import RawZone
from hearth.state import StateStore
from sandbox.amazon import AmazonSandbox
from sandbox.facebook import FacebookSandbox
from sandbox.shopify import ShopifySandbox

TARGET_SHARE = 0.10
SOURCES = ("shopify", "amazon", "facebook")
Landed = dict[str, int]  # "source/stream" → rows


def plain_ingest(settings: Settings) -> Landed:
    """The ``ingest`` flow's work without Prefect: every stream since its cursor, one thread per source."""
    now = datetime.now(UTC)
    zone = RawZone(settings.raw_dir)

    def one_source(source: str) -> Landed:
        landed: Landed = {}
        with StateStore(settings.state_path) as state:
            for stream in streams_for(source, settings):
                result = extract_incremental(stream, zone, state, now=now, initial_start=settings.history_start)
                landed[f"{source}/{stream.name}"] = result.rows
        return landed

    with concurrent.futures.ThreadPoolExecutor(len(SOURCES)) as pool:
        return {k: v for part in pool.map(one_source, SOURCES) for k, v in part.items()}


def prefect_ingest(settings: Settings) -> Landed:
    """The ``ingest`` flow itself (it reads the same settings from the environment)."""
    from flows.ingest import ingest

    state = ingest(sources=list(SOURCES), return_state=True)
    if not state.is_completed():
        raise RuntimeError(f"the ingest flow ended {state.name}: {state.message}")
    return {f"{row['source']}/{row['stream']}": row["rows"] for row in state.result()}


def _timed(run: Callable[[Settings], Landed], env: dict[str, str], data_dir: Path) -> tuple[float, float, Landed]:
    """(wall, CPU, rows landed) of one run into a fresh ``data_dir``; the flow reads ``os.environ``."""
    os.environ.update({**env, "HEARTH_DATA_DIR": str(data_dir)})
    settings = Settings.from_env(dotenv=False)
    wall, cpu = time.perf_counter(), time.process_time()
    landed = run(settings)
    return time.perf_counter() - wall, time.process_time() - cpu, landed


@stage("orchestration.prefect_overhead", shop="small")
def prefect_overhead(ctx: Context) -> StageResult:
    """The ingest of the shop as a Prefect flow and as plain calls; Prefect's share of the wall time."""
    # Before Prefect is imported: no telemetry, and no INFO log lines for every task run.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    import flows.ingest  # noqa: F401 - imported before timing: module import is not per-run overhead

    repeats = int(ctx.size.option("orchestration.repeats", 2))
    servers = [ShopifySandbox(ctx.shop, rate_limit=False), AmazonSandbox(ctx.shop, rate_per_second=None),
               FacebookSandbox(ctx.shop)]  # fmt: skip
    env: dict[str, str] = {}
    for server in servers:
        server.start()
        env |= server.env()  # type: ignore[attr-defined]
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "prefect": []}
    landed: dict[str, Landed] = {}
    try:
        started = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=120):
            server_seconds = time.perf_counter() - started
            ctx.log(f"Prefect test server up in {server_seconds:.1f} s (not counted)")
            for n in range(repeats):
                for name, fn in (("plain", plain_ingest), ("prefect", prefect_ingest)):
                    wall, cpu, landed[name] = _timed(fn, env, ctx.work_dir / f"{name}-{n}")
                    runs[name].append((wall, cpu))
                    ctx.log(f"{name:7} run {n + 1}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
                            f"{sum(landed[name].values()):,} records")  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    if landed["plain"] != landed["prefect"]:
        raise AssertionError(f"the two ways landed different rows: {landed['plain']} vs {landed['prefect']}")
    plain, prefect = min(w for w, _ in runs["plain"]), min(w for w, _ in runs["prefect"])
    overhead = prefect - plain
    share = overhead / prefect
    records = sum(landed["plain"].values())
    return StageResult(
        [
            Metric.against_target(
                "Prefect's share of the ingest wall time",
                round(share, 3),
                "",
                TARGET_SHARE,
                "lower",
                note="(Prefect − plain) / Prefect, best of each; quick: a seconds-long "
                "pipeline, so the per-run constant dominates",
            ),
            Metric("Prefect / plain wall time", round(prefect / plain, 2), "×", note="ratio of the best runs"),
            Metric("Prefect overhead per flow run", round(overhead, 2), "s", note="1 flow run, 3 task runs"),
            Metric("plain ingest wall time", round(plain, 2), "s", note=f"{records:,} records, 3 sources"),
        ],
        details={
            "records": landed["plain"],
            "prefect_server_startup_seconds": round(server_seconds, 2),
            "runs": {k: [{"wall": round(w, 3), "cpu": round(c, 3)} for w, c in v] for k, v in runs.items()},
        },
    )


# -- the transform at full size ---------------------------------------------------------


def plain_transform(settings: Settings, as_of: str) -> str:
    """The transform flow's steps as plain calls: dbt in this process, the gate, the analysts' copy.

    The flow's artifacts are computed too (heatmap, segment changes), just not sent to a
    Prefect server: only the orchestration is left out of this side.
    """
    from dbt.cli.main import dbtRunner

    from flows.artifacts import transform_artifacts
    from flows.transform import (
        _mark_build_started,
        _previous_build_instant,
        _release_dbt_duckdb,
        planned_build,
        record_unit_tested,
    )
    from hearth.quality import run_gate
    from hearth.warehouse import dbt_project_dir
    from hearth.warehouse_lock import publish_warehouse, warehouse_lock

    project = str(dbt_project_dir())
    with warehouse_lock(settings.data_dir):
        since = _previous_build_instant(settings.warehouse_path)
        _mark_build_started(settings)
        levels = ["--log-level", "warn", "--log-level-file", "warn"]  # the flow's, with Prefect at WARNING
        # Target and logs in the data dir, as the flow's (flows.transform.run_dbt_build).
        paths = ["--target-path", str(settings.dbt_target_dir), "--log-path", str(settings.dbt_log_dir)]
        project_args = ["--project-dir", project, "--profiles-dir", project, *paths]
        args, fingerprint = planned_build(settings, Path(project), False, as_of)
        result = dbtRunner().invoke([*args, *levels, *project_args])
        _release_dbt_duckdb()
        if not result.success:
            raise RuntimeError(f"dbt build failed: {result.exception}")
        record_unit_tested(settings, fingerprint)
        gate = run_gate(settings)
        if gate.passed:
            publish_warehouse(settings.warehouse_path, settings.data_dir)
            transform_artifacts(settings.warehouse_path, since)
    return "passed" if gate.passed else f"failed: {gate.failures[:3]}"


def prefect_transform(settings: Settings, as_of: str) -> str:
    """The ``transform`` flow itself: a task per dbt node, the gate, artifacts, the analysts' copy."""
    from flows.transform import transform

    state = transform(as_of=as_of, return_state=True)
    if not state.is_completed():
        raise RuntimeError(f"the transform flow ended {state.name}: {state.message}")
    return "passed" if state.result()["gate"]["passed"] else "failed"


def record_previous_gate(data_dir: Path, checked_at: datetime) -> None:
    """Leave the data dir as the previous hour's passed gate left it: its verdict, its row counts
    and the raw order loads it read, which the next gate does not read again.

    Recorded rather than run: a gate over the whole raw zone (~75 s at 10M orders) is the
    first transform's cost, not an hourly one.
    """
    import duckdb

    from hearth.quality.store import GateResult, open_store, record
    from hearth.quality.suites import ORDER_STREAM, GateThresholds

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        tables = GateThresholds().count_tables  # the marts whose counts a gate keeps as the next baseline
        counts = {t: conn.execute(f"select count(*) from {t}").fetchall()[0][0] for t in tables}
    loads = tuple(p.name for p in sorted((data_dir / "raw" / ORDER_STREAM).glob("*.parquet")))
    result = GateResult(True, [], data_dir / "quality" / "docs" / "index.html", "bench-previous", checked_at, counts)
    with closing(open_store(data_dir / "state.sqlite")) as conn:
        record(conn, result, {ORDER_STREAM: loads})


@stage("orchestration.transform_overhead")
def transform_overhead(ctx: Context) -> StageResult:
    """An hourly transform after ~1 % new orders, as the Prefect flow and as plain calls.

    The daily pipeline's heaviest step at the shop's size. Each run starts from its own copy
    of the kept full build, as the previous hour's passed gate left it (record_previous_gate),
    with its own new raw file; the two ways alternate (plain first,
    then Prefect first: the first run after a copy meets a colder page cache) and the best
    run of each counts. prefect-dbt makes every model, seed and snapshot a task run (~50;
    flows.transform.ModelTaskRunner), the part of Prefect's cost that grows with the project.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from bench.rawzone_cache import add_order_changes
    from bench.warehouse import kept_or_full_build

    now = datetime.fromisoformat(ctx.size.now)
    later = (now + timedelta(hours=1)).isoformat()
    rounds = int(ctx.size.option("orchestration.transform_rounds", 2))
    ways = [("plain", plain_transform), ("prefect", prefect_transform)]
    seconds: dict[str, list[float]] = {"plain": [], "prefect": []}
    verdicts: set[str] = set()
    with prefect_test_harness(server_startup_timeout=120):
        for round_ in range(rounds):
            for name, run in ways if round_ % 2 == 0 else ways[::-1]:
                data_dir, _full, _info = kept_or_full_build(ctx, name)
                record_previous_gate(data_dir, now)
                add_order_changes(data_dir, ctx.size.option("warehouse.incremental_share", 0.01), now)
                os.environ["HEARTH_DATA_DIR"] = str(data_dir)
                started = time.perf_counter()
                verdicts.add(run(Settings.from_env(dotenv=False), later))
                seconds[name].append(time.perf_counter() - started)
                ctx.log(f"{name:7}: {seconds[name][-1]:7.1f} s, gate {sorted(verdicts)}")
                shutil.rmtree(data_dir, ignore_errors=True)  # the next copy needs the disk
    if len(verdicts) != 1:
        raise AssertionError(f"the two ways disagree on the gate: {verdicts}")
    best = {name: min(runs) for name, runs in seconds.items()}
    share = (best["prefect"] - best["plain"]) / best["prefect"]
    return StageResult(
        [
            Metric.against_target(
                "Prefect's share of the transform wall time",
                round(share, 3),
                "",
                TARGET_SHARE,
                "lower",
                note=f"(flow − plain) / flow, best of {rounds} each: dbt build, gate, artifacts and "
                "published copy after 1 % new orders; negative = within run-to-run noise",
            ),
            Metric("transform flow wall time", round(best["prefect"], 1), "s", note=f"best of {rounds}"),
            Metric("plain transform wall time", round(best["plain"], 1), "s", note=f"best of {rounds}"),
        ],
        details={"seconds": {k: [round(v, 2) for v in runs] for k, runs in seconds.items()}, "gate": sorted(verdicts)},
    )
