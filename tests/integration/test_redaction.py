"""GDPR erasure: a Shopify ``customers/redact`` request empties the warehouse of the person.

The shared demo warehouse is copied with its raw zone; a person with guest duplicates
(several Shopify customer records, one email) who was also mailed is picked; the request
arrives through the real webhook processor (HMAC-verified, naming ONE of the records,
the address in another case, delivered twice as Shopify retries), and the next
``dbt build`` -- incremental, as the hourly transform runs it -- must leave no trace of
the address or names anywhere in the warehouse, while the person's orders and revenue
stay counted under one anonymous customer.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hearth.rawzone import RawZone
from hearth.suppressions import Suppressions
from hearth.webhooks import SHOPIFY_HMAC_HEADER, WebhookProcessor, shopify_hmac
from tests.integration.warehouse_fixture import DEMO_NOW, dbt_build

pytestmark = pytest.mark.slow

SECRET = "shpss_redaction_test"
WEBHOOK_ID = "wh-redact-7"


def _one(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    return conn.execute(sql, params or []).fetchall()[0][0]


def _deliver_redact(data_dir: Path, customer_id: int, email: str) -> None:
    processor = WebhookProcessor(
        raw_zone=RawZone(data_dir / "raw"), suppressions=Suppressions(data_dir / "state.sqlite"), shopify_secret=SECRET
    )
    body = json.dumps(
        {
            "shop_id": 954889,
            "shop_domain": "demo.myshopify.com",
            "customer": {"id": customer_id, "email": email.upper(), "phone": None},
            "orders_to_redact": [],
        }
    ).encode()
    headers = {
        SHOPIFY_HMAC_HEADER: shopify_hmac(SECRET, body),
        "X-Shopify-Topic": "customers/redact",
        "X-Shopify-Webhook-Id": WEBHOOK_ID,
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-API-Version": "2026-04",
        "X-Shopify-Triggered-At": DEMO_NOW.isoformat(),
    }
    for _delivery in range(2):  # Shopify retries under the same webhook id
        assert processor.shopify(body, headers).status == 200


def _land_a_send_and_an_event(data_dir: Path, customer_key: str, email: str) -> None:
    """One accepted send to the person in the exported ledger, and its delivery event."""
    stamp = (DEMO_NOW - timedelta(days=2)).isoformat()
    send = {
        "send_key": "send-redact-1", "customer_key": customer_key, "email": email, "sequence": "winback",
        "step": "reminder", "trigger_id": "t-1", "status": "accepted", "reason": "", "message_id": "m-1",
        "run_id": "r-1", "batch_id": "b-1", "created_at": stamp, "updated_at": stamp,
    }  # fmt: skip
    event = {"hearth_send_key": "send-redact-1", "event": "delivered", "email": email, "sg_message_id": "m-1.0"}
    zone = RawZone(data_dir / "raw")
    with zone.open_load("hearth", "sends") as load:
        load.write([send], id_of=lambda r: r["send_key"], updated_at_of=lambda r: r["updated_at"])
    with zone.open_load("hearth", "email_events") as load:
        load.write([event], id_of=lambda r: "send-redact-1:delivered", updated_at_of=lambda r: stamp)


@pytest.fixture(scope="module")
def redacted(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("redaction") / "data"
    shutil.copytree(demo_warehouse, data_dir, ignore=shutil.ignore_patterns("sandbox", "*.wal"))
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        customer_key, email, ids, orders, revenue = conn.execute(
            """
            select customer_key, email, shopify_customer_ids, orders_count, total_revenue
            from customers
            where len(shopify_customer_ids) > 1 and orders_count > 1 and email is not null
            order by orders_count desc, customer_key
            limit 1
            """
        ).fetchall()[0]
        names = conn.execute(
            "select distinct first_name, last_name from int_customer_identities where customer_key = ?", [customer_key]
        ).fetchall()
        before = conn.execute("select count(*), sum(net_revenue) from orders").fetchall()[0]
        lines_before = _one(conn, "select count(*) from order_lines")
    _land_a_send_and_an_event(data_dir, customer_key, email)
    _deliver_redact(data_dir, ids[-1], email)  # the request names only ONE of the person's records
    dbt_build(data_dir, DEMO_NOW)  # incremental, as the hourly transform runs it
    return {
        "data_dir": data_dir, "customer_key": customer_key, "email": email, "ids": ids, "orders": orders,
        "revenue": revenue, "names": names, "before": before, "lines_before": lines_before,
    }  # fmt: skip


@pytest.fixture
def warehouse(redacted: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    with duckdb.connect(str(redacted["data_dir"] / "warehouse.duckdb"), read_only=True) as conn:
        yield conn


def test_the_address_is_nowhere_in_the_warehouse(
    redacted: dict[str, Any], warehouse: duckdb.DuckDBPyConnection
) -> None:
    address = redacted["email"].lower()
    relations = [r[0] for r in warehouse.execute("select table_name from information_schema.tables").fetchall()]
    leaks = {}
    for relation in relations:  # tables and views, staging included
        query = "select column_name from information_schema.columns where table_name = ?"
        columns = [r[0] for r in warehouse.execute(query, [relation]).fetchall()]
        where = " or ".join(f'strpos(lower(cast("{c}" as varchar)), ?) > 0' for c in columns)
        hits = _one(warehouse, f'select count(*) from "{relation}" where {where}', [address] * len(columns))
        if hits:
            leaks[relation] = hits
    assert len(relations) > 30 and leaks == {}


def test_the_persons_records_keep_no_personal_field(
    redacted: dict[str, Any], warehouse: duckdb.DuckDBPyConnection
) -> None:
    rows = warehouse.execute(
        """
        select email, email_raw, first_name, last_name, city, province_code
        from int_customer_identities where shopify_customer_id in (select unnest(?::bigint[]))
        """,
        [redacted["ids"]],
    ).fetchall()
    assert len(rows) == len(redacted["ids"]) and set(rows) == {(None,) * 6}
    assert any(first for first, _last in redacted["names"])  # there were names to erase
    phones = _one(warehouse, "select count(phone) from stg_shopify__customers where redaction_key is not null")
    assert phones == 0
    assert _one(warehouse, "select count(*) from stg_shopify__customer_redactions") == 1  # two deliveries, one request


def test_orders_and_revenue_stay_counted_under_one_anonymous_customer(
    redacted: dict[str, Any], warehouse: duckdb.DuckDBPyConnection
) -> None:
    assert warehouse.execute("select count(*), sum(net_revenue) from orders").fetchall()[0] == redacted["before"]
    assert _one(warehouse, "select count(*) from order_lines") == redacted["lines_before"]
    old = redacted["customer_key"]
    for relation in ("customers", "orders", "order_lines", "customer_rfm", "customer_lifecycle", "segment_members"):
        assert _one(warehouse, f"select count(*) from {relation} where customer_key = ?", [old]) == 0, relation
    [(key, email, ids, orders, revenue, marketable)] = warehouse.execute(
        """
        select customer_key, email, shopify_customer_ids, orders_count, total_revenue, is_marketable
        from customers where customer_key = md5('redacted:' || md5('redaction:' || ?))
        """,
        [WEBHOOK_ID],
    ).fetchall()
    assert (email, sorted(ids), orders, marketable) == (None, sorted(redacted["ids"]), redacted["orders"], False)
    assert revenue == redacted["revenue"] and isinstance(revenue, Decimal)
    # Triggers list everyone due, marketable or not (the policy records why it skips): the
    # anonymous person may be due, but with no address and never marketable.
    due = 0
    for trigger in ("trigger_abandoned_checkouts", "trigger_replenishment", "trigger_winback"):
        rows = warehouse.execute(f"select email, is_marketable from {trigger} where customer_key = ?", [key]).fetchall()
        assert set(rows) <= {(None, False)}, trigger
        due += len(rows)
    assert due > 0  # the person was due something: the check above is not vacuous


def test_sends_and_events_to_the_address_lose_it_and_it_stays_suppressed(
    redacted: dict[str, Any], warehouse: duckdb.DuckDBPyConnection
) -> None:
    assert warehouse.execute(
        "select email, status from stg_hearth__sends where send_key = 'send-redact-1'"
    ).fetchall() == [(None, "accepted")]
    assert warehouse.execute(
        "select email, event from stg_hearth__email_events where send_key = 'send-redact-1'"
    ).fetchall() == [(None, "delivered")]
    assert Suppressions(redacted["data_dir"] / "state.sqlite").is_suppressed(redacted["email"])
