"""Abandoned checkouts: recovered ones (that became an order 1–72 h later), open ones, anonymous ones.

Plenty are recent — the last 72 hours before ``now``, some only 1–3 hours old — so
abandoned-cart sequences have something to send in a demo run at ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.generator._base import HOUR, MINUTE, Clock
from sandbox.generator.behaviour import Behaviour
from sandbox.generator.catalog import Catalog
from sandbox.generator.customers import Records
from sandbox.generator.orders import Lines, Orders, shipping_and_tax
from sandbox.generator.people import VALID, People, draw_locations

RECOVERED_SHARE = 0.06  # of web orders, the order recovered an abandoned checkout
OPEN_PER_ORDER = 0.30  # open (never completed) checkouts by known people, per order
ANONYMOUS_SHARE = 0.15  # extra checkouts without email or customer, relative to open ones


@dataclass
class Checkouts:
    person: np.ndarray  # -1 = anonymous
    record: np.ndarray  # customer record, -1 = none
    t: np.ndarray
    updated_t: np.ndarray
    completed_t: np.ndarray  # NaN = not completed
    currency: np.ndarray
    subtotal: np.ndarray
    total: np.ndarray
    order: np.ndarray  # recovered order row, -1
    email: pa.Array

    def __len__(self) -> int:
        return len(self.t)


def _baskets(n: int, catalog: Catalog, rng: np.random.Generator) -> Lines:
    """Random baskets of 1–4 distinct products for ``n`` checkouts."""
    size = 1 + np.minimum(rng.poisson(0.5, n), 3)
    owner = np.repeat(np.arange(n, dtype=np.int64), size)
    product = rng.choice(catalog.n, size=len(owner), p=catalog.popularity).astype(np.int32)
    dup = np.zeros(len(owner), dtype=bool)
    for lag in range(1, 4):
        dup[lag:] |= (owner[lag:] == owner[:-lag]) & (product[lag:] == product[:-lag])
    owner, product = owner[~dup], product[~dup]
    qty = rng.choice(np.array([1, 2, 3], np.int32), size=len(owner), p=[0.85, 0.12, 0.03])
    return Lines(owner, product, qty, catalog.price[product], np.zeros(len(owner), np.int64))


def build_checkouts(
    orders: Orders,
    lines: Lines,
    people: People,
    beh: Behaviour,
    records: Records,
    catalog: Catalog,
    clock: Clock,
    rng: np.random.Generator,
) -> tuple[Checkouts, Lines]:
    """All abandoned checkouts, sorted by creation; sets ``orders.checkout`` for recovered orders."""
    span, n_people = clock.span, people.n

    # Recovered: the order's own basket, abandoned 1–72 h (log-uniform) before the order.
    rec_orders = np.flatnonzero((orders.source_name == 0) & (rng.random(len(orders)) < RECOVERED_SHARE))
    wait = np.exp(rng.uniform(np.log(1.0), np.log(72.0), len(rec_orders))) * HOUR
    rec_lines = lines.select(np.isin(lines.owner, rec_orders))
    rec_lines.owner = np.searchsorted(rec_orders, rec_lines.owner)

    # Open checkouts by known people while they are around, plus a recent burst.
    n_open = round(OPEN_PER_ORDER * len(orders))
    # People abandon carts at a steady rate while around: weight by how long that is.
    around = np.maximum(np.minimum(beh.dropout + 14.0, span) - beh.start, 0.0)
    open_person = rng.choice(n_people, size=n_open, p=(around + 1.0) / (around + 1.0).sum())
    open_t = beh.start[open_person] + rng.random(n_open) * around[open_person]
    alive = np.flatnonzero((beh.dropout > span) & (people.email_kind == VALID))
    n_recent = max(24, n_people // 50)
    recent_person = alive[rng.integers(0, len(alive), n_recent)] if len(alive) else np.zeros(0, np.int64)
    very_recent = np.arange(len(recent_person)) < max(3, len(recent_person) // 10)  # 1–3 h old
    recent_age = np.where(
        very_recent, rng.uniform(1.0, 3.0, len(recent_person)), rng.uniform(1.0, 72.0, len(recent_person))
    )
    recent_t = span - recent_age * HOUR

    n_anon = round(ANONYMOUS_SHARE * (n_open + len(recent_person)))
    anon_t = np.where(rng.random(n_anon) < 0.1, span - rng.uniform(1.0, 72.0, n_anon) * HOUR, rng.random(n_anon) * span)

    known = np.concatenate([open_person, recent_person])
    person = np.concatenate([orders.person[rec_orders], known, np.full(n_anon, -1)])
    record = np.concatenate([orders.record[rec_orders], known, np.full(n_anon, -1)])
    t = np.concatenate([orders.t[rec_orders] - wait, open_t, recent_t, anon_t])
    n_rec, n_other = len(rec_orders), len(known) + n_anon
    other = _baskets(n_other, catalog, rng)
    other_sub = np.rint(np.bincount(other.owner, weights=other.qty * other.price, minlength=n_other)).astype(np.int64)
    loc = np.concatenate([people.loc[known], draw_locations(n_anon, rng)])
    shipping, tax = shipping_and_tax(other_sub, loc)
    currency = np.concatenate([orders.currency[rec_orders], people.currency[known], np.zeros(n_anon, np.int64)])
    completed = np.concatenate([orders.t[rec_orders], np.full(n_other, np.nan)])
    updated = np.where(np.isnan(completed), np.minimum(t + rng.uniform(0.5, 20.0, len(t)) * MINUTE, span), completed)

    other.owner = other.owner + n_rec
    rec_lines.discount = np.zeros(len(rec_lines), np.int64)  # checkout lines carry no discount
    all_lines = Lines.concat([rec_lines, other])
    email = records.email.take(pa.array(np.maximum(record, 0)))
    email = pc.if_else(pa.array(record >= 0), email, pa.scalar(None, pa.string()))

    # Sort by creation time; remap line owners and the orders' links.
    order = np.argsort(t, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    all_lines.owner = rank[all_lines.owner]
    line_order = np.lexsort((np.arange(len(all_lines)), all_lines.owner))
    all_lines = all_lines.select(line_order)
    orders.checkout[rec_orders] = rank[:n_rec]
    recovered_order = np.concatenate([rec_orders, np.full(n_other, -1)])
    checkouts = Checkouts(
        person=person[order],
        record=record[order],
        t=t[order],
        updated_t=updated[order],
        completed_t=completed[order],
        currency=currency[order],
        subtotal=np.concatenate([orders.subtotal[rec_orders], other_sub])[order],
        total=np.concatenate([orders.total[rec_orders], other_sub + shipping + tax])[order],
        order=recovered_order[order],
        email=email.take(pa.array(order)),
    )
    return checkouts, all_lines
