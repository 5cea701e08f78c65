"""Orders from purchase events: baskets, money (discounts, shipping, tax), cancellations, refunds.

Everything here works on internal row positions; Shopify ids are assigned when the
tables are assembled. Orders are kept sorted by creation time, so position = rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sandbox.generator._base import FX_RATES, LOC_SHIP_FEE, LOC_SHIP_FREE, LOC_TAX, Clock
from sandbox.generator.behaviour import FIRST, Behaviour, Events
from sandbox.generator.catalog import Catalog
from sandbox.generator.people import People

CODES = ("WELCOME10", "SAVE15", "BFCM25", "SPRING20", "VIP20", "COMEBACK15")
CODE_PERCENT = np.array([10, 15, 25, 20, 20, 15], dtype=np.int64)
WELCOME, BFCM = 0, 2
EVERYDAY_CODES = np.array([1, 3, 4, 5])
AUTOMATIC_PERCENT = 5  # bundle discount without a code, from 4 units up
SOURCE_NAMES = ("web", "pos", "shopify_draft_order")
CANCEL_REASONS = ("CUSTOMER", "INVENTORY", "FRAUD", "DECLINED", "OTHER", "STAFF")
CANCEL_SHARES = [0.55, 0.15, 0.08, 0.1, 0.08, 0.04]
FULL_REFUND_NOTES = ("Customer return", "Damaged in transit", "Order never arrived")
PARTIAL_REFUND_NOTES = ("Item damaged", "Item missing from parcel", "Goodwill gesture")
CANCEL_RATE = 0.03
REFUND_RATE = 0.062  # of orders old enough to be refunded; ~6% of all orders
FULL_REFUND_SHARE = 0.35


@dataclass
class Lines:
    """Order (or checkout) lines, sorted by owner then position."""

    owner: np.ndarray  # int64 row of the order / checkout
    product: np.ndarray  # int32 product index
    qty: np.ndarray  # int32
    price: np.ndarray  # int64 unit price, cents
    discount: np.ndarray  # int64 discount allocated to the line, cents

    def __len__(self) -> int:
        return len(self.owner)

    def select(self, mask: np.ndarray) -> Lines:
        return Lines(self.owner[mask], self.product[mask], self.qty[mask], self.price[mask], self.discount[mask])

    @staticmethod
    def concat(parts: list[Lines]) -> Lines:
        return Lines(
            owner=np.concatenate([p.owner for p in parts]),
            product=np.concatenate([p.product for p in parts]),
            qty=np.concatenate([p.qty for p in parts]),
            price=np.concatenate([p.price for p in parts]),
            discount=np.concatenate([p.discount for p in parts]),
        )


@dataclass
class Orders:
    """Shopify orders, one row per order, sorted by ``t``."""

    person: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    record: np.ndarray  # customer record row (filled by customers.assign_records)
    source_name: np.ndarray
    currency: np.ndarray
    subtotal: np.ndarray
    discount: np.ndarray
    shipping: np.ndarray
    tax: np.ndarray
    total: np.ndarray
    code: np.ndarray  # index into CODES, -1 = none
    cancelled_t: np.ndarray  # NaN = not cancelled
    cancel_reason: np.ndarray  # index into CANCEL_REASONS, -1
    refunded: np.ndarray  # cents
    refund_t: np.ndarray  # NaN = no refund
    checkout: np.ndarray  # recovered checkout row, -1

    def __len__(self) -> int:
        return len(self.t)

    @property
    def fx(self) -> np.ndarray:
        return FX_RATES[self.currency]

    @property
    def cancelled(self) -> np.ndarray:
        return ~np.isnan(self.cancelled_t)

    @property
    def updated_t(self) -> np.ndarray:
        return np.fmax(np.fmax(self.t, self.cancelled_t), self.refund_t)


@dataclass
class Refunds:
    """One refund per refunded order, plus its lines."""

    order: np.ndarray
    t: np.ndarray
    amount: np.ndarray
    note: np.ndarray  # str array
    line_refund: np.ndarray  # refund row of each refund line
    line: np.ndarray  # order line row
    line_qty: np.ndarray
    line_subtotal: np.ndarray


def build_lines(
    ev: Events,
    stream_product: np.ndarray,
    spend: np.ndarray,
    catalog: Catalog,
    rng: np.random.Generator,
    basket: float = 0.45,
    addon: float = 0.2,
) -> Lines:
    """Baskets: the replenished product (if any) first, then extra products.

    Extra products never include the person's replenishment products, so same-product
    intervals of a consumable stay those of its replenishment cycle.
    """
    n = len(ev)
    main = ev.product >= 0
    level = spend[ev.person]
    extra_addon = (rng.random(n) < np.minimum(addon * level, 0.5)).astype(np.int64)
    n_extra = np.where(main, extra_addon, 1 + np.minimum(rng.poisson(basket * level), 3))
    ex_owner = np.repeat(np.arange(n, dtype=np.int64), n_extra)
    picks = rng.choice(catalog.n, size=len(ex_owner), p=catalog.popularity)
    excluded = stream_product[ev.person[ex_owner]]
    for _ in range(3):
        clash = (picks == excluded[:, 0]) | (picks == excluded[:, 1])
        picks[clash] = rng.choice(catalog.n, size=int(clash.sum()), p=catalog.popularity)
    clash = (picks == excluded[:, 0]) | (picks == excluded[:, 1])
    picks[clash] = catalog.durables[rng.integers(0, len(catalog.durables), int(clash.sum()))]
    ex_qty = rng.choice(np.array([1, 2, 3], dtype=np.int32), size=len(ex_owner), p=[0.88, 0.10, 0.02])

    main_rows = np.flatnonzero(main)
    owner = np.concatenate([main_rows, ex_owner])
    product = np.concatenate([ev.product[main_rows], picks]).astype(np.int32)
    qty = np.concatenate([ev.qty[main_rows], ex_qty]).astype(np.int32)
    position = np.concatenate([np.zeros(len(main_rows), np.int64), 1 + np.arange(len(ex_owner))])
    order = np.lexsort((position, owner))
    owner, product, qty = owner[order], product[order], qty[order]
    # A product appears once per basket (Shopify merges equal variants): drop repeats.
    dup = np.zeros(len(owner), dtype=bool)
    for lag in range(1, 6):
        dup[lag:] |= (owner[lag:] == owner[:-lag]) & (product[lag:] == product[:-lag])
    keep = ~dup
    price = catalog.price[product[keep]]
    return Lines(owner[keep], product[keep], qty[keep], price, np.zeros(int(keep.sum()), np.int64))


def _sum_by(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.rint(np.bincount(owner, weights=values, minlength=n)).astype(np.int64)


def shipping_and_tax(net: np.ndarray, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat shipping below the free-shipping threshold; tax on the discounted subtotal."""
    shipping = np.where(net < LOC_SHIP_FREE[loc], LOC_SHIP_FEE[loc], 0)
    return shipping, np.rint(net * LOC_TAX[loc]).astype(np.int64)


def build_orders(
    ev: Events,
    beh: Behaviour,
    people: People,
    catalog: Catalog,
    clock: Clock,
    rng: np.random.Generator,
) -> tuple[Orders, Lines]:
    """Orders and lines with money, sorted by creation time."""
    order = np.argsort(ev.t, kind="stable")
    ev = Events(ev.person[order], ev.t[order], ev.kind[order], ev.product[order], ev.qty[order])
    n = len(ev)
    lines = build_lines(ev, beh.stream_product, beh.spend, catalog, rng)
    units = np.bincount(lines.owner, weights=lines.qty, minlength=n)
    line_total = lines.qty * lines.price
    subtotal = _sum_by(lines.owner, line_total, n)

    first = ev.kind == FIRST
    prone = people.discount_prone[ev.person]
    in_bfcm = np.zeros(n, dtype=bool)
    for lo, hi in clock.bfcm_windows():  # a handful of windows
        in_bfcm |= (ev.t >= lo) & (ev.t < hi)
    p_code = np.where(first, np.where(prone, 0.7, 0.25), np.where(prone, 0.55, 0.06))
    p_code = np.where(in_bfcm, np.maximum(p_code, 0.4), p_code)
    everyday = EVERYDAY_CODES[rng.integers(0, len(EVERYDAY_CODES), n)]
    code = np.where(first, WELCOME, np.where(in_bfcm, BFCM, everyday))
    code = np.where(rng.random(n) < p_code, code, -1)
    percent = np.where(code >= 0, CODE_PERCENT[np.maximum(code, 0)], np.where(units >= 4, AUTOMATIC_PERCENT, 0))
    lines.discount = line_total * percent[lines.owner] // 100
    discount = _sum_by(lines.owner, lines.discount, n)

    source_name = rng.choice(len(SOURCE_NAMES), size=n, p=[0.95, 0.02, 0.03]).astype(np.int8)
    loc = people.loc[ev.person]
    shipping, tax = shipping_and_tax(subtotal - discount, loc)
    shipping = np.where(source_name == 1, 0, shipping)  # picked up in the shop
    nan = np.full(n, np.nan)
    orders = Orders(
        person=ev.person,
        t=ev.t,
        kind=ev.kind,
        record=ev.person.copy(),
        source_name=source_name,
        currency=people.currency[ev.person].astype(np.int8),
        subtotal=subtotal,
        discount=discount,
        shipping=shipping,
        tax=tax,
        total=subtotal - discount + shipping + tax,
        code=code.astype(np.int8),
        cancelled_t=nan,
        cancel_reason=np.full(n, -1, np.int8),
        refunded=np.zeros(n, np.int64),
        refund_t=nan.copy(),
        checkout=np.full(n, -1, np.int64),
    )
    _cancel(orders, clock, rng)
    return orders, lines


def _cancel(orders: Orders, clock: Clock, rng: np.random.Generator) -> None:
    n = len(orders)
    cancel = rng.random(n) < CANCEL_RATE
    age = clock.span - orders.t
    delay = np.minimum(rng.uniform(0.005, 2.0, n), age * rng.uniform(0.2, 0.95, n))
    orders.cancelled_t = np.where(cancel, orders.t + delay, np.nan)
    reason = rng.choice(len(CANCEL_REASONS), size=n, p=CANCEL_SHARES)
    orders.cancel_reason = np.where(cancel, reason, -1).astype(np.int8)


def refund(orders: Orders, lines: Lines, people: People, clock: Clock, rng: np.random.Generator) -> Refunds:
    """Refund ~6% of the orders: a full refund, or one unit of one line with its tax."""
    n = len(orders)
    age = clock.span - orders.t
    refunded = ~orders.cancelled & (age >= 2.0) & (rng.random(n) < REFUND_RATE)
    full = refunded & (rng.random(n) < FULL_REFUND_SHARE)
    partial = refunded & ~full
    delay = np.minimum(rng.uniform(1.0, 30.0, n), age * rng.uniform(0.3, 0.95, n))

    # Partial: one random line per order, one unit of it.
    cand = np.flatnonzero(partial[lines.owner])
    key = rng.random(len(cand))
    cand = cand[np.lexsort((key, lines.owner[cand]))]
    first_of_order = np.ones(len(cand), dtype=bool)
    first_of_order[1:] = lines.owner[cand[1:]] != lines.owner[cand[:-1]]
    p_line = cand[first_of_order]
    p_sub = lines.price[p_line] - lines.discount[p_line] // lines.qty[p_line]
    p_order = lines.owner[p_line]
    p_amount = p_sub + np.rint(p_sub * LOC_TAX[people.loc[orders.person[p_order]]]).astype(np.int64)

    f_line = np.flatnonzero(full[lines.owner])
    f_sub = lines.qty[f_line] * lines.price[f_line] - lines.discount[f_line]

    amount = np.zeros(n, np.int64)
    amount[full] = orders.total[full]
    amount[p_order] = p_amount
    orders.refunded = amount
    orders.refund_t = np.where(refunded, orders.t + delay, np.nan)

    rows = np.flatnonzero(refunded)  # refund row r belongs to order rows[r]
    row_of = np.full(n, -1, np.int64)
    row_of[rows] = np.arange(len(rows))
    line = np.concatenate([f_line, p_line])
    order = np.argsort(line, kind="stable")
    notes = np.where(
        full[rows],
        np.array(FULL_REFUND_NOTES)[rng.integers(0, 3, len(rows))],
        np.array(PARTIAL_REFUND_NOTES)[rng.integers(0, 3, len(rows))],
    )
    return Refunds(
        order=rows,
        t=orders.refund_t[rows],
        amount=amount[rows],
        note=notes,
        line_refund=row_of[lines.owner[line]][order],
        line=line[order],
        line_qty=np.concatenate([lines.qty[f_line], np.ones(len(p_line), np.int32)])[order],
        line_subtotal=np.concatenate([f_sub, p_sub])[order],
    )


FINANCIAL_STATUSES = ("PAID", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED")


def financial_status(orders: Orders) -> np.ndarray:
    """Index into FINANCIAL_STATUSES: paid, (partially) refunded, or voided (cancelled before capture)."""
    status = np.where(orders.refunded == 0, 0, 1)
    status = np.where((orders.refunded > 0) & (orders.refunded == orders.total), 2, status)
    return np.where(orders.cancelled, 3, status).astype(np.int8)
