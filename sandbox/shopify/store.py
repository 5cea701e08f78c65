"""The demo shop as column arrays, sorted per sort key, for fast paging.

Every root collection (customers, orders, checkouts, products) keeps its table in
id order plus one :class:`SortIndex` per supported sort key: row numbers ordered
by ``(value, id)``. A page is then a binary search for the cursor and a slice;
only the rows of that page become Python dicts. Child tables (order lines,
refunds, refund lines, checkout lines) are sorted by ``(parent id, id)`` so a
parent's children are one ``searchsorted`` away.

Timestamps are truncated to whole seconds on load: Shopify stores and renders
seconds, and the sandbox must filter on exactly what it renders.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.shop.tables import read_table
from sandbox.shopify.search import Ranges


class CursorError(ValueError):
    """A cursor this sandbox did not issue."""


@dataclass(frozen=True)
class SortIndex:
    """Rows ordered by ``(value, id)``.

    ``rows`` index the table, ``values`` are the sort keys in that order and
    ``table_ids`` is the table's whole id column (shared, not copied: ids in index
    order are only ever needed for a page or a run of equal values).
    """

    rows: np.ndarray
    values: np.ndarray
    table_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> np.ndarray:
        return self.table_ids[self.rows]

    def slice(self, start: int, stop: int) -> SortIndex:
        return SortIndex(self.rows[start:stop], self.values[start:stop], self.table_ids)

    def take(self, positions: np.ndarray) -> SortIndex:
        return SortIndex(self.rows[positions], self.values[positions], self.table_ids)

    def bisect(self, value: int, id_: int, *, right: bool) -> int:
        """Position of ``(value, id_)`` in the order (after equal keys when ``right``)."""
        low = int(np.searchsorted(self.values, value, "left"))
        high = int(np.searchsorted(self.values, value, "right"))
        tied_ids = self.table_ids[self.rows[low:high]]  # ascending: ties are ordered by id
        return low + int(np.searchsorted(tied_ids, id_, "right" if right else "left"))


def encode_cursor(value: int, id_: int) -> str:
    """An opaque cursor in Shopify's style: base64 of ``{"last_id", "last_value"}``."""
    # Formatted by hand: bulk runs and big pages make millions of these, json.dumps is 3× slower.
    return base64.b64encode(f'{{"last_id":{id_},"last_value":{value}}}'.encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(value, id)`` of a cursor made by :func:`encode_cursor`."""
    try:
        payload = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return int(payload["last_value"]), int(payload["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise CursorError(
            f"Invalid cursor {cursor!r}: pass a cursor from this connection's edges or pageInfo"
        ) from None


def _int64(column: pa.ChunkedArray) -> np.ndarray:
    """Ids and timestamps (as microseconds) as int64; nulls become the int64 minimum."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.int64())
    return column.fill_null(np.iinfo(np.int64).min).to_numpy().astype(np.int64, copy=False)


def _floor_seconds(table: pa.Table) -> pa.Table:
    for position, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(position, field, pc.floor_temporal(table.column(position), unit="second"))
    return table


def _public(table: pa.Table) -> pa.Table:
    """Drop the ground-truth columns: the servers never expose them (see ``sandbox.shop.tables``)."""
    return table.drop_columns([n for n in table.column_names if n.startswith("true_") or n == "person_id"])


def _by_id(table: pa.Table, key: str = "id") -> pa.Table:
    return table.take(pa.array(np.argsort(_int64(table.column(key)), kind="stable")))


class Collection:
    """One root collection: its table in id order and a sort index per sort key."""

    def __init__(self, table: pa.Table, sort_columns: dict[str, str]) -> None:
        """Args: table (with an ``id`` column); sort_columns: sort key name → column name."""
        self.table = _floor_seconds(_by_id(_public(table)))
        self.ids = _int64(self.table.column("id"))
        self.sort_columns = sort_columns
        self._columns: dict[str, np.ndarray] = {"id": self.ids}
        self._indexes: dict[str, SortIndex] = {}
        self._filtered: OrderedDict[tuple, SortIndex] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, sort_key: str) -> SortIndex:
        """The sort index of ``sort_key``, built on first use (most clients use one or two keys)."""
        with self._lock:
            if sort_key not in self._indexes:
                column = self.sort_columns[sort_key]
                values = self._column(column)
                # The table is in id order already; other keys sort by (value, id).
                rows = np.arange(len(self.ids)) if column == "id" else np.lexsort((self.ids, values))
                self._indexes[sort_key] = SortIndex(rows, values[rows], self.ids)
            return self._indexes[sort_key]

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        """One id or timestamp column as int64 (cached)."""
        with self._lock:
            return self._column(name)

    def _column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = _int64(self.table.column(name))
        return self._columns[name]

    def row_of(self, ids: np.ndarray) -> np.ndarray:
        """Row numbers of ``ids`` (-1 where unknown)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(ids), -1)
        positions = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[positions] == ids, positions, -1)

    def select(self, sort_key: str, ranges: Ranges) -> SortIndex:
        """The rows matching ``ranges`` in ``sort_key`` order.

        A range on the sort column itself is a binary search (the incremental-sync
        case: ``updated_at`` window sorted by ``UPDATED_AT``); ranges on other
        columns need a scan, whose result is cached so paging through stays cheap.
        """
        index = self.index(sort_key)
        sort_column = self.sort_columns[sort_key]
        if sort_column in ranges:
            low, high = ranges[sort_column]
            index = index.slice(int(np.searchsorted(index.values, low)), int(np.searchsorted(index.values, high)))
        others = {column: bounds for column, bounds in ranges.items() if column != sort_column}
        if not others:
            return index
        key = (sort_key, tuple(sorted(ranges.items())))
        with self._lock:
            if key in self._filtered:
                self._filtered.move_to_end(key)
                return self._filtered[key]
        mask = np.ones(len(index), dtype=bool)
        for column, (low, high) in others.items():
            values = self.column(column)[index.rows]
            mask &= (values >= low) & (values < high)
        selected = index.take(np.flatnonzero(mask))
        with self._lock:
            self._filtered[key] = selected
            while len(self._filtered) > 16:
                self._filtered.popitem(last=False)
        return selected

    def rows(self, rows: np.ndarray) -> list[dict]:
        """The given rows as dicts (the only place rows become Python objects)."""
        return self.table.take(pa.array(rows, pa.int64())).to_pylist()


class Children:
    """A child table grouped by its parent column, e.g. order lines by ``order_id``."""

    def __init__(self, table: pa.Table, parent: str, key: str = "id") -> None:
        table = _floor_seconds(_public(table))
        parents = _int64(table.column(parent))
        keys = _int64(table.column(key)) if key in table.column_names else np.arange(len(parents))
        order = np.lexsort((keys, parents))
        self.table = table.take(pa.array(order))
        self.parents = parents[order]

    def group_rows(self, parent_ids: np.ndarray | list[int]) -> dict[int, list[dict]]:
        """Children of each parent id as dicts, in child-id order; one batched read."""
        wanted = np.asarray(parent_ids, dtype=np.int64)
        starts = np.searchsorted(self.parents, wanted, "left")
        stops = np.searchsorted(self.parents, wanted, "right")
        spans = [np.arange(start, stop) for start, stop in zip(starts, stops, strict=True)]
        flat = np.concatenate(spans) if spans else np.empty(0, np.int64)
        rows = self.table.take(pa.array(flat, pa.int64())).to_pylist()
        grouped: dict[int, list[dict]] = {}
        offset = 0
        for parent_id, span in zip(wanted.tolist(), spans, strict=True):
            grouped[parent_id] = rows[offset : offset + len(span)]
            offset += len(span)
        return grouped


class ShopData:
    """Every table the Shopify sandbox serves, read once from a shop directory."""

    def __init__(self, shop_dir: Path) -> None:
        self.shop_dir = Path(shop_dir)
        times = {"UPDATED_AT": "updated_at", "CREATED_AT": "created_at", "ID": "id"}
        self.customers = Collection(read_table(shop_dir, "customers"), times)
        self.orders = Collection(read_table(shop_dir, "orders"), {**times, "PROCESSED_AT": "processed_at"})
        # AbandonedCheckoutSortKeys has no UPDATED_AT; CHECKOUT_ID is the checkout's id.
        self.checkouts = Collection(
            read_table(shop_dir, "checkouts"), {"CREATED_AT": "created_at", "ID": "id", "CHECKOUT_ID": "id"}
        )
        self.products = Collection(read_table(shop_dir, "products"), times)
        self.order_lines = Children(read_table(shop_dir, "order_lines"), "order_id")
        self.refunds = Children(read_table(shop_dir, "refunds"), "order_id")
        self.refund_lines = Children(read_table(shop_dir, "refund_lines"), "refund_id", key="order_line_id")
        self.checkout_lines = Children(read_table(shop_dir, "checkout_lines"), "checkout_id")
        self.customer_orders, self.customer_spent_cents = self._customer_totals()

    def _customer_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Orders per customer (all) and amount spent (non-cancelled totals minus refunds), by customer row."""
        rows = self.customers.row_of(self.orders.column("customer_id"))
        known = rows >= 0
        count = np.bincount(rows[known], minlength=len(self.customers))
        table = self.orders.table
        net = _int64(table.column("total_cents")) - _int64(table.column("refunded_cents"))
        kept = known & table.column("cancelled_at").is_null().to_numpy(zero_copy_only=False)
        spent = np.bincount(rows[kept], weights=net[kept].astype(np.float64), minlength=len(self.customers))
        return count.astype(np.int64), np.rint(spent).astype(np.int64)
