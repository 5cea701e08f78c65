"""The bench shop's raw zone: produced once, cached, settled into steady state, changed on demand.

The raw zone comes from the real ingestion: the sandboxes serve the bench shop and every
stream of :func:`flows.sources.streams_for` runs ``extract_incremental`` once (a first run,
so Shopify takes its bulk-operation path). Shops over 100,000 customers get the same raw
zone from :mod:`bench.rawzone_direct` (Shopify's bulk queries run in-process: the HTTP path
would take hours); ``rawzone.json`` names the producer. It is produced once per shop and
cached under ``bench/out/rawzones/<shop key>/``, its history dated a week back and ended by
one hourly load (:func:`settle_raw_zone`, :func:`reland_latest`); each stage gets hard links
to its files (:func:`link_raw_zone`), so a stage may add files, such as a load of order
changes (:func:`add_order_changes`), without touching the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import OUT_DIR, Context

RAWZONE_MARKER = "rawzone.json"
DIRECT_ABOVE_CUSTOMERS = 100_000  # bigger shops get their raw zone from bench.rawzone_direct
# Every load of a cached raw zone is dated this long before the shop's now: the initial backfill
# of a shop in steady state, beyond the incremental models' lookback (var lookback_days, 3).
LANDED_BEFORE_NOW = timedelta(days=7)
HOURLY_SHARE = 0.001  # of the orders changed in the last hourly load before the shop's now
# The other streams big enough for incremental staging: part of every hourly load too.
RELANDED_HOURLY = (
    ("shopify", "customers"), ("shopify", "abandoned_checkouts"), ("amazon", "orders"), ("facebook", "insights"),
)  # fmt: skip


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


def _reland_hourly(data_dir: Path, landed_at: datetime, done: dict[str, int] | None = None) -> dict[str, int]:
    """The other big streams' part of the hourly load: records extracted again, unchanged.

    ``done``: the streams a cache made before a stream joined :data:`RELANDED_HOURLY` has
    relanded already; only the others are landed.
    """
    relanded = dict(done or {})
    for source, stream in RELANDED_HOURLY:
        if f"{source}.{stream}" not in relanded:
            relanded[f"{source}.{stream}"] = reland_latest(data_dir, source, stream, HOURLY_SHARE, landed_at)
    return relanded


def reland_latest(data_dir: Path, source: str, stream: str, share: float, landed_at: datetime) -> int:
    """Land ``share`` of a stream's records again, as an extraction at ``landed_at`` returns them.

    The latest version of each picked record is copied row for row into a new load file
    (named as :class:`hearth.rawzone.RawZone` names loads), only ``_load_id`` and
    ``_extracted_at`` new. Returns the records landed.
    """
    from hearth.rawzone import load_file_name

    stream_dir = data_dir / "raw" / source / stream
    load_id = uuid.uuid4().hex
    target = stream_dir / load_file_name(landed_at, load_id)
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
        hourly = info["last_hourly_load"]
        if set(hourly.get("relanded", {})) != {f"{source}.{stream}" for source, stream in RELANDED_HOURLY}:
            # A cache from before a stream joined the hourly load: its part landed now.
            hourly["relanded"] = _reland_hourly(cache, _hour_ago(ctx), hourly.get("relanded"))
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
