"""The Amazon marketplace channel: its own buyers (US), orders and items.

Amazon buyers are separate persons (``channel='amazon'``): Amazon hides them behind
anonymised relay addresses, so they never share an email with Shopify persons. They
follow the same buy-till-you-die process, so their orders carry real replenishment
cadence for the product analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sandbox.generator._base import (
    HOUR,
    LOCATIONS,
    MINUTE,
    Clock,
    concat,
    digits,
    hex_strings,
    splitmix64,
    take,
    unique_random_ints,
)
from sandbox.generator.behaviour import Behaviour, BehaviourParams, draw_behaviour, simulate
from sandbox.generator.catalog import Catalog
from sandbox.generator.orders import build_lines
from sandbox.generator.people import Names, draw_locations, draw_names
from sandbox.shop.tables import AMAZON_MARKETPLACE_ID, SHOP_CURRENCY

AMAZON_BUYER_SHARE = 0.15  # Amazon-only buyers, relative to Shopify persons
AMAZON_PARAMS = BehaviourParams(adhoc_per_year=1.1, one_and_done=0.4, p_stream=0.45, p_second_stream=0.15)
ORDER_ID_PREFIXES = ("111", "112", "113", "114")
CANCELLED_RATE = 0.02
STATUSES = ("SHIPPED", "UNSHIPPED", "PENDING", "CANCELLED")  # SP-API fulfillment statuses used
SHIPPED, UNSHIPPED, PENDING, CANCELLED = range(4)


@dataclass
class Amazon:
    names: Names
    loc: np.ndarray
    email: pa.Array  # relay address per buyer
    beh: Behaviour
    orders: pa.Table
    items: pa.Table
    true_orders: np.ndarray
    true_revenue: np.ndarray
    scale: float


def build_amazon(
    n_buyers: int,
    clock: Clock,
    catalog: Catalog,
    rng: np.random.Generator,
    target_orders: int | None = None,
    loyalty: float = 1.0,
) -> Amazon:
    """Amazon buyers and their orders (every Amazon buyer has bought at least once)."""
    params = AMAZON_PARAMS.busier(loyalty)
    span = clock.span
    names = draw_names(n_buyers, rng)
    loc = draw_locations(n_buyers, rng, us_only=True)
    beh = draw_behaviour(n_buyers, clock, catalog, rng, params)
    ev, scale = simulate(beh, np.arange(n_buyers), catalog, clock, loc, rng, params, target_orders)
    order = np.argsort(ev.t, kind="stable")
    ev.person, ev.t, ev.kind, ev.product, ev.qty = (a[order] for a in (ev.person, ev.t, ev.kind, ev.product, ev.qty))
    items = build_lines(ev, beh.stream_product, beh.spend, catalog, rng, basket=0.2, addon=0.1)
    n = len(ev)
    total = np.rint(np.bincount(items.owner, weights=items.qty * items.price, minlength=n)).astype(np.int64)

    age = span - ev.t
    cancelled = rng.random(n) < CANCELLED_RATE
    unshipped = (age < 3.0) & (rng.random(n) < 1.0 - age / 3.0)
    status = np.where(unshipped, UNSHIPPED, SHIPPED)
    status = np.where(age < HOUR, PENDING, status)
    status = np.where(cancelled, CANCELLED, status)
    delay = np.select(
        [status == SHIPPED, status == CANCELLED],
        [rng.uniform(0.2, 2.0, n), rng.uniform(0.01, 1.0, n)],
        rng.uniform(1.0, 30.0, n) * MINUTE,
    )
    updated = ev.t + np.minimum(delay, age * rng.uniform(0.5, 1.0, n))

    order_number = unique_numbers(rng, n)
    order_id = concat(
        take(ORDER_ID_PREFIXES, rng.integers(0, len(ORDER_ID_PREFIXES), n)),
        "-",
        digits(order_number // 10**7, 7),
        "-",
        digits(order_number % 10**7, 7),
    )
    email = concat(hex_strings(splitmix64(np.arange(n_buyers) + rng.integers(0, 2**40))), "@marketplace.amazon.com")
    zip_prefix = take([row[5] for row in LOCATIONS], loc)
    orders = pa.table(
        {
            "amazon_order_id": order_id,
            "person_id": ev.person,  # remapped to person ids by the caller
            "buyer_email": email.take(pa.array(ev.person)),
            "buyer_name": concat(names.first, " ", names.last).take(pa.array(ev.person)),
            "marketplace_id": pa.array([AMAZON_MARKETPLACE_ID] * n, pa.string()),
            "purchase_date": clock.ts(ev.t),
            "last_update_date": clock.ts(updated),
            "order_status": take(STATUSES, status),
            "fulfilled_by": take(("AMAZON", "MERCHANT"), (rng.random(n) >= 0.7).astype(np.int8)),
            "currency": pa.array([SHOP_CURRENCY] * n, pa.string()),
            "total_cents": total,
            "ship_country_code": pa.array(["US"] * n, pa.string()),
            "ship_postal_code": concat(zip_prefix, digits(rng.integers(0, 100, n_buyers), 2)).take(pa.array(ev.person)),
        }
    )
    items_table = pa.table(
        {
            "order_item_id": digits(unique_numbers(rng, len(items)), 14),
            "amazon_order_id": order_id.take(pa.array(items.owner)),
            "asin": take(catalog.asin, items.product),
            "seller_sku": take(catalog.sku, items.product),
            "title": take(catalog.title, items.product),
            "quantity": items.qty,
            "unit_price_cents": items.price,
        }
    )
    kept = ~cancelled
    return Amazon(
        names=names,
        loc=loc,
        email=email,
        beh=beh,
        orders=orders,
        items=items_table,
        true_orders=np.bincount(ev.person[kept], minlength=n_buyers),
        true_revenue=np.rint(np.bincount(ev.person[kept], weights=total[kept], minlength=n_buyers)).astype(np.int64),
        scale=scale,
    )


def unique_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct random 14-digit numbers (Amazon order and item numbers)."""
    return unique_random_ints(rng, n, 10**13, 10**14)
