"""Warehouse stages: the dbt build, full and incremental, and RFM against hand-written engines.

``warehouse.dbt_full`` builds the warehouse from scratch (``dbt build --full-refresh``)
over a raw zone produced by the real ingestion: the sandboxes serve the bench shop and
every stream of :func:`flows.sources.streams_for` runs ``extract_incremental`` once (a
first run, so Shopify takes its bulk-operation path). Shops over 100,000 customers get the
same raw zone from :mod:`bench.rawzone_direct` (Shopify's bulk queries run in-process: the
HTTP path would take hours); ``rawzone.json`` names the producer. That raw zone is produced
once per shop and cached under ``bench/out/rawzones/<shop key>/``; each stage gets hard
links to its files, so a stage may add files without touching the cache.

``warehouse.dbt_incremental`` adds one raw file of new and updated orders (~1 % of the
shop's Shopify orders) after a full build and runs ``dbt build`` incrementally.

``warehouse.rfm`` times the ``customer_rfm`` model's compiled SQL inside DuckDB against
the built warehouse, then the same scores as ONE hand-written DuckDB query, as pandas
and as Polars (lazy), and checks that all of them give every customer the same codes.

dbt always runs as a child process (``.venv/bin/dbt``): its peak RSS is read from
``wait4``, apart from the stage's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import OUT_DIR, Context, Metric, StageResult, stage
from bench.rfm_engines import RFM_COLUMNS, SPLIT, check_agreement, duckdb_rfm, pandas_rfm, polars_rfm

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
RAWZONE_MARKER = "rawzone.json"
TARGET_FULL_RSS_MB = 4096.0
DIRECT_ABOVE_CUSTOMERS = 100_000  # bigger shops get their raw zone from bench.rawzone_direct
TARGET_INCREMENTAL_RATIO = 0.15
TARGET_RFM_VS_HAND = 1.3
# Every load of a cached raw zone is dated this long before the shop's now: the initial backfill
# of a shop in steady state, beyond the incremental models' lookback (var lookback_days, 3).
LANDED_BEFORE_NOW = timedelta(days=7)
HOURLY_SHARE = 0.001  # of the orders changed in the last hourly load before the shop's now
# The other streams big enough for incremental staging: part of every hourly load too.
RELANDED_HOURLY = (("shopify", "customers"), ("shopify", "abandoned_checkouts"), ("amazon", "orders"))
TARGET_PANDAS_SPEEDUP = 2.5
TARGET_VS_POLARS = 1.5
# The project's var rfm_split_quantile (dbt_project.yml): the hand-written engines use the same.


# -- the raw zone ---------------------------------------------------------------------


def _ingest(shop: Path, data_dir: Path, sandbox_dir: Path) -> dict[str, int]:
    """Land the whole shop in ``data_dir/raw`` through the sandboxes and the real connectors."""
    from flows.sources import land_every_stream
    from hearth.config import Settings
    from sandbox.run import start_sandboxes

    (sandbox_dir / "sandbox").mkdir(parents=True, exist_ok=True)
    (sandbox_dir / "sandbox" / "shop").symlink_to(shop.resolve(), target_is_directory=True)
    sandboxes = start_sandboxes(sandbox_dir, port_base=0, amazon_rate=1000.0)
    try:
        settings = Settings.from_env({**sandboxes.env(), "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
        # The wall clock, not the shop's "now": the first window must cover every record.
        return land_every_stream(settings, now=datetime.now(UTC))
    finally:
        sandboxes.stop()


def raw_zone_producer(ctx: Context) -> str:
    """``"http"`` (the real ingest through the sandboxes) or ``"direct"`` (:mod:`bench.rawzone_direct`).

    Big shops take the direct producer: their Shopify bulk results alone are ~40 GB of
    JSONL over loopback (> 2 hours). Small ones keep proving the real path.
    """
    default = "direct" if ctx.size.customers > DIRECT_ABOVE_CUSTOMERS else "http"
    return str(ctx.size.option("warehouse.raw_zone_producer", default))


def settle_raw_zone(raw_dir: Path, landed_before: datetime) -> int:
    """Move every load's ``_extracted_at`` back so that the latest is ``landed_before``; files rewritten.

    A raw zone is produced in minutes (or an hour) just now, but an hourly build in steady
    state finds the history landed long ago, beyond the incremental models' lookback: the
    initial backfill. Gaps between loads are kept.
    """
    files = sorted(raw_dir.rglob("*.parquet"))
    with duckdb.connect() as conn:
        latest = conn.execute(
            f"select max(_extracted_at) from read_parquet({[str(f) for f in files]}, union_by_name = true)"
        ).fetchall()[0][0]
        shift = latest - landed_before
        if shift <= timedelta(0):
            return 0
        for file in files:
            temp = file.with_suffix(".settling")
            conn.execute(
                f"copy (select * replace (_extracted_at - interval '{shift.total_seconds()} seconds' as _extracted_at) "
                f"from read_parquet('{file}')) to '{temp}' (format parquet, compression zstd)"
            )
            temp.replace(file)
    return len(files)


def _settle(ctx: Context, data_dir: Path, landed_before: datetime) -> dict[str, Any]:
    """The history landed a week ago, then the last hourly load an hour before the shop's now.

    The hourly load (0.1 % of the orders changed, 0.1 % of the other big streams landed
    again) is what puts an incremental model's cutoff after the history: the cutoff is the
    latest load already built minus the lookback.
    """
    settle_raw_zone(data_dir / "raw", landed_before)
    hour_ago = _hour_ago(ctx)
    hourly = add_order_changes(data_dir, HOURLY_SHARE, hour_ago, tag="H", landed_at=hour_ago)
    return {
        "landed_before": landed_before.isoformat(),
        "last_hourly_load": {**hourly, "landed_at": str(hour_ago), "relanded": _reland_hourly(data_dir, hour_ago)},
    }


def _hour_ago(ctx: Context) -> datetime:
    return datetime.fromisoformat(ctx.size.now) - timedelta(hours=1)


def _reland_hourly(data_dir: Path, landed_at: datetime) -> dict[str, int]:
    """The other big streams' part of the hourly load: records extracted again, unchanged."""
    return {f"{source}.{stream}": reland_latest(data_dir, source, stream, HOURLY_SHARE, landed_at)
            for source, stream in RELANDED_HOURLY}  # fmt: skip


def reland_latest(data_dir: Path, source: str, stream: str, share: float, landed_at: datetime) -> int:
    """Land ``share`` of a stream's records again, as an extraction at ``landed_at`` returns them.

    The latest version of each picked record is copied row for row into a new load file
    (named as :class:`hearth.rawzone.RawZone` names them), only ``_load_id`` and
    ``_extracted_at`` new. Returns the records landed.
    """
    stream_dir = data_dir / "raw" / source / stream
    load_id = uuid.uuid4().hex
    target = stream_dir / f"{landed_at.strftime('%Y%m%dT%H%M%SZ')}_{load_id}.parquet"
    files = str(stream_dir / "*.parquet")
    with duckdb.connect() as conn:
        total = conn.execute(f"select count(distinct id) from read_parquet('{files}')").fetchall()[0][0]
        conn.execute(
            f"""
            copy (
                select * replace ('{load_id}' as _load_id, '{landed_at.isoformat()}'::timestamptz as _extracted_at)
                from read_parquet('{files}')
                semi join (
                    select id from (select distinct id from read_parquet('{files}'))
                    order by hash(id || 'relanded') limit {max(1, round(total * share))}
                ) as picked using (id)
                qualify row_number() over (partition by id order by updated_at desc nulls last, _extracted_at desc) = 1
            ) to '{target}' (format parquet, compression zstd)
            """
        )
        return conn.execute(f"select count(*) from read_parquet('{target}')").fetchall()[0][0]


def ensure_raw_zone(ctx: Context) -> tuple[Path, dict[str, Any]]:
    """The shop's raw zone (cached under ``bench/out/rawzones``), landed before the shop's now.

    Produced first if missing; every load is then dated :data:`LANDED_BEFORE_NOW` before
    the shop's now (:func:`settle_raw_zone`).
    """
    cache = OUT_DIR / "rawzones" / ctx.size.shop_key
    marker = cache / RAWZONE_MARKER
    landed_before = datetime.fromisoformat(ctx.size.now) - LANDED_BEFORE_NOW
    if marker.is_file():
        info = json.loads(marker.read_text())
        if "relanded" not in info["last_hourly_load"]:  # a cache from before the other streams' hourly loads
            info["last_hourly_load"]["relanded"] = _reland_hourly(cache, _hour_ago(ctx))
            marker.write_text(json.dumps(info, indent=1))
        return cache, {**info, "cached": True}
    temp = cache.with_name(f".tmp-{cache.name}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    producer = raw_zone_producer(ctx)
    started = time.perf_counter()
    details: dict[str, Any] = {}
    if producer == "direct":
        from bench.rawzone_direct import produce

        ctx.log(f"producing the raw zone in-process (Shopify) and over HTTP (Amazon, Facebook) into {cache} …")
        details = produce(ctx.shop, temp, log=ctx.log)
        rows = details.pop("records")
    else:
        ctx.log(f"ingesting the shop through the sandboxes into {cache} (once per shop) …")
        rows = _ingest(ctx.shop, temp, ctx.work_dir / "sandboxes")
    info = {
        **_settle(ctx, temp, landed_before),
        "producer": producer,
        "ingest_seconds": round(time.perf_counter() - started, 1),
        "records": rows,
        "landed_before": landed_before.isoformat(),
        **details,
    }
    (temp / RAWZONE_MARKER).write_text(json.dumps(info, indent=1))
    temp.rename(cache)
    ctx.log(f"ingested {sum(rows.values()):,} records in {info['ingest_seconds']} s")
    return cache, {**info, "cached": False}


def link_raw_zone(cache: Path, data_dir: Path) -> Path:
    """A data dir whose ``raw/`` hard-links the cached files: new files stay out of the cache."""
    for source_file in (cache / "raw").rglob("*.parquet"):
        target = data_dir / source_file.relative_to(cache)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source_file, target)
        except OSError:  # another file system: copy instead
            shutil.copy2(source_file, target)
    return data_dir


# -- dbt as a child process -----------------------------------------------------------


@dataclass
class DbtRun:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    slowest_nodes: dict[str, float] = field(default_factory=dict)  # the profile: node -> seconds
    seconds_by_layer: dict[str, float] = field(default_factory=dict)  # models by folder, then tests


def _slowest_nodes(run_results: Path, top: int = 8) -> dict[str, float]:
    """The ``top`` slowest models and tests of a dbt run, from its run_results.json."""
    results = json.loads(run_results.read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:top]
    return {r["unique_id"].split(".", 2)[-1]: round(r["execution_time"], 1) for r in ranked}


def _seconds_by_layer(target: Path) -> dict[str, float]:
    """A dbt run's node time summed by model folder (``staging``, ``marts``, …), then ``data tests``, ``unit tests``."""
    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    totals: dict[str, float] = {}
    for result in json.loads((target / "run_results.json").read_text())["results"]:
        kind, _, _ = result["unique_id"].partition(".")
        if kind == "exposure":  # no work of its own
            continue
        if kind in ("test", "unit_test"):
            layer = "data tests" if kind == "test" else "unit tests"
        else:
            parts = Path(nodes.get(result["unique_id"], {}).get("original_file_path", kind)).parts
            layer = parts[1] if len(parts) > 2 else parts[0]  # models/<layer>/…, seeds/…, snapshots/…
        totals[layer] = totals.get(layer, 0.0) + result["execution_time"]
    return {layer: round(seconds, 1) for layer, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}


def run_dbt(ctx: Context, data_dir: Path, args: list[str], as_of: str | None = None) -> DbtRun:
    """``dbt <args>`` over ``data_dir`` as of ``as_of`` (the shop's now); raises with the log tail on failure.

    Target and log paths live in the stage's scratch directory, so concurrent runs of the
    project (tests, other engineers) never share ``dbt_project/target``.
    """
    work = ctx.work_dir / "dbt"
    work.mkdir(exist_ok=True)
    log = work / f"{args[0]}-{time.monotonic_ns()}.log"
    command = [
        str(DBT),
        *args,
        "--profiles-dir",
        ".",
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        json.dumps({"as_of": as_of or ctx.size.now}),
    ]
    env = {**os.environ, "HEARTH_DATA_DIR": str(data_dir), "DO_NOT_TRACK": "1"}
    env.pop("HEARTH_DBT_PROJECT_DIR", None)
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=DBT_PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4 hands back the child's own rusage: its peak RSS, not the stage's.
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed ({process.returncode}):\n{log.read_text()[-4000:]}")
    if args[0] != "build":
        return DbtRun(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
    slowest, layers = _slowest_nodes(work / "target" / "run_results.json"), _seconds_by_layer(work / "target")
    return DbtRun(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, slowest, layers)


def full_build(ctx: Context) -> tuple[Path, DbtRun, dict[str, Any]]:
    """A fresh ``dbt build --full-refresh`` over the cached raw zone; the result is kept for reuse."""
    cache, info = ensure_raw_zone(ctx)
    data_dir = link_raw_zone(cache, ctx.work_dir / "data")
    build = run_dbt(ctx, data_dir, ["build", "--full-refresh"])
    _keep_build(ctx, data_dir, build)
    return data_dir, build, info


def _build_cache(ctx: Context) -> Path:
    """Where a full build of this shop's raw zone by this dbt project is kept (the project's files hashed)."""
    digest = hashlib.sha256()
    # The raw zone's marker too: a raw zone given another hourly load needs a new build.
    digest.update((OUT_DIR / "rawzones" / ctx.size.shop_key / RAWZONE_MARKER).read_bytes())
    for path in sorted(p for p in DBT_PROJECT.rglob("*") if p.is_file() and _is_project_source(p)):
        digest.update(str(path.relative_to(DBT_PROJECT)).encode() + b"\0" + path.read_bytes())
    return OUT_DIR / "warehouses" / f"{ctx.size.shop_key}-{digest.hexdigest()[:12]}"


def _is_project_source(path: Path) -> bool:
    parts = path.relative_to(DBT_PROJECT).parts
    return parts[0] in {"models", "macros", "seeds", "snapshots", "tests"} or parts == ("dbt_project.yml",)


def _keep_build(ctx: Context, data_dir: Path, build: DbtRun) -> None:
    """Keep the full build's warehouse and numbers, so later stages of a full-size run need not rebuild."""
    if ctx.size.customers <= DIRECT_ABOVE_CUSTOMERS:
        return  # small shops rebuild in seconds: every stage measures its own
    cache = _build_cache(ctx)
    temp = cache.with_name(f".tmp-{cache.name}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    shutil.copy2(data_dir / "warehouse.duckdb", temp / "warehouse.duckdb")
    (temp / "build.json").write_text(json.dumps(build.__dict__))
    shutil.rmtree(cache, ignore_errors=True)
    temp.rename(cache)


def kept_or_full_build(ctx: Context, name: str = "data") -> tuple[Path, DbtRun, dict[str, Any]]:
    """The full build kept by an earlier stage (same shop, same dbt project) copied in, else a new one.

    At full size one build takes many minutes; ``warehouse.dbt_full`` measures it and the
    incremental, RFM and orchestration stages start from a copy of its warehouse (in
    ``ctx.work_dir / name``), with its numbers as their baseline.
    """
    raw, info = ensure_raw_zone(ctx)
    cache = _build_cache(ctx)
    if not (cache / "build.json").is_file():
        data_dir, build, info = full_build(ctx)
        if name != "data":
            data_dir = data_dir.rename(ctx.work_dir / name)
        return data_dir, build, info
    data_dir = link_raw_zone(raw, ctx.work_dir / name)
    shutil.copy2(cache / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    ctx.log(f"starting from the full build kept in {cache}")
    return data_dir, DbtRun(**json.loads((cache / "build.json").read_text())), {**info, "full_build": "kept"}


@stage("warehouse.dbt_full")
def dbt_full(ctx: Context) -> StageResult:
    """``dbt build --full-refresh`` of the whole project over the shop's raw zone."""
    data_dir, build, info = full_build(ctx)
    ctx.log(f"dbt build --full-refresh: {build.seconds:.1f} s, peak RSS {build.peak_rss_mb:,.0f} MB")
    ctx.log(f"slowest nodes (s): {build.slowest_nodes}; by layer: {build.seconds_by_layer}")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        counts = {
            t: conn.execute(f"select count(*) from {t}").fetchall()[0][0]
            for t in ("customers", "orders", "customer_rfm")
        }  # type: ignore[index]
    return StageResult(
        metrics=[
            Metric("full build wall time", round(build.seconds, 2), "s", note=f"CPU {build.cpu_seconds:.1f} s"),
            Metric.against_target(
                "full build peak RSS (dbt process)", round(build.peak_rss_mb), "MB", TARGET_FULL_RSS_MB, "lower"
            ),
        ],
        details={
            "raw_zone": info,
            "row_counts": counts,
            "dbt_cpu_seconds": round(build.cpu_seconds, 2),
            "slowest_nodes": build.slowest_nodes,
            "seconds_by_layer": build.seconds_by_layer,
        },
    )


# -- incremental ----------------------------------------------------------------------


def _gid_bump(gid: str, offset: int) -> str:
    prefix, _, number = gid.rpartition("/")
    return f"{prefix}/{int(number) + offset}"


def add_order_changes(
    data_dir: Path, share: float, as_of: datetime, *, tag: str = "N", landed_at: datetime | None = None
) -> dict[str, int]:
    """Land one raw file of Shopify orders: ``share`` of the orders, half updated, half new copies.

    Updated orders keep their id and get a fresh ``updatedAt``; new orders are copies under
    new ids (their line items too) named ``<name>-<tag>``, created an hour before ``as_of``,
    with no refunds. Each ``tag`` picks its own orders and ids. The load is stamped
    ``landed_at`` (default: now).
    """
    from hearth.rawzone import RawZone

    files = str(data_dir / "raw" / "shopify" / "orders" / "*.parquet")
    with duckdb.connect() as conn:
        total = conn.execute(f"select count(distinct id) from read_parquet('{files}')").fetchall()[0][0]
        wanted = max(2, round(total * share))
        # Each picked order's latest version: chosen on the narrow columns, then fetched by its
        # position (ranking whole records held all 10M orders in memory: 20 GB).
        picked = conn.execute(
            f"""
            select raw.record
            from read_parquet('{files}', filename = true, file_row_number = true) as raw
            semi join (
                select filename, file_row_number
                from read_parquet('{files}', filename = true, file_row_number = true)
                qualify row_number() over (partition by id order by updated_at desc, filename desc) = 1
                order by hash(id || '{tag}')
                limit {wanted}
            ) as chosen using (filename, file_row_number)
            """
        ).fetchall()
    offset = 10**12 * (1 + sum(map(ord, tag)))
    stamp = (landed_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    created = (as_of - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    records = []
    for index, (text,) in enumerate(picked):
        order = json.loads(text)
        order["updatedAt"] = stamp
        if index % 2:  # a new order
            order["id"] = _gid_bump(order["id"], offset)
            order["name"] = f"{order.get('name', '#')}-{tag}"
            order["createdAt"] = order["processedAt"] = created
            order["refunds"] = []
            for edge in (order.get("lineItems") or {}).get("nodes") or []:
                edge["id"] = _gid_bump(edge["id"], offset)
        records.append(order)
    zone = RawZone(data_dir / "raw", now=lambda: landed_at) if landed_at else RawZone(data_dir / "raw")
    with zone.open_load("shopify", "orders") as load:
        load.write(records, id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"])
    return {"orders_before": total, "updated": len(records) - len(records) // 2, "new": len(records) // 2}


@stage("warehouse.dbt_incremental")
def dbt_incremental(ctx: Context) -> StageResult:
    """Full build (the baseline), ~1 % new and updated orders, then an incremental ``dbt build``."""
    data_dir, full, info = kept_or_full_build(ctx)
    share = ctx.size.option("warehouse.incremental_share", 0.01)
    changes = add_order_changes(data_dir, share, datetime.fromisoformat(ctx.size.now))
    # The next run comes later, as in production: a second build at the same as_of with changed
    # data gives segment_membership_snapshot duplicate dbt_scd_ids (its updated_at is as_of).
    later = (datetime.fromisoformat(ctx.size.now) + timedelta(hours=1)).isoformat()
    incremental = run_dbt(ctx, data_dir, ["build"], as_of=later)
    ratio = incremental.seconds / full.seconds
    ctx.log(f"full {full.seconds:.1f} s, incremental {incremental.seconds:.1f} s: ratio {ratio:.2f}")
    ctx.log(f"slowest nodes (s): {incremental.slowest_nodes}; by layer: {incremental.seconds_by_layer}")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        new_orders = conn.execute("select count(*) from orders where order_name like '%-N'").fetchall()[0][0]
    if new_orders != changes["new"]:
        raise AssertionError(f"the incremental build has {new_orders} of {changes['new']} new orders")
    return StageResult(
        metrics=[
            Metric("incremental build wall time", round(incremental.seconds, 2), "s"),
            Metric(
                "incremental / full build",
                round(ratio, 3),
                "",
                TARGET_INCREMENTAL_RATIO,
                "lower",
                round(ratio, 3),
                "incremental / full",
                note=f"full {full.seconds:.1f} s "
                + ("(warehouse.dbt_full's build, kept)" if info.get("full_build") == "kept" else "in this stage"),
            ),
            Metric("incremental peak RSS (dbt process)", round(incremental.peak_rss_mb), "MB"),
        ],
        details={
            "changes": changes,
            "full_seconds": round(full.seconds, 2),
            "raw_zone": info,
            "slowest_nodes": incremental.slowest_nodes,
            "seconds_by_layer": incremental.seconds_by_layer,
        },
    )


# -- RFM ------------------------------------------------------------------------------


def _best(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Best wall time of ``runs`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def compiled_rfm_sql(ctx: Context, data_dir: Path) -> str:
    """``customer_rfm``'s SQL as dbt compiles it (as of the shop's now)."""
    run_dbt(ctx, data_dir, ["compile", "--select", "customer_rfm"])
    (path,) = (ctx.work_dir / "dbt" / "target" / "compiled").rglob("customer_rfm.sql")
    return path.read_text()


@stage("warehouse.rfm")
def rfm(ctx: Context) -> StageResult:
    """customer_rfm's compiled SQL vs one hand-written DuckDB query, pandas and Polars (lazy)."""
    data_dir, _build, _info = kept_or_full_build(ctx)
    runs = ctx.size.option("warehouse.rfm_runs", 3)
    model_sql = compiled_rfm_sql(ctx, data_dir)
    as_of = datetime.fromisoformat(ctx.size.now)
    parquet = ctx.work_dir / "orders.parquet"
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute(f"copy orders to '{parquet}' (format parquet)")  # once, outside the timing
        model_s, model = _best(lambda: conn.sql(f"select {RFM_COLUMNS} from ({model_sql})").to_arrow_table(), runs)
        hand_s, hand = _best(lambda: duckdb_rfm(conn, "orders", as_of, SPLIT), runs)
        hand_pq_s, hand_pq = _best(lambda: duckdb_rfm(conn, f"read_parquet('{parquet}')", as_of, SPLIT), runs)
    pandas_s, by_pandas = _best(lambda: pandas_rfm(parquet, as_of, SPLIT), runs)
    polars_s, by_polars = _best(lambda: polars_rfm(parquet, as_of, SPLIT), runs)
    disagree = check_agreement(
        {"dbt model": model, "duckdb": hand, "duckdb parquet": hand_pq, "pandas": by_pandas, "polars": by_polars}
    )
    ctx.log(
        f"customer_rfm {model_s:.3f} s, hand-written {hand_s:.3f} s; over Parquet: duckdb {hand_pq_s:.3f} s, "
        f"pandas {pandas_s:.3f} s, polars lazy {polars_s:.3f} s ({model.num_rows:,} customers)"
    )
    return StageResult(
        metrics=[
            Metric("customer_rfm (compiled SQL in DuckDB)", round(model_s, 4), "s", note=f"best of {runs}"),
            Metric(
                "customer_rfm vs hand-written DuckDB",
                round(model_s / hand_s, 2),
                "",
                TARGET_RFM_VS_HAND,
                "lower",
                round(model_s / hand_s, 2),
                "model / hand-written",
                note="both over the orders mart",
            ),
            Metric(
                "pandas vs DuckDB (Parquet)",
                round(pandas_s / hand_pq_s, 2),
                "×",
                TARGET_PANDAS_SPEEDUP,
                "higher",
                round(pandas_s / hand_pq_s, 2),
                "pandas / duckdb",
            ),
            Metric(
                "DuckDB vs Polars lazy (Parquet)",
                round(hand_pq_s / polars_s, 2),
                "",
                TARGET_VS_POLARS,
                "lower",
                round(hand_pq_s / polars_s, 2),
                "duckdb / polars",
            ),
        ],
        details={
            "customers": model.num_rows,
            "seconds": {
                "model": model_s,
                "duckdb": hand_s,
                "duckdb_parquet": hand_pq_s,
                "pandas": pandas_s,
                "polars_lazy": polars_s,
            },
            "disagreements": disagree,
            "model_timing": "the compiled SELECT of customer_rfm run in DuckDB (no dbt start-up, no table write)",
        },
    )
