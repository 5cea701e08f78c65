"""The demo-shop generator: determinism, schema, ground-truth consistency, believable signal.

One small shop (400 Shopify persons) is generated per module and queried with DuckDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from sandbox.generator import facebook, generate_shop
from sandbox.generator.__main__ import main
from sandbox.generator._base import Clock
from sandbox.shop.tables import SCHEMAS, read_table

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
N = 400
Query = Callable[[str], Any]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shop")
    return out, generate_shop(out, seed=7, customers=N, now=NOW)


@pytest.fixture(scope="module")
def db(shop: tuple[Path, dict]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name in SCHEMAS:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{shop[0] / name}.parquet')")
    return con


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row[0]


@pytest.fixture(scope="module")
def q(db: duckdb.DuckDBPyConnection) -> Query:
    """The single value of a query on the module's shop."""
    return lambda sql: scalar(db, sql)


def test_same_arguments_give_identical_tables_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    truth_a = generate_shop(a, seed=3, customers=120, now=NOW, years=1.0)
    truth_b = generate_shop(b, seed=3, customers=120, now=NOW, years=1.0)
    generate_shop(c, seed=4, customers=120, now=NOW, years=1.0)
    assert truth_a == truth_b
    assert (a / "ground_truth.json").read_bytes() == (b / "ground_truth.json").read_bytes()
    for name in SCHEMAS:
        assert read_table(a, name).equals(read_table(b, name)), name
    for name in ("persons", "customers", "orders", "checkouts", "amazon_orders", "fb_insights"):
        assert not read_table(a, name).equals(read_table(c, name)), name


def test_every_table_matches_its_schema_and_the_ground_truth_counts(shop: tuple[Path, dict]) -> None:
    out, truth = shop
    for name, schema in SCHEMAS.items():
        table = pq.read_table(out / f"{name}.parquet")
        assert table.schema.equals(schema, check_metadata=False), name
        assert table.num_rows == truth["row_counts"][name] > 0, name
    assert json.loads((out / "ground_truth.json").read_text()) == truth
    assert truth["now"] == "2026-11-24T02:00:00.000000Z"
    assert (truth["persons"]["shopify"], truth["persons"]["amazon"]) == (N, 60)
    assert len(truth["true_cycles_days"]) >= 20
    assert set(truth["true_cycles_days"].values()) == {30, 45, 60, 90}


def test_catalog_has_consumables_with_cycles_and_durables_without(q: Query) -> None:
    assert 35 <= q("SELECT count(*) FROM products") <= 45
    assert q("SELECT count(*) FROM products WHERE is_consumable <> (true_cycle_days IS NOT NULL)") == 0
    assert q("SELECT count(*) FROM products WHERE NOT is_consumable") >= 10
    assert q("SELECT count(*) FROM products WHERE image_url NOT LIKE 'https://cdn.hearth-demo.example/%'") == 0
    assert q("SELECT count(*) FROM products WHERE NOT regexp_full_match(asin, 'B0[0-9A-Z]{8}')") == 0


def test_keys_are_unique_and_references_resolve(q: Query) -> None:
    keys = [
        ("persons", "person_id"),
        ("customers", "id"),
        ("orders", "id"),
        ("orders", "name"),
        ("order_lines", "id"),
        ("refunds", "id"),
        ("checkouts", "id"),
        ("checkout_lines", "id"),
        ("products", "sku"),
        ("amazon_orders", "amazon_order_id"),
        ("amazon_order_items", "order_item_id"),
        ("fb_ads", "id"),
    ]
    for table, key in keys:
        assert q(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}") == 0, (table, key)
    orphans = {
        "orders→customers": """SELECT count(*) FROM orders o LEFT JOIN customers c ON o.customer_id = c.id
                               WHERE c.id IS NULL OR c.person_id <> o.person_id""",
        "lines→orders": "SELECT count(*) FROM order_lines l ANTI JOIN orders o ON l.order_id = o.id",
        "lines→products": "SELECT count(*) FROM order_lines l ANTI JOIN products p ON l.variant_id = p.variant_id",
        "refund_lines→lines": """SELECT count(*) FROM refund_lines r JOIN refunds f ON r.refund_id = f.id
                                 LEFT JOIN order_lines l ON r.order_line_id = l.id
                                 WHERE l.order_id IS DISTINCT FROM f.order_id""",
        "customers→persons": """SELECT count(*) FROM customers c ANTI JOIN persons p
                                ON c.person_id = p.person_id AND p.channel = 'shopify'""",
        "items→amazon": "SELECT count(*) FROM amazon_order_items i ANTI JOIN amazon_orders o USING (amazon_order_id)",
        "ads→adsets": "SELECT count(*) FROM fb_ads a ANTI JOIN fb_adsets s ON a.adset_id = s.id",
        "insights→ads": "SELECT count(*) FROM fb_insights i ANTI JOIN fb_ads a ON i.ad_id = a.id",
    }
    for name, sql in orphans.items():
        assert q(sql) == 0, name


def test_order_money_adds_up_to_the_cent(q: Query) -> None:
    assert (
        q("""
        WITH l AS (SELECT order_id, sum(quantity * unit_price_cents) AS sub, sum(discount_cents) AS disc
                   FROM order_lines GROUP BY 1)
        SELECT count(*) FROM orders o LEFT JOIN l ON l.order_id = o.id
        WHERE l.sub IS NULL OR o.subtotal_cents <> l.sub OR o.discount_cents <> l.disc
           OR o.total_cents <> o.subtotal_cents - o.discount_cents + o.shipping_cents + o.tax_cents
        """)
        == 0
    )
    assert (
        q("""
        SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(amount_cents) AS amount FROM refunds GROUP BY 1) r
        ON r.order_id = o.id WHERE r.amount <> o.refunded_cents OR r.amount > o.total_cents
        """)
        == 0
    )
    assert q("SELECT sum(refunded_cents) FROM orders") == q("SELECT sum(amount_cents) FROM refunds") > 0
    assert (
        q("""SELECT count(*) FROM order_lines l JOIN refund_lines r ON r.order_line_id = l.id
                WHERE r.quantity > l.quantity OR r.subtotal_cents > l.quantity * l.unit_price_cents""")
        == 0
    )
    assert q("SELECT count(*) FROM orders WHERE (financial_status = 'VOIDED') <> (cancelled_at IS NOT NULL)") == 0
    assert q("SELECT count(*) FROM orders WHERE financial_status = 'REFUNDED' AND refunded_cents <> total_cents") == 0
    statuses = q("SELECT list(DISTINCT financial_status ORDER BY financial_status) FROM orders")
    assert statuses == ["PAID", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED"]


def test_persons_true_orders_and_revenue_equal_what_the_orders_imply(q: Query, shop: tuple[Path, dict]) -> None:
    mismatches = q("""
        WITH s AS (SELECT person_id, count(*) AS n, sum(total_cents - refunded_cents) AS rev
                   FROM orders WHERE cancelled_at IS NULL GROUP BY 1),
             a AS (SELECT person_id, count(*) AS n, sum(total_cents) AS rev
                   FROM amazon_orders WHERE order_status <> 'CANCELLED' GROUP BY 1),
             both_ AS (SELECT * FROM s UNION ALL SELECT * FROM a)
        SELECT count(*) FROM persons p LEFT JOIN both_ b USING (person_id)
        WHERE p.true_orders <> coalesce(b.n, 0) OR p.true_revenue_cents <> coalesce(b.rev, 0)
    """)
    assert mismatches == 0
    totals = shop[1]["totals"]
    assert totals["total_revenue_cents"] == q("SELECT sum(true_revenue_cents) FROM persons")
    shopify = q("SELECT sum(total_cents - refunded_cents) FROM orders WHERE cancelled_at IS NULL")
    assert totals["shopify_revenue_cents"] == shopify
    assert totals["amazon_revenue_cents"] == q(
        "SELECT sum(total_cents) FROM amazon_orders WHERE order_status <> 'CANCELLED'"
    )


def test_orders_are_shopify_like(q: Query, db: duckdb.DuckDBPyConnection) -> None:
    n = q("SELECT count(*) FROM orders")
    assert 3 * N <= n <= 4.5 * N  # ~3–4 orders per Shopify person in 3 years
    rows = db.execute("SELECT id, name FROM orders ORDER BY created_at, id").fetchall()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # ids grow with time
    assert [r[1] for r in rows] == [f"#{1001 + i}" for i in range(n)]
    stale = q("""
        SELECT count(*) FROM orders o LEFT JOIN (SELECT order_id, max(created_at) AS at FROM refunds GROUP BY 1) r
        ON r.order_id = o.id
        WHERE o.updated_at <> greatest(o.created_at, coalesce(o.cancelled_at, o.created_at),
                                       coalesce(r.at, o.created_at))
    """)
    assert stale == 0
    assert 0.015 <= q("SELECT avg((cancelled_at IS NOT NULL)::int) FROM orders") <= 0.05
    assert 0.035 <= q("SELECT avg((refunded_cents > 0)::int) FROM orders") <= 0.09
    assert q("SELECT count(DISTINCT presentment_currency) FROM orders") == 5
    assert q("SELECT avg((presentment_currency = 'USD')::int) FROM orders") > 0.6
    assert q("SELECT max(n) FROM (SELECT count(DISTINCT fx_rate) AS n FROM orders GROUP BY presentment_currency)") == 1
    assert q("SELECT max(created_at) FROM orders") <= NOW
    assert q("SELECT max(updated_at) FROM orders") <= NOW
    assert q("SELECT count(DISTINCT discount_code) FROM orders") >= 4
    assert q("SELECT count(*) FROM orders WHERE discount_cents > 0 AND discount_code IS NULL") > 0  # automatic


def test_discount_prone_people_use_codes_more_often(q: Query) -> None:
    code_use = q("""
        WITH per AS (SELECT person_id, avg((discount_code IS NOT NULL)::int) AS share, count(*) AS n
                     FROM orders GROUP BY 1 HAVING count(*) >= 4)
        SELECT avg((share >= 0.5)::int) FROM per
    """)
    assert 0.05 <= code_use <= 0.4  # a minority of heavy code users, as the discount-prone fifth


def test_facebook_first_orders_carry_a_campaign_id_and_insights_are_believable(
    q: Query, db: duckdb.DuckDBPyConnection
) -> None:
    first_fb = db.execute("""
        WITH firsts AS (SELECT o.*, row_number() OVER (PARTITION BY o.person_id ORDER BY o.created_at) AS k
                        FROM orders o)
        SELECT f.landing_source, f.landing_campaign FROM firsts f JOIN persons p USING (person_id)
        WHERE f.k = 1 AND p.acquisition_source = 'facebook'
    """).fetchall()
    campaigns = {r[0] for r in db.execute("SELECT id FROM fb_campaigns").fetchall()}
    assert len(campaigns) == 6 and all(re.fullmatch(r"\d{18}", c) for c in campaigns)
    assert len(first_fb) > 20
    assert all(source == "facebook" and campaign in campaigns for source, campaign in first_fb)
    assert 12 <= q("SELECT count(*) FROM fb_adsets") <= 18
    assert 24 <= q("SELECT count(*) FROM fb_ads") <= 54
    assert q("SELECT count(*) - count(DISTINCT (ad_id, date)) FROM fb_insights") == 0
    assert q("SELECT max(date) FROM fb_insights") == NOW.date()
    ctr = q("SELECT sum(clicks) / sum(impressions) FROM fb_insights")
    cpc = q("SELECT sum(spend_cents) / sum(clicks) / 100 FROM fb_insights")
    assert 0.005 <= ctr <= 0.02 and 0.5 <= cpc <= 2.0
    tracked = q("SELECT count(*) FROM orders WHERE landing_source = 'facebook'")
    assert tracked <= q("SELECT sum(purchases) FROM fb_insights") <= 1.5 * tracked


ADS = 90  # an ad count asked for: more than the demo's ~41, small enough for a quick test
FACEBOOK_TABLES = {"fb_campaigns", "fb_adsets", "fb_ads", "fb_insights"}


@pytest.fixture(scope="module")
def many_ads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's shop again (same seed and size) with ``ADS`` Facebook ads."""
    out = tmp_path_factory.mktemp("many_ads")
    generate_shop(out, seed=7, customers=N, now=NOW, fb_ads=ADS)
    return out


def test_an_ad_count_asked_for_gives_exactly_that_many_ads_in_named_ad_sets(many_ads: Path) -> None:
    con = duckdb.connect()
    for name in FACEBOOK_TABLES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{many_ads / name}.parquet')")
    assert scalar(con, "SELECT count(*) FROM fb_ads") == ADS
    assert scalar(con, "SELECT count(*) FROM fb_campaigns") == 6
    assert scalar(con, "SELECT count(*) FROM fb_adsets") > 18  # more than the demo's 2–3 per campaign
    assert scalar(con, "SELECT count(*) FROM fb_adsets s ANTI JOIN fb_ads a ON a.adset_id = s.id") == 0
    assert scalar(con, "SELECT count(*) FROM fb_ads a ANTI JOIN fb_adsets s ON a.adset_id = s.id") == 0
    assert scalar(con, "SELECT min(n) FROM (SELECT count(*) AS n FROM fb_ads GROUP BY campaign_id)") >= 2
    assert scalar(con, "SELECT count(*) FROM fb_insights i ANTI JOIN fb_ads a ON i.ad_id = a.id") == 0
    assert scalar(con, "SELECT count(DISTINCT ad_id) FROM fb_insights") == ADS
    assert scalar(con, "SELECT count(*) - count(DISTINCT (adset_id, name)) FROM fb_ads") == 0
    assert scalar(con, "SELECT count(*) - count(DISTINCT (campaign_id, name)) FROM fb_adsets") == 0
    assert scalar(con, "SELECT count(*) FROM fb_ads WHERE name LIKE '% #2'") > 0  # a name pool went round


def test_the_ad_count_changes_only_the_facebook_tables(shop: tuple[Path, dict], many_ads: Path) -> None:
    for name in set(SCHEMAS) - FACEBOOK_TABLES:
        assert read_table(shop[0], name).equals(read_table(many_ads, name)), name
    assert not read_table(shop[0], "fb_ads").equals(read_table(many_ads, "fb_ads"))
    landed = read_table(many_ads, "orders").column("landing_source").to_pylist()
    assert landed.count("facebook") > 20  # the Facebook attribution really ran over both shops


def test_the_ad_choice_in_blocks_is_the_choice_of_one_pass(many_ads: Path, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(facebook, "CHOICE_CELLS", 1)  # one order per block
        generate_shop(tmp_path, seed=7, customers=N, now=NOW, fb_ads=ADS)
    assert read_table(tmp_path, "fb_insights").equals(read_table(many_ads, "fb_insights"))


def test_too_few_ads_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fb_ads=11: the 6 campaigns need at least 12 ads"):
        generate_shop(tmp_path / "shop", customers=50, now=NOW, fb_ads=11)
    assert not (tmp_path / "shop").exists()
    fb = facebook.build_facebook(Clock(NOW, 1.0), np.random.default_rng(0), 12)
    assert np.bincount(fb.a_campaign).tolist() == [2] * 6


def test_customer_records_link_to_persons_with_quirky_emails(
    q: Query, db: duckdb.DuckDBPyConnection, shop: tuple[Path, dict]
) -> None:
    # Every record's email normalises to its person's canonical address (when the person has one).
    assert (
        q("""SELECT count(*) FROM customers c JOIN persons p USING (person_id)
             WHERE p.email_canonical IS NOT NULL AND lower(trim(c.email)) IS DISTINCT FROM p.email_canonical""")
        == 0
    )
    assert q("SELECT count(*) - count(DISTINCT email_canonical) FROM persons WHERE email_canonical IS NOT NULL") == 0
    multi = q("SELECT count(*) FROM (SELECT person_id FROM customers GROUP BY 1 HAVING count(*) > 1)")
    assert 0.05 * N <= multi <= 0.11 * N
    # A person's records type the same address differently (case / whitespace).
    assert (
        q("""SELECT count(*) FROM (SELECT person_id FROM customers WHERE email IS NOT NULL GROUP BY 1
             HAVING count(DISTINCT email) < count(*))""")
        == 0
    )
    emails = shop[1]["emails"]
    assert emails["missing"] > 0 and emails["mixed_case_records"] > 0 and emails["whitespace_records"] > 0
    invalid = [
        r[0].strip().lower()
        for r in db.execute("SELECT email FROM customers WHERE marketing_state = 'INVALID'").fetchall()
    ]
    assert invalid and not any(re.fullmatch(r"[a-z0-9._]+@[a-z0-9-]+\.[a-z]+", e) for e in invalid)
    assert (
        q("SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.created_at > o.created_at")
        == 0
    )
    timezones = {r[0] for r in db.execute("SELECT DISTINCT timezone FROM persons").fetchall()}
    assert {"America/New_York", "Europe/London", "Europe/Berlin", "Australia/Sydney"} <= timezones
    sources = {r[0] for r in db.execute("SELECT DISTINCT acquisition_source FROM persons").fetchall()}
    assert sources == {"facebook", "google", "organic", "email", "referral", "amazon"}


def test_true_marketing_state_is_that_of_the_latest_record_and_shares_are_realistic(
    q: Query, shop: tuple[Path, dict]
) -> None:
    mismatches = q("""
        WITH latest AS (SELECT person_id, arg_max(marketing_state, updated_at) AS state FROM customers GROUP BY 1)
        SELECT count(*) FROM persons p JOIN latest l USING (person_id)
        WHERE p.true_marketing_state IS DISTINCT FROM l.state
    """)
    assert mismatches == 0
    shares = shop[1]["consent"]["shares"]
    expected = {"SUBSCRIBED": 0.45, "NOT_SUBSCRIBED": 0.35, "UNSUBSCRIBED": 0.12, "PENDING": 0.05, "INVALID": 0.03}
    for state, share in expected.items():
        assert abs(shares[state] - share) <= 0.06, state
    assert (
        q("""SELECT count(*) FROM customers WHERE marketing_state IN ('SUBSCRIBED', 'PENDING', 'UNSUBSCRIBED')
             AND marketing_opt_in_level NOT IN ('SINGLE_OPT_IN', 'CONFIRMED_OPT_IN')""")
        == 0
    )
    assert q("SELECT count(*) FROM customers WHERE marketing_updated_at < created_at OR updated_at < created_at") == 0


def test_median_repeat_interval_recovers_each_consumables_true_cycle(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute("""
        WITH buys AS (
            SELECT o.person_id, l.product_id, o.created_at,
                   lag(o.created_at) OVER (PARTITION BY o.person_id, l.product_id ORDER BY o.created_at) AS prev
            FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.cancelled_at IS NULL)
        SELECT p.sku, p.true_cycle_days, median(epoch(b.created_at - b.prev) / 86400) AS days, count(*) AS n
        FROM buys b JOIN products p ON p.id = b.product_id
        WHERE b.prev IS NOT NULL AND p.is_consumable GROUP BY ALL
    """).fetchall()
    checked = [(sku, cycle, days) for sku, cycle, days, n in rows if n >= 15]
    assert len(checked) >= 10
    for sku, cycle, days in checked:
        assert abs(days - cycle) <= max(4.0, 0.08 * cycle), (sku, cycle, days)


def test_checkouts_recover_real_orders_and_recent_ones_exist(q: Query) -> None:
    bad = q("""
        SELECT count(*) FROM checkouts c JOIN orders o ON o.id = c.true_recovered_order_id
        WHERE o.checkout_id IS DISTINCT FROM c.id OR c.completed_at <> o.created_at
           OR c.completed_at - c.created_at NOT BETWEEN INTERVAL 1 HOUR AND INTERVAL 72 HOUR
           OR c.customer_id <> o.customer_id
    """)
    assert bad == 0
    recovered = q("SELECT count(*) FROM checkouts WHERE true_recovered_order_id IS NOT NULL")
    assert recovered == q("SELECT count(*) FROM orders WHERE checkout_id IS NOT NULL") > 0
    assert recovered == q("SELECT count(*) FROM checkouts WHERE completed_at IS NOT NULL")
    assert recovered < 0.3 * q("SELECT count(*) FROM checkouts")
    assert q("SELECT count(*) FROM checkouts WHERE email IS NULL AND customer_id IS NULL") > 0
    open_ = "SELECT count(*) FROM checkouts WHERE completed_at IS NULL AND email IS NOT NULL AND "
    assert q(open_ + "created_at BETWEEN TIMESTAMPTZ '2026-11-21 02:00+00' AND TIMESTAMPTZ '2026-11-24 01:00+00'") >= 10
    assert q(open_ + "created_at BETWEEN TIMESTAMPTZ '2026-11-23 23:00+00' AND TIMESTAMPTZ '2026-11-24 01:00+00'") >= 3
    assert q("SELECT max(updated_at) FROM checkouts") <= NOW
    assert (
        q("""SELECT count(*) FROM checkouts c
             JOIN (SELECT checkout_id, sum(quantity * unit_price_cents) AS s FROM checkout_lines GROUP BY 1) l
             ON l.checkout_id = c.id
             WHERE l.s <> c.subtotal_cents OR (c.completed_at IS NULL AND c.total_cents < l.s)""")
        == 0
    )


def test_amazon_buyers_are_separate_persons_behind_relay_addresses(q: Query, db: duckdb.DuckDBPyConnection) -> None:
    relay = r"[0-9a-f]{16}@marketplace\.amazon\.com"
    assert q(f"SELECT count(*) FROM amazon_orders WHERE NOT regexp_full_match(buyer_email, '{relay}')") == 0
    assert (
        q(r"SELECT count(*) FROM amazon_orders WHERE NOT regexp_full_match(amazon_order_id, '\d{3}-\d{7}-\d{7}')") == 0
    )
    assert (
        q("""SELECT count(*) FROM amazon_orders a JOIN persons p USING (person_id)
             WHERE p.channel <> 'amazon' OR p.acquisition_source <> 'amazon' OR p.email_canonical <> a.buyer_email""")
        == 0
    )
    assert (
        q("""SELECT count(*) FROM persons a JOIN persons s USING (email_canonical)
             WHERE a.channel = 'amazon' AND s.channel = 'shopify'""")
        == 0
    )
    assert q("SELECT count(*) FROM persons WHERE channel = 'amazon' AND true_marketing_state IS NOT NULL") == 0
    statuses = {r[0] for r in db.execute("SELECT DISTINCT order_status FROM amazon_orders").fetchall()}
    assert "SHIPPED" in statuses and statuses <= {"SHIPPED", "UNSHIPPED", "PENDING", "CANCELLED"}
    assert (
        q("""SELECT count(*) FROM amazon_order_items i ANTI JOIN products p
             ON p.asin = i.asin AND p.sku = i.seller_sku""")
        == 0
    )
    assert (
        q("""SELECT count(*) FROM amazon_orders o
             JOIN (SELECT amazon_order_id, sum(quantity * unit_price_cents) AS s FROM amazon_order_items GROUP BY 1) i
             USING (amazon_order_id) WHERE i.s <> o.total_cents OR o.last_update_date < o.purchase_date""")
        == 0
    )


def test_orders_per_customer_can_be_asked_for_without_losing_the_cycles(tmp_path: Path) -> None:
    truth = generate_shop(tmp_path, seed=1, customers=300, now=NOW, orders_per_customer=10.0)
    assert 9.0 <= truth["totals"]["shopify_orders_per_customer"] <= 11.0
    worst = scalar(
        duckdb.connect(),
        f"""
        WITH buys AS (
            SELECT l.product_id, epoch(o.created_at - lag(o.created_at) OVER (
                       PARTITION BY o.person_id, l.product_id ORDER BY o.created_at)) / 86400 AS days
            FROM '{tmp_path}/orders.parquet' o JOIN '{tmp_path}/order_lines.parquet' l ON l.order_id = o.id)
        SELECT max(abs(days / cycle - 1)) FROM (
            SELECT median(b.days) AS days, any_value(p.true_cycle_days) AS cycle
            FROM buys b JOIN '{tmp_path}/products.parquet' p ON p.id = b.product_id
            WHERE p.is_consumable AND b.days IS NOT NULL GROUP BY p.id HAVING count(*) >= 30)
        """,
    )
    assert worst < 0.1


def test_cli_writes_a_shop_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--seed", "5", "--customers", "50", "--now", "2026-11-24T02:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "orders" in out and str(tmp_path) in out
    assert json.loads((tmp_path / "ground_truth.json").read_text())["persons"]["shopify"] == 50
    with pytest.raises(ValueError, match="customers"):
        generate_shop(tmp_path, customers=1)


def test_cli_asks_for_an_ad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--customers", "50", "--now", "2026-11-24T02:00:00Z", "--fb-ads", "12"]) == 0
    assert "fb ads 12 (" in capsys.readouterr().out
    assert read_table(tmp_path, "fb_ads").num_rows == 12


@pytest.mark.parametrize("argv", [["--customers", "1"], ["--fb-ads", "3"]])
def test_cli_refuses_an_argument_out_of_range_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "shop"), *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and argv[0].lstrip("-").replace("-", "_") in err.splitlines()[-1]
    assert not (tmp_path / "shop").exists()


def test_hearth_sandbox_generate_refuses_an_option_out_of_range(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["sandbox", "generate", "--out", str(tmp_path / "shop"), "--fb-ads", "3"])
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "fb_ads=3" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "shop").exists()
