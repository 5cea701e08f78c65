"""The quality gate on a tiny shop: a raw zone written by RawZone and a small DuckDB warehouse.

Each test breaks one thing (an SQL UPDATE on the warehouse, or one raw record) and
checks that exactly that check fails, with a message naming suite and expectation.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hearth.config import Settings
from hearth.quality import GateThresholds, latest_gate, run_gate
from hearth.quality.store import open_store, passed_loads
from hearth.rawzone import RawZone

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = 20  # every other one SUBSCRIBED and marketable: 10 marketable customers
ORDERS = 30


def _customer(i: int, **change: Any) -> dict[str, Any]:
    record = {
        "id": f"gid://shopify/Customer/{i}",
        "defaultEmailAddress": {
            "emailAddress": f" Person{i}@Shop.example ",  # as typed: the gate trims and lower-cases
            "marketingState": "SUBSCRIBED" if i % 2 == 0 else "NOT_SUBSCRIBED",
        },
        "amountSpent": {"amount": f"{i * 10}.00", "currencyCode": "USD"},
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": (NOW - timedelta(days=1)).isoformat(),
    }
    record.update(change)
    return record


def _order(i: int, **change: Any) -> dict[str, Any]:
    def money(amount: str) -> dict[str, Any]:
        return {"shopMoney": {"amount": amount, "currencyCode": "USD"}}

    record = {
        "id": f"gid://shopify/Order/{i}",
        "createdAt": "2025-02-01T00:00:00Z",
        "processedAt": "2025-02-01T00:00:00Z",
        "updatedAt": (NOW - timedelta(hours=2)).isoformat(),
        "totalPriceSet": money("25.00"),
        "totalRefundedSet": money("0.00"),
        "currentTotalPriceSet": money("25.00"),
    }
    record.update(change)
    return record


def write_raw(settings: Settings, stream: str, records: list[dict[str, Any]], name: str = "load1") -> None:
    """Land ``records`` as one raw-zone load of shopify/``stream``; later loads are extracted later."""
    earlier = len(list((settings.raw_dir / "shopify" / stream).glob("*.parquet")))
    zone = RawZone(settings.raw_dir, now=lambda: NOW - timedelta(minutes=30) + timedelta(seconds=earlier))
    with zone.open_load("shopify", stream, load_id=name) as load:
        assert load.write(records, id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"]) == len(records)


def sql(settings: Settings, *statements: str) -> None:
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A clean shop: every check passes."""
    settings = Settings.from_env({"HEARTH_DATA_DIR": str(tmp_path / "data")}, dotenv=False)
    write_raw(settings, "customers", [_customer(i) for i in range(CUSTOMERS)])
    write_raw(settings, "orders", [_order(i) for i in range(ORDERS)])
    sql(
        settings,
        f"""CREATE TABLE customers AS SELECT
            'person:' || i AS customer_key, 'person' || i || '@shop.example' AS email,
            CASE WHEN i % 2 = 0 THEN 'SUBSCRIBED' ELSE 'NOT_SUBSCRIBED' END AS email_consent,
            CAST(i * 10 AS DECIMAL(18, 2)) AS total_revenue, i % 2 = 0 AS is_marketable
            FROM range({CUSTOMERS}) AS t(i)""",
        f"""CREATE TABLE orders AS SELECT
            'shopify:' || i AS order_key, 'person:' || (i % {CUSTOMERS}) AS customer_key,
            TIMESTAMPTZ '2025-02-01 00:00:00+00' + i * INTERVAL 1 DAY AS ordered_at,
            CAST(25 AS DECIMAL(18, 2)) AS net_revenue
            FROM range({ORDERS}) AS t(i)""",
        """CREATE TABLE trigger_winback AS SELECT
            'person:' || i AS customer_key, 'w:' || i AS trigger_id, i % 2 = 0 AS is_marketable
            FROM range(6) AS t(i)""",
    )
    return settings


def gate(settings: Settings, **kwargs: Any) -> Any:
    return run_gate(settings, now=NOW, **kwargs)


def only_failure(result: Any, suite: str, expectation: str) -> str:
    """The one failure line of ``result``; it names the suite and the expectation."""
    assert not result.passed
    assert len(result.failures) == 1, result.failures
    line = result.failures[0]
    assert line.startswith(f"{suite}: "), line
    assert expectation in line, line
    return line


def test_a_clean_shop_passes_and_is_recorded_with_data_docs(settings: Settings) -> None:
    # Within every threshold: 1 unusable address in 20 (5%), a timestamp inside the clock
    # skew, and 50 non-marketable trigger rows (only marketable ones count).
    bad_email = {"emailAddress": "person0@@shop", "marketingState": "INVALID"}
    near_future = (NOW + GateThresholds().clock_skew / 2).isoformat()
    write_raw(settings, "customers", [_customer(0, defaultEmailAddress=bad_email, updatedAt=near_future)], "load2")
    sql(settings, "INSERT INTO trigger_winback SELECT 'x', 'w:x' || i, false FROM range(50) AS t(i)")

    result = gate(settings)

    assert result.passed, result.failures
    assert result.failures == []
    assert result.row_counts == {"customers": CUSTOMERS, "orders": ORDERS, "trigger_winback": 56}
    assert result.checked_at == NOW
    assert result.docs_path == settings.data_dir / "quality" / "docs" / "index.html"
    index = result.docs_path.read_text()
    for suite in ("raw.shopify.customers", "raw.shopify.orders", "marts.customers", "marts.orders"):
        assert suite in index
    assert latest_gate(settings) == result
    with sqlite3.connect(settings.state_path) as conn:
        rows = conn.execute("SELECT run_id, passed, failures, docs_path FROM quality_runs").fetchall()
    assert rows == [(result.run_id, 1, "[]", str(result.docs_path))]


def test_no_gate_yet_means_no_verdict(tmp_path: Path) -> None:
    settings = Settings.from_env({"HEARTH_DATA_DIR": str(tmp_path)}, dotenv=False)
    assert latest_gate(settings) is None


def test_every_broken_check_fails_with_its_own_line(settings: Settings) -> None:
    def broken(i: int) -> dict[str, Any]:
        return {"emailAddress": f"person{i}@@shop", "marketingState": "INVALID"}

    write_raw(
        settings,
        "customers",
        [
            *(_customer(i, defaultEmailAddress=broken(i)) for i in (1, 3, 5)),
            _customer(7, defaultEmailAddress=None),  # no address counts as unusable: 4 of 20 = 20%
            _customer(8, defaultEmailAddress={"emailAddress": "p8@shop.example", "marketingState": "OPTED_IN"}),
            _customer(9, updatedAt=(NOW + timedelta(days=2)).isoformat()),
        ],
        "load2",
    )
    write_raw(settings, "orders", [_order(3, totalRefundedSet={"shopMoney": {"amount": "-4.50"}})], "load2")
    sql(
        settings,
        "UPDATE customers SET total_revenue = -1 WHERE customer_key = 'person:4'",
        "UPDATE customers SET email_consent = 'subscribed' WHERE customer_key = 'person:1'",
        "UPDATE customers SET is_marketable = true WHERE customer_key = 'person:3'",  # NOT_SUBSCRIBED
        "INSERT INTO customers SELECT * FROM customers WHERE customer_key = 'person:2'",
        "UPDATE orders SET net_revenue = -5 WHERE order_key = 'shopify:7'",
        "UPDATE orders SET ordered_at = TIMESTAMPTZ '2026-07-01 00:00:00+00' WHERE order_key = 'shopify:1'",
        # 12 marketable customers now: a trigger may hold 6 marketable rows; this one has 3 + 4.
        "INSERT INTO trigger_winback SELECT 'y', 'w:y' || i, true FROM range(3) AS t(i)",
        "INSERT INTO trigger_winback VALUES ('person:0', 'w:0', true)",
    )

    result = gate(settings)

    expected = {  # suite: expectation (and arguments), observed
        ("raw.shopify.customers", "expect_column_values_to_match_regex(column='email', mostly=0.9)"): (
            "4 of 20 values (20.0%) unexpected"
        ),
        ("raw.shopify.customers", "expect_column_values_to_be_in_set(column='email_consent')"): "'OPTED_IN'",
        ("raw.shopify.customers", "expect_column_values_to_be_between(column='updated_at', max_value="): (
            "e.g. 2026-06-03T12:00:00+00:00"
        ),
        ("raw.shopify.orders", "expect_column_values_to_be_between(column='total_refunded', min_value=0)"): (
            "1 of 30 values (3.3%) unexpected, e.g. -4.5"
        ),
        ("marts.customers", "expect_column_values_to_be_between(column='total_revenue', min_value=0)"): "e.g. -1",
        ("marts.customers", "expect_column_values_to_be_in_set(column='email_consent')"): "e.g. 'subscribed'",
        ("marts.customers", "expect_column_values_to_be_in_set(column='marketable_consent')"): "'NOT_SUBSCRIBED'",
        ("marts.customers", "expect_column_values_to_be_unique(column='customer_key')"): "2 of 21 values",
        ("marts.orders", "expect_column_values_to_be_between(column='net_revenue', min_value=0)"): "e.g. -5",
        ("marts.orders", "expect_column_values_to_be_between(column='ordered_at', max_value="): "e.g. 2026-07-01",
        ("marts.trigger_winback", "expect_column_values_to_be_unique(column='trigger_id')"): "2 of 10 values",
        ("marts.trigger_winback", "expect_column_sum_to_be_between(column='marketable', max_value=6)"): "observed 7",
    }
    assert not result.passed
    assert len(result.failures) == len(expected), "\n".join(result.failures)
    for (suite, expectation), observed in expected.items():
        lines = [f for f in result.failures if f.startswith(f"{suite}: ") and expectation in f]
        assert len(lines) == 1, (suite, expectation, result.failures)
        assert observed in lines[0].split("] — ", 1)[1], lines[0]
    # Failure lines reach the Prefect UI: no addresses or customer keys in them (Data Docs keep the details).
    assert not any("@@" in line or "person:2" in line for line in result.failures)
    assert latest_gate(settings).failures == result.failures


def test_raw_orders_are_read_once_per_load_until_a_gate_passes_them(settings: Settings) -> None:
    assert gate(settings).passed  # reads the first load's 30 orders
    bad_refund = {"shopMoney": {"amount": "-4.50", "currencyCode": "USD"}}
    write_raw(settings, "orders", [_order(30), _order(31), _order(3, totalRefundedSet=bad_refund)], "load2")
    expectation = "expect_column_values_to_be_between(column='total_refunded', min_value=0)"

    # Only the new load is read: 1 of its 3 orders, not 1 of 32.
    assert "1 of 3 values" in only_failure(gate(settings), "raw.shopify.orders", expectation)
    # A failed gate passes no load: the next gate reads the bad one again.
    assert "1 of 3 values" in only_failure(gate(settings), "raw.shopify.orders", expectation)

    write_raw(settings, "orders", [_order(3)], "load3")  # the order's corrected version, extracted later
    assert gate(settings).passed
    landed = {p.name for p in (settings.raw_dir / "shopify" / "orders").glob("*.parquet")}
    with closing(open_store(settings.state_path)) as conn:
        assert passed_loads(conn, "shopify/orders") == landed and len(landed) == 3

    # Nothing new to read: the other suites still run, and still fail what they should.
    sql(settings, "UPDATE orders SET net_revenue = -5 WHERE order_key = 'shopify:7'")
    only_failure(gate(settings), "marts.orders", "expect_column_values_to_be_between(column='net_revenue'")


def test_frames_are_validated_without_hashing_every_value(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """GX fingerprints a frame by hashing all of it, for Data Docs only: ~10 s of the 11.5M-row orders mart."""
    from great_expectations.execution_engine import pandas_execution_engine

    def fingerprint(frame: Any) -> str:
        raise AssertionError(f"a frame of {len(frame)} rows was hashed whole")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", fingerprint)
    result = gate(settings)
    assert result.passed, result.failures


def test_row_counts_must_not_collapse_against_the_last_passed_gate(settings: Settings) -> None:
    assert gate(settings).passed  # the baseline: 20 customers, 30 orders

    sql(
        settings,
        "DELETE FROM orders WHERE order_key = 'shopify:0'",  # 29 ≥ 90% of 30: fine
        "DELETE FROM customers WHERE split_part(customer_key, ':', 2)::INT >= 5",  # 5 of 20: a collapse
        "DELETE FROM trigger_winback",  # (which would otherwise exceed the share of the 3 marketable left)
    )
    expectation = (
        "at least 90% of the 20 rows of the last passed gate [expect_table_row_count_to_be_between(min_value=18)]"
    )
    line = only_failure(gate(settings), "marts.customers", expectation)
    assert line.endswith("— observed 5")
    # A failed run is no baseline: the next gate still compares with the 20 rows.
    only_failure(gate(settings), "marts.customers", expectation)


def test_thresholds_are_configurable(settings: Settings) -> None:
    # 10 marketable customers, 3 marketable winback rows: over a 20% ceiling (2 rows).
    line = only_failure(
        gate(settings, thresholds=GateThresholds(max_trigger_share=0.2)), "marts.trigger_winback", "max_value=2"
    )
    assert line.endswith("— observed 3")


def test_a_missing_mart_or_warehouse_fails_the_gate(settings: Settings) -> None:
    sql(settings, "DROP TABLE orders")
    line = only_failure(gate(settings), "marts.orders", "table orders is missing from the warehouse")
    assert latest_gate(settings).failures == [line]

    settings.warehouse_path.unlink()
    only_failure(gate(settings), "marts", "does not exist: build it with `hearth transform`")


def test_upstream_failures_fail_the_gate_and_are_recorded(settings: Settings) -> None:
    result = gate(settings, upstream_failures=["dbt: model orders error: Binder Error"])
    assert result.failures == ["dbt: model orders error: Binder Error"]
    latest = latest_gate(settings)
    assert latest is not None and not latest.passed
    assert latest.run_id == result.run_id
    summary = latest.summary()
    assert summary.startswith("quality gate failed: dbt: model orders error")
    assert "sends are blocked until a build passes" in summary
    assert str(result.docs_path) in summary


def test_a_gate_that_cannot_check_records_a_failure(settings: Settings) -> None:
    # GX rejects a share above 1 when the suite is built: the gate must not crash or pass.
    result = gate(settings, thresholds=GateThresholds(min_valid_email_share=1.5))
    assert not result.passed
    assert result.failures[0].startswith("gate: could not run the checks — ")
    assert latest_gate(settings) == result
