"""The raw zone: round trips, atomic landing, quarantine, temp-file hygiene."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from hearth.rawzone import SCHEMA, LoadResult, RawZone

EXTRACTED = datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)


def zone_at(tmp_path: Path, now: datetime = EXTRACTED, **kwargs: Any) -> RawZone:
    return RawZone(tmp_path / "raw", now=lambda: now, **kwargs)


def order(i: int, updated_at: str | None) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Order/{i}",
        "updatedAt": updated_at,
        "name": f"#10{i}",
        "note": "café ☕",
        "totalPriceSet": {"shopMoney": {"amount": "12.30", "currencyCode": "USD"}},
        "lineItems": {"nodes": [{"sku": "SKU-1", "quantity": 2}]},
    }


def write_pages(load: Any, pages: list[list[dict[str, Any]]]) -> None:
    for page in pages:
        load.write(page, id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"])


def query(sql: str) -> list[tuple[Any, ...]]:
    return duckdb.connect().execute(sql).fetchall()


def visible_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def test_round_trip_through_duckdb_and_pyarrow(tmp_path: Path) -> None:
    zone = zone_at(tmp_path, row_group_rows=3)
    pages = [
        [order(1, "2026-02-28T10:00:00Z"), order(2, "2026-02-28T12:30:00+02:00")],
        [order(3, None), order(4, "2026-02-27"), order(5, "2026-02-28T10:00:00.123456Z")],
        [order(6, "2026-02-28T09:00:00")],  # no offset: taken as UTC
    ]
    with zone.open_load("shopify", "orders", load_id="load1") as load:
        write_pages(load, pages)
    result = load.result
    assert result == LoadResult(
        tmp_path / "raw/shopify/orders/20260301T120005Z_load1.parquet", 6, 0, "load1", "shopify", "orders", EXTRACTED
    )
    assert zone.files("shopify", "orders") == [result.path]

    table = pq.read_table(result.path)
    assert table.schema.equals(SCHEMA)
    assert pq.ParquetFile(result.path).metadata.num_row_groups == 2  # 6 rows in groups of 3

    rows = query(
        f"SELECT id, epoch_us(updated_at) AS us, record, _load_id, epoch_us(_extracted_at) AS ex "
        f"FROM read_parquet('{tmp_path}/raw/shopify/orders/*.parquet') ORDER BY id"
    )
    expected_us = {
        1: datetime(2026, 2, 28, 10, tzinfo=UTC),
        2: datetime(2026, 2, 28, 10, 30, tzinfo=UTC),
        3: None,
        4: datetime(2026, 2, 27, tzinfo=UTC),
        5: datetime(2026, 2, 28, 10, 0, 0, 123456, tzinfo=UTC),
        6: datetime(2026, 2, 28, 9, tzinfo=UTC),
    }
    assert [r[0] for r in rows] == [f"gid://shopify/Order/{i}" for i in range(1, 7)]
    for i, (_, us, _, load_id, ex) in enumerate(rows, start=1):
        want = expected_us[i]
        assert us == (None if want is None else int(want.timestamp() * 1_000_000))
        assert load_id == "load1" and ex == int(EXTRACTED.timestamp() * 1_000_000)
    originals = {r["id"]: r for page in pages for r in page}
    for rid, _, record, _, _ in rows:
        assert json.loads(record) == originals[rid]
        assert ", " not in record and '": ' not in record  # compact JSON
        assert "café ☕" in record  # kept as UTF-8, not \\u escapes


def test_loads_land_as_separate_sorted_files(tmp_path: Path) -> None:
    for second, load_id in ((7, "b"), (6, "a")):
        zone = zone_at(tmp_path, now=EXTRACTED.replace(second=second))
        with zone.open_load("amazon", "orders", load_id=load_id) as load:
            write_pages(load, [[order(second, None)]])
    assert [p.name for p in zone.files("amazon", "orders")] == [
        "20260301T120006Z_a.parquet",
        "20260301T120007Z_b.parquet",
    ]
    assert zone.files("amazon", "nothing_yet") == []


def test_a_failed_load_leaves_no_file_visible_or_behind(tmp_path: Path) -> None:
    zone = zone_at(tmp_path, row_group_rows=2)
    directory = tmp_path / "raw/shopify/orders"
    with (
        pytest.raises(RuntimeError, match="page 3 failed"),
        zone.open_load("shopify", "orders", load_id="crash") as load,
    ):
        write_pages(load, [[order(1, None), order(2, None)], [order(3, None), order(4, None)]])
        # Mid-load: row groups are on disk, but only under a name no reader matches.
        assert visible_files(directory) == [".tmp-crash.parquet.tmp"]
        assert zone.files("shopify", "orders") == []
        with pytest.raises(duckdb.IOException):
            query(f"SELECT count(*) FROM read_parquet('{directory}/*.parquet')")
        raise RuntimeError("page 3 failed")
    assert visible_files(directory) == []
    assert load.result is not None and load.result.path is None and load.result.rows == 0


def _land_then_die(raw_dir: str) -> None:
    zone = RawZone(Path(raw_dir), row_group_rows=1)
    with zone.open_load("shopify", "orders", load_id="killed") as load:
        write_pages(load, [[order(1, None), order(2, None)]])
        os._exit(1)  # killed: no exception handling, no cleanup


def test_a_killed_load_leaves_only_a_temp_file_that_readers_ignore_and_sweep_removes(tmp_path: Path) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_land_then_die, args=(str(tmp_path / "raw"),))
    child.start()
    child.join(30)
    assert child.exitcode == 1
    zone = zone_at(tmp_path)
    directory = tmp_path / "raw/shopify/orders"
    assert visible_files(directory) == [".tmp-killed.parquet.tmp"]
    assert zone.files("shopify", "orders") == []
    assert zone.sweep_temp(older_than_seconds=-1) == [directory / ".tmp-killed.parquet.tmp"]
    assert visible_files(directory) == []


def test_empty_load_writes_no_file(tmp_path: Path) -> None:
    zone = zone_at(tmp_path)
    with zone.open_load("facebook", "insights") as load:
        write_pages(load, [[], []])
    assert load.result is not None
    assert (load.result.path, load.result.rows, load.result.quarantined) == (None, 0, 0)
    assert not (tmp_path / "raw/facebook/insights").exists() or visible_files(tmp_path / "raw/facebook/insights") == []
    assert len(load.result.load_id) == 32  # a fresh uuid when none is given


def test_bad_records_are_quarantined_with_reason_and_the_rest_land(tmp_path: Path) -> None:
    zone = zone_at(tmp_path)
    good = order(1, "2026-02-28T10:00:00Z")
    no_id = {"updatedAt": "2026-02-28T10:00:00Z"}
    bad_time = order(2, "yesterday-ish")
    with zone.open_load("shopify", "customers", load_id="q1") as load:
        accepted = load.write([good, no_id, bad_time], id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"])
        load.quarantine(b'{"data": {"customers": [', "malformed JSONL line", "bulk line 17")
    assert accepted == 1
    assert (load.result.rows, load.result.quarantined) == (1, 3)
    lines = [json.loads(x) for x in (tmp_path / "raw/shopify/customers/_quarantine/q1.jsonl").read_text().splitlines()]
    assert [line["reason"].split(":")[0] for line in lines] == ["KeyError", "ValueError", "malformed JSONL line"]
    assert lines[0]["record"] == no_id and lines[1]["record"] == bad_time
    assert "yesterday-ish" in lines[1]["reason"]
    assert lines[2]["raw"] == '{"data": {"customers": [' and lines[2]["where"] == "bulk line 17"
    assert {line["load_id"] for line in lines} == {"q1"}
    rows = query(f"SELECT id FROM read_parquet('{load.result.path}')")
    assert rows == [("gid://shopify/Order/1",)]


def test_quarantine_survives_a_failed_load(tmp_path: Path) -> None:
    zone = zone_at(tmp_path)
    with pytest.raises(ValueError, match="boom"), zone.open_load("amazon", "orders", load_id="q2") as load:
        load.quarantine({"AmazonOrderId": "1"}, "missing PurchaseDate", "page 1")
        raise ValueError("boom")
    line = json.loads((tmp_path / "raw/amazon/orders/_quarantine/q2.jsonl").read_text())
    assert line["reason"] == "missing PurchaseDate" and line["record"] == {"AmazonOrderId": "1"}
    assert zone.files("amazon", "orders") == []


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    zone = zone_at(tmp_path)
    with zone.open_load("shopify", "orders", load_id="kept") as load:
        write_pages(load, [[order(1, None)]])
    landed = load.result.path
    assert landed is not None
    directory = tmp_path / "raw/shopify/orders"
    old, fresh = directory / ".tmp-dead.parquet.tmp", directory / ".tmp-live.parquet.tmp"
    old.write_bytes(b"PAR1 half a file")
    fresh.write_bytes(b"PAR1 still writing")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert zone.sweep_temp(older_than_seconds=600) == [old]
    assert visible_files(directory) == [".tmp-live.parquet.tmp", landed.name]
    assert zone.files("shopify", "orders") == [landed]


def test_landed_files_are_never_replaced(tmp_path: Path) -> None:
    zone = zone_at(tmp_path)
    with zone.open_load("shopify", "orders", load_id="same") as load:
        write_pages(load, [[order(1, None)]])
    landed = load.result.path
    assert landed is not None
    first = landed.read_bytes()
    with pytest.raises(FileExistsError), zone.open_load("shopify", "orders", load_id="same") as again:
        write_pages(again, [[order(2, None)]])
    assert landed.read_bytes() == first
    assert visible_files(tmp_path / "raw/shopify/orders") == [landed.name]


@pytest.mark.parametrize(("source", "stream", "load_id"), [("../etc", "x", None), ("a", "b/c", None), ("a", "b", ".x")])
def test_names_must_be_single_path_segments(tmp_path: Path, source: str, stream: str, load_id: str | None) -> None:
    with pytest.raises(ValueError, match="one path segment"):
        zone_at(tmp_path).open_load(source, stream, load_id=load_id)


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    with zone_at(tmp_path).open_load("shopify", "orders") as load:
        pass
    with pytest.raises(RuntimeError, match="already closed"):
        write_pages(load, [[order(1, None)]])
