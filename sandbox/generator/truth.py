"""The ground-truth summary written beside the tables as ``ground_truth.json``.

Everything in it is derived from the generated tables (or the catalogue), so a test can
check the models against it without re-deriving the simulation.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sandbox.generator._base import Clock
from sandbox.generator.assemble import Shop
from sandbox.generator.people import STATES
from sandbox.shop.tables import path_of


def _iso(clock: Clock, days: float = 0.0) -> str:
    when = clock.start + timedelta(days=days)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sum(table: pa.Table, column: str, where: pa.Array | None = None) -> int:
    values = table.column(column)
    if where is not None:
        values = values.filter(where)
    total = pc.sum(values).as_py()
    return int(total or 0)


def _read(shop_dir: Path, table: str, columns: list[str]) -> pa.Table:
    return pq.read_table(path_of(shop_dir, table), columns=columns)


def ground_truth(
    shop: Shop, shop_dir: Path, row_counts: dict[str, int], *, seed: int, parameters: dict[str, Any]
) -> dict:
    """Seed, clock, parameters, row counts, true cycles, consent shares and totals (from the written tables)."""
    clock = shop.clock
    persons = _read(shop_dir, "persons", ["channel", "true_marketing_state", "true_dropout_at", "true_revenue_cents"])
    orders = _read(shop_dir, "orders", ["cancelled_at", "total_cents", "refunded_cents"])
    customers = _read(shop_dir, "customers", ["email"])
    checkouts = _read(shop_dir, "checkouts", ["created_at", "completed_at", "email"])
    insights = _read(shop_dir, "fb_insights", ["spend_cents", "purchases"])
    amazon = _read(shop_dir, "amazon_orders", ["order_status", "total_cents"])

    shopify = pc.equal(persons.column("channel"), "shopify")
    states = persons.column("true_marketing_state").filter(shopify)
    with_email = len(states) - states.null_count
    state_counts = {s: int(pc.sum(pc.equal(states, s)).as_py() or 0) for s in STATES}
    not_cancelled = pc.is_null(orders.column("cancelled_at"))
    emails = customers.column("email")
    trimmed = pc.utf8_trim_whitespace(emails)
    age_h = (clock.now_us - pc.cast(checkouts.column("created_at"), pa.int64()).to_numpy()) / 3.6e9
    open_ = pc.is_null(checkouts.column("completed_at")).to_numpy() & pc.is_valid(checkouts.column("email")).to_numpy()
    n_shopify = int(pc.sum(shopify).as_py())
    amazon_kept = pc.not_equal(amazon.column("order_status"), "CANCELLED")

    return {
        "seed": seed,
        "now": _iso(clock, clock.span),
        "start": _iso(clock),
        "parameters": parameters,
        "row_counts": dict(sorted(row_counts.items())),
        "true_cycles_days": {
            sku: int(cycle)
            for sku, cycle, consumable in zip(
                shop.catalog.sku, shop.catalog.cycle, shop.catalog.consumable, strict=True
            )
            if consumable
        },
        "consent": {
            "persons_with_email": with_email,
            "counts": state_counts,
            "shares": {s: round(c / max(with_email, 1), 4) for s, c in state_counts.items()},
        },
        "persons": {
            "shopify": n_shopify,
            "amazon": persons.num_rows - n_shopify,
            "shopify_buyers": int(np.count_nonzero(shop.people.buyer)),
            "alive_at_now": persons.column("true_dropout_at").null_count,
            "with_guest_records": len(np.unique(shop.records.person[shop.records.guest])),
            "customer_records": customers.num_rows,
        },
        "emails": {
            "missing": emails.null_count,
            "invalid_persons": int(np.count_nonzero(shop.people.email_kind == 1)),
            "mixed_case_records": int(pc.sum(pc.not_equal(trimmed, pc.utf8_lower(trimmed))).as_py() or 0),
            "whitespace_records": int(pc.sum(pc.not_equal(emails, trimmed)).as_py() or 0),
        },
        "checkouts": {
            "total": checkouts.num_rows,
            "recovered": checkouts.num_rows - checkouts.column("completed_at").null_count,
            "anonymous": checkouts.column("email").null_count,
            "open_with_email_last_72h": int(np.count_nonzero(open_ & (age_h <= 72))),
            "open_with_email_last_3h": int(np.count_nonzero(open_ & (age_h <= 3))),
        },
        "totals": {
            "shopify_orders": orders.num_rows,
            "shopify_orders_cancelled": orders.num_rows - int(pc.sum(not_cancelled).as_py()),
            "shopify_orders_refunded": row_counts["refunds"],
            "shopify_orders_per_customer": round(orders.num_rows / max(n_shopify, 1), 3),
            "shopify_gross_cents": _sum(orders, "total_cents", not_cancelled),
            "shopify_refunded_cents": _sum(orders, "refunded_cents", not_cancelled),
            "shopify_revenue_cents": _sum(persons, "true_revenue_cents", shopify),
            "amazon_orders": amazon.num_rows,
            "amazon_revenue_cents": _sum(amazon, "total_cents", amazon_kept),
            "total_revenue_cents": _sum(persons, "true_revenue_cents"),
            "fb_spend_cents": _sum(insights, "spend_cents"),
            "fb_purchases": _sum(insights, "purchases"),
        },
    }
