"""The benchmark harness: stages run in child processes and land in results.json and a README table.

Structure only, never speed: a trivial registered stage and the real Amazon
connector-cost stage run on a 300-customer shop; the record/replay transport is
checked on its own without any server.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest
import requests

from bench.harness import REGISTRY, Context, Metric, Size, StageResult, ensure_shop, load_stages, run, select, stage
from bench.report import BEGIN, END, merge_run, write_readme
from bench.run import SIZES
from bench.tape import Exchange, ReplayAdapter, ReplayMismatch, mount
from sandbox.shop.tables import read_table

TINY = Size("tiny", customers=300, options={"ingest.replays": 1, "ingest.amazon_days": None})


@stage("selftest.constant", shop="none")
def constant_stage(ctx: Context) -> StageResult:
    """Reports where it ran, so the test can tell it ran in a child process."""
    return StageResult(
        metrics=[Metric.against_target("constant", 4.0, "µs", 20.0, "lower")],
        details={"pid": os.getpid(), "size": ctx.size.name},
    )


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    (root / "README.md").write_text(f"# Benchmarks\n\nHand-written prose.\n\n{BEGIN}\nstale\n{END}\n\nTail.\n")
    stages = [REGISTRY["selftest.constant"], *select(load_stages().values(), ["ingest.amazon_cost"])]
    run(TINY, stages, command="pytest bench", out_dir=root / "out", results_path=root / "results.json",
        readme_path=root / "README.md")  # fmt: skip
    return root


def test_results_json_has_the_run_the_machine_and_every_stage(bench_run: Path) -> None:
    results = json.loads((bench_run / "results.json").read_text())
    assert list(results) == ["tiny"]
    tiny = results["tiny"]
    assert {"size", "machine", "date", "command", "shop", "stages"} <= set(tiny)
    assert tiny["command"] == "pytest bench"
    assert tiny["size"]["customers"] == 300
    assert {"cores", "memory_gb", "cpu_model", "load_average"} <= set(tiny["machine"])
    assert tiny["machine"]["cores"] >= 1
    assert tiny["shop"]["row_counts"]["amazon_orders"] > 0
    assert list(tiny["stages"]) == ["selftest.constant", "ingest.amazon_cost"]
    for outcome in tiny["stages"].values():
        assert outcome["error"] is None
        assert {"date", "command", "seconds", "peak_rss_mb", "metrics", "details"} <= set(outcome)
        assert outcome["peak_rss_mb"] >= outcome["baseline_rss_mb"] > 0


def test_a_stage_runs_in_its_own_process_and_its_ratio_is_against_the_target(bench_run: Path) -> None:
    outcome = json.loads((bench_run / "results.json").read_text())["tiny"]["stages"]["selftest.constant"]
    assert outcome["details"] == {"pid": outcome["details"]["pid"], "size": "tiny"}
    assert outcome["details"]["pid"] != os.getpid()
    (metric,) = outcome["metrics"]
    assert metric["ratio"] == pytest.approx(5.0)  # target 20 / measured 4
    assert metric["ratio_of"] == "target / measured"
    assert metric["meets"] is True


def test_the_amazon_cost_stage_replays_every_order_of_the_shop(bench_run: Path) -> None:
    tiny = json.loads((bench_run / "results.json").read_text())["tiny"]
    outcome = tiny["stages"]["ingest.amazon_cost"]
    shop = bench_run / "out" / "shops" / TINY.shop_key
    updates = read_table(shop, "amazon_orders")["last_update_date"]
    expected = pc.sum(pc.less(updates, datetime.fromisoformat(TINY.now))).as_py()
    details = outcome["details"]
    assert details["records"] == expected
    assert details["exchanges"] >= 2  # the LWA token and at least one search page
    assert len(details["replay_wall_seconds"]) == 1
    assert len(details["profile_top"]) == 5
    assert all(row["own_seconds"] >= 0 and row["calls"] >= 1 for row in details["profile_top"])
    wall, cpu, per_request = outcome["metrics"]
    assert wall["name"] == "amazon orders: wall µs per record"
    assert (wall["unit"], wall["target"], wall["better"]) == ("µs", 20.0, "lower")
    assert wall["value"] > 0
    assert wall["ratio"] == pytest.approx(20.0 / wall["value"])
    assert wall["meets"] == (wall["value"] <= 20.0)
    assert cpu["value"] > 0 and cpu["target"] is None
    assert per_request["value"] == pytest.approx(expected / details["exchanges"], abs=0.05)


def test_the_readme_table_replaces_only_its_section(bench_run: Path) -> None:
    text = (bench_run / "README.md").read_text()
    assert text.startswith("# Benchmarks\n\nHand-written prose.\n\n")
    assert text.endswith(f"{END}\n\nTail.\n")
    assert "stale" not in text
    section = text.split(BEGIN)[1].split(END)[0]
    assert "### tiny:" in section
    assert "Machine: " in section and " cores, " in section and "`pytest bench`" in section
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == ["| `selftest.constant`", "| `ingest.amazon_cost`"]
    constant_row = rows[0].split(" | ")
    assert constant_row[1:6] == ["constant", "4 µs", "≤ 20 µs", "5.00 (target / measured)", "yes"]


def test_the_shop_key_carries_the_ad_count_only_when_one_is_asked_for(tmp_path: Path) -> None:
    assert Size("x", customers=2_000).shop_key == "shop-c2000-onatural-s42-20261101T000000"  # as cached before
    assert Size("x", customers=2_000, fb_ads=500).shop_key == "shop-c2000-onatural-s42-20261101T000000-a500"
    assert (SIZES["quick"].fb_ads, SIZES["full"].fb_ads) == (None, 500)
    shop_dir, made = ensure_shop(Size("ads", customers=50, fb_ads=20), tmp_path)
    assert shop_dir.name.endswith("-a20") and made["row_counts"]["fb_ads"] == 20


def test_a_run_replaces_its_stages_and_keeps_the_others() -> None:
    old = {"quick": {"date": "d1", "shop": {"row_counts": {"orders": 5}}, "stages": {"a": {"v": 1}, "b": {"v": 1}}}}
    new = {"date": "d2", "shop": {}, "stages": {"b": {"v": 2}}}
    merged = merge_run(old, "quick", new)
    assert merged["quick"]["stages"] == {"a": {"v": 1}, "b": {"v": 2}}
    assert merged["quick"]["date"] == "d2"
    assert merged["quick"]["shop"] == {"row_counts": {"orders": 5}}


def test_a_readme_without_markers_gets_a_results_section(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# Bench\n\nProse.\n")
    write_readme(path, "| table |\n")
    assert path.read_text() == f"# Bench\n\nProse.\n\n## Results\n\n{BEGIN}\n| table |\n{END}\n"


def test_select_names_groups_and_refuses_unknown_names() -> None:
    stages = list(load_stages().values())
    assert {s.name for s in select(stages, ["ingest"])} >= {"ingest.amazon_cost", "ingest.shopify_limits"}
    assert [s.name for s in select(stages, ["ingest.amazon_cost"])] == ["ingest.amazon_cost"]
    with pytest.raises(ValueError, match="no stage or group named nope"):
        select(stages, ["nope"])


def test_replay_answers_the_recorded_exchange_and_refuses_any_other() -> None:
    recorded = Exchange("GET", "http://127.0.0.1:9/a?x=1", None, 200, "OK",
                        {"Content-Type": "application/json"}, b'{"ok": true}', 0.0, 0.0)  # fmt: skip
    adapter = ReplayAdapter([recorded, recorded])
    session = mount(requests.Session(), adapter)
    assert session.get("http://127.0.0.1:9/a", params={"x": "1"}).json() == {"ok": True}
    assert adapter.remaining == 1
    with pytest.raises(ReplayMismatch, match="not deterministic"):
        session.get("http://127.0.0.1:9/b")


def test_the_hand_written_rfm_engines_agree_on_ties_nulls_and_cancellations(tmp_path: Path) -> None:
    import duckdb

    from bench.rfm_engines import SPLIT, check_agreement, duckdb_rfm, pandas_rfm, polars_rfm

    parquet, as_of = tmp_path / "orders.parquet", datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    conn = duckdb.connect()
    # 400 orders of 60 customers (one without a key), few distinct amounts and days: many ties.
    conn.execute(f"""
        copy (select if(i % 61 = 0, null, 'c' || (i % 60)) as customer_key,
                     timestamptz '2026-11-01 00:00:00+00' - to_hours(i * 37 % 2000) as ordered_at,
                     cast((i % 7) * 12.5 + 0.01 as decimal(18, 2)) as net_revenue, i % 13 = 0 as is_cancelled
              from range(-3, 400) t(i)) to '{parquet}' (format parquet)""")
    results = {"dbt model": duckdb_rfm(conn, f"read_parquet('{parquet}')", as_of, SPLIT),
               "pandas": pandas_rfm(parquet, as_of, SPLIT), "polars": polars_rfm(parquet, as_of, SPLIT)}  # fmt: skip
    assert check_agreement(results) == {"dbt model": 0, "pandas": 0, "polars": 0}
    model = results["dbt model"]
    assert model.num_rows == 60  # orders after as_of, cancelled ones and the keyless are left out
    assert set(model.column("r_score").to_pylist()) == {1, 2, 3, 4, 5}
    assert set(model.column("rfm_code").to_pylist()) <= {f"{r}{f}{m}" for r in "01" for f in "01" for m in "01"}
