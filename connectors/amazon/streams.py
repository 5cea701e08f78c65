"""The Amazon ``orders`` stream: SP-API Orders v2026-01-01 ``searchOrders`` over a window.

``GET /orders/2026-01-01/orders?lastUpdatedAfter=…&lastUpdatedBefore=…&marketplaceIds=…``
pages with ``pagination.nextToken`` → ``paginationToken`` (every other parameter
repeated unchanged, as the API requires). Records are the ``Order`` objects as
returned, items included; there is no ``payload`` wrapper in this version.

Amazon's bounds are inclusive and whole seconds; the window is half-open, so the
stream drops the few orders stamped exactly at (or, after truncation, outside) the
window's edges — the neighbouring window owns them.

Policy: buyer data is an anonymised relay address, usable only to tell buyers
apart in cadence and revenue analysis — never for marketing (see DOMAIN.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from connectors._http import MalformedResponse, redact
from connectors.amazon.client import AmazonClient
from connectors.base import Page, Window, iso

ORDERS_PATH = "/orders/2026-01-01/orders"
# searchOrders refuses bounds less than two minutes old: a window must end at least this
# long before "now" (the ingestion core's lag).
MIN_LAG = timedelta(minutes=2)


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed


class OrdersStream:
    """Orders last updated within a window, ascending, page by page."""

    source = "amazon"
    name = "orders"
    min_lag = MIN_LAG

    def __init__(self, client: AmazonClient) -> None:
        self.client = client
        self.settings = client.settings

    def request_params(self, window: Window) -> dict[str, str]:
        """The query of the first page of ``window`` (later pages add ``paginationToken``)."""
        params = {
            "lastUpdatedAfter": iso(window.start),
            "lastUpdatedBefore": iso(window.end),
            "marketplaceIds": ",".join(self.settings.marketplace_ids),  # arrays are comma-separated
            "maxResultsPerPage": str(self.settings.page_size),
        }
        if self.settings.included_data:
            params["includedData"] = ",".join(self.settings.included_data)
        return params

    def pages(self, window: Window) -> Iterator[Page]:
        if window.end <= window.start:
            return
        params = self.request_params(window)
        url = self.client.http.url_for(ORDERS_PATH)
        seen_tokens: set[str] = set()
        next_token: str | None = None
        while True:
            query = params if next_token is None else {**params, "paginationToken": next_token}
            body = self.client.get_json(ORDERS_PATH, query)
            orders = body.get("orders")
            if not isinstance(orders, list):
                raise MalformedResponse(url, 200, redact(str(body)[:500]))
            page = self._page(orders, window, url)
            if page.records or page.rejects:
                yield page
            pagination = body.get("pagination")
            next_token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not next_token:
                return
            if next_token in seen_tokens:  # a server bug must not become an endless loop
                raise MalformedResponse(url, 200, f"pagination.nextToken repeated: {next_token[:80]}")
            seen_tokens.add(next_token)

    def _page(self, orders: list[Any], window: Window, url: str) -> Page:
        page = Page(records=[], where=url)
        for order in orders:
            if not isinstance(order, dict) or not order.get("orderId"):
                page.rejects.append((order, "order without orderId"))
                continue
            try:
                updated = _parse_time(order.get("lastUpdatedTime"))
            except ValueError as exc:
                page.rejects.append((order, f"bad lastUpdatedTime: {exc}"))
                continue
            if window.start <= updated < window.end:
                page.records.append(order)
        return page

    def record_id(self, record: dict[str, Any]) -> str:
        return str(record["orderId"])

    def record_updated_at(self, record: dict[str, Any]) -> str | None:
        value = record.get("lastUpdatedTime")
        return str(value) if value else None
