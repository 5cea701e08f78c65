"""The demo shop's tables: the contract between the generator and the sandbox servers.

The generator (``sandbox.generator``) writes one Parquet file per table into a shop
directory (by default ``$HEARTH_DATA_DIR/sandbox/shop/``); every sandbox server
reads from there and renders the rows through its vendor's API contract.

Conventions:
- Ids are positive int64 (Shopify numeric ids, rendered as ``gid://shopify/<Type>/<id>``
  by the Shopify sandbox); Amazon and Facebook ids are strings as the vendors use them.
- Timestamps are UTC, microsecond precision, timezone-aware (``timestamp[us, UTC]``).
- Money is exact integer cents (``*_cents``) in the shop currency (``SHOP_CURRENCY``).
  Orders also carry a presentment currency and the rate used (presentment per shop
  unit); presentment amounts are ``round(shop_cents * fx_rate)``.
- Columns whose names start with ``true_`` and the ``persons`` table are ground
  truth: what really happened in the simulated world. The servers never expose
  them; tests use them to check that the models recover them.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SHOP_CURRENCY = "USD"
SHOP_NAME = "Hearth Demo Shop"
SHOP_DOMAIN = "hearth-demo.myshopify.com"
AMAZON_MARKETPLACE_ID = "ATVPDKIKX0DER"  # amazon.com (US)

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()
I32 = pa.int32()
F64 = pa.float64()
BOOL = pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    # One row per real person in the simulated world (ground truth only).
    "persons": pa.schema(
        [
            ("person_id", I64),
            ("email_canonical", STR),  # trimmed, lower-cased; null = no usable email
            ("first_name", STR),
            ("last_name", STR),
            ("country_code", STR),  # ISO 3166-1 alpha-2
            ("province_code", STR),
            ("city", STR),
            ("timezone", STR),  # IANA, e.g. "America/New_York"
            ("acquisition_source", STR),  # facebook, google, organic, email, referral, amazon
            ("channel", STR),  # "shopify" or "amazon"
            ("true_marketing_state", STR),  # consent of the person's latest Shopify record
            ("true_purchase_rate_per_year", F64),
            ("true_dropout_at", TS),  # null = still alive at the end
            ("true_spend_level", F64),  # multiplier on basket size
            ("true_orders", I32),  # non-cancelled orders
            ("true_revenue_cents", I64),  # non-cancelled order totals minus refunds, shop currency
        ]
    ),
    # Shopify customer records. Guest checkouts create a new record for the same person,
    # so one person can own several rows (emails may differ in case / whitespace).
    "customers": pa.schema(
        [
            ("id", I64),
            ("person_id", I64),  # ground truth link
            ("first_name", STR),
            ("last_name", STR),
            ("email", STR),  # as typed: mixed case, spaces, invalid, or null
            ("phone", STR),
            ("marketing_state", STR),  # SUBSCRIBED NOT_SUBSCRIBED PENDING UNSUBSCRIBED INVALID
            ("marketing_opt_in_level", STR),  # SINGLE_OPT_IN CONFIRMED_OPT_IN UNKNOWN; null if never
            ("marketing_updated_at", TS),
            ("country_code", STR),
            ("province_code", STR),
            ("city", STR),
            ("tags", STR),  # comma-separated, as Shopify stores them
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    # One variant per product; the variant id is what order and checkout lines reference.
    "products": pa.schema(
        [
            ("id", I64),
            ("variant_id", I64),
            ("title", STR),
            ("handle", STR),
            ("product_type", STR),  # category, e.g. "Coffee", "Skincare", "Equipment"
            ("vendor", STR),
            ("sku", STR),  # also the Amazon seller SKU
            ("asin", STR),
            ("price_cents", I64),
            ("is_consumable", BOOL),
            ("true_cycle_days", I32),  # replenishment cycle per unit; null for durables
            ("image_url", STR),
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    "orders": pa.schema(
        [
            ("id", I64),
            ("name", STR),  # "#1001"
            ("customer_id", I64),
            ("person_id", I64),  # ground truth link
            ("email", STR),  # email as entered on the order
            ("created_at", TS),
            ("processed_at", TS),
            ("updated_at", TS),  # latest change: creation, cancellation or refund
            ("cancelled_at", TS),
            ("cancel_reason", STR),  # CUSTOMER FRAUD INVENTORY DECLINED OTHER STAFF; null
            ("financial_status", STR),  # PAID PARTIALLY_REFUNDED REFUNDED VOIDED
            ("presentment_currency", STR),
            ("fx_rate", F64),  # presentment units per shop unit
            ("subtotal_cents", I64),  # sum of line totals before discounts
            ("discount_cents", I64),
            ("shipping_cents", I64),
            ("tax_cents", I64),
            ("total_cents", I64),  # subtotal - discount + shipping + tax
            ("refunded_cents", I64),
            ("discount_code", STR),
            ("source_name", STR),  # "web", "pos", "shopify_draft_order"
            ("landing_source", STR),  # first-visit source (utm_source) of this order
            ("landing_campaign", STR),  # utm_campaign; Facebook campaign id when from an ad
            ("checkout_id", I64),  # abandoned checkout this order recovered; null otherwise
        ]
    ),
    "order_lines": pa.schema(
        [
            ("id", I64),
            ("order_id", I64),
            ("product_id", I64),
            ("variant_id", I64),
            ("title", STR),
            ("sku", STR),
            ("quantity", I32),
            ("unit_price_cents", I64),
            ("discount_cents", I64),  # discount allocated to this line
        ]
    ),
    "refunds": pa.schema(
        [
            ("id", I64),
            ("order_id", I64),
            ("created_at", TS),
            ("amount_cents", I64),
            ("note", STR),
        ]
    ),
    "refund_lines": pa.schema(
        [
            ("refund_id", I64),
            ("order_line_id", I64),
            ("quantity", I32),
            ("subtotal_cents", I64),
        ]
    ),
    # Abandoned checkouts: every checkout that was not completed at the time; recovered
    # ones carry completed_at and the order they became (orders.checkout_id).
    "checkouts": pa.schema(
        [
            ("id", I64),
            ("customer_id", I64),  # null for anonymous checkouts
            ("person_id", I64),  # ground truth link
            ("email", STR),  # null: no email captured (never mailable)
            ("created_at", TS),
            ("updated_at", TS),
            ("completed_at", TS),
            ("presentment_currency", STR),
            ("fx_rate", F64),
            ("subtotal_cents", I64),
            ("total_cents", I64),
            ("abandoned_checkout_url", STR),
            ("true_recovered_order_id", I64),
        ]
    ),
    "checkout_lines": pa.schema(
        [
            ("id", I64),
            ("checkout_id", I64),
            ("product_id", I64),
            ("variant_id", I64),
            ("title", STR),
            ("sku", STR),
            ("quantity", I32),
            ("unit_price_cents", I64),
        ]
    ),
    # Amazon marketplace orders (SP-API Orders v2026-01-01 shapes are rendered by the sandbox).
    "amazon_orders": pa.schema(
        [
            ("amazon_order_id", STR),  # "113-1234567-1234567"
            ("person_id", I64),  # ground truth link (Amazon buyers are their own persons)
            ("buyer_email", STR),  # anonymised relay: "<hash>@marketplace.amazon.com"
            ("buyer_name", STR),
            ("marketplace_id", STR),
            ("purchase_date", TS),
            ("last_update_date", TS),
            ("order_status", STR),  # fulfillment status, e.g. SHIPPED, CANCELLED, UNSHIPPED
            ("fulfilled_by", STR),  # MERCHANT or AMAZON
            ("currency", STR),
            ("total_cents", I64),
            ("ship_country_code", STR),
            ("ship_postal_code", STR),
        ]
    ),
    "amazon_order_items": pa.schema(
        [
            ("order_item_id", STR),
            ("amazon_order_id", STR),
            ("asin", STR),
            ("seller_sku", STR),
            ("title", STR),
            ("quantity", I32),
            ("unit_price_cents", I64),
        ]
    ),
    "fb_campaigns": pa.schema(
        [
            ("id", STR),
            ("name", STR),
            ("objective", STR),  # OUTCOME_SALES, OUTCOME_AWARENESS, ...
            ("status", STR),  # ACTIVE, PAUSED
            ("created_time", TS),
        ]
    ),
    "fb_adsets": pa.schema(
        [
            ("id", STR),
            ("campaign_id", STR),
            ("name", STR),
            ("status", STR),
            ("created_time", TS),
        ]
    ),
    "fb_ads": pa.schema(
        [
            ("id", STR),
            ("adset_id", STR),
            ("campaign_id", STR),
            ("name", STR),
            ("status", STR),
            ("created_time", TS),
        ]
    ),
    # Final (settled) daily numbers per ad. The Facebook sandbox serves the most recent
    # days as still settling: lower numbers that grow with each pull towards these.
    "fb_insights": pa.schema(
        [
            ("ad_id", STR),
            ("date", pa.date32()),
            ("spend_cents", I64),  # account currency = shop currency
            ("impressions", I64),
            ("clicks", I64),
            ("purchases", I64),  # offsite_conversion.fb_pixel_purchase actions
            ("purchase_value_cents", I64),
        ]
    ),
}

TABLES = tuple(SCHEMAS)


def path_of(shop_dir: Path, table: str) -> Path:
    """The Parquet file that holds ``table`` in a shop directory."""
    if table not in SCHEMAS:
        raise KeyError(f"unknown demo-shop table {table!r}; known: {', '.join(TABLES)}")
    return Path(shop_dir) / f"{table}.parquet"


def write_table(shop_dir: Path, table: str, data: pa.Table) -> Path:
    """Cast ``data`` to the table's schema (column order included) and write it atomically."""
    schema = SCHEMAS[table]
    missing = set(schema.names) - set(data.column_names)
    if missing:
        raise ValueError(f"demo-shop table {table!r} is missing columns {sorted(missing)}")
    data = data.select(schema.names).cast(schema)
    target = path_of(shop_dir, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".parquet.tmp")
    pq.write_table(data, tmp, compression="zstd")
    tmp.replace(target)
    return target


def read_table(shop_dir: Path, table: str) -> pa.Table:
    """Read one demo-shop table; a clear error names the shop dir when it was never generated."""
    path = path_of(shop_dir, table)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: generate the demo shop first (`hearth sandbox generate --out {shop_dir}`)"
        )
    return pq.read_table(path)
