"""The direct raw-zone producer lands exactly what the real connectors land through the sandboxes.

One small shop, two data dirs: the real first ingest (every stream through its sandbox
over HTTP, as ``tests/integration/warehouse_fixture.py`` runs it) and
``bench.rawzone_direct.produce`` (Shopify in-process, in forked workers over
sub-windows). Both must hold the same (stream, id) set and, per id, the same parsed
record and updated_at; their cursors must let the next incremental run start where
the real one would.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from bench.rawzone_direct import DirectShopifyStream, plan_jobs, produce
from connectors.base import Window
from connectors.shopify.queries import SPECS
from flows.sources import land_every_stream
from hearth.config import Settings
from hearth.extract import incremental_window
from hearth.state import StateStore
from sandbox.generator import generate_shop
from sandbox.run import start_sandboxes
from sandbox.shopify.bulk import BulkOperations
from sandbox.shopify.schema import admin_schema
from sandbox.shopify.store import ShopData

SHOP_NOW = datetime(2026, 11, 1, tzinfo=UTC)
RUN_NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)  # after every record of the shop, before the wall clock


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("direct")
    generate_shop(home / "sandbox" / "shop", seed=11, customers=150, now=SHOP_NOW)
    return home / "sandbox" / "shop"


def _real_ingest(shop: Path, data_dir: Path) -> None:
    (data_dir / "sandbox").mkdir(parents=True)
    (data_dir / "sandbox" / "shop").symlink_to(shop, target_is_directory=True)
    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=1000.0)
    try:
        settings = Settings.from_env({**sandboxes.env(), "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
        land_every_stream(settings, now=RUN_NOW)
    finally:
        sandboxes.stop()


def _records(data_dir: Path) -> dict[tuple[str, str], tuple[dict, datetime | None]]:
    """(``source.stream``, id) → (parsed record, updated_at) over every raw file."""
    files = str(data_dir / "raw" / "*" / "*" / "*.parquet")
    with duckdb.connect() as conn:
        rows = conn.execute(
            "select regexp_extract(filename, '/raw/([^/]+)/([^/]+)/', ['source', 'stream']) as s, id, record,"
            f" updated_at from read_parquet('{files}', filename = true)"
        ).fetchall()
    out: dict[tuple[str, str], tuple[dict, datetime | None]] = {}
    for where, id_, record, updated_at in rows:
        key = (f"{where['source']}.{where['stream']}", id_)
        assert key not in out, f"{key} landed twice"
        out[key] = (json.loads(record), updated_at)
    return out


@pytest.fixture(scope="module")
def zones(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    real, direct = tmp_path_factory.mktemp("real"), tmp_path_factory.mktemp("direct-zone")
    _real_ingest(shop, real)
    # Tiny jobs: the orders window is cut in several sub-windows, landed by two forked workers.
    produce(shop, direct, workers=2, job_records=300, now=RUN_NOW, log=lambda _message: None)
    return real, direct


def test_direct_raw_zone_equals_the_real_ingest(zones: tuple[Path, Path]) -> None:
    real, direct = (_records(zone) for zone in zones)
    streams = {stream for stream, _ in real}
    assert {"shopify.orders", "shopify.customers", "shopify.abandoned_checkouts", "shopify.products"} <= streams
    assert sum(stream == "shopify.orders" for stream, _ in real) > 300  # enough for several order jobs
    assert set(direct) == set(real)
    differing = [key for key in real if direct[key] != real[key]]
    assert not differing, f"{len(differing)} records differ, e.g. {differing[:3]}"


def test_orders_land_as_several_loads_and_the_cursors_match(zones: tuple[Path, Path]) -> None:
    real, direct = zones
    assert len(list((direct / "raw" / "shopify" / "orders").glob("*.parquet"))) >= 2
    with StateStore(real / "state.sqlite") as a, StateStore(direct / "state.sqlite") as b:
        for source, stream in [("shopify", name) for name in SPECS] + [("amazon", "orders"), ("facebook", "ads")]:
            assert b.get_cursor(source, stream) == a.get_cursor(source, stream), (source, stream)
        # The load log covers the same window per stream, cut or not.
        for name in SPECS:
            loads = b.loads(source="shopify", stream=name)
            assert min(x["window_start"] for x in loads) == a.loads(source="shopify", stream=name)[0]["window_start"]
            assert max(x["window_end"] for x in loads) == b.get_cursor("shopify", name)
            assert sum(x["rows"] for x in loads) == a.loads(source="shopify", stream=name)[0]["rows"]


def test_sub_windows_partition_the_window_by_whole_seconds(shop: Path) -> None:
    data = ShopData(shop)
    window = Window(datetime(2020, 1, 1, tzinfo=UTC), RUN_NOW + timedelta(microseconds=500))
    jobs = [job for job in plan_jobs(data, {"orders": window}, job_records=100) if job.stream == "orders"]
    ordered = sorted(jobs, key=lambda job: job.window.start)
    assert len(ordered) == -(-len(data.orders) // 100)
    assert ordered[0].window.start == window.start and ordered[-1].window.end == window.end
    for left, right in itertools.pairwise(ordered):
        assert left.window.end == right.window.start and right.window.start.microsecond == 0
    assert sum(job.records for job in jobs) == len(data.orders)


def test_a_next_incremental_run_starts_at_the_cursor(zones: tuple[Path, Path]) -> None:
    _real, direct = zones
    stream = DirectShopifyStream(SPECS["orders"], BulkOperations(admin_schema(), direct, lambda: ""), {})
    with StateStore(direct / "state.sqlite") as state:
        cursor = state.get_cursor("shopify", "orders")
        later = RUN_NOW + timedelta(hours=1)
        window = incremental_window(stream, state, now=later, initial_start=RUN_NOW, lag=timedelta(minutes=1))
    assert cursor is not None
    assert window.start == datetime.fromisoformat(cursor.replace("Z", "+00:00")) == RUN_NOW - timedelta(minutes=1)
