"""The Shopify Admin GraphQL sandbox, driven over HTTP against Shopify's 2026-04 schema."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from shopify_fixtures import TinyShop, build_tiny_shop, day

from sandbox._server import Faults
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table
from sandbox.shopify import SANDBOX_ACCESS_TOKEN, ShopifySandbox
from sandbox.shopify.bulk import BulkOperations

VERSION = "2026-04"
STREAMS = {  # root connection → fixture table
    "customers": "customers",
    "orders": "orders",
    "abandonedCheckouts": "checkouts",
    "products": "products",
}


def iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def post(
    server: ShopifySandbox, query: str, variables: dict | None = None, *, token: str = SANDBOX_ACCESS_TOKEN
) -> requests.Response:
    return requests.post(
        f"{server.url}/admin/api/{VERSION}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": token},
        timeout=10,
    )


def gql(server: ShopifySandbox, query: str, variables: dict | None = None) -> dict[str, Any]:
    """POST a query; every GraphQL answer, data or errors, must carry Shopify's cost extension."""
    response = post(server, query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["extensions"]["cost"]) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
    assert set(body["extensions"]["cost"]["throttleStatus"]) == {
        "maximumAvailable",
        "currentlyAvailable",
        "restoreRate",
    }
    return body


def data(server: ShopifySandbox, query: str, variables: dict | None = None) -> dict[str, Any]:
    body = gql(server, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def page_through(server: ShopifySandbox, root: str, size: int, args: str = "", fields: str = "id") -> list[dict]:
    """Every node of a root connection, following endCursor; checks pageInfo on the way."""
    query = (
        f"query($after: String) {{ {root}(first: {size}, after: $after {args}) {{"
        f" edges {{ cursor node {{ {fields} }} }}"
        " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
    )
    nodes: list[dict] = []
    after = None
    for _ in range(100):
        connection = data(server, query, {"after": after})[root]
        edges, info = connection["edges"], connection["pageInfo"]
        assert len(edges) <= size
        assert info["hasPreviousPage"] == (after is not None and bool(nodes))
        if edges:
            assert info["startCursor"] == edges[0]["cursor"] and info["endCursor"] == edges[-1]["cursor"]
        nodes.extend(edge["node"] for edge in edges)
        if not info["hasNextPage"]:
            return nodes
        after = info["endCursor"]
    raise AssertionError("paging did not end")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> TinyShop:
    return build_tiny_shop(tmp_path_factory.mktemp("tiny-shop"))


@pytest.fixture(scope="module")
def server(shop: TinyShop) -> Iterator[ShopifySandbox]:
    with running(shop.shop_dir, rate_limit=False) as sandbox:
        yield sandbox


@contextmanager
def running(shop_dir: Path, **options: Any) -> Iterator[ShopifySandbox]:
    sandbox = ShopifySandbox(shop_dir, **options)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def ids(rows: list[dict], kind: str) -> list[str]:
    return [f"gid://shopify/{kind}/{row['id']}" for row in rows]


# -- paging, filters, sorting ------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 50])
@pytest.mark.parametrize("root", list(STREAMS))
def test_paging_to_the_end_returns_every_record_exactly_once(
    server: ShopifySandbox, shop: TinyShop, root: str, size: int
) -> None:
    nodes = page_through(server, root, size, args=", sortKey: ID")
    kind = {"customers": "Customer", "orders": "Order", "abandonedCheckouts": "AbandonedCheckout"}.get(root, "Product")
    expected = ids(sorted(shop.tables[STREAMS[root]], key=lambda row: row["id"]), kind)
    assert [node["id"] for node in nodes] == expected
    assert len(set(expected)) == len(shop.tables[STREAMS[root]])


def test_orders_sort_by_processed_at_by_default_as_in_the_schema(server: ShopifySandbox, shop: TinyShop) -> None:
    nodes = data(server, "{ orders(first: 50) { nodes { id processedAt } } }")["orders"]["nodes"]
    expected = sorted(shop.tables["orders"], key=lambda o: (o["processed_at"], o["id"]))
    assert [n["id"] for n in nodes] == ids(expected, "Order")


def test_updated_at_window_is_half_open(server: ShopifySandbox, shop: TinyShop) -> None:
    start, end = day(31), day(63)  # customers 103 and 104 were updated at day 31, customer 101 at day 63
    query = f"updated_at:>='{iso(start)}' AND updated_at:<'{iso(end)}'"
    nodes = page_through(server, "customers", 1, f', sortKey: UPDATED_AT, query: "{query}"', "id updatedAt")
    expected = [c for c in shop.tables["customers"] if start <= c["updated_at"] < end]
    assert [n["id"] for n in nodes] == ids(sorted(expected, key=lambda c: (c["updated_at"], c["id"])), "Customer")
    assert [n["id"] for n in nodes] == ["gid://shopify/Customer/103", "gid://shopify/Customer/104"]
    # The next window starts where this one ended: together they cover everything from `start` once.
    later = page_through(server, "customers", 50, f", sortKey: UPDATED_AT, query: \"updated_at:>='{iso(end)}'\"")
    assert [n["id"] for n in later] == ["gid://shopify/Customer/101", "gid://shopify/Customer/106"]


def test_other_comparators_and_created_at_filter_orders(server: ShopifySandbox, shop: TinyShop) -> None:
    query = f"created_at:>'{iso(day(33))}' AND created_at:<='{iso(day(36))}' updated_at:<'{iso(day(40))}'"
    nodes = data(server, f'{{ orders(first: 50, sortKey: CREATED_AT, query: "{query}") {{ nodes {{ id }} }} }}')
    assert [n["id"] for n in nodes["orders"]["nodes"]] == ids(
        [o for o in shop.tables["orders"] if day(33) < o["created_at"] <= day(36) and o["updated_at"] < day(40)],
        "Order",
    )
    assert len(nodes["orders"]["nodes"]) == 3  # 1004, 1005, 1006 (1003 was updated by its refund at day 78)


def test_sort_key_and_reverse_order_the_pages(server: ShopifySandbox, shop: TinyShop) -> None:
    by_update = sorted(shop.tables["customers"], key=lambda c: (c["updated_at"], c["id"]))
    forward = page_through(server, "customers", 2, ", sortKey: UPDATED_AT")
    backward = page_through(server, "customers", 2, ", sortKey: UPDATED_AT, reverse: true")
    assert [n["id"] for n in forward] == ids(by_update, "Customer")
    assert [n["id"] for n in backward] == ids(by_update[::-1], "Customer")
    assert [n["id"] for n in page_through(server, "orders", 5, ", sortKey: CREATED_AT, reverse: true")] == ids(
        sorted(shop.tables["orders"], key=lambda o: o["created_at"], reverse=True), "Order"
    )


def test_last_and_before_page_backwards(server: ShopifySandbox) -> None:
    page = data(server, "{ products(first: 3) { edges { cursor } } }")["products"]["edges"]
    tail = data(server, f'{{ products(last: 1, before: "{page[2]["cursor"]}") {{ nodes {{ id }} pageInfo {{'
                        " hasNextPage hasPreviousPage } } }")["products"]  # fmt: skip
    assert tail["nodes"] == [{"id": "gid://shopify/Product/202"}]
    assert tail["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": True}


# -- rendered objects ---------------------------------------------------------------------

ORDER_FIELDS = """
  id name email createdAt processedAt updatedAt cancelledAt cancelReason displayFinancialStatus
  currencyCode presentmentCurrencyCode customer { id } discountCodes sourceName
  subtotalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  totalDiscountsSet { shopMoney { amount } } totalShippingPriceSet { shopMoney { amount } }
  totalTaxSet { shopMoney { amount } }
  totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  totalRefundedSet { shopMoney { amount } presentmentMoney { amount } }
  lineItems(first: 5) { nodes { id title sku quantity variant { id } product { id }
    originalUnitPriceSet { shopMoney { amount } presentmentMoney { amount currencyCode } }
    discountedTotalSet { shopMoney { amount } } totalDiscountSet { shopMoney { amount } } } }
  refunds { id createdAt totalRefundedSet { shopMoney { amount } }
    refundLineItems(first: 5) { nodes { lineItem { id } quantity subtotalSet { shopMoney { amount } } } } }
  customerJourneySummary { firstVisit { source utmParameters { source campaign medium } } }
"""


def test_order_money_is_exact_in_shop_and_presentment_currency(server: ShopifySandbox) -> None:
    query = f'{{ orders(first: 2, query: "id:1002") {{ nodes {{ {ORDER_FIELDS} }} }} }}'
    (order,) = data(server, query)["orders"]["nodes"]
    # 2 × 18.00 + 5.00 shipping + 2.88 tax = 43.88 USD; EUR at 0.9215: round(4388 × 0.9215) = 4044 cents.
    assert order["totalPriceSet"] == {
        "shopMoney": {"amount": "43.88", "currencyCode": "USD"},
        "presentmentMoney": {"amount": "40.44", "currencyCode": "EUR"},
    }
    assert order["subtotalPriceSet"]["presentmentMoney"] == {"amount": "33.17", "currencyCode": "EUR"}  # 3600×0.9215
    assert (order["currencyCode"], order["presentmentCurrencyCode"]) == ("USD", "EUR")
    assert order["lineItems"]["nodes"][0]["originalUnitPriceSet"] == {
        "shopMoney": {"amount": "18.00"},
        "presentmentMoney": {"amount": "16.59", "currencyCode": "EUR"},
    }
    assert order["totalShippingPriceSet"]["shopMoney"]["amount"] == "5.00"
    assert order["totalTaxSet"]["shopMoney"]["amount"] == "2.88"


def test_partly_refunded_order_carries_lines_refunds_and_attribution(server: ShopifySandbox) -> None:
    query = f'{{ orders(first: 2, query: "id:1003") {{ nodes {{ {ORDER_FIELDS} }} }} }}'
    (order,) = data(server, query)["orders"]["nodes"]
    assert order["displayFinancialStatus"] == "PARTIALLY_REFUNDED"
    assert order["updatedAt"] == "2025-03-20T00:00:00Z"
    assert order["customer"] == {"id": "gid://shopify/Customer/102"}
    assert order["discountCodes"] == ["WELCOME10"]
    assert order["totalDiscountsSet"]["shopMoney"]["amount"] == "10.00"
    assert order["totalPriceSet"]["shopMoney"]["amount"] == "114.49"  # 24.50 + 99.99 - 10.00
    assert order["totalRefundedSet"]["shopMoney"]["amount"] == "24.50"
    lines = order["lineItems"]["nodes"]
    assert [(li["id"], li["sku"], li["quantity"]) for li in lines] == [
        ("gid://shopify/LineItem/70003", "SKU-202", 1),
        ("gid://shopify/LineItem/70004", "SKU-203", 1),
    ]
    assert lines[1]["variant"] == {"id": "gid://shopify/ProductVariant/303"}
    assert lines[1]["product"] == {"id": "gid://shopify/Product/203"}
    assert lines[1]["discountedTotalSet"]["shopMoney"]["amount"] == "89.99"
    assert lines[1]["totalDiscountSet"]["shopMoney"]["amount"] == "10.00"
    assert order["refunds"] == [
        {
            "id": "gid://shopify/Refund/5001",
            "createdAt": "2025-03-20T00:00:00Z",
            "totalRefundedSet": {"shopMoney": {"amount": "24.50"}},
            "refundLineItems": {
                "nodes": [
                    {
                        "lineItem": {"id": "gid://shopify/LineItem/70003"},
                        "quantity": 1,
                        "subtotalSet": {"shopMoney": {"amount": "24.50"}},
                    }
                ]
            },
        }
    ]
    assert order["customerJourneySummary"]["firstVisit"] == {
        "source": "facebook",
        "utmParameters": {"source": "facebook", "campaign": "120200000000001", "medium": "paid_social"},
    }


def test_cancelled_order_and_guest_order(server: ShopifySandbox) -> None:
    query = '{ orders(first: 5, query: "id:>=1005 AND id:<=1010") { nodes { id cancelledAt cancelReason'
    query += " displayFinancialStatus customer { id } } } }"
    nodes = {n["id"][-4:]: n for n in data(server, query)["orders"]["nodes"]}
    assert nodes["1005"]["cancelledAt"] == "2025-02-06T00:00:00Z"
    assert (nodes["1005"]["cancelReason"], nodes["1005"]["displayFinancialStatus"]) == ("CUSTOMER", "VOIDED")
    assert nodes["1006"]["cancelledAt"] is None
    assert "1010" not in nodes  # first: 5 stops at 1009
    guest = data(server, '{ orders(first: 1, query: "id:1010") { nodes { customer { id } } } }')
    assert guest["orders"]["nodes"] == [{"customer": None}]


def test_customer_fields(server: ShopifySandbox) -> None:
    query = """{ customers(first: 10) { nodes { id firstName lastName displayName tags createdAt updatedAt
      defaultEmailAddress { emailAddress marketingState marketingOptInLevel marketingUpdatedAt }
      defaultPhoneNumber { phoneNumber } defaultAddress { city provinceCode countryCodeV2 }
      numberOfOrders amountSpent { amount currencyCode } } } }"""
    nodes = {n["id"]: n for n in data(server, query)["customers"]["nodes"]}
    ada = nodes["gid://shopify/Customer/101"]
    assert ada["defaultEmailAddress"] == {
        "emailAddress": " Ada@Example.com",  # as typed: normalising is the warehouse's job
        "marketingState": "SUBSCRIBED",
        "marketingOptInLevel": "SINGLE_OPT_IN",
        "marketingUpdatedAt": "2025-01-01T00:00:00Z",
    }
    assert ada["tags"] == ["vip", "coffee"]
    assert (ada["displayName"], ada["createdAt"], ada["updatedAt"]) == (
        "Ada Lovelace",
        "2025-01-01T00:00:00Z",
        "2025-03-05T00:00:00Z",
    )
    # Orders 1001, 1002, 1007, 1012: 24.44 + 43.88 + 107.99 + 24.50.
    assert (ada["numberOfOrders"], ada["amountSpent"]) == ("4", {"amount": "200.81", "currencyCode": "USD"})
    cleo = nodes["gid://shopify/Customer/103"]
    assert cleo["defaultEmailAddress"] is None
    assert cleo["defaultPhoneNumber"] == {"phoneNumber": "+15550100"}
    assert (cleo["displayName"], cleo["lastName"]) == ("Cleo", None)
    assert nodes["gid://shopify/Customer/104"]["amountSpent"]["amount"] == "0.00"  # its one order was cancelled
    assert nodes["gid://shopify/Customer/106"]["defaultAddress"] == {
        "city": "Berlin",
        "provinceCode": None,
        "countryCodeV2": "DE",
    }


def test_abandoned_checkouts_expose_email_only_through_the_customer(server: ShopifySandbox) -> None:
    query = """{ abandonedCheckouts(first: 10) { nodes { id abandonedCheckoutUrl completedAt createdAt updatedAt
      customer { id defaultEmailAddress { emailAddress marketingState } }
      lineItems(first: 5) { nodes { title sku quantity variant { id } originalUnitPriceSet { shopMoney { amount } } } }
      subtotalPriceSet { shopMoney { amount } }
      totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } } } } }"""
    nodes = {n["id"][-3:]: n for n in data(server, query)["abandonedCheckouts"]["nodes"]}
    assert nodes["601"]["customer"]["defaultEmailAddress"]["emailAddress"] == " Ada@Example.com"
    assert nodes["601"]["abandonedCheckoutUrl"] == "https://hearth-demo.myshopify.com/checkouts/601/recover"
    assert nodes["602"]["customer"] is None  # anonymous: nothing to mail
    assert nodes["603"]["completedAt"] == "2025-02-22T12:00:00Z"
    assert nodes["601"]["completedAt"] is None
    assert nodes["604"]["totalPriceSet"] == {
        "shopMoney": {"amount": "72.00", "currencyCode": "USD"},
        "presentmentMoney": {"amount": "66.35", "currencyCode": "EUR"},
    }
    assert [(li["sku"], li["quantity"]) for li in nodes["604"]["lineItems"]["nodes"]] == [
        ("SKU-201", 1),
        ("SKU-202", 2),
    ]
    # The 2026-04 schema has no AbandonedCheckout.email and no UPDATED_AT sort key for checkouts.
    no_email = gql(server, "{ abandonedCheckouts(first: 1) { nodes { email } } }")
    assert "Cannot query field 'email' on type 'AbandonedCheckout'" in no_email["errors"][0]["message"]
    no_sort = gql(server, "{ abandonedCheckouts(first: 1, sortKey: UPDATED_AT) { nodes { id } } }")
    assert "AbandonedCheckoutSortKeys" in no_sort["errors"][0]["message"]


def test_products_with_image_and_variants(server: ShopifySandbox) -> None:
    query = """{ products(first: 5) { nodes { id title handle productType vendor createdAt updatedAt
      featuredMedia { ... on MediaImage { image { url } } } variants(first: 5) { nodes { id sku price } } } } }"""
    roast, _, grinder = data(server, query)["products"]["nodes"]
    assert roast["featuredMedia"] == {"image": {"url": "https://cdn.example.com/roast.png"}}
    assert roast["variants"]["nodes"] == [{"id": "gid://shopify/ProductVariant/301", "sku": "COF-1", "price": "18.00"}]
    assert (roast["handle"], roast["productType"], roast["vendor"]) == ("morning-roast", "Coffee", "Hearth Goods")
    assert grinder["featuredMedia"] is None


# -- errors -------------------------------------------------------------------------------


def test_wrong_or_missing_token_is_401(server: ShopifySandbox) -> None:
    for token in ("shpat_wrong", ""):
        response = post(server, "{ shop { name } }", token=token)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


def test_unknown_api_version_is_404_naming_the_served_one(server: ShopifySandbox) -> None:
    response = requests.post(
        f"{server.url}/admin/api/2024-01/graphql.json",
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
        timeout=10,
    )
    assert response.status_code == 404
    assert "2026-04" in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ customers(first: 1) { nodes { nope } } }", "Cannot query field 'nope' on type 'Customer'"),
        ("{ customers(first: 1) { nodes { id }", "Syntax Error"),
        ("{ draftOrders(first: 1) { nodes { id } } }", "'draftOrders' is not supported by the Hearth sandbox"),
        ("{ customers(first: 251) { nodes { id } } }", "Expected a page size from 0 to 250"),
        ("{ customers { nodes { id } } }", "you must provide one of first or last"),
        ("{ orders(first: 1) { nodes { lineItems { nodes { id } } } } }", "you must provide one of first or last"),
        ('{ customers(first: 1, query: "email:a@b.c") { nodes { id } } }', "unsupported search field 'email'"),
        ('{ customers(first: 1, query: "id:1 OR id:2") { nodes { id } } }', "unsupported search term 'OR'"),
        ('{ customers(first: 1, query: "-id:1") { nodes { id } } }', "unsupported search term '-id:1'"),
        ('{ orders(first: 1, query: "updated_at:>now") { nodes { id } } }', "unsupported value"),
        ("{ customers(first: 1, sortKey: NAME) { nodes { id } } }", "sortKey NAME on customers is not supported"),
        ('{ customers(first: 1, after: "bm9wZQ==") { nodes { id } } }', "Invalid cursor"),
        ("{ customers(first: 1) { nodes { lifetimeDuration } } }", "Customer.lifetimeDuration is not supported"),
    ],
)
def test_unsupported_or_invalid_queries_get_a_clear_error_never_empty_data(
    server: ShopifySandbox, query: str, message: str
) -> None:
    body = gql(server, query)
    assert any(message in error["message"] for error in body["errors"]), body["errors"]
    assert body.get("data") is None


# -- cost and throttling ------------------------------------------------------------------


def test_cost_extension_prices_requested_and_returned_nodes(server: ShopifySandbox) -> None:
    body = gql(server, "{ customers(first: 50) { nodes { id amountSpent { amount } } pageInfo { hasNextPage } } }")
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 50 * 2  # connection + 50 × (customer + MoneyV2)
    assert cost["actualQueryCost"] == 2 + 7 * 2  # seven customers came back
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 2000, "restoreRate": 100.0}
    nested = gql(server, '{ orders(first: 2, query: "id:1003") { nodes { lineItems(first: 10) { nodes { id } } } } }')
    assert nested["extensions"]["cost"]["requestedQueryCost"] == 2 + 2 * (1 + 2 + 10)
    assert nested["extensions"]["cost"]["actualQueryCost"] == 2 + 1 * (1 + 2 + 2)


def test_query_over_1000_points_is_refused_with_max_cost_exceeded(server: ShopifySandbox) -> None:
    body = gql(server, "{ orders(first: 250) { nodes { lineItems(first: 10) { nodes { id } } } } }")
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 3252, "maxCost": 1000}
    assert error["message"].startswith("Query cost is 3252, which exceeds the single query max cost limit (1000).")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 3252


def test_bucket_throttles_with_shopifys_body_when_empty(shop: TinyShop) -> None:
    query = "{ customers(first: 7) { nodes { id } } }"  # requested 9 = actual 9
    with running(shop.shop_dir, bucket_size=20, restore_rate=0.0) as sandbox:
        first, second, third = (post(sandbox, query) for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert first.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 11
    assert second.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2
    assert third.json() == {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 9,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 20.0, "currentlyAvailable": 2, "restoreRate": 0.0},
            }
        },
    }
    with running(shop.shop_dir, bucket_size=20, restore_rate=0.0, rate_limit=False) as unlimited:
        assert all("errors" not in gql(unlimited, query) for _ in range(5))


def test_unused_points_are_given_back(shop: TinyShop) -> None:
    with running(shop.shop_dir, bucket_size=300, restore_rate=0.0) as sandbox:
        body = gql(sandbox, "{ customers(first: 250) { nodes { id } } }")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 252
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 300 - 9


# -- bulk operations ----------------------------------------------------------------------

BULK_RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
  bulkOperation { id status } userErrors { field message code } } }"""
BULK_FIELDS = "id status errorCode objectCount rootObjectCount fileSize url partialDataUrl createdAt completedAt query"


def wait_for_bulk(server: ShopifySandbox, gid: str) -> dict[str, Any]:
    for _ in range(500):
        operation = data(server, f'{{ bulkOperation(id: "{gid}") {{ {BULK_FIELDS} }} }}')["bulkOperation"]
        if operation["status"] not in ("CREATED", "RUNNING"):
            return operation
        time.sleep(0.01)
    raise AssertionError(f"bulk operation {gid} did not finish")


def test_bulk_operation_end_to_end_writes_jsonl_with_parent_ids(server: ShopifySandbox, shop: TinyShop) -> None:
    bulk_query = "{ orders(sortKey: ID) { edges { node { id name lineItems { edges { node { id sku } } } } } } }"
    started = data(server, BULK_RUN, {"q": bulk_query})["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "CREATED"
    operation = wait_for_bulk(server, started["bulkOperation"]["id"])
    current = data(server, f"{{ currentBulkOperation {{ {BULK_FIELDS} }} }}")["currentBulkOperation"]
    assert current == operation
    assert (operation["status"], operation["errorCode"], operation["query"]) == ("COMPLETED", None, bulk_query)
    download = requests.get(operation["url"], timeout=10)
    assert download.status_code == 200
    lines = [json.loads(line) for line in download.text.splitlines()]
    roots = [line for line in lines if "__parentId" not in line]
    assert roots == [{"id": f"gid://shopify/Order/{o['id']}", "name": o["name"]} for o in shop.tables["orders"]]
    children = [line for line in lines if "__parentId" in line]
    assert children == [
        {"id": f"gid://shopify/LineItem/{li['id']}", "sku": li["sku"], "__parentId": f"gid://shopify/Order/{li['order_id']}"}
        for li in shop.tables["order_lines"]
    ]  # fmt: skip
    assert lines.index(children[0]) == 1  # children follow their parent
    assert operation["objectCount"] == str(len(lines)) == str(12 + len(shop.tables["order_lines"]))
    assert operation["rootObjectCount"] == "12"
    assert operation["fileSize"] == str(len(download.content))
    assert operation["partialDataUrl"] is None and operation["completedAt"] is not None


def test_bulk_lines_match_what_paging_returns(server: ShopifySandbox) -> None:
    fields = """id firstName displayName tags defaultEmailAddress { emailAddress marketingState }
                amountSpent { amount currencyCode } defaultAddress { countryCodeV2 } updatedAt"""
    window = f"updated_at:>='{iso(day(5))}'"
    bulk_query = f'{{ customers(sortKey: UPDATED_AT, reverse: true, query: "{window}") {{ nodes {{ {fields} }} }} }}'
    started = data(server, BULK_RUN, {"q": bulk_query})["bulkOperationRunQuery"]
    operation = wait_for_bulk(server, started["bulkOperation"]["id"])
    lines = [json.loads(line) for line in requests.get(operation["url"], timeout=10).text.splitlines()]
    paged = page_through(server, "customers", 2, f', sortKey: UPDATED_AT, reverse: true, query: "{window}"', fields)
    assert lines == paged and len(lines) == 6  # every customer but 102


def test_bulk_rejects_invalid_and_concurrent_queries_and_fails_bad_searches(
    server: ShopifySandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    invalid = data(server, BULK_RUN, {"q": "{ customers { nodes { nope } } }"})["bulkOperationRunQuery"]
    assert invalid["bulkOperation"] is None
    assert invalid["userErrors"][0]["code"] == "INVALID" and "nope" in invalid["userErrors"][0]["message"]
    too_deep = "{ products { nodes { id collections { nodes { id products { nodes { id } } } } } } }"
    refused = data(server, BULK_RUN, {"q": too_deep})["bulkOperationRunQuery"]["userErrors"]
    assert refused[0]["code"] == "INVALID" and "nested at most 2 deep" in refused[0]["message"]

    gate = threading.Event()
    original = BulkOperations._run

    def held_run(self: BulkOperations, *args: Any) -> None:
        gate.wait(10)
        original(self, *args)

    monkeypatch.setattr(BulkOperations, "_run", held_run)
    first = data(server, BULK_RUN, {"q": "{ products { nodes { id } } }"})["bulkOperationRunQuery"]
    second = data(server, BULK_RUN, {"q": "{ customers { nodes { id } } }"})["bulkOperationRunQuery"]
    gate.set()
    assert second["bulkOperation"] is None
    assert second["userErrors"] == [
        {
            "field": None,
            "message": "A bulk query operation for this app and shop is already in progress: "
            f"{first['bulkOperation']['id']}.",
            "code": "OPERATION_IN_PROGRESS",
        }
    ]
    assert wait_for_bulk(server, first["bulkOperation"]["id"])["status"] == "COMPLETED"

    bad_search = data(server, BULK_RUN, {"q": '{ orders(query: "email:x") { nodes { id } } }'})
    failed = wait_for_bulk(server, bad_search["bulkOperationRunQuery"]["bulkOperation"]["id"])
    assert (failed["status"], failed["errorCode"], failed["url"]) == ("FAILED", "INTERNAL_SERVER_ERROR", None)
    assert "unsupported search field 'email'" in (server.bulk.get(failed["id"]).failure or "")  # type: ignore[union-attr]


# -- faults and reloads -------------------------------------------------------------------


def test_faults_are_deterministic_for_a_seed(shop: TinyShop) -> None:
    def run(seed: int) -> list[tuple[int, str]]:
        faults = Faults(error_rate=0.25, throttle_rate=0.25, seed=seed)
        with running(shop.shop_dir, faults=faults, rate_limit=False) as sandbox:
            outcomes = []
            for _ in range(24):
                response = post(sandbox, "{ customers(first: 2) { nodes { id } } }")
                body = response.json()
                code = body["errors"][0]["extensions"]["code"] if "errors" in body else "OK"
                outcomes.append((response.status_code, code))
            return outcomes

    outcomes = run(7)
    assert outcomes == run(7)
    assert outcomes != run(8)
    assert {code for _, code in outcomes} == {"OK", "THROTTLED", "INTERNAL_SERVER_ERROR"}
    assert all(status == 200 for status, code in outcomes if code == "THROTTLED")
    assert all(status in (500, 502, 503) for status, code in outcomes if code == "INTERNAL_SERVER_ERROR")


def test_reload_serves_changed_parquet_files(tmp_path: Path) -> None:
    shop = build_tiny_shop(tmp_path)
    window = f"query: \"updated_at:>='{iso(day(100))}'\""
    with running(shop.shop_dir, rate_limit=False) as sandbox:
        query = f"{{ customers(first: 10, sortKey: UPDATED_AT, {window}) {{ nodes {{ id firstName }} }} }}"
        assert data(sandbox, query)["customers"]["nodes"] == []
        shop.tables["customers"][1].update(first_name="Bri", updated_at=day(101))
        shop.tables["customers"].append({**shop.tables["customers"][0], "id": 108, "updated_at": day(100)})
        shop.write("customers")
        sandbox.reload()
        assert data(sandbox, query)["customers"]["nodes"] == [
            {"id": "gid://shopify/Customer/108", "firstName": "Ada"},
            {"id": "gid://shopify/Customer/102", "firstName": "Bri"},
        ]


def test_env_points_the_connector_at_the_sandbox(server: ShopifySandbox) -> None:
    assert server.env() == {
        "SHOPIFY_API_URL": server.url,
        "SHOPIFY_ACCESS_TOKEN": SANDBOX_ACCESS_TOKEN,
        "SHOPIFY_API_VERSION": "2026-04",
    }
    assert data(server, "{ shop { name currencyCode myshopifyDomain } }")["shop"] == {
        "name": "Hearth Demo Shop",
        "currencyCode": "USD",
        "myshopifyDomain": "hearth-demo.myshopify.com",
    }


# -- a generated shop ---------------------------------------------------------------------


def test_a_generated_shop_pages_to_the_end(tmp_path: Path) -> None:
    generate_shop(tmp_path, seed=5, customers=300, now=datetime(2026, 1, 1, tzinfo=UTC))
    tables = {name: read_table(tmp_path, name) for name in ("customers", "orders", "checkouts", "products")}
    with running(tmp_path, rate_limit=False) as sandbox:
        for root, table in STREAMS.items():
            nodes = page_through(sandbox, root, 100, ", sortKey: UPDATED_AT" if root != "abandonedCheckouts" else "")
            got = sorted(int(node["id"].rsplit("/", 1)[1]) for node in nodes)
            assert got == sorted(tables[table].column("id").to_pylist()), root
        totals = page_through(sandbox, "orders", 250, "", "totalPriceSet { shopMoney { amount } }")
    cents = sum(round(float(n["totalPriceSet"]["shopMoney"]["amount"]) * 100) for n in totals)
    assert cents == sum(tables["orders"].column("total_cents").to_pylist())
