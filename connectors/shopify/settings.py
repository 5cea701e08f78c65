"""Settings of the Shopify connector (GraphQL Admin API, pinned version).

Plain values: the flows build them from Hearth's configuration, tests from a
sandbox's ``env()``. The access token is kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

API_VERSION = "2026-04"
TOKEN_SETTING = "SHOPIFY_ACCESS_TOKEN"
MAX_PAGE_SIZE = 250  # Shopify refuses first > 250 on any connection

ENV_NAMES = {
    "api_url": "SHOPIFY_API_URL",
    "access_token": TOKEN_SETTING,
    "api_version": "SHOPIFY_API_VERSION",
}


@dataclass(frozen=True)
class ShopifySettings:
    """Everything the Shopify connector needs.

    Attributes:
        api_url: the shop's base URL, e.g. ``https://my-shop.myshopify.com``.
        access_token: the Admin API access token (``shpat_…``), sent as ``X-Shopify-Access-Token``.
        api_version: the pinned Admin API version; the queries are validated against its schema.
        page_size: ``first`` of the root connection, an upper bound: a stream with costly nodes
            asks for fewer so that one query stays under Shopify's single-query cost limit.
        nested_page_size: ``first`` of nested connections (line items, refund lines, variants).
            A record that fills one is fetched again through a bulk operation, which has no limit.
        bulk_threshold_days: windows longer than this use a bulk operation instead of paging.
        bulk_poll_interval, bulk_poll_max_interval: first and longest wait between bulk status polls.
        bulk_timeout: seconds a bulk operation may take before the stream gives up.
        bulk_page_records: records per page yielded from a bulk result.
        timeout: (connect, read) seconds per HTTP attempt.
        max_attempts, backoff_base: retries of the shared HTTP layer.
    """

    api_url: str
    access_token: str = field(repr=False)
    api_version: str = API_VERSION
    page_size: int = MAX_PAGE_SIZE
    nested_page_size: int = 10
    bulk_threshold_days: float = 14.0
    bulk_poll_interval: float = 1.0
    bulk_poll_max_interval: float = 30.0
    bulk_timeout: float = 6 * 3600.0
    bulk_page_records: int = 1000
    timeout: float | tuple[float, float] = (5.0, 60.0)
    max_attempts: int = 8
    backoff_base: float = 0.5

    def __post_init__(self) -> None:
        for name in ("api_url", "access_token", "api_version"):
            if not getattr(self, name):
                raise ValueError(f"{ENV_NAMES[name]} is not set: the Shopify connector needs it.")
        for name in ("page_size", "nested_page_size"):
            if not 1 <= getattr(self, name) <= MAX_PAGE_SIZE:
                raise ValueError(f"{name} must be within 1–{MAX_PAGE_SIZE}, got {getattr(self, name)}")
        if self.bulk_threshold_days < 0:
            raise ValueError(f"bulk_threshold_days must not be negative, got {self.bulk_threshold_days}")
        if self.bulk_poll_interval <= 0 or self.bulk_poll_max_interval < self.bulk_poll_interval:
            raise ValueError("bulk_poll_interval must be positive and at most bulk_poll_max_interval")
        if self.bulk_page_records < 1:
            raise ValueError(f"bulk_page_records must be positive, got {self.bulk_page_records}")

    @property
    def graphql_path(self) -> str:
        """The Admin GraphQL endpoint, relative to ``api_url``."""
        return f"admin/api/{self.api_version}/graphql.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> ShopifySettings:
        """Settings from ``SHOPIFY_*`` variables (e.g. a sandbox's ``env()``), plus keyword overrides."""
        values: dict[str, Any] = {key: (env.get(name) or "").strip() for key, name in ENV_NAMES.items()}
        values["api_version"] = values["api_version"] or API_VERSION
        return cls(**{**values, **overrides})

    def with_(self, **changes: Any) -> ShopifySettings:
        """A copy with some values changed."""
        return replace(self, **changes)
