"""A tiny hand-made demo shop for the Shopify sandbox tests: every value is known.

7 customers, 3 products, 12 orders (one refunded in part, one cancelled, two in
foreign presentment currencies), 4 abandoned checkouts (one anonymous, one
recovered). Rows are plain dicts so tests compute their expectations from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox.shop.tables import SCHEMAS, write_table

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    """``n`` days after 2025-01-01T00:00:00Z."""
    return T0 + timedelta(days=n)


@dataclass
class TinyShop:
    shop_dir: Path
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def write(self, table: str) -> None:
        write_table(self.shop_dir, table, pa.Table.from_pylist(self.tables[table], schema=SCHEMAS[table]))

    def write_all(self) -> None:
        for table in self.tables:
            self.write(table)


def _customer(
    id_: int,
    first: str | None,
    last: str | None,
    email: str | None,
    state: str,
    level: str | None,
    created: float,
    updated: float,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": id_, "person_id": id_, "first_name": first, "last_name": last, "email": email,
        "phone": extra.get("phone"), "marketing_state": state, "marketing_opt_in_level": level,
        "marketing_updated_at": day(created) if level else None, "country_code": extra.get("country", "US"),
        "province_code": extra.get("province", "NY"), "city": extra.get("city", "New York"),
        "tags": extra.get("tags", ""), "created_at": day(created), "updated_at": day(updated),
    }  # fmt: skip


def _product(id_: int, title: str, kind: str, sku: str, price: int, image: str | None) -> dict[str, Any]:
    return {
        "id": id_, "variant_id": id_ + 100, "title": title, "handle": title.lower().replace(" ", "-"),
        "product_type": kind, "vendor": "Hearth Goods", "sku": sku, "asin": f"B0{id_}", "price_cents": price,
        "is_consumable": kind != "Equipment", "true_cycle_days": 30 if kind != "Equipment" else None,
        "image_url": image, "created_at": day(-30 + id_ % 10), "updated_at": day(-20 + id_ % 10),
    }  # fmt: skip


def build_tiny_shop(shop_dir: Path) -> TinyShop:
    """Write the tiny shop's tables into ``shop_dir`` and return their rows."""
    shop = TinyShop(Path(shop_dir))
    customers = [
        _customer(101, "Ada", "Lovelace", " Ada@Example.com", "SUBSCRIBED", "SINGLE_OPT_IN", 0, 63,
                  tags="vip, coffee"),
        _customer(102, "Brian", "Kernighan", "brian@example.com", "NOT_SUBSCRIBED", None, 1, 1),
        _customer(103, "Cleo", None, None, "NOT_SUBSCRIBED", None, 2, 31, phone="+15550100"),
        _customer(104, "Dan", "Ritchie", "dan@example", "INVALID", None, 3, 31),  # same updated_at as 103
        _customer(105, "Eve", "Moss", "eve@example.com", "UNSUBSCRIBED", "CONFIRMED_OPT_IN", 4, 19),
        _customer(106, "Finn", "Ode", "finn@example.com", "PENDING", "SINGLE_OPT_IN", 5, 90, country="DE",
                  province=None, city="Berlin"),
        _customer(107, "Gus", "Hale", "gus@example.com", "SUBSCRIBED", "CONFIRMED_OPT_IN", 6, 9),
    ]  # fmt: skip
    products = [
        _product(201, "Morning Roast", "Coffee", "COF-1", 1800, "https://cdn.example.com/roast.png"),
        _product(202, "Face Cream", "Skincare", "SKN-1", 2450, "https://cdn.example.com/cream.png"),
        _product(203, "Grinder", "Equipment", "EQP-1", 9999, None),
    ]
    price = {p["id"]: p["price_cents"] for p in products}
    title = {p["id"]: p["title"] for p in products}

    # (order id, customer, day, currency, fx, [(product, qty, line discount)], shipping, tax)
    plan = [
        (1001, 101, 31, "USD", 1.0, [(201, 1, 0)], 500, 144),
        (1002, 101, 32, "EUR", 0.9215, [(201, 2, 0)], 500, 288),
        (1003, 102, 33, "USD", 1.0, [(202, 1, 0), (203, 1, 1000)], 0, 0),
        (1004, 103, 34, "GBP", 0.7931, [(202, 3, 0)], 700, 0),
        (1005, 104, 35, "USD", 1.0, [(201, 1, 0)], 500, 0),
        (1006, 105, 36, "USD", 1.0, [(201, 1, 0), (202, 1, 0)], 0, 0),
        (1007, 101, 37, "USD", 1.0, [(203, 1, 0)], 0, 800),
        (1008, 106, 38, "USD", 1.0, [(201, 4, 720)], 0, 0),
        (1009, 107, 39, "USD", 1.0, [(202, 2, 0)], 500, 0),
        (1010, None, 40, "USD", 1.0, [(201, 1, 0)], 500, 0),
        (1011, 102, 41, "USD", 1.0, [(201, 1, 0)], 500, 0),
        (1012, 101, 42, "USD", 1.0, [(202, 1, 0)], 0, 0),
    ]
    orders, lines = [], []
    line_id = 70001
    for order_id, customer, created, currency, fx, items, shipping, tax in plan:
        subtotal = discount = 0
        for product, quantity, line_discount in items:
            lines.append({
                "id": line_id, "order_id": order_id, "product_id": product, "variant_id": product + 100,
                "title": title[product], "sku": f"SKU-{product}", "quantity": quantity,
                "unit_price_cents": price[product], "discount_cents": line_discount,
            })  # fmt: skip
            line_id += 1
            subtotal += price[product] * quantity
            discount += line_discount
        email = next((c["email"] for c in customers if c["id"] == customer), None)
        orders.append({
            "id": order_id, "name": f"#{order_id}", "customer_id": customer, "person_id": customer,
            "email": email, "created_at": day(created), "processed_at": day(created),
            "updated_at": day(created), "cancelled_at": None, "cancel_reason": None,
            "financial_status": "PAID", "presentment_currency": currency, "fx_rate": fx,
            "subtotal_cents": subtotal, "discount_cents": discount, "shipping_cents": shipping,
            "tax_cents": tax, "total_cents": subtotal - discount + shipping + tax, "refunded_cents": 0,
            "discount_code": "WELCOME10" if discount else None, "source_name": "web",
            "landing_source": "facebook" if order_id % 2 else "organic",
            "landing_campaign": "120200000000001" if order_id % 2 else None, "checkout_id": None,
        })  # fmt: skip
    by_id = {o["id"]: o for o in orders}
    # Order 1003: the Face Cream line is refunded 40 days later.
    by_id[1003].update(financial_status="PARTIALLY_REFUNDED", refunded_cents=2450, updated_at=day(78))
    # Order 1005: cancelled the next day, money voided.
    by_id[1005].update(cancelled_at=day(36), cancel_reason="CUSTOMER", financial_status="VOIDED", updated_at=day(36))
    refunds = [{"id": 5001, "order_id": 1003, "created_at": day(78), "amount_cents": 2450, "note": "damaged"}]
    refund_lines = [{"refund_id": 5001, "order_line_id": 70003, "quantity": 1, "subtotal_cents": 2450}]

    checkouts = [
        (601, 101, " Ada@Example.com", 50, None, "USD", 1.0, [(201, 1)]),
        (602, None, None, 51, None, "USD", 1.0, [(202, 1)]),
        (603, 105, "eve@example.com", 52, 52.5, "USD", 1.0, [(203, 1)]),
        (604, 107, "gus@example.com", 53, None, "EUR", 0.9215, [(201, 1), (202, 2)]),
    ]
    checkout_rows, checkout_lines = [], []
    for checkout_id, customer, email, created, completed, currency, fx, basket in checkouts:
        subtotal = 0
        for product, quantity in basket:
            checkout_lines.append({
                "id": line_id, "checkout_id": checkout_id, "product_id": product, "variant_id": product + 100,
                "title": title[product], "sku": f"SKU-{product}", "quantity": quantity,
                "unit_price_cents": price[product],
            })  # fmt: skip
            line_id += 1
            subtotal += price[product] * quantity
        checkout_rows.append({
            "id": checkout_id, "customer_id": customer, "person_id": customer, "email": email,
            "created_at": day(created), "updated_at": day(created + 0.5 if completed else created),
            "completed_at": day(completed) if completed else None, "presentment_currency": currency,
            "fx_rate": fx, "subtotal_cents": subtotal, "total_cents": subtotal + 500,
            "abandoned_checkout_url": f"https://hearth-demo.myshopify.com/checkouts/{checkout_id}/recover",
            "true_recovered_order_id": None,
        })  # fmt: skip

    shop.tables = {
        "customers": customers,
        "products": products,
        "orders": orders,
        "order_lines": lines,
        "refunds": refunds,
        "refund_lines": refund_lines,
        "checkouts": checkout_rows,
        "checkout_lines": checkout_lines,
    }
    shop.write_all()
    return shop
