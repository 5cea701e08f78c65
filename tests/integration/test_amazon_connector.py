"""The Amazon connector against the SP-API sandbox over a small generated shop.

Every request the connector sends is recorded on the wire and checked against
the Orders v2026-01-01 model; records are checked against the shop's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors._http import AuthError, MalformedResponse
from connectors.amazon import ORDERS_PATH, AmazonClient, AmazonSettings, LwaAuth, OrdersStream
from connectors.base import Window
from sandbox._server import Faults
from sandbox.amazon import AmazonSandbox
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table
from sandbox.specs import amazon_operation, amazon_validator
from tests.integration.recording import RecordingSession

NOW = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 5, 20, tzinfo=UTC))
ORDER = amazon_validator("Order", strict=False)
FAST = {"backoff_base": 0.01, "max_attempts": 8}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shop_dir = tmp_path_factory.mktemp("amazon-connector-shop")
    generate_shop(shop_dir, seed=11, customers=300, now=NOW)
    return shop_dir


@pytest.fixture(scope="module")
def shared(shop: Path) -> Iterator[AmazonSandbox]:
    # Read-only tests share one unthrottled server: stopping a server costs ~0.5 s.
    with AmazonSandbox(shop, rate_per_second=None) as server:
        yield server


def truncated(ts: datetime) -> datetime:
    return ts.replace(microsecond=0)  # Amazon times are whole seconds


def expected_ids(shop: Path, window: Window) -> set[str]:
    rows = read_table(shop, "amazon_orders").to_pylist()
    return {
        r["amazon_order_id"]
        for r in rows
        if window.start <= truncated(r["last_update_date"] or r["purchase_date"]) < window.end
    }


def connector(server: AmazonSandbox, session: requests.Session | None = None, **overrides: Any) -> OrdersStream:
    settings = AmazonSettings.from_env(server.env(), **{"rate_per_second": 1000.0, **FAST, **overrides})
    return OrdersStream(AmazonClient(settings, session=session))


def records(stream: OrdersStream, window: Window = WINDOW) -> list[dict[str, Any]]:
    return [record for page in stream.pages(window) for record in page.records]


def test_window_returns_exactly_the_shops_orders_paging_to_the_end(shared: AmazonSandbox, shop: Path) -> None:
    session = RecordingSession()
    issued = shared.tokens_issued
    stream = connector(shared, session, page_size=10)
    got = records(stream)

    want = expected_ids(shop, WINDOW)
    assert len(want) > 40  # enough for several pages
    order_keys = [(r["lastUpdatedTime"], r["orderId"]) for r in got]
    assert order_keys == sorted(order_keys)  # ascending, as the protocol promises
    assert {stream.record_id(r) for r in got} == want and len(got) == len(want)
    assert len(session.calls_to(ORDERS_PATH)) == -(-len(want) // 10)  # ceil: every page fetched once, no more
    assert shared.tokens_issued - issued == 1  # one token for all pages

    items = read_table(shop, "amazon_order_items").to_pylist()
    per_order: dict[str, int] = {}
    for item in items:
        per_order[item["amazon_order_id"]] = per_order.get(item["amazon_order_id"], 0) + 1
    for record in got:
        ORDER.validate(record)
        assert len(record["orderItems"]) == per_order[record["orderId"]]
        updated = stream.record_updated_at(record)
        assert updated is not None and WINDOW.start <= datetime.fromisoformat(updated) < WINDOW.end
        assert record["buyer"]["buyerEmail"].endswith("@marketplace.amazon.com")


def test_every_request_follows_the_searchOrders_contract(shared: AmazonSandbox) -> None:
    session = RecordingSession()
    stream = connector(shared, session, page_size=25)
    records(stream)
    spec = {p["name"]: p for p in amazon_operation("/orders/2026-01-01/orders")["parameters"]}
    searches = session.calls_to(ORDERS_PATH)
    assert len(searches) > 1
    first = stream.request_params(WINDOW)
    for call in searches:
        assert set(call.params) <= set(spec), call.params
        assert all(len(values) == 1 for values in call.params.values())  # arrays travel comma-separated
        query = {name: values[0] for name, values in call.params.items()}
        assert ("createdAfter" in query) != ("lastUpdatedAfter" in query)
        assert "createdBefore" not in query  # lastUpdatedAfter pairs only with lastUpdatedBefore
        for name in ("lastUpdatedAfter", "lastUpdatedBefore"):
            assert datetime.fromisoformat(query[name]).tzinfo is not None
        assert 1 <= int(query["maxResultsPerPage"]) <= 100
        marketplaces = query["marketplaceIds"].split(",")
        assert 1 <= len(marketplaces) <= spec["marketplaceIds"]["maxItems"]
        for name in ("includedData", "fulfillmentStatuses", "fulfilledBy"):
            if name in query:
                assert set(query[name].split(",")) <= set(spec[name]["items"]["enum"])
        assert {k: v for k, v in query.items() if k != "paginationToken"} == first  # repeated unchanged
        assert call.headers["x-amz-access-token"].startswith("Atza|")
    assert "paginationToken" not in searches[0].params
    assert all("paginationToken" in call.params for call in searches[1:])


def test_adjacent_windows_split_orders_at_the_boundary(shared: AmazonSandbox, shop: Path) -> None:
    stream = connector(shared)
    everything = records(stream)
    # Cut exactly at one order's update time: half-open windows put it in the second half only.
    pivot = datetime.fromisoformat(everything[len(everything) // 2]["lastUpdatedTime"])
    before = records(stream, Window(WINDOW.start, pivot))
    after = records(stream, Window(pivot, WINDOW.end))
    ids_before, ids_after = {r["orderId"] for r in before}, {r["orderId"] for r in after}
    assert not ids_before & ids_after
    assert ids_before | ids_after == {r["orderId"] for r in everything}
    assert everything[len(everything) // 2]["orderId"] in ids_after
    assert ids_before == expected_ids(shop, Window(WINDOW.start, pivot))
    assert list(stream.pages(Window(pivot, pivot))) == []


def test_token_is_cached_and_renewed_before_it_expires(shop: Path) -> None:
    class Clock:
        t = 0.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()
    with AmazonSandbox(shop, rate_per_second=None, token_ttl_seconds=600) as server:
        auth = LwaAuth(AmazonSettings.from_env(server.env(), **FAST), clock=clock)
        first = auth.token()
        clock.t = 500.0
        assert auth.token() == first and server.tokens_issued == 1
        clock.t = 545.0  # within the last tenth of its life: renewed before Amazon refuses it
        second = auth.token()
        assert second != first and server.tokens_issued == 2


def test_token_refused_as_expired_is_renewed_once(shop: Path) -> None:
    session = RecordingSession()
    with AmazonSandbox(shop, rate_per_second=None) as server:
        stream = connector(server, session, page_size=10)
        pages = stream.pages(WINDOW)
        got = list(next(pages).records)
        server.clock = lambda: datetime.now(UTC) + timedelta(hours=2)  # the cached token is now expired
        got += [record for page in pages for record in page.records]
        assert server.tokens_issued == 2
    assert {r["orderId"] for r in got} == expected_ids(shop, WINDOW)
    assert [call.status for call in session.calls_to(ORDERS_PATH)].count(403) == 1


def test_pacing_stays_under_the_rate_without_429s(shop: Path) -> None:
    session = RecordingSession()
    with AmazonSandbox(shop, rate_per_second=10, burst=3) as server:
        got = records(connector(server, session, rate_per_second=10, burst=3, page_size=8))
        assert {r["orderId"] for r in got} == expected_ids(shop, WINDOW)
        calls = session.calls_to(ORDERS_PATH)
        assert len(calls) > 10  # well past the burst
        assert [call.status for call in calls].count(429) == 0

        # The control: a client that believes in a bigger burst bounces off the same server.
        control = RecordingSession()
        assert records(connector(server, control, burst=100, page_size=8)) == got
        assert [call.status for call in control.calls_to(ORDERS_PATH)].count(429) > 0


def test_faults_still_yield_exactly_the_right_records(
    shared: AmazonSandbox, shop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean = records(connector(shared, page_size=3))
    # Seed 31 hits the token endpoint first and brings every kind of fault within ~20 requests.
    faults = Faults(
        error_rate=0.05, throttle_rate=0.05, timeout_rate=0.02, malformed_rate=0.02, stall_seconds=0.3, seed=31
    )
    caplog.set_level(logging.DEBUG)
    with AmazonSandbox(shop, rate_per_second=None, faults=faults) as server:
        stream = connector(server, page_size=3, timeout=(1.0, 0.2))
        got = records(stream)
        injected = dict(server.faults_injected)
    assert got == clean
    assert all(count > 0 for count in injected.values()), injected
    secrets = [stream.settings.client_secret, stream.settings.refresh_token]
    assert "retry" in caplog.text and not any(secret in caplog.text for secret in secrets)
    assert "Atza|" not in caplog.text  # access tokens are masked too


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"refresh_token": "Atzr|revoked"}, "AMAZON_REFRESH_TOKEN"),
        ({"client_secret": "amzn1.oa2-cs.v1.wrong-secret"}, "AMAZON_CLIENT_ID and AMAZON_CLIENT_SECRET"),
    ],
)
def test_wrong_credentials_fail_fast_naming_the_setting(
    shared: AmazonSandbox, override: dict[str, Any], setting: str
) -> None:
    served = shared.requests_served
    with pytest.raises(AuthError) as caught:
        records(connector(shared, **override))
    assert shared.requests_served - served == 1  # refused credentials are not retried
    assert caught.value.credential == setting
    message = str(caught.value)
    assert setting in message and "/auth/o2/token" in message
    assert next(iter(override.values())) not in message


def test_persistently_malformed_page_fails_with_url_and_sample(shop: Path) -> None:
    with AmazonSandbox(shop, rate_per_second=None) as server:
        stream = connector(server, max_attempts=3)
        token = stream.client.auth.token()  # the token answer itself stays intact
        server.faults = Faults(malformed_rate=1.0)
        with pytest.raises(MalformedResponse) as caught:
            records(stream)
        assert caught.value.url.startswith(server.url + ORDERS_PATH)
    message = str(caught.value)
    assert ORDERS_PATH in message
    assert '{"orders":[' in message  # a sample of the body
    assert token not in message


def test_settings_refuse_bad_values() -> None:
    env = {
        "AMAZON_SP_API_URL": "http://127.0.0.1:1",
        "AMAZON_LWA_URL": "http://127.0.0.1:1",
        "AMAZON_CLIENT_ID": "id",
        "AMAZON_CLIENT_SECRET": "secret",
        "AMAZON_REFRESH_TOKEN": "refresh",
        "AMAZON_MARKETPLACE_IDS": "ATVPDKIKX0DER",
    }
    assert AmazonSettings.from_env(env).marketplace_ids == ("ATVPDKIKX0DER",)
    assert "secret" not in repr(AmazonSettings.from_env(env))
    with pytest.raises(ValueError, match="AMAZON_REFRESH_TOKEN"):
        AmazonSettings.from_env({**env, "AMAZON_REFRESH_TOKEN": ""})
    with pytest.raises(ValueError, match="maxResultsPerPage"):
        AmazonSettings.from_env(env, page_size=101)
    with pytest.raises(ValueError, match="AMAZON_MARKETPLACE_IDS"):
        AmazonSettings.from_env({**env, "AMAZON_MARKETPLACE_IDS": " , "})
