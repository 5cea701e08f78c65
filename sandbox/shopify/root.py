"""The query root: the connections, ``shop`` and the bulk-operation fields.

A root value is built per request from one snapshot of the shop data, so a
``reload()`` in the middle of a request (or of a bulk run) cannot mix two
versions of the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from graphql import GraphQLError, GraphQLResolveInfo, OperationType

from sandbox.shop.tables import SHOP_CURRENCY, SHOP_DOMAIN, SHOP_NAME
from sandbox.shopify.bulk import BulkOperations
from sandbox.shopify.connections import Page, connection, page
from sandbox.shopify.resolvers import Renderer
from sandbox.shopify.search import SearchError, parse_search
from sandbox.shopify.store import Collection, CursorError, ShopData
from sandbox.shopify.wire import gid

SUPPORTED_ROOTS = {
    OperationType.QUERY: frozenset(
        {"customers", "orders", "abandonedCheckouts", "products", "shop", "currentBulkOperation", "bulkOperation"}
    ),
    OperationType.MUTATION: frozenset({"bulkOperationRunQuery"}),
}

SHOP = {
    "id": gid("Shop", 1),
    "name": SHOP_NAME,
    "myshopifyDomain": SHOP_DOMAIN,
    "currencyCode": SHOP_CURRENCY,
    "email": f"owner@{SHOP_DOMAIN}",
    "contactEmail": f"owner@{SHOP_DOMAIN}",
    "ianaTimezone": "Etc/UTC",
    "timezoneAbbreviation": "UTC",
    "enabledPresentmentCurrencies": [SHOP_CURRENCY],
}


def _bulk_page(index: Any, window: tuple[int, int], reverse: bool, info: GraphQLResolveInfo) -> Page:
    """A bulk run's chunk: positions ``window`` of the selection in the client's order."""
    total = len(index)
    info.context["total"] = total
    start, stop = min(window[0], total), min(window[1], total)
    if reverse:
        chunk = index.slice(total - stop, total - start).take(np.arange(stop - start - 1, -1, -1))
    else:
        chunk = index.slice(start, stop)
    return Page(chunk, stop < total, start > 0)


def collection_resolver(
    name: str, collection: Collection, render: Callable[[np.ndarray], list[dict[str, Any]]]
) -> Callable[..., dict[str, Any]]:
    """The resolver of one root connection (``customers``, ``orders`` …)."""

    def resolve(
        info: GraphQLResolveInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        reverse: bool = False,
        sortKey: str = "ID",
        query: str | None = None,
        savedSearchId: str | None = None,
    ) -> dict[str, Any]:
        if savedSearchId is not None:
            raise GraphQLError("savedSearchId is not supported by the Hearth sandbox: pass the search as `query`")
        if sortKey not in collection.sort_columns:
            supported = ", ".join(collection.sort_columns)
            raise GraphQLError(f"sortKey {sortKey} on {name} is not supported by the Hearth sandbox; use {supported}")
        try:
            selection = collection.select(sortKey, parse_search(query, name))
        except SearchError as error:
            raise GraphQLError(str(error), extensions={"code": "UNSUPPORTED_SEARCH"}) from None
        bulk = info.context.get("bulk")
        if bulk:
            result = _bulk_page(selection, bulk, reverse, info)
        else:
            try:
                result = page(selection, first=first, after=after, last=last, before=before, reverse=reverse)
            except CursorError as error:
                raise GraphQLError(str(error), extensions={"code": "BAD_REQUEST"}) from None
        return connection(render(result.index.rows), result.cursors(), result.has_next, result.has_previous)

    return resolve


def root_value(data: ShopData, renderer: Renderer, bulk: BulkOperations) -> dict[str, Any]:
    """The root object of queries and mutations over one snapshot of the shop."""

    def current_bulk_operation(info: GraphQLResolveInfo, type: str = "QUERY") -> dict[str, Any] | None:
        operation = bulk.current()
        return operation.node() if operation and type == "QUERY" else None

    def bulk_operation(info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
        operation = bulk.get(id)
        return operation.node() if operation else None

    def run_query(info: GraphQLResolveInfo, query: str, groupObjects: bool = False) -> dict[str, Any]:
        return bulk.start(query, lambda: root_value(data, renderer, bulk))

    return {
        "customers": collection_resolver("customers", data.customers, renderer.customers),
        "orders": collection_resolver("orders", data.orders, renderer.orders),
        "abandonedCheckouts": collection_resolver("abandonedCheckouts", data.checkouts, renderer.checkouts),
        "products": collection_resolver("products", data.products, renderer.products),
        "shop": SHOP,
        "currentBulkOperation": current_bulk_operation,
        "bulkOperation": bulk_operation,
        "bulkOperationRunQuery": run_query,
    }
