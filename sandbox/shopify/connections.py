"""Relay connections: page windows over a sort index, and over small nested lists.

Shopify pages with ``first``/``after`` (and ``last``/``before``), optionally
``reverse``. Positions are computed in ascending ``(value, id)`` order and the
page is flipped for ``reverse``, so one cursor format serves both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox.shopify.store import SortIndex, decode_cursor, encode_cursor

MAX_PAGE_SIZE = 250


@dataclass(frozen=True)
class Page:
    """One page of a sorted selection, already in the order the client asked for."""

    index: SortIndex
    has_next: bool
    has_previous: bool

    def cursors(self) -> list[str]:
        return [encode_cursor(v, i) for v, i in zip(self.index.values.tolist(), self.index.ids.tolist(), strict=True)]


def window(
    total: int,
    *,
    first: int | None,
    last: int | None,
    reverse: bool,
    after: int | None = None,
    before: int | None = None,
) -> tuple[int, int, bool, bool]:
    """The ascending ``[start, stop)`` of a page, with hasNextPage and hasPreviousPage.

    ``after``/``before`` are already positions in ascending order: for an ``after``
    cursor, the number of items at or before it in the client's direction.
    """
    start, stop = 0, total
    if after is not None:
        if reverse:
            stop = min(stop, after)
        else:
            start = max(start, after)
    if before is not None:
        if reverse:
            start = max(start, before)
        else:
            stop = min(stop, before)
    stop = max(start, stop)
    if first is not None:
        if reverse:
            start = max(start, stop - first)
        else:
            stop = min(stop, start + first)
    if last is not None:
        if reverse:
            stop = min(stop, start + last)
        else:
            start = max(start, stop - last)
    earlier, later = start > 0, stop < total
    return start, stop, (earlier if reverse else later), (later if reverse else earlier)


def page(
    index: SortIndex,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> Page:
    """Select a page of ``index`` (ascending) the way Shopify's connections do."""
    after_at = before_at = None
    if after is not None:
        value, id_ = decode_cursor(after)
        after_at = index.bisect(value, id_, right=not reverse)
    if before is not None:
        value, id_ = decode_cursor(before)
        before_at = index.bisect(value, id_, right=reverse)
    start, stop, has_next, has_previous = window(
        len(index), first=first, last=last, reverse=reverse, after=after_at, before=before_at
    )
    selected = index.slice(start, stop)
    if reverse:
        selected = selected.take(np.arange(len(selected) - 1, -1, -1))
    return Page(selected, has_next, has_previous)


def connection(nodes: Sequence[Any], cursors: Sequence[str], has_next: bool, has_previous: bool) -> dict[str, Any]:
    """The connection object: ``edges``, ``nodes`` and ``pageInfo``."""
    return {
        "edges": [{"cursor": cursor, "node": node} for cursor, node in zip(cursors, nodes, strict=True)],
        "nodes": list(nodes),
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def list_connection(items: Sequence[Any], args: dict[str, Any], *, bulk: bool) -> dict[str, Any]:
    """A nested connection (order lines, refund lines …) over an in-memory list.

    Cursors encode the position in the list. In a bulk operation every item is
    returned: bulk queries carry no page sizes.
    """
    if bulk:
        args = {}
    reverse = bool(args.get("reverse"))
    after = before = None
    if args.get("after") is not None:
        position = decode_cursor(args["after"])[1]
        after = len(items) - position if reverse else position + 1
    if args.get("before") is not None:
        position = decode_cursor(args["before"])[1]
        before = len(items) - 1 - position if reverse else position
    ordered = list(reversed(items)) if reverse else list(items)
    start, stop, has_next, has_previous = window(
        len(items), first=args.get("first"), last=args.get("last"), reverse=False, after=after, before=before
    )
    positions = range(start, stop)
    cursors = [encode_cursor(0, len(items) - 1 - p if reverse else p) for p in positions]
    return connection([ordered[p] for p in positions], cursors, has_next, has_previous)


def list_resolver(get_items: Callable[[], Sequence[Any]]) -> Callable[..., dict[str, Any]]:
    """A field resolver returning :func:`list_connection` over ``get_items()`` (called lazily)."""

    def resolve(info: Any, **args: Any) -> dict[str, Any]:
        return list_connection(get_items(), args, bulk=bool(info.context.get("bulk")))

    return resolve
