"""The demo shop's catalogue: ~40 products, consumables with true replenishment cycles and durables.

The catalogue is the same for every seed (only its timestamps follow the clock), so
products, SKUs and ASINs are stable names a demo or a test can refer to.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sandbox.generator._base import Clock

# (title, product_type, vendor, price in cents, cycle days per unit or None, popularity)
PRODUCTS: tuple[tuple[str, str, str, int, int | None, float], ...] = (
    ("Morning Ritual Espresso Beans 1 lb", "Coffee", "Hearth Roasters", 1800, 30, 10.0),
    ("Single Origin Ethiopia 12 oz", "Coffee", "Hearth Roasters", 1950, 30, 6.0),
    ("Decaf House Blend 12 oz", "Coffee", "Hearth Roasters", 1600, 45, 3.0),
    ("Cold Brew Packs (12)", "Coffee", "Hearth Roasters", 2200, 30, 4.0),
    ("Colombia Supremo 2 lb", "Coffee", "Hearth Roasters", 3200, 60, 4.0),
    ("Espresso Pods (50)", "Coffee", "Hearth Roasters", 2400, 30, 5.0),
    ("Earl Grey Loose Leaf 100 g", "Tea", "Leaf & Kettle", 1200, 45, 4.0),
    ("Sencha Green Tea 100 g", "Tea", "Leaf & Kettle", 1400, 45, 3.0),
    ("Chamomile Sleep Tea (20 bags)", "Tea", "Leaf & Kettle", 950, 30, 3.0),
    ("Chai Spice Blend 200 g", "Tea", "Leaf & Kettle", 1500, 60, 2.5),
    ("Matcha Ceremonial 30 g", "Tea", "Leaf & Kettle", 2900, 30, 3.0),
    ("Daily Face Moisturizer 50 ml", "Skincare", "Glow Lab", 2800, 45, 5.0),
    ("Vitamin C Serum 30 ml", "Skincare", "Glow Lab", 3600, 60, 4.0),
    ("Gentle Cleanser 150 ml", "Skincare", "Glow Lab", 1800, 60, 3.5),
    ("SPF 50 Sunscreen 100 ml", "Skincare", "Glow Lab", 2200, 90, 3.0),
    ("Night Repair Cream 50 ml", "Skincare", "Glow Lab", 4200, 90, 2.5),
    ("Daily Multivitamin (60)", "Supplements", "Vital Daily", 2400, 60, 5.0),
    ("Omega-3 Fish Oil (90)", "Supplements", "Vital Daily", 2700, 90, 3.5),
    ("Magnesium Glycinate (120)", "Supplements", "Vital Daily", 2100, 60, 3.0),
    ("Vitamin D3 + K2 (60)", "Supplements", "Vital Daily", 1600, 60, 3.0),
    ("Collagen Peptides 300 g", "Supplements", "Vital Daily", 3400, 30, 3.5),
    ("Grain-Free Dog Food 5 lb", "Pet Food", "Happy Paws", 3900, 30, 5.0),
    ("Salmon Cat Food 3 lb", "Pet Food", "Happy Paws", 2600, 30, 4.0),
    ("Dental Dog Chews (30)", "Pet Food", "Happy Paws", 1800, 30, 3.0),
    ("Cat Litter Unscented 20 lb", "Pet Food", "Happy Paws", 2100, 45, 2.5),
    ("Burr Coffee Grinder", "Equipment", "Hearth Home", 12900, None, 3.0),
    ("Gooseneck Kettle", "Equipment", "Hearth Home", 8900, None, 2.5),
    ("Pour-Over Dripper", "Equipment", "Hearth Home", 3200, None, 3.0),
    ("Glass Carafe 600 ml", "Equipment", "Hearth Home", 2900, None, 2.0),
    ("French Press 1 L", "Equipment", "Hearth Home", 4200, None, 2.5),
    ("Digital Coffee Scale", "Equipment", "Hearth Home", 4500, None, 2.0),
    ("Milk Frother", "Equipment", "Hearth Home", 3500, None, 2.0),
    ("Tea Infuser Teapot", "Equipment", "Leaf & Kettle", 3800, None, 1.5),
    ("Ceramic Mug 12 oz", "Drinkware", "Hearth Home", 1800, None, 4.0),
    ("Double-Wall Glass Set (2)", "Drinkware", "Hearth Home", 2600, None, 2.5),
    ("Insulated Bottle 750 ml", "Drinkware", "Hearth Home", 3400, None, 3.0),
    ("Travel Tumbler 16 oz", "Drinkware", "Hearth Home", 2800, None, 2.5),
    ("Bamboo Storage Canister", "Accessories", "Hearth Home", 2200, None, 1.5),
    ("Jade Facial Roller", "Accessories", "Glow Lab", 2400, None, 1.5),
    ("Pet Water Fountain", "Accessories", "Happy Paws", 4900, None, 1.5),
)

IMAGE_BASE = "https://cdn.hearth-demo.example/products"
_ASIN_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Catalog:
    """Column arrays of the catalogue, indexed by product position."""

    title: tuple[str, ...]
    sku: tuple[str, ...]
    asin: tuple[str, ...]
    price: np.ndarray  # int64 cents
    cycle: np.ndarray  # float64 days per unit; NaN for durables
    popularity: np.ndarray  # float64, sums to 1
    consumable: np.ndarray  # bool
    id: np.ndarray  # int64 Shopify product id
    variant_id: np.ndarray  # int64

    @property
    def n(self) -> int:
        return len(self.title)

    @property
    def consumables(self) -> np.ndarray:
        return np.flatnonzero(self.consumable)

    @property
    def durables(self) -> np.ndarray:
        return np.flatnonzero(~self.consumable)


def _handle(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _sku(product_type: str, position: int) -> str:
    return f"HRT-{product_type[:3].upper()}-{position + 1:03d}"


def _asin(sku: str) -> str:
    digest = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:8], "big")
    chars = []
    for _ in range(8):
        digest, rest = divmod(digest, len(_ASIN_ALPHABET))
        chars.append(_ASIN_ALPHABET[rest])
    return "B0" + "".join(chars)


def build_catalog() -> Catalog:
    """The fixed catalogue (40 products; a loop over 40 rows is fine here)."""
    skus = tuple(_sku(p[1], i) for i, p in enumerate(PRODUCTS))
    cycles = np.array([np.nan if p[4] is None else p[4] for p in PRODUCTS], dtype=np.float64)
    popularity = np.array([p[5] for p in PRODUCTS], dtype=np.float64)
    positions = np.arange(len(PRODUCTS), dtype=np.int64)
    return Catalog(
        title=tuple(p[0] for p in PRODUCTS),
        sku=skus,
        asin=tuple(_asin(s) for s in skus),
        price=np.array([p[3] for p in PRODUCTS], dtype=np.int64),
        cycle=cycles,
        popularity=popularity / popularity.sum(),
        consumable=~np.isnan(cycles),
        id=8_012_345_000_000 + positions * 1_117 + positions**2 * 13,
        variant_id=44_561_230_000_000 + positions * 2_311 + positions**2 * 7,
    )


def products_table(catalog: Catalog, clock: Clock) -> pa.Table:
    """The ``products`` table: launched in the months before the period, edited now and then."""
    positions = np.arange(catalog.n, dtype=np.float64)
    created = -120.0 + positions * 2.0
    updated = created + (positions * 37.0) % max(clock.span - 1.0, 1.0) + 1.0
    return pa.table(
        {
            "id": catalog.id,
            "variant_id": catalog.variant_id,
            "title": list(catalog.title),
            "handle": [_handle(t) for t in catalog.title],
            "product_type": [p[1] for p in PRODUCTS],
            "vendor": [p[2] for p in PRODUCTS],
            "sku": list(catalog.sku),
            "asin": list(catalog.asin),
            "price_cents": catalog.price,
            "is_consumable": catalog.consumable,
            "true_cycle_days": pa.array(
                np.nan_to_num(catalog.cycle).astype(np.int32), mask=~catalog.consumable, type=pa.int32()
            ),
            "image_url": [f"{IMAGE_BASE}/{_handle(t)}.jpg" for t in catalog.title],
            "created_at": clock.ts(created),
            "updated_at": clock.ts(np.minimum(updated, clock.span)),
        }
    )
