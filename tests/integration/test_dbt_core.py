"""The dbt foundation — staging, identity, core marts — against the demo shop's ground truth.

One warehouse per module. A ~300-customer shop is ingested in three steps, as a shop
that has been running for a while: history up to 60 days ago, then up to 20 days ago
(first dbt build), then the rest together with a re-extracted window (duplicates in the
raw zone) and two hand-made Amazon orders (a euro order by a Shopify person's address,
and one in a currency without a rate). The second build is incremental; a full refresh
of the incremental models must then give exactly the same rows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.base import Window
from flows.sources import land_every_stream, streams_for
from hearth.config import Settings
from hearth.extract import extract_window
from hearth.rawzone import RawZone
from hearth.state import StateStore
from sandbox.generator import generate_shop
from sandbox.run import start_sandboxes
from tests.integration.warehouse_fixture import dbt

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
STEPS = (NOW - timedelta(days=60), NOW - timedelta(days=20))  # earlier ingests; the last runs to the wall clock
DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
# This part of the project only: the analytics, segments and triggers build on it elsewhere.
SELECT = ["--select", "path:models/staging", "path:models/intermediate", "path:models/marts",
          "currency_rates", "region_timezones", "--indirect-selection", "cautious"]  # fmt: skip
EURO_ORDER, UNRATED_ORDER, LATER_ORDER = "999-0000001-0000001", "999-0000001-0000002", "999-0000001-0000003"
SETTLE_DAYS = 7  # the Facebook sandbox's recent days still settle (sandbox.facebook.data)
STALE = "~first-build"  # appended to order names the first build wrote; a reprocessed order loses it
# Incremental models whose incremental build is compared with a full refresh, row for row.
COMPARED = (
    "orders",
    "order_lines",
    "stg_shopify__customers",
    "stg_amazon__orders",
    "stg_amazon__order_items",
    "int_abandoned_checkouts_identified",
    "stg_facebook__ad_insights",
    "int_product_purchases",
)
# When a run wrote a row: differs between an incremental run and a full refresh by design.
STAMPS = "columns(lambda c: c <> '_built_at')"


@dataclass
class Warehouse:
    data_dir: Path
    incremental_build: subprocess.CompletedProcess[str]
    shared_email: str  # a Shopify person's address, reused by the euro Amazon order
    rebuilt: dict[str, tuple[int, int]]  # rows the incremental run wrote, and all rows, by model

    @property
    def shop(self) -> Path:
        return self.data_dir / "sandbox" / "shop"

    def connect(self) -> duckdb.DuckDBPyConnection:
        db = duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True)
        for table in ("persons", "customers", "orders", "fb_insights", "fb_ads", "amazon_orders", "products"):
            db.execute(f"create temp view truth_{table} as select * from read_parquet('{self.shop}/{table}.parquet')")
        return db


def ingest(settings: Settings, until: datetime, extracted_at: datetime) -> None:
    """Every stream up to ``until``, each load stamped ``extracted_at``."""
    land_every_stream(settings, now=until, zone=RawZone(settings.raw_dir, now=lambda: extracted_at))


def reextract_orders(settings: Settings, window: Window, extracted_at: datetime) -> None:
    """Land Shopify orders of ``window`` again (a backfill, a rerun after a crash)."""
    zone = RawZone(settings.raw_dir, now=lambda: extracted_at)
    with StateStore(settings.state_path) as state:
        orders = next(s for s in streams_for("shopify", settings) if s.name == "orders")
        extract_window(orders, zone, state, window)


def amazon_order(order_id: str, email: str, currency: str, amount: str, sku: str) -> dict[str, Any]:
    """A minimal SP-API Orders v2026-01-01 ``Order``, as the connector lands them."""
    stamp = (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    money = {"amount": amount, "currencyCode": currency}
    return {
        "orderId": order_id,
        "createdTime": stamp,
        "lastUpdatedTime": stamp,
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": "A1PA6795UKMFR9", "marketplaceName": "Amazon.de"},
        "buyer": {"buyerName": "Test Buyer", "buyerEmail": email},
        "proceeds": {"grandTotal": money},
        "fulfillment": {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "AMAZON"},
        "orderItems": [
            {"orderItemId": order_id.replace("-", ""), "quantityOrdered": 1,
             "product": {"asin": "B000TEST00", "title": "Test", "sellerSku": sku, "price": {"unitPrice": money}}},
        ],
    }  # fmt: skip


def land_amazon_orders(raw_dir: Path, records: list[dict[str, Any]], extracted_at: datetime) -> None:
    with RawZone(raw_dir, now=lambda: extracted_at).open_load("amazon", "orders") as load:
        load.write(records, id_of=lambda r: r["orderId"], updated_at_of=lambda r: r["lastUpdatedTime"])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    data_dir = tmp_path_factory.mktemp("dbt_core")
    shop_dir = data_dir / "sandbox" / "shop"
    generate_shop(shop_dir, seed=7, customers=300, now=NOW)
    with duckdb.connect() as db:
        shared_email = scalar(db, f"select min(email_canonical) from read_parquet('{shop_dir}/persons.parquet') "
                                  "where channel = 'shopify'")  # fmt: skip
        sku = scalar(db, f"select min(sku) from read_parquet('{shop_dir}/products.parquet')")

    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=50.0)
    try:
        settings = Settings.from_env({**sandboxes.env(), "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
        for step in STEPS:
            ingest(settings, until=step, extracted_at=step + timedelta(hours=1))
        dbt(data_dir, "build", "--resource-type", "seed", "--resource-type", "model", *SELECT)
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:  # mark what the first build wrote
            db.execute(f"update orders set order_name = order_name || '{STALE}' where channel = 'shopify'")

        last = NOW + timedelta(hours=1)
        ingest(settings, until=datetime.now(UTC), extracted_at=last)
        reextract_orders(settings, Window(STEPS[1] - timedelta(days=5), STEPS[1]), extracted_at=last)
    finally:
        sandboxes.stop()
    land_amazon_orders(
        settings.raw_dir,
        [
            amazon_order(EURO_ORDER, f"  {shared_email.upper()} ", "EUR", "100.00", sku),
            amazon_order(UNRATED_ORDER, "0f0f0f@marketplace.amazon.com", "XYZ", "12.00", sku),
        ],
        extracted_at=last,
    )
    incremental = dbt(data_dir, "build", *SELECT)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        for table in COMPARED:
            db.execute(f"copy (select {STAMPS} from {table}) to '{data_dir}/{table}_incremental.parquet'")
        latest = "_built_at = (select max(_built_at) from {})"
        rebuilt = {
            table: (scalar(db, f"select count(*) from {table} where {latest.format(table)}"),
                    scalar(db, f"select count(*) from {table}"))
            for table in ("orders", "order_lines", "int_product_purchases")
        }  # fmt: skip
    # Staging included: the Shopify staging models and Facebook insights are incremental too.
    dbt(data_dir, "run", "--full-refresh", "--select", "+int_product_purchases", "stg_facebook__ad_insights")
    yield Warehouse(data_dir, incremental, shared_email, rebuilt)


def copy_data_dir(warehouse: Warehouse, tmp_path: Path) -> Path:
    """The warehouse and its raw zone, for a test that lands more and builds again."""
    data_dir = tmp_path / "data"
    shutil.copytree(warehouse.data_dir, data_dir, ignore=shutil.ignore_patterns("sandbox", "*.wal", "*.parquet"))
    shutil.copytree(warehouse.data_dir / "raw", data_dir / "raw", dirs_exist_ok=True)
    return data_dir


def scalar(db: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = db.execute(sql).fetchone()
    assert row is not None
    return row[0]


def assert_full_refresh_agrees(data_dir: Path, tables: tuple[str, ...], *select: str) -> None:
    """Keep ``tables`` as the incremental run left them, rebuild ``select`` from scratch, compare row for row."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        for table in tables:
            db.execute(f"create table {table}_incremental as select * from {table}")
    dbt(data_dir, "run", "--full-refresh", "--select", *select)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        for table in tables:
            now, before = f"(select {STAMPS} from {table})", f"(select {STAMPS} from {table}_incremental)"
            differ = scalar(
                db,
                f"select count(*) from ((from {now} except all from {before})"
                f" union all (from {before} except all from {now}))",
            )
            assert differ == 0, f"{table}: the incremental run and a full refresh differ in {differ} rows"


def test_incremental_build_equals_full_refresh(warehouse: Warehouse) -> None:
    incremental = {table: f"read_parquet('{warehouse.data_dir}/{table}_incremental.parquet')" for table in COMPARED}
    unmarked = f"replace(order_name, '{STALE}', '') as order_name"
    incremental["orders"] = f"(select * replace ({unmarked}) from {incremental['orders']})"
    with warehouse.connect() as db:
        for table, built in incremental.items():
            rebuilt = f"(select {STAMPS} from {table})"
            extra = scalar(db, f"select count(*) from (from {built} except all from {rebuilt})")
            missing = scalar(db, f"select count(*) from (from {rebuilt} except all from {built})")
            assert (extra, missing) == (0, 0), f"{table}: incremental has {extra} rows too many, {missing} missing"


def test_incremental_run_reprocesses_only_the_lookback(warehouse: Warehouse) -> None:
    cutoff = STEPS[1] + timedelta(hours=1) - timedelta(days=3)  # the first build's latest load − lookback_days
    orders = f"read_parquet('{warehouse.data_dir}/orders_incremental.parquet')"
    with warehouse.connect() as db:
        counts = db.execute(
            f"""
            select count(*) filter (where order_name like '%{STALE}'),
                   count(*) filter (where order_name like '%{STALE}' and _extracted_at >= '{cutoff}'),
                   count(*) filter (where channel = 'shopify' and order_name not like '%{STALE}')
            from {orders}
            """
        ).fetchone()
    assert counts is not None
    kept, stale_in_window, reprocessed = counts
    assert kept > 100, "orders loaded before the lookback window must not be rebuilt"
    assert stale_in_window == 0, "every order extracted within the lookback window must be rebuilt"
    assert reprocessed > 100


def test_incremental_run_rebuilds_only_the_customers_it_touches(warehouse: Warehouse) -> None:
    """The models downstream of orders read the rows built since their own last build (_built_at):
    order_lines the orders rebuilt, int_product_purchases the customers of the lines rebuilt."""
    rebuilt = warehouse.rebuilt
    assert 0 < rebuilt["order_lines"][0] < rebuilt["order_lines"][1] / 2, rebuilt
    assert 0 < rebuilt["int_product_purchases"][0] < rebuilt["int_product_purchases"][1] * 0.9, rebuilt


def test_orders_match_the_shop_to_the_cent(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        shopify_orders = scalar(db, "select count(*) from orders where channel = 'shopify'")
        assert shopify_orders == scalar(db, "select count(*) from truth_orders")
        wrong = scalar(
            db,
            """
            select count(*) from truth_orders as t
            join orders as o on o.channel = 'shopify' and o.source_order_id = cast(t.id as varchar)
            where o.total_price * 100 <> t.total_cents or o.refunded_amount * 100 <> t.refunded_cents
               or o.subtotal * 100 <> t.subtotal_cents or o.discount_total * 100 <> t.discount_cents
               or o.tax_total * 100 <> t.tax_cents or o.shipping_total * 100 <> t.shipping_cents
               or o.is_cancelled <> (t.cancelled_at is not null)
               or o.net_revenue * 100
                  <> case when t.cancelled_at is null then t.total_cents - t.refunded_cents else 0 end
               or o.checkout_id is distinct from t.checkout_id
               or o.landing_source is distinct from t.landing_source
            """,
        )
        assert wrong == 0


def test_revenue_totals_and_per_person_to_the_cent(warehouse: Warehouse) -> None:
    truth = json.loads((warehouse.shop / "ground_truth.json").read_text())["totals"]
    with warehouse.connect() as db:
        synthetic = f"(select customer_key from orders where source_order_id in ('{EURO_ORDER}', '{UNRATED_ORDER}'))"
        by_channel = dict(db.execute(f"select channels, sum(total_revenue) from customers "
                                     f"where customer_key not in {synthetic} group by 1").fetchall())  # fmt: skip
        assert by_channel["shopify"] * 100 == truth["shopify_revenue_cents"]
        assert by_channel["amazon"] * 100 == truth["amazon_revenue_cents"]
        wrong = db.execute(
            """
            select p.person_id, p.true_revenue_cents, c.total_revenue, p.true_orders, c.orders_count
            from truth_persons as p join customers as c on c.email = p.email_canonical
            where p.channel = 'shopify'
              and (c.total_revenue * 100 <> p.true_revenue_cents or c.orders_count <> p.true_orders)
            """
        ).fetchall()
        assert wrong == []


def test_consent_marketability_timezone_and_acquisition_per_person(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        rows = db.execute(
            """
            select p.person_id, p.true_marketing_state, c.email_consent, c.is_marketable,
                   p.timezone, c.timezone, p.acquisition_source, c.acquisition_source, c.orders_count
            from truth_persons as p left join customers as c on c.email = p.email_canonical
            where p.channel = 'shopify' and p.email_canonical is not null
            """
        ).fetchall()
        assert len(rows) > 250
        for person, state, consent, marketable, tz, timezone, source, acquisition, orders in rows:
            assert consent == state, f"person {person}: consent {consent}, truth {state}"
            assert marketable == (state == "SUBSCRIBED"), f"person {person}"
            assert timezone == tz, f"person {person}: {timezone}, truth {tz}"
            if orders:
                assert acquisition == source, f"person {person}: acquisition {acquisition}, truth {source}"
        # No usable address: never marketable, whatever the records' consent.
        unusable = scalar(
            db,
            """
            select count(*) from customers as c
            join (select unnest(shopify_customer_ids) as id, customer_key from customers) as k using (customer_key)
            join truth_customers as r using (id) join truth_persons as p using (person_id)
            where p.email_canonical is null and (c.is_marketable or c.email is not null)
            """,
        )
        assert unusable == 0


def test_guest_duplicates_merge_and_invalid_emails_do_not(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        expected = scalar(
            db,
            """
            select (select count(*) from truth_persons where channel = 'shopify' and email_canonical is not null)
                 + (select count(*) from truth_customers join truth_persons using (person_id)
                    where email_canonical is null)
            """,
        )
        assert scalar(db, "select count(*) from customers where channels = 'shopify'") == expected
        # Every record of a person with a usable email sits in that person's one customer.
        split = scalar(
            db,
            """
            select count(*) from truth_customers as r join truth_persons as p using (person_id)
            left join customers as c on c.email = p.email_canonical
            where p.email_canonical is not null and not coalesce(list_contains(c.shopify_customer_ids, r.id), false)
            """,
        )
        assert split == 0
        assert scalar(db, "select count(*) from customers where shopify_records_count > 1") > 10


def test_amazon_buyers_are_never_merged_nor_marketable(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        buyers = db.execute(
            """
            select t.person_id, count(distinct o.customer_key) as keys, any_value(o.customer_key) as customer_key
            from truth_amazon_orders as t
            join orders as o on o.channel = 'amazon' and o.source_order_id = t.amazon_order_id
            group by 1
            """
        ).fetchall()
        assert len(buyers) == scalar(db, "select count(*) from truth_persons where channel = 'amazon'")
        assert all(keys == 1 for _, keys, _ in buyers)
        assert len({key for *_, key in buyers}) == len(buyers), "two Amazon buyers share a customer"
        assert scalar(db, "select count(*) from customers where channels = 'amazon' and "
                          "(is_marketable or email is not null or acquisition_source <> 'amazon')") == 0  # fmt: skip
        # The euro order used a Shopify person's address: still an Amazon customer of its own.
        euro = db.execute(
            "select o.total_price, c.channels, c.is_marketable from orders as o "
            f"join customers as c using (customer_key) where o.source_order_id = '{EURO_ORDER}'"
        ).fetchone()
        assert euro == (Decimal("108.70"), "amazon", False)  # 100.00 EUR × 1.08695652, to the cent
        shopify_side = db.execute("select channels from customers where email = ?", [warehouse.shared_email])
        assert shopify_side.fetchall() == [("shopify",)]


def test_unrated_currency_is_kept_and_named(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        unrated = db.execute(f"select total_price, net_revenue from orders where source_order_id = '{UNRATED_ORDER}'")
        assert unrated.fetchall() == [(None, None)]
    log = warehouse.incremental_build.stdout
    assert re.search(r"currencies without a rate .*: XYZ$", log, re.MULTILINE), "the missing rate must be named"
    assert re.search(r"WARN 1 assert_currencies_have_rates", log), "the currency test must warn, not pass"


def test_a_rate_added_later_converts_the_stored_order(warehouse: Warehouse, tmp_path: Path) -> None:
    """The currency test's advice, "add the rate to the seed, rebuild", works on an incremental build.

    By then the unrated order lies before the lookback: a later load has been built since.
    """
    data_dir = tmp_path / "data"
    shutil.copytree(warehouse.data_dir, data_dir, ignore=shutil.ignore_patterns("dbt_target", "dbt_logs", "sandbox"))
    models = ("--select", "stg_amazon__orders", "stg_amazon__order_items", "orders", "order_lines")
    later = NOW + timedelta(days=5)
    land_amazon_orders(data_dir / "raw", [amazon_order(LATER_ORDER, "1e1e1e@marketplace.amazon.com", "USD",
                                                      "5.00", "LATER-SKU")], extracted_at=later)  # fmt: skip
    dbt(data_dir, "run", *models)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        db.execute("insert into currency_rates values ('XYZ', 0.5)")  # as `dbt seed` would after the edit
    dbt(data_dir, "run", *models)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        order = db.execute(f"select total_price, net_revenue from orders where source_order_id = '{UNRATED_ORDER}'")
        assert order.fetchall() == [(Decimal("6.00"), Decimal("6.00"))]
        lines = db.execute(f"select line_total from order_lines where order_key = 'amazon:{UNRATED_ORDER}'")
        assert lines.fetchall() == [(Decimal("6.00"),)]


def test_ad_performance_matches_settled_facebook_days(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        settled = f"date '{(NOW - timedelta(days=SETTLE_DAYS)).date()}'"
        wrong = db.execute(
            f"""
            with truth as (
                select i.date, a.campaign_id, sum(i.spend_cents) as spend_cents, sum(i.impressions) as impressions,
                       sum(i.clicks) as clicks, sum(i.purchases) as purchases,
                       sum(i.purchase_value_cents) as purchase_value_cents
                from truth_fb_insights as i join truth_fb_ads as a on a.id = i.ad_id
                where i.date < {settled}
                group by 1, 2
            )
            select * from truth
            full join (select * from ad_performance where date < {settled}) as p using (date, campaign_id)
            where p.spend * 100 is distinct from truth.spend_cents or p.impressions is distinct from truth.impressions
               or p.clicks is distinct from truth.clicks or p.purchases is distinct from truth.purchases
               or p.purchase_value * 100 is distinct from truth.purchase_value_cents
            """
        ).fetchall()
        assert wrong == []
        assert scalar(db, "select count(*) from ad_performance where campaign_name is null") == 0


def test_products_and_order_lines(warehouse: Warehouse) -> None:
    with warehouse.connect() as db:
        products = db.execute(
            "select count(*), count(distinct product_url) from products where catalogue_source = 'shopify'"
        )
        assert products.fetchone() == (scalar(db, "select count(*) from truth_products"),) * 2
        assert scalar(db, "select min(product_url) from products").startswith(
            "https://hearth-demo.myshopify.com/products/"
        )
        # Lines add up to their order's subtotal (Shopify) and total (Amazon).
        mismatched = scalar(
            db,
            """
            select count(*) from orders as o
            join (select order_key, sum(unit_price * quantity) as gross from order_lines group by 1) as l
                using (order_key)
            where l.gross <> case when o.channel = 'shopify' then o.subtotal else o.total_price end
            """,
        )
        assert mismatched == 0


def test_a_new_email_rekeys_old_orders_in_orders_and_order_lines(warehouse: Warehouse, tmp_path: Path) -> None:
    """A customer record that lands with a new email moves orders extracted long before (outside
    the lookback) to the new person, in orders, order_lines and int_product_purchases alike."""
    data_dir = copy_data_dir(warehouse, tmp_path)
    old_cutoff = STEPS[1]  # loads of the first step are far outside the lookback of the last one
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        customer_id, old_key = db.execute(
            f"""
            select shopify_customer_id, customer_key from orders
            where channel = 'shopify' and shopify_customer_id is not null and _extracted_at < '{old_cutoff}'
            order by order_key limit 1
            """
        ).fetchall()[0]
    with duckdb.connect() as db:
        [(text,)] = db.execute(
            f"""
            select record from read_parquet('{data_dir}/raw/shopify/customers/*.parquet')
            where id = 'gid://shopify/Customer/{customer_id}'
            order by updated_at desc, _extracted_at desc limit 1
            """
        ).fetchall()
    record = json.loads(text)
    record["defaultEmailAddress"]["emailAddress"] = f"moved-{customer_id}@example.com"
    record["updatedAt"] = (NOW + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    zone = RawZone(data_dir / "raw", now=lambda: NOW + timedelta(hours=2))
    with zone.open_load("shopify", "customers") as load:
        load.write([record], id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"])

    # The customer's only orders move: int_product_purchases is left with none of theirs.
    rekeyed = ("orders", "order_lines", "int_product_purchases")
    dbt(data_dir, "run", "--select", "+int_product_purchases")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        new_key = scalar(
            db,
            "select customer_key from int_customer_identities where record_type = 'shopify_customer' "
            f"and shopify_customer_id = {customer_id}",
        )
        assert new_key != old_key
        for table in rekeyed:
            counts = db.execute(
                f"select count(*) filter (where customer_key = $old), count(*) filter (where customer_key = $new) "
                f"from {table}",
                {"old": old_key, "new": new_key},
            ).fetchone()
            assert counts is not None and counts[0] == 0 and counts[1] > 0, (table, counts)
    assert_full_refresh_agrees(data_dir, rekeyed, "+int_product_purchases")


def test_a_redaction_request_masks_orders_extracted_long_before(warehouse: Warehouse, tmp_path: Path) -> None:
    """A customers/redact request landing now covers orders extracted far outside the lookback:
    the incremental run reads them again and masks them, as a full refresh does."""
    data_dir = copy_data_dir(warehouse, tmp_path)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        customer_id, email = db.execute(
            f"""
            select shopify_customer_id, email_raw from stg_shopify__orders
            where shopify_customer_id is not null and email_raw is not null and _extracted_at < '{STEPS[1]}'
            order by order_id limit 1
            """
        ).fetchall()[0]
        old = f"shopify_customer_id = {customer_id} and _extracted_at < '{STEPS[1]}'"
        assert scalar(db, f"select count(*) from orders where {old}") > 0
    # Shaped as hearth.webhooks lands one; an hour after the last extraction (NOW + 1 h).
    request = {
        "topic": "customers/redact", "webhook_id": "wh-old-orders", "triggered_at": None,
        "payload": {"customer": {"id": customer_id, "email": email.upper()}, "orders_to_redact": []},
    }  # fmt: skip
    with RawZone(data_dir / "raw", now=lambda: NOW + timedelta(hours=2)).open_load("shopify", "webhooks") as load:
        load.write([request], id_of=lambda r: r["webhook_id"], updated_at_of=lambda r: None)

    dbt(data_dir, "run", "--select", "+int_product_purchases")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        assert scalar(db, f"select count(*) from stg_shopify__orders where email_raw = '{email}'") == 0
        masked = "redaction_key is not null and email_raw is null"
        assert scalar(db, f"select count(*) from stg_shopify__orders where {old} and {masked}") > 0
    assert_full_refresh_agrees(data_dir, ("orders", "int_product_purchases"), "+int_product_purchases")
