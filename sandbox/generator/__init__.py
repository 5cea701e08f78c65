"""The deterministic demo-shop generator.

``generate_shop(out_dir, seed=…, customers=…, now=…)`` simulates a direct-to-consumer
shop — people, a Shopify store, an Amazon channel and Facebook ads — and writes every
table of :mod:`sandbox.shop.tables` plus ``ground_truth.json`` into ``out_dir``. The
output is a pure function of the arguments: the same inputs give identical tables.

Modules: ``people`` (persons, emails, consent intent), ``behaviour`` (the
buy-till-you-die process), ``orders`` (baskets, money, refunds), ``customers`` (Shopify
records and consent), ``checkouts``, ``facebook``, ``amazon``, ``assemble`` (tables with
Shopify-like ids) and ``truth`` (the ground-truth summary).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox.generator import assemble, truth
from sandbox.generator._base import Clock, normalise_now, rng_for
from sandbox.generator.amazon import AMAZON_BUYER_SHARE, build_amazon
from sandbox.generator.behaviour import NATURAL_ORDERS_PER_PERSON, BehaviourParams, draw_behaviour, simulate
from sandbox.generator.catalog import build_catalog, products_table
from sandbox.generator.checkouts import build_checkouts
from sandbox.generator.customers import assign_records, finalize
from sandbox.generator.facebook import build_facebook, check_ad_count, insights, landing, structure_tables
from sandbox.generator.orders import build_orders, refund
from sandbox.generator.people import draw_people
from sandbox.shop.tables import SCHEMAS, write_table

__all__ = ["generate_shop"]

GROUND_TRUTH_FILE = "ground_truth.json"


def generate_shop(
    out_dir: Path,
    *,
    seed: int = 42,
    customers: int = 2000,
    now: datetime | None = None,
    years: float = 3.0,
    orders_per_customer: float | None = None,
    fb_ads: int | None = None,
) -> dict[str, Any]:
    """Generate the demo shop into ``out_dir``; returns the ground truth (also written as JSON).

    Args:
        out_dir: shop directory (created if missing); one Parquet file per table.
        seed: random seed; the output is a pure function of all arguments.
        customers: number of Shopify persons; Amazon-only buyers come on top (~15%).
        now: end of the simulated period (default: the current UTC hour).
        years: length of the simulated period.
        orders_per_customer: target Shopify orders per Shopify person (e.g. 10 for a
            benchmark); None keeps what the behavioural model gives (~3–4 in 3 years).
        fb_ads: exactly this many Facebook ads (at least 12), spread over the same six
            campaigns with more ad sets (e.g. 500 for a benchmark); None keeps the demo's
            ~41. Only ``fb_campaigns``, ``fb_adsets``, ``fb_ads`` and ``fb_insights`` change
            with it: every other table is the same whatever the ad count.
    """
    if customers < 10:
        raise ValueError(f"customers={customers}: the demo shop needs at least 10 customers")
    if not 0.1 <= years <= 20:
        raise ValueError(f"years={years}: choose a period between 0.1 and 20 years")
    if orders_per_customer is not None and orders_per_customer <= 0:
        raise ValueError(f"orders_per_customer={orders_per_customer} must be positive (or None)")
    check_ad_count(fb_ads)
    clock = Clock(normalise_now(now), float(years))
    out_dir = Path(out_dir)
    catalog = build_catalog()
    # A requested order volume comes mostly from more loyal buyers (see BehaviourParams.busier).
    loyalty = 1.0
    if orders_per_customer is not None:
        natural = NATURAL_ORDERS_PER_PERSON * years / 3.0
        loyalty = min(max(orders_per_customer / natural, 0.3), 5.0)
    params = BehaviourParams().busier(loyalty)

    people = draw_people(customers, rng_for(seed, "people"))
    beh = draw_behaviour(customers, clock, catalog, rng_for(seed, "behaviour"), params)
    buyers = people.buyer.nonzero()[0]
    target = None if orders_per_customer is None else round(orders_per_customer * customers)
    events, scale = simulate(beh, buyers, catalog, clock, people.loc, rng_for(seed, "events"), params, target)
    orders, lines = build_orders(events, beh, people, catalog, clock, rng_for(seed, "orders"))
    del events  # the orders hold everything needed from here on
    refunds = refund(orders, lines, people, clock, rng_for(seed, "refunds"))
    records = assign_records(orders, people, rng_for(seed, "records"))
    checkouts, checkout_lines = build_checkouts(
        orders, lines, people, beh, records, catalog, clock, rng_for(seed, "checkouts")
    )
    finalize(
        records,
        signup=beh.start,
        refs=[(orders.record, orders.t), (checkouts.record[checkouts.record >= 0], checkouts.t[checkouts.record >= 0])],
        people=people,
        clock=clock,
        rng=rng_for(seed, "consent"),
    )
    fb = build_facebook(clock, rng_for(seed, "facebook"), fb_ads)
    landing_source, landing_campaign, fb_ad = landing(orders, people, fb, rng_for(seed, "landing"))

    n_amazon = round(AMAZON_BUYER_SHARE * customers)
    amazon_target = None if orders_per_customer is None else round(orders_per_customer * n_amazon)
    amazon = build_amazon(n_amazon, clock, catalog, rng_for(seed, "amazon"), amazon_target, loyalty)

    shop = assemble.Shop(
        clock=clock,
        catalog=catalog,
        people=people,
        beh=beh,
        records=records,
        orders=orders,
        lines=lines,
        refunds=refunds,
        checkouts=checkouts,
        checkout_lines=checkout_lines,
        landing_source=landing_source,
        landing_campaign=landing_campaign,
        amazon=amazon,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    row_counts: dict[str, int] = {}

    def emit(name: str, table: pa.Table) -> None:
        write_table(out_dir, name, table)
        row_counts[name] = table.num_rows

    for name, table in assemble.shopify_tables(shop, rng_for(seed, "ids")):
        emit(name, table)
        del table  # let it go before the next (large) table is built
    emit("products", products_table(catalog, clock))
    for name, table in structure_tables(fb, clock).items():
        emit(name, table)
    emit("fb_insights", insights(fb, orders, fb_ad, clock, rng_for(seed, "insights")))
    for name, table in assemble.amazon_tables(shop).items():
        emit(name, table)
    if set(row_counts) != set(SCHEMAS):
        raise RuntimeError(f"demo-shop tables not generated: {sorted(set(SCHEMAS) - set(row_counts))}")
    result = truth.ground_truth(
        shop,
        out_dir,
        row_counts,
        seed=seed,
        parameters={
            "customers": customers,
            "years": float(years),
            "orders_per_customer": orders_per_customer,
            "loyalty": loyalty,
            "adhoc_rate_scale": scale,
            "amazon_buyers": n_amazon,
            # Only when asked for: the default shop's ground_truth.json stays byte for byte.
            **({} if fb_ads is None else {"fb_ads": fb_ads}),
        },
    )
    (out_dir / GROUND_TRUTH_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
