"""The Shopify streams: one parameterised class, four specs (customers, orders, checkouts, products).

A window ``[start, end)`` is read with the search ``updated_at:>='start' AND
updated_at:<'end'``: short windows page through the connection (``first``/``after``),
windows longer than ``bulk_threshold_days`` run one bulk operation. Both yield the
nodes exactly as Shopify returns them; a node without ``id`` or ``updatedAt`` is a
reject for the caller to quarantine.

Nested connections in a paged query hold at most ``nested_page_size`` nodes. A
record that fills one may be missing children, so it is held back and read again,
complete, from one bulk operation over the window once paging is done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from connectors._http import MalformedResponse, install_redaction
from connectors.base import Page, Window
from connectors.shopify.bulk import BulkRunner, assemble
from connectors.shopify.client import ShopifyClient, page_envelope
from connectors.shopify.queries import (
    SPECS,
    StreamSpec,
    bulk_query,
    connection_paths,
    fitting_page_size,
    page_query,
    search_filter,
)

log = logging.getLogger(__name__)
install_redaction(log)

_CONTAINERS = (dict, list)


class ShopifyStream:
    """Records of one Shopify resource changed within a window (implements ``connectors.base.Stream``).

    Args:
        client: the GraphQL client.
        spec: what to read (see :data:`connectors.shopify.queries.SPECS`).
        bulk: runs bulk operations (default: one over ``client``).
    """

    source = "shopify"

    def __init__(self, client: ShopifyClient, spec: StreamSpec, *, bulk: BulkRunner | None = None) -> None:
        self.client, self.spec, self.name = client, spec, spec.name
        self.bulk = bulk or BulkRunner(client)
        settings = client.settings
        self.query = page_query(spec, settings.nested_page_size)
        self.page_size = fitting_page_size(self.query, settings.page_size)
        self.envelope = page_envelope(spec.root)
        self.connections = connection_paths(spec)

    def pages(self, window: Window) -> Iterator[Page]:
        """Every record changed within ``window``, page by page.

        Ascending by the spec's sort key, except that records re-read whole through bulk
        (see the module docstring) come last.
        """
        if window.days > self.client.settings.bulk_threshold_days:
            yield from self.bulk_pages(window)
        else:
            yield from self.paged_pages(window)

    def paged_pages(self, window: Window) -> Iterator[Page]:
        """The window through ``first``/``after`` paging (then a bulk pass for held-back records)."""
        search = search_filter(window)
        variables: dict[str, Any] = {"first": self.page_size, "after": None, "query": search}
        limit = self.client.settings.nested_page_size
        held_back: set[str] = set()
        while True:
            data = self.client.graphql(self.query, variables, operation=self.name, expect=self.envelope)
            connection = data[self.spec.root]
            records, rejects = split(connection["nodes"])
            complete = []
            for record in records:
                if any(fills_at(record, path, limit) for path in self.connections):
                    held_back.add(record["id"])
                else:
                    complete.append(record)
            if complete or rejects:
                yield Page(complete, rejects, where=f"{self.client.url} {self.spec.root}(query: {search!r})")
            info = connection["pageInfo"]
            if not info["hasNextPage"]:
                break
            if info["endCursor"] == variables["after"]:
                raise MalformedResponse(self.client.url, 200, f"{self.spec.root} repeats endCursor {info['endCursor']}")
            variables = {**variables, "after": info["endCursor"]}
        if held_back:
            log.info("%s: %d record(s) fill a nested page of %d; bulk re-read", self.name, len(held_back), limit)
            for page in self.bulk_pages(window):
                # Rejects of this window were reported by the paged pass already.
                kept = [record for record in page.records if record["id"] in held_back]
                if kept:
                    yield Page(kept, [], page.where)

    def bulk_pages(self, window: Window) -> Iterator[Page]:
        """The window through one bulk operation, reassembled into pages of records."""
        search = search_filter(window)
        url = self.bulk.run(bulk_query(self.spec, search), operation=self.name)
        if url is None:
            return
        where = f"{url.split('?', 1)[0]} ({self.spec.root}, query: {search!r})"
        settings = self.client.settings
        for records in assemble(self.bulk.lines(url), self.spec.child_fields, settings.bulk_page_records):
            good, rejects = split(records)
            yield Page(good, rejects, where)

    def record_id(self, record: dict[str, Any]) -> str:
        return str(record["id"])

    def record_updated_at(self, record: dict[str, Any]) -> str | None:
        value = record.get("updatedAt")
        return value if isinstance(value, str) else None


def split(nodes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """(usable records, rejects with reasons): a record needs a gid ``id`` and an ``updatedAt``."""
    records: list[dict[str, Any]] = []
    rejects: list[tuple[Any, str]] = []
    for node in nodes:
        id_, updated = node.get("id"), node.get("updatedAt")
        if not isinstance(id_, str) or not id_:
            rejects.append((node, "record has no id: it cannot be keyed or de-duplicated"))
        elif not isinstance(updated, str) or not updated:
            rejects.append((node, f"record {id_} has no updatedAt: it cannot be placed in a window"))
        else:
            records.append(node)
    return records, rejects


def fills_at(value: Any, path: tuple[str, ...], limit: int) -> bool:
    """Whether the connection at ``path`` (see :func:`~connectors.shopify.queries.connection_paths`)
    holds ``limit`` nodes or more; lists on the way fan out, missing or null fields hold none.

    Follows only the paths the query asks for: ~1 µs a record, where walking every value
    of an order (~150 nested objects) with :func:`fills_a_connection` cost ~30 µs.
    """
    if isinstance(value, list):
        return any(fills_at(item, path, limit) for item in value)
    if not isinstance(value, dict):
        return False
    if not path:
        nodes = value.get("nodes")
        return isinstance(nodes, list) and len(nodes) >= limit
    return fills_at(value.get(path[0]), path[1:], limit)


def fills_a_connection(value: Any, limit: int) -> bool:
    """Whether any nested connection (``{"nodes": [...]}``) in ``value`` holds ``limit`` nodes or more."""
    if isinstance(value, dict):
        nodes = value.get("nodes")
        if isinstance(nodes, list) and len(nodes) >= limit:
            return True
        items: Iterable[Any] = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    # A plain loop that skips scalars: this runs over every node of every page (an order has
    # ~150 nested objects), and recursing into each scalar through any() cost twice as much.
    for item in items:  # noqa: SIM110 -- a generator inside any() is the slower form here
        if isinstance(item, _CONTAINERS) and fills_a_connection(item, limit):
            return True
    return False


def shopify_streams(client: ShopifyClient, names: tuple[str, ...] | None = None) -> list[ShopifyStream]:
    """The connector's streams (all four by default), sharing one client and its cost bucket."""
    unknown = sorted(set(names or ()) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown Shopify stream(s) {unknown}; known: {', '.join(SPECS)}")
    bulk = BulkRunner(client)
    return [ShopifyStream(client, SPECS[name], bulk=bulk) for name in names or tuple(SPECS)]
