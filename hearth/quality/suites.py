"""What the quality gate checks: the data each suite reads and the expectations on it.

Every suite is a small pandas frame (only the columns its checks need, read with
DuckDB from the raw zone's Parquet or from the warehouse) plus a list of Great
Expectations expectations defined here, in code. A frame that cannot be read
(no loads yet, a mart missing, a column renamed) becomes a ``problem`` that fails
the gate with the reason instead of crashing it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import great_expectations.expectations as gxe
import pandas as pd

from hearth.warehouse import WarehouseError, column_names, open_warehouse, table_names

CONSENT_STATES = ("SUBSCRIBED", "NOT_SUBSCRIBED", "PENDING", "UNSUBSCRIBED", "REDACTED", "INVALID")
# Deliberately loose (something@something.tld, no spaces): the gate catches broken
# pipelines, not individual typos, which staging already nulls out.
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
TRIGGER_PREFIX = "trigger_"
ORDER_STREAM = "shopify/orders"


@dataclass(frozen=True)
class GateThresholds:
    """Every threshold of the gate, in one place.

    Attributes:
        min_valid_email_share: share of raw Shopify customers with a usable address
            (a missing one counts as unusable), and of non-null mart emails that look valid.
        clock_skew: how far past ``now`` a timestamp may be before it counts as "in the future".
        min_row_count_ratio: a mart in ``count_tables`` must keep this share of the rows
            it had at the last passed gate (a collapse means a broken join or source).
        count_tables: the marts whose row counts must not collapse.
        max_trigger_share: a trigger table's marketable rows may be at most this share of the
            marketable customers (a fan-out join or a broken date filter would email everyone).
        consent_states: the allowed email-consent values (Shopify's ``EmailMarketingState``).
    """

    min_valid_email_share: float = 0.90
    clock_skew: timedelta = timedelta(minutes=15)
    min_row_count_ratio: float = 0.90
    count_tables: tuple[str, ...] = ("customers", "orders")
    max_trigger_share: float = 0.50
    consent_states: tuple[str, ...] = CONSENT_STATES


@dataclass
class Suite:
    """One dataset and its expectations (a GX suite run by one checkpoint).

    Attributes:
        name: ``raw.<source>.<stream>`` or ``marts.<table>``; names the suite in failures and Data Docs.
        frame: the data, or None when it could not be read (see ``problem``).
        expectations: the checks on ``frame``.
        problem: why the data could not be read; a failure of its own.
        pii_columns: columns whose values must not appear in failure messages (they go to the Prefect UI).
        stream: ``<source>/<stream>`` of a raw suite that reads only the loads no passed gate read.
        loads: the file names of the loads ``frame`` was read from (recorded with the verdict).
    """

    name: str
    frame: pd.DataFrame | None
    expectations: list[gxe.Expectation] = field(default_factory=list)
    problem: str | None = None
    pii_columns: frozenset[str] = frozenset()
    stream: str | None = None
    loads: tuple[str, ...] = ()


# -- raw zone -----------------------------------------------------------------------------

# Raw loads are append-only, so a record may be there several times: check the latest
# version of each id, like staging does. Columns are extracted before the window so the
# large JSON ``record`` is not carried through the sort, and from one parse of it: a
# ``->>`` per column parsed a 2.7 KB order once per column (68 s → 26 s at 10M orders).
_RAW_LATEST = """
WITH parsed AS (
    SELECT id, updated_at, _extracted_at, json_extract_string(record, $paths) AS v
    FROM read_parquet($files, union_by_name = true)
),
extracted AS (
    SELECT id, updated_at, _extracted_at, {columns}
    FROM parsed
)
SELECT * EXCLUDE (_extracted_at) FROM extracted
QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _extracted_at DESC) = 1
"""


@dataclass(frozen=True)
class RawColumn:
    """A column of a raw suite: the JSON path in ``record`` and the SQL that types it (``{}``: the text)."""

    path: str
    sql: str = "{}"


def _money(path: str) -> RawColumn:
    return RawColumn(f"$.{path}.amount", "TRY_CAST({} AS DOUBLE)")


def _timestamp(path: str) -> RawColumn:
    return RawColumn(f"$.{path}", "TRY_CAST({} AS TIMESTAMPTZ)")


# A missing address becomes '' so that it counts against the valid share: a connector
# that stopped reading the field must fail the gate, not pass it with zero rows checked.
_RAW_CUSTOMER_COLUMNS = {
    "created_at": _timestamp("createdAt"),
    "email": RawColumn("$.defaultEmailAddress.emailAddress", "coalesce(lower(trim({})), '')"),
    "email_consent": RawColumn("$.defaultEmailAddress.marketingState"),
    "amount_spent": _money("amountSpent"),
}
_RAW_ORDER_COLUMNS = {
    "created_at": _timestamp("createdAt"),
    "processed_at": _timestamp("processedAt"),
    "total_price": _money("totalPriceSet.shopMoney"),
    "total_refunded": _money("totalRefundedSet.shopMoney"),
    "current_total_price": _money("currentTotalPriceSet.shopMoney"),
}


def _frame(conn: duckdb.DuckDBPyConnection, query: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    # Through Arrow: DuckDB's own pandas conversion warns under pandas 3.
    return conn.sql(query, params=params).to_arrow_table().to_pandas()


def _read_raw(
    raw_dir: Path, source: str, stream: str, columns: Mapping[str, RawColumn], skip: Set[str] = frozenset()
) -> tuple[pd.DataFrame | None, str, tuple[str, ...]]:
    """The latest version of each record in the stream's loads, except the files named in ``skip``.

    Returns the frame (None when it cannot be read), the problem if so, and the file names read.
    """
    landed = sorted((raw_dir / source / stream).glob("*.parquet"))
    if not landed:
        return None, f"no loads under {raw_dir / source / stream}: run `hearth ingest` first", ()
    unread = [p for p in landed if p.name not in skip]
    if not unread:
        return None, "", ()
    files = [str(p) for p in unread]
    paths = [column.path for column in columns.values()]
    # v[i] is the text at the i-th path (DuckDB lists count from 1).
    select = ", ".join(
        f"{column.sql.format(f'v[{i}]')} AS {name}" for i, (name, column) in enumerate(columns.items(), 1)
    )
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        try:
            frame = _frame(conn, _RAW_LATEST.format(columns=select), {"files": files, "paths": paths})
        except duckdb.Error as exc:
            return None, f"cannot read the raw zone: {exc}", ()
    return frame, "", tuple(p.name for p in unread)


def _not_in_future(columns: list[str], limit: datetime, skew: timedelta) -> list[gxe.Expectation]:
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            max_value=limit,
            description=f"no {column} in the future (beyond {skew.total_seconds() / 60:g} min of clock skew)",
        )
        for column in columns
    ]


def _non_negative(columns: list[str]) -> list[gxe.Expectation]:
    return [
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, description=f"{column} is never negative")
        for column in columns
    ]


def _valid_emails(column: str, share: float, what: str) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToMatchRegex(
        column=column, regex=EMAIL_REGEX, mostly=share, description=f"at least {share:.0%} of {what}"
    )


def _consent(column: str, states: tuple[str, ...]) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeInSet(
        column=column, value_set=list(states), description="email consent is one of Shopify's marketing states"
    )


def raw_suites(
    raw_dir: Path, thresholds: GateThresholds, now: datetime, passed_order_loads: Set[str] = frozenset()
) -> list[Suite]:
    """Suites on the latest version of each raw Shopify customer and order.

    Orders are checked once per load: their checks hold record by record, and the raw zone
    is append-only, so an order load a passed gate read (``passed_order_loads``, file names)
    cannot have become wrong. At 10M orders, reading them all again took ~45 s of every
    hourly gate. A load read by a failed gate is read again until a gate passes it. Customers
    are read whole: the valid-address share is over the customer base, and an hour's few
    new customers would make it a coin toss.
    """
    limit = now + thresholds.clock_skew
    customers, customers_problem, _ = _read_raw(raw_dir, "shopify", "customers", _RAW_CUSTOMER_COLUMNS)
    orders, orders_problem, order_loads = _read_raw(
        raw_dir, "shopify", "orders", _RAW_ORDER_COLUMNS, passed_order_loads
    )
    suites = [
        Suite(
            name="raw.shopify.customers",
            frame=customers,
            problem=customers_problem or None,
            pii_columns=frozenset({"email"}),
            expectations=[
                gxe.ExpectColumnValuesToBeUnique(column="id", description="one latest version per customer id"),
                _valid_emails("email", thresholds.min_valid_email_share, "customers have a usable email address"),
                _consent("email_consent", thresholds.consent_states),
                *_non_negative(["amount_spent"]),
                *_not_in_future(["updated_at", "created_at"], limit, thresholds.clock_skew),
            ],
        ),
    ]
    if orders is None and not orders_problem:
        return suites  # every order load was read by a passed gate: nothing new to check
    suites.append(
        Suite(
            name="raw.shopify.orders",
            frame=orders,
            problem=orders_problem or None,
            stream=ORDER_STREAM,
            loads=order_loads,
            expectations=[
                *_non_negative(["total_price", "total_refunded", "current_total_price"]),
                *_not_in_future(["updated_at", "created_at", "processed_at"], limit, thresholds.clock_skew),
            ],
        )
    )
    return suites


# -- marts --------------------------------------------------------------------------------

# ``marketable_consent`` is the consent of marketable customers only (NULL for the rest):
# marketing a customer without SUBSCRIBED consent is the one mistake the gate must stop.
_MART_QUERIES = {
    "customers": (
        "SELECT customer_key, email, email_consent, CAST(total_revenue AS DOUBLE) AS total_revenue, is_marketable,"
        " CASE WHEN is_marketable THEN email_consent END AS marketable_consent FROM customers"
    ),
    "orders": "SELECT order_key, ordered_at, CAST(net_revenue AS DOUBLE) AS net_revenue FROM orders",
}


def _row_count_floor(table: str, thresholds: GateThresholds, previous: Mapping[str, int]) -> list[gxe.Expectation]:
    if table not in thresholds.count_tables or table not in previous:
        return []  # the first gate has nothing to compare with
    floor = math.ceil(previous[table] * thresholds.min_row_count_ratio)
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=floor,
            description=f"at least {thresholds.min_row_count_ratio:.0%} of the {previous[table]:,} rows "
            "of the last passed gate",
        )
    ]


def _trigger_query(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    # Trigger tables may keep non-marketable rows for analysis; only marketable ones become sends.
    marketable = "coalesce(is_marketable, false)" if "is_marketable" in column_names(conn, table) else "true"
    return f'SELECT trigger_id, CAST({marketable} AS INTEGER) AS marketable FROM "{table}"'


def _mart_suite(name: str, conn: duckdb.DuckDBPyConnection, tables: set[str], query: str) -> Suite:
    table = name.removeprefix("marts.")
    if table not in tables:
        return Suite(name=name, frame=None, problem=f"table {table} is missing from the warehouse")
    try:
        return Suite(name=name, frame=_frame(conn, query))
    except duckdb.Error as exc:
        return Suite(name=name, frame=None, problem=f"cannot read {table} (does it follow the mart contract?): {exc}")


def mart_suites(
    warehouse_path: Path, thresholds: GateThresholds, now: datetime, previous_counts: Mapping[str, int]
) -> list[Suite]:
    """Suites on the customers and orders marts and on every ``trigger_*`` table.

    Args:
        previous_counts: row counts of the last passed gate (``{}`` on the first run).
    """
    try:
        conn = open_warehouse(warehouse_path)
    except WarehouseError as exc:
        return [Suite(name="marts", frame=None, problem=str(exc))]
    with conn:
        tables = table_names(conn)
        customers = _mart_suite("marts.customers", conn, tables, _MART_QUERIES["customers"])
        orders = _mart_suite("marts.orders", conn, tables, _MART_QUERIES["orders"])
        triggers = [
            _mart_suite(f"marts.{t}", conn, tables, _trigger_query(conn, t))
            for t in sorted(tables)
            if t.startswith(TRIGGER_PREFIX)
        ]

    customers.pii_columns = frozenset({"customer_key", "email"})
    customers.expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column="customer_key", description="every customer has a key"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_key", description="one row per customer"),
        # Customers without an address (e.g. Amazon-only buyers) have a NULL email, which GX skips.
        _valid_emails("email", thresholds.min_valid_email_share, "email addresses look valid"),
        _consent("email_consent", thresholds.consent_states),
        gxe.ExpectColumnValuesToBeInSet(
            column="marketable_consent", value_set=["SUBSCRIBED"], description="marketable customers are SUBSCRIBED"
        ),
        *_non_negative(["total_revenue"]),
        *_row_count_floor("customers", thresholds, previous_counts),
    ]
    orders.expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column="order_key", description="every order has a key"),
        gxe.ExpectColumnValuesToBeUnique(column="order_key", description="one row per order"),
        *_non_negative(["net_revenue"]),
        *_not_in_future(["ordered_at"], now + thresholds.clock_skew, thresholds.clock_skew),
        *_row_count_floor("orders", thresholds, previous_counts),
    ]
    marketable = None if customers.frame is None else int(customers.frame["is_marketable"].eq(True).sum())
    for trigger in triggers:
        trigger.pii_columns = frozenset({"trigger_id"})  # built from customer keys
        trigger.expectations = [
            gxe.ExpectColumnValuesToNotBeNull(column="trigger_id", description="every trigger has an id"),
            gxe.ExpectColumnValuesToBeUnique(column="trigger_id", description="a trigger fires once"),
        ]
        if marketable is not None:  # without customers there is nothing to compare with (already a failure)
            ceiling = math.floor(marketable * thresholds.max_trigger_share)
            trigger.expectations.append(
                gxe.ExpectColumnSumToBeBetween(
                    column="marketable",
                    max_value=ceiling,
                    description=f"marketable rows are at most {thresholds.max_trigger_share:.0%} of the "
                    f"{marketable:,} marketable customers",
                )
            )
    return [customers, orders, *triggers]
