"""The Shopify connector against the Shopify sandbox over a small generated shop.

Expected records come from the shop tables themselves: a window ``[start, end)``
must return exactly the rows whose ``updated_at`` (whole seconds, as Shopify
renders it) falls inside it — through paging, through bulk operations, under
injected faults and under the real cost bucket.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from connectors._http import AuthError, MalformedResponse
from connectors.base import Window
from connectors.shopify import (
    SPECS,
    BulkOperationError,
    BulkRunner,
    ShopifyClient,
    ShopifyGraphQLError,
    ShopifySettings,
    ShopifyStream,
    StreamSpec,
    shopify_streams,
)
from connectors.shopify.queries import bulk_query, search_filter
from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table
from sandbox.shopify import ShopifySandbox
from sandbox.shopify.bulk import BulkOperation

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RECENT = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
TABLES = {"customers": "customers", "orders": "orders", "abandoned_checkouts": "checkouts", "products": "products"}
GID_TYPES = {
    "customers": "Customer",
    "orders": "Order",
    "abandoned_checkouts": "AbandonedCheckout",
    "products": "Product",
}
FAST = {"bulk_poll_interval": 0.02, "bulk_poll_max_interval": 0.1, "backoff_base": 0.01}


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shopify-shop")
    generate_shop(out, seed=11, customers=300, now=NOW)
    return out


@pytest.fixture(scope="module")
def sandbox(shop_dir: Path) -> Iterator[ShopifySandbox]:
    server = ShopifySandbox(shop_dir, rate_limit=False)
    server.start()
    yield server
    server.stop()


def settings_for(server: ShopifySandbox, **overrides: Any) -> ShopifySettings:
    return ShopifySettings.from_env(server.env(), **{"bulk_threshold_days": 400.0, **FAST, **overrides})


def stream_for(server: ShopifySandbox, name: str, **overrides: Any) -> ShopifyStream:
    return ShopifyStream(ShopifyClient(settings_for(server, **overrides)), SPECS[name])


def expected_ids(shop_dir: Path, name: str, window: Window) -> list[str]:
    """Gids of the rows of ``name`` updated within ``window`` (sandbox seconds), in id order."""
    table = read_table(shop_dir, TABLES[name])
    updated = pc.floor_temporal(table.column("updated_at"), unit="second")
    inside = pc.and_(pc.greater_equal(updated, window.start), pc.less(updated, window.end))
    ids = sorted(table.filter(inside).column("id").to_pylist())
    return [f"gid://shopify/{GID_TYPES[name]}/{i}" for i in ids]


def records(pages: Iterator[Any]) -> list[dict[str, Any]]:
    return [record for page in pages for record in page.records]


def ids(found: list[dict[str, Any]]) -> list[str]:
    return sorted(record["id"] for record in found)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_window_returns_exactly_the_shop_records(sandbox: ShopifySandbox, shop_dir: Path, name: str) -> None:
    stream = stream_for(sandbox, name)
    pages = list(stream.pages(RECENT))
    found = records(iter(pages))
    expected = expected_ids(shop_dir, name, RECENT)
    assert len(expected) > 0 and ids(found) == expected  # sorted lists: also proves no duplicates
    assert all(page.rejects == [] for page in pages)
    updated = [str(stream.record_updated_at(r)) for r in found]
    assert all("2026-07-01T00:00:00Z" <= u < "2026-10-01T00:00:00Z" for u in updated)
    if SPECS[name].sort_key == "UPDATED_AT":
        assert updated == sorted(updated)
    assert stream.record_id(found[0]) == found[0]["id"]


def test_records_carry_consent_money_and_nested_lines(sandbox: ShopifySandbox, shop_dir: Path) -> None:
    customers = records(stream_for(sandbox, "customers").pages(RECENT))
    with_email = [c for c in customers if c["defaultEmailAddress"]]
    assert with_email and "email" not in customers[0] and "emailMarketingConsent" not in customers[0]
    assert set(with_email[0]["defaultEmailAddress"]) == {
        "emailAddress",
        "marketingState",
        "marketingOptInLevel",
        "marketingUpdatedAt",
    }
    orders = records(stream_for(sandbox, "orders").pages(RECENT))
    count = Counter(read_table(shop_dir, "order_lines").column("order_id").to_pylist())
    for order in orders:
        assert len(order["lineItems"]["nodes"]) == count[int(order["id"].rsplit("/", 1)[1])]
        assert set(order["totalPriceSet"]) == {"shopMoney", "presentmentMoney"}
    refunded = [o for o in orders if o["refunds"]]
    assert refunded and refunded[0]["refunds"][0]["refundLineItems"]["nodes"]


def test_paging_walks_many_small_pages(sandbox: ShopifySandbox, shop_dir: Path) -> None:
    window = Window(datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    stream = stream_for(sandbox, "customers", page_size=7)
    before = sandbox.requests_served
    pages = list(stream.pages(window))
    expected = expected_ids(shop_dir, "customers", window)
    assert len(expected) > 50 and ids(records(iter(pages))) == expected
    assert [len(p.records) for p in pages[:-1]] == [7] * (len(pages) - 1)
    assert sandbox.requests_served - before == -(-len(expected) // 7)  # one request per page


def test_half_open_windows_neither_overlap_nor_leave_gaps(sandbox: ShopifySandbox, shop_dir: Path) -> None:
    table = read_table(shop_dir, "orders")
    stamps = sorted(pc.floor_temporal(table.column("updated_at"), unit="second").to_pylist())
    inside = [s for s in stamps if RECENT.start < s < RECENT.end]
    # Cut exactly on records' updated_at: each must land in the window it starts.
    cuts = [RECENT.start, inside[len(inside) // 3], inside[2 * len(inside) // 3], RECENT.end]
    stream = stream_for(sandbox, "orders")
    parts = [ids(records(stream.pages(Window(a, b)))) for a, b in itertools.pairwise(cuts)]
    assert sum(len(p) for p in parts) == len({i for p in parts for i in p})  # no overlap
    assert sorted(i for p in parts for i in p) == expected_ids(shop_dir, "orders", RECENT)  # no gap
    boundary = f"{cuts[1]:%Y-%m-%dT%H:%M:%SZ}"
    second = records(stream.pages(Window(cuts[1], cuts[2])))
    assert any(r["updatedAt"] == boundary for r in second)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bulk_and_paged_give_identical_records(sandbox: ShopifySandbox, shop_dir: Path, name: str) -> None:
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    paged = records(stream_for(sandbox, name).pages(window))
    bulk_stream = stream_for(sandbox, name, bulk_threshold_days=30.0, bulk_page_records=50)
    bulk_pages = list(bulk_stream.pages(window))
    bulk = records(iter(bulk_pages))
    assert ids(paged) == expected_ids(shop_dir, name, window)
    assert json.dumps(bulk) == json.dumps(paged)  # same records, same order, same key order
    assert all(len(page.records) <= 50 for page in bulk_pages)
    assert "/_sandbox/bulk/" in bulk_pages[0].where


def test_records_that_fill_a_nested_page_are_read_again_whole(sandbox: ShopifySandbox, shop_dir: Path) -> None:
    window = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    whole = records(stream_for(sandbox, "orders", bulk_threshold_days=0.0).pages(window))
    tight = records(stream_for(sandbox, "orders", nested_page_size=2).pages(window))
    assert sorted(tight, key=lambda r: r["id"]) == sorted(whole, key=lambda r: r["id"])
    assert max(len(r["lineItems"]["nodes"]) for r in tight) >= 3  # more than a nested page holds


def test_an_empty_bulk_result_yields_nothing(sandbox: ShopifySandbox) -> None:
    window = Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 6, 1, tzinfo=UTC))
    assert list(stream_for(sandbox, "orders", bulk_threshold_days=1.0).pages(window)) == []


def running_operation(server: ShopifySandbox, query: str) -> BulkOperation:
    """Register a RUNNING bulk operation on the sandbox (its public API cannot pause one)."""
    operation = BulkOperation(next(server.bulk._ids), query, status="RUNNING")
    server.bulk._operations[operation.id] = operation
    return operation


def test_a_bulk_start_whose_answer_was_lost_is_followed(
    sandbox: ShopifySandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ShopifyClient(settings_for(sandbox))
    query = bulk_query(SPECS["products"], search_filter(RECENT))
    lost = running_operation(sandbox, query)  # started by an earlier attempt whose answer never arrived
    lost.url = f"{sandbox.url}/_sandbox/bulk/lost.jsonl"
    start = sandbox.bulk.start

    def refused_then_lost_completes(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = start(*args, **kwargs)  # refused: the lost operation is still running
        lost.status = "COMPLETED"  # after the refusal, not on a timer a loaded machine can beat
        return answer

    monkeypatch.setattr(sandbox.bulk, "start", refused_then_lost_completes)
    operations = len(sandbox.bulk._operations)
    assert BulkRunner(client).run(query, operation="products") == lost.url
    assert len(sandbox.bulk._operations) == operations  # followed, not started twice


def test_a_bulk_start_refused_names_the_user_error(sandbox: ShopifySandbox) -> None:
    other = running_operation(sandbox, bulk_query(SPECS["customers"], search_filter(RECENT)))
    try:
        stream = stream_for(sandbox, "products", bulk_threshold_days=1.0)
        with pytest.raises(BulkOperationError, match=r"did not start the products bulk .*OPERATION_IN_PROGRESS"):
            list(stream.pages(RECENT))
    finally:
        other.status = "COMPLETED"


def test_a_failed_bulk_operation_names_its_status_and_error_code(sandbox: ShopifySandbox) -> None:
    # Customer.state is in the schema but not in the sandbox's data: the run fails server-side.
    spec = StreamSpec(name="customer_states", root="customers", sort_key="UPDATED_AT", fields="id updatedAt state")
    stream = ShopifyStream(ShopifyClient(settings_for(sandbox, bulk_threshold_days=0.0)), spec)
    with pytest.raises(BulkOperationError, match=r"customer_states bulk operation .* FAILED \(errorCode INTERNAL"):
        list(stream.pages(RECENT))


def test_graphql_errors_name_the_stream(sandbox: ShopifySandbox) -> None:
    spec = StreamSpec(name="broken_customers", root="customers", sort_key="UPDATED_AT", fields="id updatedAt nope")
    stream = ShopifyStream(ShopifyClient(settings_for(sandbox)), spec)
    with pytest.raises(ShopifyGraphQLError, match=r"broken_customers query .*Cannot query field 'nope'") as caught:
        list(stream.pages(RECENT))
    assert "/admin/api/2026-04/graphql.json" in str(caught.value)


def test_records_without_updated_at_are_rejects_with_a_reason(sandbox: ShopifySandbox, shop_dir: Path) -> None:
    spec = StreamSpec(name="products", root="products", sort_key="UPDATED_AT", fields="id title")
    pages = list(ShopifyStream(ShopifyClient(settings_for(sandbox)), spec).pages(RECENT))
    rejects = [reject for page in pages for reject in page.rejects]
    assert sum(len(p.records) for p in pages) == 0
    assert sorted(r["id"] for r, _ in rejects) == expected_ids(shop_dir, "products", RECENT)
    assert all("has no updatedAt" in reason for _, reason in rejects)
    assert "graphql.json" in pages[0].where


def test_faults_do_not_change_the_records(shop_dir: Path) -> None:
    faults = Faults(
        error_rate=0.05, throttle_rate=0.05, timeout_rate=0.02, malformed_rate=0.02, stall_seconds=0.3, seed=5
    )
    # A fast-restoring bucket: after a fault the pacer (rightly) assumes the query was charged.
    server = ShopifySandbox(shop_dir, faults=faults, rate_limit=False, restore_rate=5000)
    server.start()
    try:
        client = ShopifyClient(settings_for(server, timeout=(1.0, 0.25), max_attempts=10))
        for stream in shopify_streams(client):
            assert ids(records(stream.pages(RECENT))) == expected_ids(shop_dir, stream.name, RECENT), stream.name
        bulk = ShopifyStream(ShopifyClient(client.settings.with_(bulk_threshold_days=1.0)), SPECS["orders"])
        assert ids(records(bulk.pages(RECENT))) == expected_ids(shop_dir, "orders", RECENT)
        assert all(count > 0 for count in server.faults_injected.values()), server.faults_injected
    finally:
        server.stop()


def count_throttled(server: ShopifySandbox) -> Callable[[], int]:
    """Wrap the server's GraphQL entry point; returns a function giving the THROTTLED answers so far."""
    answers: list[dict[str, Any]] = []
    original = server.graphql

    def graphql(*args: Any, **kwargs: Any) -> dict[str, Any]:
        body = original(*args, **kwargs)
        answers.append(body)
        return body

    server.graphql = graphql  # type: ignore[method-assign]
    return lambda: sum(
        1 for body in answers if any(e.get("extensions", {}).get("code") == "THROTTLED" for e in body.get("errors", []))
    )


class _NoPacing:
    def acquire(self, cost: float = 1.0) -> None:
        pass

    def observe(self, response: Any, body: Any = None) -> None:
        pass


def test_the_cost_pacer_stays_under_the_bucket(shop_dir: Path) -> None:
    window = Window(datetime(2020, 1, 1, tzinfo=UTC), NOW)
    server = ShopifySandbox(shop_dir, rate_limit=True, bucket_size=600, restore_rate=1500)
    server.start()
    try:
        throttled = count_throttled(server)
        settings = settings_for(server, page_size=50, bulk_threshold_days=10_000.0)
        paced = ShopifyStream(ShopifyClient(settings), SPECS["customers"])
        assert ids(records(paced.pages(window))) == expected_ids(shop_dir, "customers", window)
        assert throttled() == 0
        # The same walk without pacing bounces off the bucket (and recovers by retrying).
        server.bucket._available, server.bucket.size = 600.0, 600.0
        bouncing = ShopifyStream(ShopifyClient(settings, pacer=_NoPacing()), SPECS["customers"])
        assert ids(records(bouncing.pages(window))) == expected_ids(shop_dir, "customers", window)
        assert throttled() > 0
    finally:
        server.stop()


def test_a_wrong_token_fails_fast_naming_the_setting(sandbox: ShopifySandbox) -> None:
    before = sandbox.requests_served
    stream = stream_for(sandbox, "orders", access_token="shpat_wrong_token_123")
    with pytest.raises(AuthError, match="SHOPIFY_ACCESS_TOKEN") as caught:
        list(stream.pages(RECENT))
    assert sandbox.requests_served - before == 1  # refused credentials are not retried
    assert "shpat_wrong_token_123" not in str(caught.value)


def test_a_persistently_cut_body_fails_with_the_url_and_a_sample(shop_dir: Path) -> None:
    server = ShopifySandbox(shop_dir, faults=Faults(malformed_rate=1.0), rate_limit=False)
    server.start()
    try:
        stream = stream_for(server, "customers", max_attempts=3, page_size=10)
        with pytest.raises(MalformedResponse) as caught:
            list(stream.pages(RECENT))
        assert server.requests_served == 3
        message = str(caught.value)
        assert f"{server.url}/admin/api/2026-04/graphql.json" in message and '{"data":{"customers"' in message
    finally:
        server.stop()


class _WrongEnvelope(SandboxServer):
    """Answers every query with valid JSON that is not a page of the connection."""

    def handle(self, request: Request) -> Response:
        return Response.json({"data": {"customers": {"nodes": "oops", "pageInfo": {"hasNextPage": False}}}})


def test_a_page_without_the_connection_envelope_is_malformed() -> None:
    server = _WrongEnvelope()
    server.start()
    try:
        settings = ShopifySettings(
            api_url=server.url, access_token="shpat_any", max_attempts=2, backoff_base=0.01, bulk_threshold_days=400
        )
        stream = ShopifyStream(ShopifyClient(settings), SPECS["customers"])
        with pytest.raises(MalformedResponse, match="oops") as caught:
            list(stream.pages(RECENT))
        assert caught.value.url.endswith("/admin/api/2026-04/graphql.json") and server.requests_served == 2
    finally:
        server.stop()
