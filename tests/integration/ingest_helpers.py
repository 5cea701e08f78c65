"""What the raw zone should hold for a demo shop, and what it does hold."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from sandbox.shop.tables import read_table


def expected_ids(shop_dir: Path) -> dict[tuple[str, str], set[str]]:
    """Every record id each stream must land for the whole shop."""

    def column(table: str, name: str) -> list:
        return read_table(shop_dir, table).column(name).to_pylist()

    insights = read_table(shop_dir, "fb_insights")
    return {
        ("shopify", "customers"): {f"gid://shopify/Customer/{i}" for i in column("customers", "id")},
        ("shopify", "orders"): {f"gid://shopify/Order/{i}" for i in column("orders", "id")},
        ("shopify", "abandoned_checkouts"): {f"gid://shopify/AbandonedCheckout/{i}" for i in column("checkouts", "id")},
        ("shopify", "products"): {f"gid://shopify/Product/{i}" for i in column("products", "id")},
        ("amazon", "orders"): set(column("amazon_orders", "amazon_order_id")),
        ("facebook", "insights"): {
            f"{ad}:{day.isoformat()}"
            for ad, day in zip(insights.column("ad_id").to_pylist(), insights.column("date").to_pylist(), strict=True)
        },
        ("facebook", "campaigns"): set(column("fb_campaigns", "id")),
        ("facebook", "adsets"): set(column("fb_adsets", "id")),
        ("facebook", "ads"): set(column("fb_ads", "id")),
    }


def landed(raw_dir: Path, source: str, stream: str) -> tuple[set[str], int, int]:
    """(distinct ids, distinct (id, updated_at) versions, rows) of a stream's raw files."""
    if not list((raw_dir / source / stream).glob("*.parquet")):
        return set(), 0, 0
    pattern = os.fspath(raw_dir / source / stream / "*.parquet")
    with duckdb.connect() as db:
        ids = {row[0] for row in db.execute(f"select distinct id from read_parquet('{pattern}')").fetchall()}
        versions, rows = db.execute(
            f"select count(distinct (id, updated_at)), count(*) from read_parquet('{pattern}')"
        ).fetchone()
    return ids, versions, rows
