"""Shopify Admin GraphQL connector (API 2026-04): customers, orders, abandoned checkouts, products.

Usage::

    client = ShopifyClient(ShopifySettings.from_env(os.environ))
    for stream in shopify_streams(client):
        for page in stream.pages(Window(start, end)):
            ...
"""

from connectors.shopify.bulk import BulkOperationError, BulkRunner, assemble
from connectors.shopify.client import ShopifyClient, ShopifyGraphQLError, page_envelope
from connectors.shopify.queries import SPECS, StreamSpec, all_documents
from connectors.shopify.settings import API_VERSION, ShopifySettings
from connectors.shopify.streams import ShopifyStream, shopify_streams

__all__ = [
    "API_VERSION",
    "SPECS",
    "BulkOperationError",
    "BulkRunner",
    "ShopifyClient",
    "ShopifyGraphQLError",
    "ShopifySettings",
    "ShopifyStream",
    "StreamSpec",
    "all_documents",
    "assemble",
    "page_envelope",
    "shopify_streams",
]
