"""The ingest and backfill flows against the four sandboxes: exact, incremental, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hearth.state import StateStore
from sandbox._server import Faults
from sandbox.generator import generate_shop
from sandbox.run import SandboxSet, start_sandboxes
from sandbox.shop.tables import read_table, write_table
from tests.integration.ingest_helpers import expected_ids, landed

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
FAULTS = Faults(error_rate=0.04, throttle_rate=0.04, timeout_rate=0.01, malformed_rate=0.01, stall_seconds=0.2, seed=5)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ingest")
    generate_shop(data_dir / "sandbox" / "shop", seed=11, customers=250, now=NOW)
    return data_dir


def point_at(monkeypatch: pytest.MonkeyPatch, sandboxes: SandboxSet, data_dir: Path) -> None:
    for key, value in sandboxes.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(data_dir))


@pytest.fixture
def faulty(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxSet, Path]]:
    """Sandboxes injecting ~10% faults over the shared shop, and a fresh data dir for Hearth."""
    sandboxes = start_sandboxes(shop, faults=FAULTS, port_base=0, amazon_rate=50.0)
    # Facebook's throttle answers say "regain access in 5 minutes" and the client honours
    # that for real; the connector tests cover it with a fake clock, so here Facebook only
    # fails in the other ways.
    sandboxes.facebook.faults = Faults(error_rate=0.06, timeout_rate=0.01, malformed_rate=0.01, stall_seconds=0.2,
                                       seed=5)  # fmt: skip
    data_dir = tmp_path / "data"
    point_at(monkeypatch, sandboxes, data_dir)
    yield sandboxes, data_dir
    sandboxes.stop()


def test_ingest_under_faults_lands_exactly_the_shop(
    prefect_harness: None, shop: Path, faulty: tuple[SandboxSet, Path]
) -> None:
    from flows.ingest import ingest

    sandboxes, data_dir = faulty
    state = ingest(return_state=True)
    assert state.is_completed(), state.message
    assert sum(sum(s.faults_injected.values()) for s in sandboxes.servers) > 0, "the faults must have bitten"
    for (source, stream), ids in expected_ids(shop / "sandbox" / "shop").items():
        found, versions, _ = landed(data_dir / "raw", source, stream)
        assert found == ids, f"{source}/{stream}: {len(ids - found)} missing, {len(found - ids)} extra"
        assert versions == len(ids), f"{source}/{stream} landed versions that do not exist"
    summary = {(row["source"], row["stream"]): row["rows"] for row in state.result()}
    assert summary[("shopify", "orders")] == len(read_table(shop / "sandbox" / "shop", "orders"))


def test_second_run_lands_only_what_changed(
    prefect_harness: None, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest

    shop_copy = tmp_path / "world"
    for table in ("customers", "orders", "order_lines", "refunds", "refund_lines", "checkouts", "checkout_lines",
                  "products", "amazon_orders", "amazon_order_items", "fb_campaigns", "fb_adsets", "fb_ads",
                  "fb_insights", "persons"):  # fmt: skip
        write_table(shop_copy / "sandbox" / "shop", table, read_table(shop / "sandbox" / "shop", table))
    sandboxes = start_sandboxes(shop_copy, port_base=0, amazon_rate=50.0)
    try:
        point_at(monkeypatch, sandboxes, tmp_path / "data")
        assert ingest(sources=["shopify", "amazon"], return_state=True).is_completed()

        # A refund arrives on one order right at the cursor (a half-open window includes its start).
        with StateStore(tmp_path / "data" / "state.sqlite") as store:
            cursor = datetime.fromisoformat(store.get_cursor("shopify", "orders").replace("Z", "+00:00"))
        orders = read_table(shop_copy / "sandbox" / "shop", "orders")
        updated = orders.column("updated_at").to_pylist()
        updated[0] = cursor
        orders = orders.set_column(orders.schema.get_field_index("updated_at"), "updated_at", [updated])
        write_table(shop_copy / "sandbox" / "shop", "orders", orders)
        sandboxes.shopify.reload()

        second = ingest(sources=["shopify", "amazon"], return_state=True)
        assert second.is_completed(), second.message
        rows = {(r["source"], r["stream"]): r["rows"] for r in second.result()}
    finally:
        sandboxes.stop()
    assert rows[("shopify", "orders")] == 1
    assert rows[("shopify", "customers")] == 0 and rows[("amazon", "orders")] == 0
    _, versions, _ = landed(tmp_path / "data" / "raw", "shopify", "orders")
    assert versions == len(orders) + 1  # the old and the refunded version of that order


def test_one_failing_source_does_not_stop_the_others(
    prefect_harness: None, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest

    sandboxes = start_sandboxes(shop, port_base=0, amazon_rate=50.0)
    try:
        point_at(monkeypatch, sandboxes, tmp_path / "data")
        monkeypatch.setenv("FACEBOOK_ACCESS_TOKEN", "EAA-wrong-token")
        state = ingest(return_state=True)
    finally:
        sandboxes.stop()
    assert state.is_failed()
    assert "facebook" in state.message
    expected = expected_ids(shop / "sandbox" / "shop")
    for key in (("shopify", "orders"), ("amazon", "orders")):
        assert landed(tmp_path / "data" / "raw", *key)[0] == expected[key]
    assert landed(tmp_path / "data" / "raw", "facebook", "insights")[2] == 0
    with StateStore(tmp_path / "data" / "state.sqlite") as store:
        assert store.get_cursor("facebook", "insights") is None
        assert store.get_cursor("shopify", "orders") is not None


def test_backfill_keeps_cursors_reports_progress_and_resumes(
    prefect_harness: None, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.artifacts import Artifact

    from flows.backfill import backfill

    start, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)
    sandboxes = start_sandboxes(shop, port_base=0, amazon_rate=50.0)
    try:
        point_at(monkeypatch, sandboxes, tmp_path / "data")
        monkeypatch.setenv("FACEBOOK_ACCESS_TOKEN", "EAA-wrong-token")  # facebook fails mid-backfill
        first = backfill(start=start, end=end, sources=["shopify", "amazon", "facebook"], chunk_days=31,
                         return_state=True)  # fmt: skip
        assert first.is_failed() and "rerun to resume" in first.message
        files_after_first = sorted((tmp_path / "data" / "raw").rglob("*.parquet"))

        monkeypatch.setenv("FACEBOOK_ACCESS_TOKEN", sandboxes.facebook.env()["FACEBOOK_ACCESS_TOKEN"])
        second = backfill(start=start, end=end, sources=["shopify", "amazon", "facebook"], chunk_days=31,
                          return_state=True)  # fmt: skip
        assert second.is_completed(), second.message
    finally:
        sandboxes.stop()

    # Resumed: the Shopify and Amazon chunks were not extracted again.
    new_files = set((tmp_path / "data" / "raw").rglob("*.parquet")) - set(files_after_first)
    assert {p.parent.parent.name for p in new_files} == {"facebook"}
    with StateStore(tmp_path / "data" / "state.sqlite") as store:
        assert store.get_cursor("shopify", "orders") is None, "a backfill never moves incremental cursors"
    orders = read_table(shop / "sandbox" / "shop", "orders")
    in_window = {
        f"gid://shopify/Order/{i}"
        for i, u in zip(orders.column("id").to_pylist(), orders.column("updated_at").to_pylist(), strict=True)
        if start <= u < end
    }
    assert landed(tmp_path / "data" / "raw", "shopify", "orders")[0] == in_window
    progress = Artifact.get("backfill-progress")
    assert progress is not None and float(progress.data) == 100.0
