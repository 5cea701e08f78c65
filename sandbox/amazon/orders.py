"""The demo shop's Amazon orders, indexed for searchOrders and rendered as SP-API Orders v2026-01-01.

Rendering follows ``Order`` of the Orders model; which optional parts appear depends
on ``includedData`` as in the real API:

- always: ``orderId``, ``createdTime``, ``lastUpdatedTime``, ``salesChannel`` and
  ``orderItems`` (``orderItemId``, ``quantityOrdered``, ``product {asin, title,
  sellerSku, price {unitPrice}}``);
- ``BUYER``: ``buyer {buyerName, buyerEmail}`` (the anonymised relay address);
- ``RECIPIENT``: ``recipient.deliveryAddress {postalCode, countryCode}``;
- ``PROCEEDS``: ``proceeds.grandTotal`` and per item ``proceeds.proceedsTotal``;
- ``FULFILLMENT``: ``fulfillment {fulfillmentStatus, fulfilledBy}`` and per item
  ``fulfillment {quantityFulfilled, quantityUnfulfilled}``.

The other datasets are accepted and render nothing: the demo shop has no such data.
Times have whole-second precision (as Amazon's do), so filters and rendered values agree.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sandbox.shop.tables import AMAZON_MARKETPLACE_ID, read_table

MARKETPLACE_NAMES = {
    "ATVPDKIKX0DER": "Amazon.com",
    "A2EUQ1WTGCTBG2": "Amazon.ca",
    "A1AM78C64UM0Y8": "Amazon.com.mx",
    "A2Q3Y263D00KWC": "Amazon.com.br",
    "A1F83G8C2ARO7P": "Amazon.co.uk",
    "A1PA6795UKMFR9": "Amazon.de",
    "A13V1IB3VIYZZH": "Amazon.fr",
    "APJ6JRA9NG5V4": "Amazon.it",
    "A1RKKUPIHCS9HS": "Amazon.es",
    "A1VC38T7YXB528": "Amazon.co.jp",
    "A39IBJ37TRP1C6": "Amazon.com.au",
}
FULFILLMENT_STATUSES = (
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
)
FULFILLED_BY = ("MERCHANT", "AMAZON")
INCLUDED_DATA = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)


@dataclass(frozen=True)
class Item:
    order_item_id: str
    asin: str
    seller_sku: str
    title: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Order:
    order_id: str
    created: datetime
    updated: datetime
    marketplace_id: str
    buyer_email: str | None
    buyer_name: str | None
    status: str
    fulfilled_by: str
    currency: str
    total_cents: int
    country_code: str | None
    postal_code: str | None
    items: tuple[Item, ...]

    def timestamp(self, field: str) -> datetime:
        """``created`` or ``updated``: the time a search filters and sorts on."""
        return self.created if field == "created" else self.updated


@dataclass(frozen=True)
class Search:
    """One searchOrders query, already validated.

    ``after``/``before`` bound the ``field`` timestamp inclusively; ``resume_after``
    is the keyset position ``(timestamp, orderId)`` of the last order already served.
    """

    field: str  # "created" or "updated"
    after: datetime
    before: datetime
    marketplace_ids: frozenset[str]
    statuses: frozenset[str] | None = None
    fulfilled_by: frozenset[str] | None = None
    resume_after: tuple[datetime, str] | None = None


def _position(field: str, order: Order) -> tuple[datetime, str]:
    return order.timestamp(field), order.order_id


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0).astimezone(UTC)


class OrderBook:
    """All Amazon orders of one shop with their items, sorted for keyset paging."""

    def __init__(self, shop_dir: Path) -> None:
        items: dict[str, list[Item]] = defaultdict(list)
        for row in read_table(shop_dir, "amazon_order_items").to_pylist():
            items[row["amazon_order_id"]].append(
                Item(
                    order_item_id=row["order_item_id"],
                    asin=row["asin"],
                    seller_sku=row["seller_sku"],
                    title=row["title"],
                    quantity=int(row["quantity"]),
                    unit_price_cents=int(row["unit_price_cents"]),
                )
            )
        orders = [
            Order(
                order_id=row["amazon_order_id"],
                created=_second(row["purchase_date"]),
                updated=_second(row["last_update_date"] or row["purchase_date"]),
                marketplace_id=row["marketplace_id"],
                buyer_email=row["buyer_email"],
                buyer_name=row["buyer_name"],
                status=row["order_status"],
                fulfilled_by=row["fulfilled_by"],
                currency=row["currency"],
                total_cents=int(row["total_cents"]),
                country_code=row["ship_country_code"],
                postal_code=row["ship_postal_code"],
                items=tuple(sorted(items.get(row["amazon_order_id"], ()), key=lambda i: i.order_item_id)),
            )
            for row in read_table(shop_dir, "amazon_orders").to_pylist()
        ]
        self.by_id = {order.order_id: order for order in orders}
        self._sorted = {field: sorted(orders, key=partial(_position, field)) for field in ("created", "updated")}
        self._keys = {field: [_position(field, o) for o in rows] for field, rows in self._sorted.items()}
        self.marketplace_ids = frozenset(o.marketplace_id for o in orders) or frozenset({AMAZON_MARKETPLACE_ID})
        self.latest = max((o.updated for o in orders), default=None)

    def __len__(self) -> int:
        return len(self.by_id)

    def search(self, query: Search, limit: int) -> tuple[list[Order], bool]:
        """Up to ``limit`` matching orders in ascending (timestamp, orderId) order, and whether more match."""
        rows, keys = self._sorted[query.field], self._keys[query.field]
        if query.resume_after is not None:
            start = bisect.bisect_right(keys, query.resume_after)
        else:
            start = bisect.bisect_left(keys, (query.after, ""))
        found: list[Order] = []
        for order in itertools.islice(rows, start, None):
            if order.timestamp(query.field) > query.before:
                break
            if order.timestamp(query.field) < query.after or order.marketplace_id not in query.marketplace_ids:
                continue
            if query.statuses is not None and order.status not in query.statuses:
                continue
            if query.fulfilled_by is not None and order.fulfilled_by not in query.fulfilled_by:
                continue
            if len(found) == limit:
                return found, True
            found.append(order)
        return found, False


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, whole seconds: ``2025-01-01T10:30:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(cents: int, currency: str) -> dict[str, str]:
    """SP-API ``Money``: the amount is a decimal string."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return {"amount": f"{sign}{whole}.{part:02d}", "currencyCode": currency}


def render_order(order: Order, included: Iterable[str]) -> dict[str, Any]:
    """One ``Order`` object with the datasets named in ``included``."""
    included = frozenset(included)
    body: dict[str, Any] = {
        "orderId": order.order_id,
        "createdTime": iso(order.created),
        "lastUpdatedTime": iso(order.updated),
        "salesChannel": {
            "channelName": "AMAZON",
            "marketplaceId": order.marketplace_id,
            "marketplaceName": MARKETPLACE_NAMES.get(order.marketplace_id, order.marketplace_id),
        },
    }
    if "BUYER" in included:
        buyer = {"buyerName": order.buyer_name, "buyerEmail": order.buyer_email}
        body["buyer"] = {key: value for key, value in buyer.items() if value}
    if "RECIPIENT" in included:
        address = {"postalCode": order.postal_code, "countryCode": order.country_code}
        body["recipient"] = {"deliveryAddress": {key: value for key, value in address.items() if value}}
    if "PROCEEDS" in included:
        body["proceeds"] = {"grandTotal": money(order.total_cents, order.currency)}
    if "FULFILLMENT" in included:
        body["fulfillment"] = {"fulfillmentStatus": order.status, "fulfilledBy": order.fulfilled_by}
    body["orderItems"] = [_render_item(order, item, included) for item in order.items]
    return body


def _render_item(order: Order, item: Item, included: frozenset[str]) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "orderItemId": item.order_item_id,
        "quantityOrdered": item.quantity,
        "product": {
            "asin": item.asin,
            "title": item.title,
            "sellerSku": item.seller_sku,
            "price": {"unitPrice": money(item.unit_price_cents, order.currency)},
        },
    }
    if "PROCEEDS" in included:
        rendered["proceeds"] = {"proceedsTotal": money(item.unit_price_cents * item.quantity, order.currency)}
    if "FULFILLMENT" in included:
        shipped = item.quantity if order.status == "SHIPPED" else 0
        rendered["fulfillment"] = {"quantityFulfilled": shipped, "quantityUnfulfilled": item.quantity - shipped}
    return rendered
