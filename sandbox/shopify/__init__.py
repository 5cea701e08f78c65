"""Shopify Admin GraphQL API sandbox (2026-04) over the demo shop."""

from sandbox.shopify.server import SANDBOX_ACCESS_TOKEN, ShopifySandbox

__all__ = ["SANDBOX_ACCESS_TOKEN", "ShopifySandbox"]
