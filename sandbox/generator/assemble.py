"""Turn the simulation's internal arrays into the demo-shop tables, with Shopify-like ids.

Ids are large int64 values that grow with creation time, as Shopify's do; rows refer
to each other through them (orders → customers, lines → orders, refunds → lines …).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.generator._base import FX_RATES, LOCATIONS, Clock, concat, hex_strings, increasing_ids, take
from sandbox.generator.amazon import Amazon
from sandbox.generator.behaviour import Behaviour, true_rate_per_year
from sandbox.generator.catalog import Catalog
from sandbox.generator.checkouts import Checkouts
from sandbox.generator.customers import OPT_IN_LEVELS, Records, true_state
from sandbox.generator.orders import (
    CANCEL_REASONS,
    CODES,
    FINANCIAL_STATUSES,
    SOURCE_NAMES,
    Lines,
    Orders,
    Refunds,
    financial_status,
)
from sandbox.generator.people import SOURCES, STATES, SUBSCRIBED, People
from sandbox.shop.tables import SHOP_DOMAIN

CURRENCY_CODES = ("USD", "EUR", "GBP", "CAD", "AUD")
VIP_SHARE = 0.05  # top spenders carry the "vip" tag
TAG_COMBOS = ("", "newsletter", "vip", "newsletter, vip")


@dataclass
class Shop:
    clock: Clock
    catalog: Catalog
    people: People
    beh: Behaviour
    records: Records
    orders: Orders
    lines: Lines
    refunds: Refunds
    checkouts: Checkouts
    checkout_lines: Lines
    landing_source: pa.Array
    landing_campaign: pa.Array
    amazon: Amazon


def masked(values: np.ndarray, mask: np.ndarray) -> pa.Array:
    """int64 ``values`` with nulls where ``mask`` is True."""
    return pa.array(values, type=pa.int64(), mask=mask)


def location_columns(loc: np.ndarray) -> dict[str, pa.Array]:
    return {
        "country_code": take([x[0] for x in LOCATIONS], loc),
        "province_code": take([x[1] for x in LOCATIONS], loc),
        "city": take([x[2] for x in LOCATIONS], loc),
        "timezone": take([x[3] for x in LOCATIONS], loc),
    }


def shop_revenue(orders: Orders, n_people: int) -> tuple[np.ndarray, np.ndarray]:
    """Per person: non-cancelled orders and their totals minus refunds (cents)."""
    kept = ~orders.cancelled
    count = np.bincount(orders.person[kept], minlength=n_people)
    net = (orders.total - orders.refunded)[kept]
    return count, np.rint(np.bincount(orders.person[kept], weights=net, minlength=n_people)).astype(np.int64)


def _customers(shop: Shop, customer_id: np.ndarray, revenue: np.ndarray) -> pa.Table:
    rec, people, clock = shop.records, shop.people, shop.clock
    person = rec.person
    primary = ~rec.guest
    spenders = revenue[revenue > 0]
    vip_cut = np.quantile(spenders, 1.0 - VIP_SHARE) if len(spenders) else np.inf
    vip = primary & (revenue[person] >= vip_cut) & (revenue[person] > 0)
    newsletter = primary & ~people.buyer[person] & (rec.state == SUBSCRIBED)
    loc = location_columns(people.loc[person])
    phone = people.phone.take(pa.array(person))
    phone = pc.if_else(pa.array(primary | (np.arange(len(rec)) % 2 == 0)), phone, pa.scalar(None, pa.string()))
    no_marketing = np.isnan(rec.marketing_t)
    return pa.table(
        {
            "id": customer_id,
            "person_id": person + 1,
            "first_name": people.names.first.take(pa.array(person)),
            "last_name": people.names.last.take(pa.array(person)),
            "email": rec.email,
            "phone": phone,
            "marketing_state": take(STATES, rec.state),
            "marketing_opt_in_level": take(OPT_IN_LEVELS, rec.opt_in),
            "marketing_updated_at": clock.ts(np.nan_to_num(rec.marketing_t), mask=no_marketing),
            "country_code": loc["country_code"],
            "province_code": loc["province_code"],
            "city": loc["city"],
            "tags": take(TAG_COMBOS, vip * 2 + newsletter),
            "created_at": clock.ts(rec.created),
            "updated_at": clock.ts(rec.updated),
        }
    )


def _orders(shop: Shop, order_id: np.ndarray, customer_id: np.ndarray, checkout_id: np.ndarray) -> pa.Table:
    o, clock = shop.orders, shop.clock
    n = len(o)
    names = concat("#", pc.cast(pa.array(np.arange(1001, 1001 + n, dtype=np.int64)), pa.string()))
    return pa.table(
        {
            "id": order_id,
            "name": names,
            "customer_id": customer_id[o.record],
            "person_id": o.person + 1,
            "email": shop.records.email.take(pa.array(o.record)),
            "created_at": clock.ts(o.t),
            "processed_at": clock.ts(o.t),
            "updated_at": clock.ts(o.updated_t),
            "cancelled_at": clock.ts(np.nan_to_num(o.cancelled_t), mask=~o.cancelled),
            "cancel_reason": take(CANCEL_REASONS, o.cancel_reason),
            "financial_status": take(FINANCIAL_STATUSES, financial_status(o)),
            "presentment_currency": take(CURRENCY_CODES, o.currency),
            "fx_rate": FX_RATES[o.currency],
            "subtotal_cents": o.subtotal,
            "discount_cents": o.discount,
            "shipping_cents": o.shipping,
            "tax_cents": o.tax,
            "total_cents": o.total,
            "refunded_cents": o.refunded,
            "discount_code": take(CODES, o.code),
            "source_name": take(SOURCE_NAMES, o.source_name),
            "landing_source": shop.landing_source,
            "landing_campaign": shop.landing_campaign,
            "checkout_id": masked(checkout_id[np.maximum(o.checkout, 0)], o.checkout < 0),
        }
    )


def _lines(lines: Lines, line_id: np.ndarray, owner_id: np.ndarray, catalog: Catalog, owner: str) -> dict:
    return {
        "id": line_id,
        owner: owner_id[lines.owner],
        "product_id": catalog.id[lines.product],
        "variant_id": catalog.variant_id[lines.product],
        "title": take(catalog.title, lines.product),
        "sku": take(catalog.sku, lines.product),
        "quantity": lines.qty,
        "unit_price_cents": lines.price,
    }


def _checkouts(shop: Shop, checkout_id: np.ndarray, customer_id: np.ndarray, order_id: np.ndarray, rng) -> pa.Table:
    c, clock = shop.checkouts, shop.clock
    n = len(c)
    token = hex_strings(rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64))
    key = hex_strings(rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64))
    url = concat(f"https://{SHOP_DOMAIN}/checkouts/ac/", token, "/recover?key=", key)
    return pa.table(
        {
            "id": checkout_id,
            "customer_id": masked(customer_id[np.maximum(c.record, 0)], c.record < 0),
            "person_id": masked(c.person + 1, c.person < 0),
            "email": c.email,
            "created_at": clock.ts(c.t),
            "updated_at": clock.ts(c.updated_t),
            "completed_at": clock.ts(np.nan_to_num(c.completed_t), mask=np.isnan(c.completed_t)),
            "presentment_currency": take(CURRENCY_CODES, c.currency),
            "fx_rate": FX_RATES[c.currency],
            "subtotal_cents": c.subtotal,
            "total_cents": c.total,
            "abandoned_checkout_url": url,
            "true_recovered_order_id": masked(order_id[np.maximum(c.order, 0)], c.order < 0),
        }
    )


def shopify_tables(shop: Shop, rng: np.random.Generator) -> Iterator[tuple[str, pa.Table]]:
    """customers, orders, order_lines, refunds, refund_lines, checkouts, checkout_lines, persons.

    Yielded one at a time so the caller can write each and let it go (10M-order shops).
    """
    o, rec, ref, c = shop.orders, shop.records, shop.refunds, shop.checkouts
    customer_id = increasing_ids(rec.created, 6_912_000_000_000, rng, mean_gap=30_000)
    order_id = increasing_ids(o.t, 5_801_000_000_000, rng)
    line_id = increasing_ids(np.arange(len(shop.lines), dtype=float), 14_700_000_000_000, rng, mean_gap=20_000)
    refund_id = increasing_ids(ref.t, 1_010_000_000_000, rng, mean_gap=20_000)
    checkout_id = increasing_ids(c.t, 36_900_000_000_000, rng)
    checkout_line_id = increasing_ids(np.arange(len(shop.checkout_lines), dtype=float), 52_000_000_000_000, rng)

    true_orders, true_revenue = shop_revenue(o, shop.people.n)
    yield "persons", persons_table(shop, true_orders, true_revenue)
    yield "customers", _customers(shop, customer_id, true_revenue)
    yield "orders", _orders(shop, order_id, customer_id, checkout_id)
    lines = _lines(shop.lines, line_id, order_id, shop.catalog, "order_id")
    lines["discount_cents"] = shop.lines.discount
    yield "order_lines", pa.table(lines)
    del lines
    yield (
        "refunds",
        pa.table(
            {
                "id": refund_id,
                "order_id": order_id[ref.order],
                "created_at": shop.clock.ts(ref.t),
                "amount_cents": ref.amount,
                "note": ref.note,
            }
        ),
    )
    yield (
        "refund_lines",
        pa.table(
            {
                "refund_id": refund_id[ref.line_refund],
                "order_line_id": line_id[ref.line],
                "quantity": ref.line_qty,
                "subtotal_cents": ref.line_subtotal,
            }
        ),
    )
    yield "checkouts", _checkouts(shop, checkout_id, customer_id, order_id, rng)
    yield (
        "checkout_lines",
        pa.table(_lines(shop.checkout_lines, checkout_line_id, checkout_id, shop.catalog, "checkout_id")),
    )


def persons_table(shop: Shop, true_orders: np.ndarray, true_revenue: np.ndarray) -> pa.Table:
    """Ground truth: Shopify persons first, then Amazon-only buyers."""
    people, beh, amazon, clock, span = shop.people, shop.beh, shop.amazon, shop.clock, shop.clock.span
    n, m = people.n, len(amazon.loc)
    rate = np.where(people.buyer, true_rate_per_year(beh, shop.catalog, span), 0.0)
    dropout = np.concatenate([beh.dropout, amazon.beh.dropout])
    loc = location_columns(np.concatenate([people.loc, amazon.loc]))
    return pa.table(
        {
            "person_id": np.arange(1, n + m + 1, dtype=np.int64),
            "email_canonical": pa.concat_arrays([people.canonical_email(), amazon.email]),
            "first_name": pa.concat_arrays([people.names.first, amazon.names.first]),
            "last_name": pa.concat_arrays([people.names.last, amazon.names.last]),
            **loc,
            "acquisition_source": pa.concat_arrays(
                [take(SOURCES, people.source), pa.array(["amazon"] * m, pa.string())]
            ),
            "channel": pa.array(["shopify"] * n + ["amazon"] * m, pa.string()),
            "true_marketing_state": pa.concat_arrays(
                [take(STATES, true_state(shop.records, n)), pa.nulls(m, pa.string())]
            ),
            "true_purchase_rate_per_year": np.concatenate([rate, true_rate_per_year(amazon.beh, shop.catalog, span)]),
            "true_dropout_at": clock.ts(np.minimum(dropout, span), mask=dropout >= span),
            "true_spend_level": np.concatenate([beh.spend, amazon.beh.spend]),
            "true_orders": np.concatenate([true_orders, amazon.true_orders]).astype(np.int32),
            "true_revenue_cents": np.concatenate([true_revenue, amazon.true_revenue]),
        }
    )


def amazon_tables(shop: Shop) -> dict[str, pa.Table]:
    """amazon_orders (buyers numbered after the Shopify persons) and amazon_order_items."""
    orders = shop.amazon.orders
    person_id = pc.add(orders.column("person_id"), shop.people.n + 1)
    return {
        "amazon_orders": orders.set_column(orders.schema.get_field_index("person_id"), "person_id", person_id),
        "amazon_order_items": shop.amazon.items,
    }
