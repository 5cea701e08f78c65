"""Demo-shop rows rendered as Shopify Admin objects (plain dicts the schema executes over).

graphql-core's resolvers read dict keys and call callables with ``(info, **args)``,
so a node is a dict whose cheap fields are values and whose nested collections
(line items, refunds, the order's customer) are callables, evaluated only when
the query asks for them. Those callables share one batch per page: the first
order that needs its lines reads the lines of every order on the page at once.

A field the sandbox does not model is left out of the dict: querying it yields
an error naming the field (see :func:`sandbox.shopify.wire.resolve_field`), never a
silent null. Keys starting with ``_`` are the sandbox's own (no schema field has such a name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sandbox.shop.tables import SHOP_CURRENCY, SHOP_DOMAIN
from sandbox.shopify.connections import list_resolver
from sandbox.shopify.store import ShopData
from sandbox.shopify.wire import LazyMoneyBag, Once, amount, gid, money, timestamp

# utm_medium for the demo shop's acquisition sources (organic visits carry no UTM tags).
UTM_MEDIUM = {"facebook": "paid_social", "google": "cpc", "email": "email", "referral": "referral"}


class Renderer:
    """Turns rows of a :class:`ShopData` into GraphQL source dicts, page by page."""

    def __init__(self, data: ShopData) -> None:
        self.data = data
        # The catalogue is small (hundreds of products): render it once and share the dicts.
        self.products_by_id: dict[int, dict[str, Any]] = {}
        self.variants_by_id: dict[int, dict[str, Any]] = {}
        for row in data.products.rows(np.arange(len(data.products))):
            product = self._product(row)
            self.products_by_id[row["id"]] = product
            self.variants_by_id[row["variant_id"]] = product["_variant"]

    # -- root collections --------------------------------------------------------------
    def customers(self, rows: np.ndarray) -> list[dict[str, Any]]:
        return [self._customer(row, int(r)) for row, r in zip(self.data.customers.rows(rows), rows, strict=True)]

    def customers_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        rows = self.data.customers.row_of(np.unique(np.asarray(ids, dtype=np.int64)))
        rows = rows[rows >= 0]
        return {node["_id"]: node for node in self.customers(rows)}

    def products(self, rows: np.ndarray) -> list[dict[str, Any]]:
        ids = self.data.products.ids[rows]
        return [self.products_by_id[int(i)] for i in ids]

    def orders(self, rows: np.ndarray) -> list[dict[str, Any]]:
        records = self.data.orders.rows(rows)
        ids = [r["id"] for r in records]
        data = self.data
        lines = Once(lambda: data.order_lines.group_rows(ids))
        refunds = Once(lambda: data.refunds.group_rows(ids))
        refund_lines = Once(lambda: data.refund_lines.group_rows([f["id"] for v in refunds().values() for f in v]))
        customers = Once(lambda: self.customers_by_id([r["customer_id"] for r in records if r["customer_id"]]))
        return [self._order(r, lines, refunds, refund_lines, customers) for r in records]

    def checkouts(self, rows: np.ndarray) -> list[dict[str, Any]]:
        records = self.data.checkouts.rows(rows)
        ids = [r["id"] for r in records]
        lines = Once(lambda: self.data.checkout_lines.group_rows(ids))
        customers = Once(lambda: self.customers_by_id([r["customer_id"] for r in records if r["customer_id"]]))
        return [self._checkout(r, lines, customers) for r in records]

    # -- objects -----------------------------------------------------------------------
    def _customer(self, r: dict[str, Any], row: int) -> dict[str, Any]:
        id_, email, phone = r["id"], r["email"], r["phone"]
        name = " ".join(part for part in (r["first_name"], r["last_name"]) if part)
        state = r["marketing_state"] or "NOT_SUBSCRIBED"
        consent_at = timestamp(r["marketing_updated_at"])
        address = None
        if r["country_code"] or r["city"]:
            address = {
                "id": gid("MailingAddress", id_),
                "firstName": r["first_name"],
                "lastName": r["last_name"],
                "name": name or None,
                "city": r["city"],
                "provinceCode": r["province_code"],
                "countryCodeV2": r["country_code"],
                "address1": None,
                "address2": None,
                "zip": None,
                "company": None,
                "phone": phone,
            }
        return {
            "id": gid("Customer", id_),
            "_id": id_,
            "legacyResourceId": str(id_),
            "firstName": r["first_name"],
            "lastName": r["last_name"],
            "displayName": name or email or phone or "",
            "defaultEmailAddress": None
            if not email
            else {
                "emailAddress": email,
                "marketingState": state,
                "marketingOptInLevel": r["marketing_opt_in_level"],
                "marketingUpdatedAt": consent_at,
                "validFormat": "@" in email,
            },
            "defaultPhoneNumber": None
            if not phone
            else {"phoneNumber": phone, "marketingState": "NOT_SUBSCRIBED", "marketingOptInLevel": None},
            "defaultAddress": address,
            "tags": [t.strip() for t in (r["tags"] or "").split(",") if t.strip()],
            "createdAt": timestamp(r["created_at"]),
            "updatedAt": timestamp(r["updated_at"]),
            "numberOfOrders": str(int(self.data.customer_orders[row])),
            "amountSpent": money(int(self.data.customer_spent_cents[row]), SHOP_CURRENCY),
            "verifiedEmail": bool(email),
            "taxExempt": False,
            "note": None,
            # Deprecated since 2026-01 but still in the schema; connectors use defaultEmailAddress.
            "email": email,
            "phone": phone,
            "emailMarketingConsent": None
            if not email
            else {
                "marketingState": state,
                "marketingOptInLevel": r["marketing_opt_in_level"],
                "consentUpdatedAt": consent_at,
            },
        }

    def _order(
        self,
        r: dict[str, Any],
        lines: Callable[[], dict[int, list[dict]]],
        refunds: Callable[[], dict[int, list[dict]]],
        refund_lines: Callable[[], dict[int, list[dict]]],
        customers: Callable[[], dict[int, dict]],
    ) -> dict[str, Any]:
        id_, customer_id = r["id"], r["customer_id"]
        currency, fx = r["presentment_currency"] or SHOP_CURRENCY, r["fx_rate"] or 1.0

        def bag(cents: int | None) -> LazyMoneyBag:
            return LazyMoneyBag(cents, currency, fx)

        @Once
        def line_items() -> list[dict[str, Any]]:
            return [self._line_item(line, bag) for line in lines()[id_]]

        @Once
        def refund_nodes() -> list[dict[str, Any]]:
            by_line = {item["_id"]: item for item in line_items()}
            return [self._refund(refund, refund_lines()[refund["id"]], by_line, bag) for refund in refunds()[id_]]

        code = r["discount_code"]
        return {
            "id": gid("Order", id_),
            "legacyResourceId": str(id_),
            "name": r["name"],
            "email": r["email"],
            "createdAt": timestamp(r["created_at"]),
            "processedAt": timestamp(r["processed_at"]),
            "updatedAt": timestamp(r["updated_at"]),
            "cancelledAt": timestamp(r["cancelled_at"]),
            "cancelReason": r["cancel_reason"],
            "displayFinancialStatus": r["financial_status"],
            "currencyCode": SHOP_CURRENCY,
            "presentmentCurrencyCode": currency,
            "customer": (lambda info: customers().get(customer_id)) if customer_id else None,
            "lineItems": list_resolver(line_items),
            "refunds": lambda info, first=None: refund_nodes()[:first],
            "subtotalPriceSet": bag(r["subtotal_cents"]),
            "totalDiscountsSet": bag(r["discount_cents"]),
            "totalShippingPriceSet": bag(r["shipping_cents"]),
            "totalTaxSet": bag(r["tax_cents"]),
            "totalPriceSet": bag(r["total_cents"]),
            "totalRefundedSet": bag(r["refunded_cents"]),
            "currentTotalPriceSet": bag((r["total_cents"] or 0) - (r["refunded_cents"] or 0)),
            "discountCode": code,
            "discountCodes": [code] if code else [],
            "sourceName": r["source_name"],
            "customerJourneySummary": self._journey(r),
            "test": False,
            "tags": [],
        }

    @staticmethod
    def _journey(r: dict[str, Any]) -> dict[str, Any]:
        source = r["landing_source"]
        visit = None
        if source:
            campaign = r["landing_campaign"]
            visit = {
                "id": gid("CustomerVisit", r["id"]),
                "occurredAt": timestamp(r["created_at"]),
                "source": source,
                "sourceType": None,
                "landingPage": None,
                "referrerUrl": None,
                "utmParameters": None
                if source == "organic" and not campaign
                else {
                    "source": source,
                    "campaign": campaign,
                    "medium": UTM_MEDIUM.get(source),
                    "content": None,
                    "term": None,
                },
            }
        # The demo shop records one visit per order: it is the first and the last one.
        return {
            "ready": True,
            "firstVisit": visit,
            "lastVisit": visit,
            "customerOrderIndex": None,
            "daysToConversion": None,
        }

    def _line_item(self, line: dict[str, Any], bag: Callable[[int], LazyMoneyBag]) -> dict[str, Any]:
        quantity, unit, discount = line["quantity"], line["unit_price_cents"], line["discount_cents"] or 0
        product = self.products_by_id.get(line["product_id"])
        return {
            "id": gid("LineItem", line["id"]),
            "_id": line["id"],
            "title": line["title"],
            "name": line["title"],
            "sku": line["sku"],
            "quantity": quantity,
            "variant": self.variants_by_id.get(line["variant_id"]),
            "product": product,
            "vendor": product["vendor"] if product else None,
            "variantTitle": None,
            "originalUnitPriceSet": bag(unit),
            "originalTotalSet": bag(unit * quantity),
            "totalDiscountSet": bag(discount),
            "discountedTotalSet": bag(unit * quantity - discount),  # withCodeDiscounts: the same here
            "isGiftCard": False,
            "requiresShipping": True,
            "taxable": True,
            "customAttributes": [],
        }

    @staticmethod
    def _refund(
        refund: dict[str, Any],
        lines: list[dict[str, Any]],
        line_items: dict[int, dict[str, Any]],
        bag: Callable[[int], LazyMoneyBag],
    ) -> dict[str, Any]:
        created = timestamp(refund["created_at"])
        items = []
        for line in lines:
            line_item = line_items.get(line["order_line_id"])
            quantity = line["quantity"] or 0
            items.append(
                {
                    "id": None,  # RefundLineItem.id is nullable; the demo shop has no refund-line ids
                    "lineItem": line_item,
                    "quantity": quantity,
                    "subtotalSet": bag(line["subtotal_cents"]),
                    "priceSet": bag(round((line["subtotal_cents"] or 0) / quantity) if quantity else 0),
                    "totalTaxSet": bag(0),
                    "restockType": "NO_RESTOCK",
                    "restocked": False,
                }
            )
        return {
            "id": gid("Refund", refund["id"]),
            "legacyResourceId": str(refund["id"]),
            "createdAt": created,
            "processedAt": created,
            "updatedAt": created,
            "note": refund["note"],
            "totalRefundedSet": bag(refund["amount_cents"]),
            "refundLineItems": list_resolver(lambda: items),
        }

    def _checkout(
        self, r: dict[str, Any], lines: Callable[[], dict[int, list[dict]]], customers: Callable[[], dict[int, dict]]
    ) -> dict[str, Any]:
        id_, customer_id = r["id"], r["customer_id"]
        currency, fx = r["presentment_currency"] or SHOP_CURRENCY, r["fx_rate"] or 1.0

        def bag(cents: int | None) -> LazyMoneyBag:
            return LazyMoneyBag(cents, currency, fx)

        def line_items() -> list[dict[str, Any]]:
            items = []
            for line in lines()[id_]:
                quantity, unit = line["quantity"], line["unit_price_cents"]
                items.append(
                    {
                        "id": gid("AbandonedCheckoutLineItem", line["id"]),
                        "title": line["title"],
                        "sku": line["sku"],
                        "quantity": quantity,
                        "variant": self.variants_by_id.get(line["variant_id"]),
                        "product": self.products_by_id.get(line["product_id"]),
                        "variantTitle": None,
                        "originalUnitPriceSet": bag(unit),
                        "originalTotalPriceSet": bag(unit * quantity),
                        "discountedUnitPriceSet": bag(unit),
                        "discountedTotalPriceSet": bag(unit * quantity),
                        "customAttributes": [],
                    }
                )
            return items

        # AbandonedCheckout has no email field in 2026-04: the address is the customer's
        # (customer.defaultEmailAddress); anonymous checkouts have neither.
        return {
            "id": gid("AbandonedCheckout", id_),
            "name": f"#{id_}",
            "abandonedCheckoutUrl": r["abandoned_checkout_url"],
            "completedAt": timestamp(r["completed_at"]),
            "createdAt": timestamp(r["created_at"]),
            "updatedAt": timestamp(r["updated_at"]),
            "customer": (lambda info: customers().get(customer_id)) if customer_id else None,
            "lineItems": list_resolver(Once(line_items)),
            "subtotalPriceSet": bag(r["subtotal_cents"]),
            "totalLineItemsPriceSet": bag(r["subtotal_cents"]),
            "totalPriceSet": bag(r["total_cents"]),
            "totalDiscountSet": bag(0),
            "discountCodes": [],
            "taxesIncluded": False,
            "note": "",
            "customAttributes": [],
        }

    @staticmethod
    def _product(r: dict[str, Any]) -> dict[str, Any]:
        id_, title = r["id"], r["title"]
        image = {"id": gid("ProductImage", id_), "url": r["image_url"], "altText": title} if r["image_url"] else None
        media = None
        if image:
            media = {
                "__typename": "MediaImage",  # Media is an interface: graphql-core reads the concrete type here
                "id": gid("MediaImage", id_),
                "alt": title,
                "mediaContentType": "IMAGE",
                "status": "READY",
                "image": image,
                "preview": {"image": image, "status": "READY"},
                "mediaErrors": [],
                "mediaWarnings": [],
            }
        created = timestamp(r["created_at"])
        product: dict[str, Any] = {
            "id": gid("Product", id_),
            "legacyResourceId": str(id_),
            "title": title,
            "handle": r["handle"],
            "productType": r["product_type"],
            "vendor": r["vendor"],
            "createdAt": created,
            "updatedAt": timestamp(r["updated_at"]),
            "publishedAt": created,
            "status": "ACTIVE",
            "tags": [],
            "description": "",
            "descriptionHtml": "",
            "onlineStoreUrl": f"https://{SHOP_DOMAIN}/products/{r['handle']}",
            "featuredMedia": media,
            "featuredImage": image,  # deprecated alias of featuredMedia's image
            "hasOnlyDefaultVariant": True,
            "isGiftCard": False,
            "variantsCount": {"count": 1, "precision": "EXACT"},
        }
        variant = {
            "id": gid("ProductVariant", r["variant_id"]),
            "legacyResourceId": str(r["variant_id"]),
            "title": "Default Title",
            "displayName": f"{title} - Default Title",
            "sku": r["sku"],
            "price": amount(r["price_cents"]),
            "compareAtPrice": None,
            "product": product,
        }
        product["variants"] = list_resolver(lambda: [variant])
        product["_variant"] = variant
        return product
