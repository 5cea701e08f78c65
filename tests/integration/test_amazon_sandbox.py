"""The Amazon SP-API sandbox against the Orders v2026-01-01 model and the LWA token contract."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from sandbox._server import Faults
from sandbox.amazon import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN, AmazonSandbox
from sandbox.amazon.orders import FULFILLED_BY, FULFILLMENT_STATUSES, INCLUDED_DATA
from sandbox.amazon.server import ORDERS_PATH, SEARCH_PARAMS, TOKEN_PATH
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table, write_table
from sandbox.specs import amazon_operation, amazon_validator

US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
SEARCH_RESPONSE = amazon_validator("SearchOrdersResponse")
GET_RESPONSE = amazon_validator("GetOrderResponse")
ERROR_LIST = amazon_validator("ErrorList")

# (order id, created, updated, marketplace, status, fulfilled by, total cents)
ORDERS = [
    ("111-0000001-0000001", T0, T0 + timedelta(days=4), US, "SHIPPED", "MERCHANT", 2500),
    ("111-0000002-0000002", T0 + timedelta(days=1), T0 + timedelta(days=1), US, "UNSHIPPED", "AMAZON", 1299),
    ("111-0000003-0000003", T0 + timedelta(days=2), T0 + timedelta(days=9), CA, "CANCELLED", "MERCHANT", 4000),
    ("111-0000005-0000005", T0 + timedelta(days=3), T0 + timedelta(days=3), US, "SHIPPED", "AMAZON", 999),
    ("111-0000004-0000004", T0 + timedelta(days=3), T0 + timedelta(days=5), US, "SHIPPED", "MERCHANT", 1000),
    ("111-0000006-0000006", T0 + timedelta(days=5), T0 + timedelta(days=6), US, "PENDING", "MERCHANT", 3050),
    (
        "111-0000007-0000007",
        T0 + timedelta(days=6, microseconds=750_000),
        T0 + timedelta(days=7),
        US,
        "SHIPPED",
        "MERCHANT",
        1500,
    ),
]


def build_shop(shop_dir: Path, orders: list[tuple[Any, ...]] = ORDERS) -> None:
    rows = [
        {
            "amazon_order_id": oid,
            "person_id": n,
            "buyer_email": f"buyer{n}@marketplace.amazon.com",
            "buyer_name": f"Buyer {n}",
            "marketplace_id": market,
            "purchase_date": created,
            "last_update_date": updated,
            "order_status": status,
            "fulfilled_by": by,
            "currency": "USD" if market == US else "CAD",
            "total_cents": total,
            "ship_country_code": "US" if market == US else "CA",
            "ship_postal_code": f"{10000 + n}",
        }
        for n, (oid, created, updated, market, status, by, total) in enumerate(orders, start=1)
    ]
    items = [
        {
            "order_item_id": f"{oid}-{k}",
            "amazon_order_id": oid,
            "asin": f"B00000000{k}",
            "seller_sku": f"SKU-{k}",
            "title": f"Product {k}",
            "quantity": k,
            "unit_price_cents": 1250,
        }
        for oid, *_ in orders
        for k in (1, 2)
    ]
    write_table(shop_dir, "amazon_orders", pa.Table.from_pylist(rows))
    write_table(shop_dir, "amazon_order_items", pa.Table.from_pylist(items))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    build_shop(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmazonSandbox]:
    # One server for the read-only tests: stopping a server costs ~0.5 s (the serve loop's poll).
    shop_dir = tmp_path_factory.mktemp("amazon-shop")
    build_shop(shop_dir)
    with AmazonSandbox(shop_dir, rate_per_second=None) as server:
        yield server


@pytest.fixture
def amazon(shared_server: AmazonSandbox, monkeypatch: pytest.MonkeyPatch) -> AmazonSandbox:
    monkeypatch.setattr(shared_server, "clock", shared_server.clock)  # tests may move the clock
    return shared_server


@pytest.fixture
def own_server(shop: Path) -> Iterator[AmazonSandbox]:
    with AmazonSandbox(shop, rate_per_second=None) as server:
        yield server


def token(server: AmazonSandbox, **overrides: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": SANDBOX_REFRESH_TOKEN,
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        **overrides,
    }
    return requests.post(server.url + TOKEN_PATH, data=form, timeout=5)


def access_token(server: AmazonSandbox) -> str:
    response = token(server)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def search(server: AmazonSandbox, tok: str, **params: Any) -> requests.Response:
    params.setdefault("marketplaceIds", US)
    return requests.get(server.url + ORDERS_PATH, params=params, headers={"x-amz-access-token": tok}, timeout=5)


def page_all(server: AmazonSandbox, tok: str, **params: Any) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = search(server, tok, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        SEARCH_RESPONSE.validate(body)
        assert response.headers["x-amzn-RateLimit-Limit"] and response.headers["x-amzn-RequestId"]
        orders += body["orders"]
        pages += 1
        assert pages < 100
        if "pagination" not in body:
            return orders
        params["paginationToken"] = body["pagination"]["nextToken"]


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    ERROR_LIST.validate(body)
    assert body["errors"][0]["code"] == code
    assert response.headers["x-amzn-RequestId"]
    return body["errors"][0]


# -- the contract constants agree with the model ----------------------------------------------


def test_parameters_and_enums_match_the_model() -> None:
    params = {p["name"]: p for p in amazon_operation(ORDERS_PATH)["parameters"]}
    assert set(params) == SEARCH_PARAMS
    assert tuple(params["fulfillmentStatuses"]["items"]["enum"]) == FULFILLMENT_STATUSES
    assert tuple(params["fulfilledBy"]["items"]["enum"]) == FULFILLED_BY
    assert tuple(params["includedData"]["items"]["enum"]) == INCLUDED_DATA


# -- Login with Amazon --------------------------------------------------------------------------


def test_token_flow(amazon: AmazonSandbox) -> None:
    issued = amazon.tokens_issued
    response = token(amazon)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["refresh_token"] == SANDBOX_REFRESH_TOKEN and body["access_token"].startswith("Atza|")
    assert access_token(amazon) != body["access_token"]
    assert amazon.tokens_issued == issued + 2
    assert search(amazon, body["access_token"], createdAfter="2025-01-01T00:00:00Z").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"refresh_token": "Atzr|wrong"}, 400, "invalid_grant"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "amzn1.application-oa2-client.other"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
        ({"refresh_token": ""}, 400, "invalid_request"),
    ],
)
def test_token_errors(amazon: AmazonSandbox, overrides: dict[str, str], status: int, error: str) -> None:
    issued = amazon.tokens_issued
    response = token(amazon, **overrides)
    assert response.status_code == status
    assert set(response.json()) == {"error", "error_description"}
    assert response.json()["error"] == error
    assert amazon.tokens_issued == issued


def test_token_request_must_be_a_form(amazon: AmazonSandbox) -> None:
    response = requests.post(amazon.url + TOKEN_PATH, json={"grant_type": "refresh_token"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("header", [None, "Atza|not-issued-here"])
def test_missing_or_unknown_access_token_is_403(amazon: AmazonSandbox, header: str | None) -> None:
    headers = {"x-amz-access-token": header} if header else {}
    response = requests.get(
        amazon.url + ORDERS_PATH,
        params={"createdAfter": "2025-01-01T00:00:00Z", "marketplaceIds": US},
        headers=headers,
        timeout=5,
    )
    error = assert_error(response, 403, "Unauthorized")
    assert error["message"] == "Access to requested resource is denied."


def test_expired_access_token_is_403(shop: Path) -> None:
    with AmazonSandbox(shop, rate_per_second=None, token_ttl_seconds=0) as server:
        response = search(server, access_token(server), createdAfter="2025-01-01T00:00:00Z")
        assert "expired" in assert_error(response, 403, "Unauthorized")["details"]


# -- searchOrders ----------------------------------------------------------------------------


def test_paging_returns_every_order_once_in_created_order(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    orders = page_all(amazon, tok, createdAfter="2025-01-01T00:00:00Z", maxResultsPerPage=2)
    expected = sorted((o for o in ORDERS if o[3] == US), key=lambda o: (o[1].replace(microsecond=0), o[0]))
    assert [o["orderId"] for o in orders] == [o[0] for o in expected]
    assert orders[-1]["createdTime"] == "2025-03-07T10:00:00Z"  # whole seconds, like Amazon
    assert all(len(o["orderItems"]) == 2 for o in orders)


def test_page_shape_and_echoed_bound(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    body = search(amazon, tok, createdAfter="2025-03-01T10:00:00Z", createdBefore="2025-03-04T10:00:00Z").json()
    assert [o["orderId"] for o in body["orders"]] == [
        "111-0000001-0000001",
        "111-0000002-0000002",
        "111-0000004-0000004",
        "111-0000005-0000005",
    ]  # both bounds inclusive; equal times sort by orderId
    assert body["createdBefore"] == "2025-03-04T10:00:00Z"
    assert "pagination" not in body and "lastUpdatedBefore" not in body
    order = body["orders"][0]
    assert order["salesChannel"] == {"channelName": "AMAZON", "marketplaceId": US, "marketplaceName": "Amazon.com"}
    assert order["orderItems"][1] == {
        "orderItemId": "111-0000001-0000001-2",
        "quantityOrdered": 2,
        "product": {
            "asin": "B000000002",
            "title": "Product 2",
            "sellerSku": "SKU-2",
            "price": {"unitPrice": {"amount": "12.50", "currencyCode": "USD"}},
        },
    }
    assert not {"buyer", "proceeds", "fulfillment", "recipient"} & set(order)


def test_default_upper_bound_is_two_minutes_before_now(amazon: AmazonSandbox) -> None:
    amazon.clock = lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    body = search(amazon, access_token(amazon), lastUpdatedAfter="2025-03-06T00:00:00Z").json()
    assert body["lastUpdatedBefore"] == "2026-01-01T11:58:00Z" and "createdBefore" not in body


def test_included_data_renders_buyer_proceeds_fulfillment_recipient(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    body = search(
        amazon,
        tok,
        createdAfter="2025-03-01T10:00:00Z",
        createdBefore="2025-03-01T10:00:00Z",
        includedData="BUYER,PROCEEDS,FULFILLMENT,RECIPIENT,TAX",
    ).json()
    SEARCH_RESPONSE.validate(body)
    (order,) = body["orders"]
    assert order["buyer"] == {"buyerName": "Buyer 1", "buyerEmail": "buyer1@marketplace.amazon.com"}
    assert order["proceeds"] == {"grandTotal": {"amount": "25.00", "currencyCode": "USD"}}
    assert order["fulfillment"] == {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "MERCHANT"}
    assert order["recipient"] == {"deliveryAddress": {"postalCode": "10001", "countryCode": "US"}}
    item = order["orderItems"][1]
    assert item["proceeds"] == {"proceedsTotal": {"amount": "25.00", "currencyCode": "USD"}}
    assert item["fulfillment"] == {"quantityFulfilled": 2, "quantityUnfulfilled": 0}


def test_last_updated_search_sorts_by_update_time(amazon: AmazonSandbox) -> None:
    orders = page_all(
        amazon,
        access_token(amazon),
        lastUpdatedAfter="2025-03-05T10:00:00Z",
        marketplaceIds=f"{US},{CA}",
        maxResultsPerPage=1,
    )
    assert [o["orderId"] for o in orders] == [
        "111-0000001-0000001",  # updated 03-05
        "111-0000004-0000004",  # 03-06
        "111-0000006-0000006",  # 03-07
        "111-0000007-0000007",  # 03-08
        "111-0000003-0000003",  # 03-10 (CA)
    ]
    assert [o["lastUpdatedTime"] for o in orders] == sorted(o["lastUpdatedTime"] for o in orders)


def test_status_and_fulfilled_by_filters(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    shipped = search(
        amazon, tok, createdAfter="2025-01-01T00:00:00Z", fulfillmentStatuses="SHIPPED,PENDING", fulfilledBy="MERCHANT"
    ).json()
    assert [o["orderId"] for o in shipped["orders"]] == [
        "111-0000001-0000001",
        "111-0000004-0000004",
        "111-0000006-0000006",
        "111-0000007-0000007",
    ]
    canada = search(amazon, tok, createdAfter="2025-01-01T00:00:00Z", marketplaceIds=CA).json()
    assert [o["orderId"] for o in canada["orders"]] == ["111-0000003-0000003"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"createdAfter": "2025-01-01T00:00:00Z", "lastUpdatedAfter": "2025-01-01T00:00:00Z"},
        {"createdAfter": "2025-01-01T00:00:00Z", "lastUpdatedBefore": "2025-06-01T00:00:00Z"},
        {"lastUpdatedAfter": "2025-01-01T00:00:00Z", "createdBefore": "2025-06-01T00:00:00Z"},
        {"createdAfter": "2025-03-02T00:00:00Z", "createdBefore": "2025-03-01T00:00:00Z"},
        {"createdAfter": "2025-01-01T00:00:00Z", "createdBefore": "2999-01-01T00:00:00Z"},
        {"createdAfter": "2999-01-01T00:00:00Z"},
        {"createdAfter": "last tuesday"},
        {"createdAfter": "2025-01-01T00:00:00Z", "maxResultsPerPage": "0"},
        {"createdAfter": "2025-01-01T00:00:00Z", "maxResultsPerPage": "101"},
        {"createdAfter": "2025-01-01T00:00:00Z", "maxResultsPerPage": "ten"},
        {"createdAfter": "2025-01-01T00:00:00Z", "marketplaceIds": ""},
        {"createdAfter": "2025-01-01T00:00:00Z", "marketplaceIds": "NOT-A-MARKETPLACE"},
        {"createdAfter": "2025-01-01T00:00:00Z", "marketplaceIds": "A1PA6795UKMFR9"},  # .de: not registered
        {"createdAfter": "2025-01-01T00:00:00Z", "fulfillmentStatuses": "Shipped"},
        {"createdAfter": "2025-01-01T00:00:00Z", "fulfilledBy": "SELLER"},
        {"createdAfter": "2025-01-01T00:00:00Z", "includedData": "EVERYTHING"},
        {"CreatedAfter": "2025-01-01T00:00:00Z"},  # v0 spelling
        {"createdAfter": "2025-01-01T00:00:00Z", "paginationToken": "garbage"},
    ],
)
def test_bad_parameters_are_400(amazon: AmazonSandbox, params: dict[str, str]) -> None:
    error = assert_error(search(amazon, access_token(amazon), **params), 400, "InvalidInput")
    assert error["message"]


def test_pagination_token_rules(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    first = search(amazon, tok, createdAfter="2025-01-01T00:00:00Z", maxResultsPerPage=2).json()
    next_token = first["pagination"]["nextToken"]
    # maxResultsPerPage and includedData may change between pages
    second = search(
        amazon,
        tok,
        createdAfter="2025-01-01T00:00:00Z",
        maxResultsPerPage=3,
        includedData="BUYER",
        paginationToken=next_token,
    )
    assert second.status_code == 200 and len(second.json()["orders"]) == 3
    # other parameters may not
    other = search(amazon, tok, createdAfter="2025-02-01T00:00:00Z", paginationToken=next_token)
    assert "other parameters" in assert_error(other, 400, "InvalidInput")["message"]
    tampered = next_token[:-2] + ("AA" if not next_token.endswith("AA") else "BB")
    assert_error(
        search(amazon, tok, createdAfter="2025-01-01T00:00:00Z", paginationToken=tampered), 400, "InvalidInput"
    )
    # 24 hours later the token has expired (the access token too: take a fresh one)
    amazon.clock = lambda: datetime.now(UTC) + timedelta(hours=25)
    late = search(amazon, access_token(amazon), createdAfter="2025-01-01T00:00:00Z", paginationToken=next_token)
    assert "expired" in assert_error(late, 400, "InvalidInput")["message"]


def test_get_order(amazon: AmazonSandbox) -> None:
    tok = access_token(amazon)
    response = requests.get(
        f"{amazon.url}{ORDERS_PATH}/111-0000003-0000003",
        params={"includedData": "BUYER"},
        headers={"x-amz-access-token": tok},
        timeout=5,
    )
    GET_RESPONSE.validate(response.json())
    assert response.json()["order"]["salesChannel"]["marketplaceName"] == "Amazon.ca"
    missing = requests.get(
        f"{amazon.url}{ORDERS_PATH}/999-0000000-0000000", headers={"x-amz-access-token": tok}, timeout=5
    )
    assert_error(missing, 404, "NotFound")


def test_reload_serves_new_orders(own_server: AmazonSandbox, shop: Path) -> None:
    extra = ("111-0000008-0000008", T0 + timedelta(days=8), T0 + timedelta(days=8), US, "SHIPPED", "AMAZON", 700)
    build_shop(shop, [*ORDERS, extra])
    tok = access_token(own_server)
    assert len(page_all(own_server, tok, createdAfter="2025-01-01T00:00:00Z")) == 6
    own_server.reload()
    assert page_all(own_server, tok, createdAfter="2025-01-01T00:00:00Z")[-1]["orderId"] == extra[0]


def test_env_points_at_the_server(amazon: AmazonSandbox) -> None:
    assert amazon.env() == {
        "AMAZON_SP_API_URL": amazon.url,
        "AMAZON_LWA_URL": amazon.url,
        "AMAZON_CLIENT_ID": SANDBOX_CLIENT_ID,
        "AMAZON_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "AMAZON_REFRESH_TOKEN": SANDBOX_REFRESH_TOKEN,
        "AMAZON_MARKETPLACE_IDS": f"{CA},{US}",
    }


# -- rate limit and faults ----------------------------------------------------------------------


def test_rate_limit_is_a_bucket_per_access_token(shop: Path) -> None:
    with AmazonSandbox(shop, rate_per_second=0.0001, burst=3) as server:
        first, second = access_token(server), access_token(server)
        statuses = [search(server, first, createdAfter="2025-01-01T00:00:00Z").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = search(server, first, createdAfter="2025-01-01T00:00:00Z")
        assert assert_error(limited, 429, "QuotaExceeded") == {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
        assert limited.headers["x-amzn-RateLimit-Limit"] == "0.0001"
        assert search(server, second, createdAfter="2025-01-01T00:00:00Z").status_code == 200


def test_default_rate_is_the_documented_usage_plan(shop: Path) -> None:
    server = AmazonSandbox(shop)
    assert (server.rate_per_second, server.burst) == (0.0056, 20)


def _fault_run(shop: Path) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    with AmazonSandbox(shop, rate_per_second=None, faults=Faults(error_rate=0.3, throttle_rate=0.2, seed=11)) as server:
        response = token(server)
        while response.status_code != 200:
            seen.append((response.status_code, response.json()["error"]))
            response = token(server)
        tok = response.json()["access_token"]
        for _ in range(12):
            response = search(server, tok, createdAfter="2025-01-01T00:00:00Z")
            body = response.json()
            if response.status_code == 200:
                seen.append((200, ""))
                continue
            ERROR_LIST.validate(body)
            assert response.headers["x-amzn-RateLimit-Limit"]
            seen.append((response.status_code, body["errors"][0]["code"]))
    return seen


def test_faults_are_deterministic_and_vendor_shaped(shop: Path) -> None:
    run = _fault_run(shop)
    assert run == _fault_run(shop)
    kinds = {entry for entry in run if entry[0] != 200}
    assert kinds <= {
        (429, "QuotaExceeded"),
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
        (429, "temporarily_unavailable"),
        (500, "server_error"),
        (503, "temporarily_unavailable"),
    }
    assert {status for status, _ in run} >= {200, 429, 500}


def test_generated_shop_pages_to_the_end(tmp_path: Path) -> None:
    generate_shop(tmp_path, seed=3, customers=300, now=datetime(2026, 6, 1, tzinfo=UTC))
    with AmazonSandbox(tmp_path, rate_per_second=None) as server:
        tok = access_token(server)
        orders = page_all(
            server,
            tok,
            createdAfter="2000-01-01T00:00:00Z",
            marketplaceIds=server.env()["AMAZON_MARKETPLACE_IDS"],
            includedData="BUYER,PROCEEDS,FULFILLMENT,RECIPIENT",
            maxResultsPerPage=17,
        )
    table = read_table(tmp_path, "amazon_orders")
    assert len(orders) == table.num_rows > 17
    assert sorted(o["orderId"] for o in orders) == sorted(table.column("amazon_order_id").to_pylist())
    items = sum(len(o["orderItems"]) for o in orders)
    assert items == read_table(tmp_path, "amazon_order_items").num_rows
