"""Settings of the Amazon SP-API connector (Login with Amazon + Orders v2026-01-01).

Plain values: the flows build them from Hearth's configuration, tests from a
sandbox's ``env()``. Secrets are kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# searchOrders' documented usage plan: 0.0056 requests per second, bursts of 20.
DOCUMENTED_RATE = 0.0056
DOCUMENTED_BURST = 20
# Datasets of an order worth extracting: the buyer's relay address (a pseudonymous key for
# cadence analysis, never a marketing contact), money, and fulfilment status.
DEFAULT_INCLUDED_DATA = ("BUYER", "PROCEEDS", "FULFILLMENT")
INCLUDED_DATA = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)
MAX_MARKETPLACES = 50

ENV_NAMES = {
    "sp_api_url": "AMAZON_SP_API_URL",
    "lwa_url": "AMAZON_LWA_URL",
    "client_id": "AMAZON_CLIENT_ID",
    "client_secret": "AMAZON_CLIENT_SECRET",
    "refresh_token": "AMAZON_REFRESH_TOKEN",
    "marketplace_ids": "AMAZON_MARKETPLACE_IDS",
}


@dataclass(frozen=True)
class AmazonSettings:
    """Everything the Amazon connector needs.

    Attributes:
        sp_api_url: regional SP-API endpoint, e.g. ``https://sellingpartnerapi-na.amazon.com``.
        lwa_url: Login with Amazon endpoint, e.g. ``https://api.amazon.com``.
        client_id, client_secret: the LWA application credentials.
        refresh_token: the seller's LWA refresh token (from authorising the app).
        marketplace_ids: marketplaces to search (1–50).
        rate_per_second, burst: the client-side token bucket; a stated ``x-amzn-RateLimit-Limit`` overrides the rate.
        pacing_margin: each call costs ``1 + pacing_margin`` tokens, so the client stays a little
            under the server's bucket and network jitter never turns into a 429.
        page_size: ``maxResultsPerPage`` (1–100).
        included_data: ``includedData`` datasets of each order.
        timeout: (connect, read) seconds per attempt.
        max_attempts, backoff_base: retries of the shared HTTP layer.
    """

    sp_api_url: str
    lwa_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    marketplace_ids: tuple[str, ...]
    rate_per_second: float = DOCUMENTED_RATE
    burst: int = DOCUMENTED_BURST
    pacing_margin: float = 0.05
    page_size: int = 100
    included_data: tuple[str, ...] = DEFAULT_INCLUDED_DATA
    timeout: float | tuple[float, float] = (5.0, 60.0)
    max_attempts: int = 8
    backoff_base: float = 0.5

    def __post_init__(self) -> None:
        for name in ("sp_api_url", "lwa_url", "client_id", "client_secret", "refresh_token"):
            if not getattr(self, name):
                raise ValueError(f"{ENV_NAMES[name]} is not set: the Amazon connector needs it.")
        if not self.marketplace_ids:
            raise ValueError("AMAZON_MARKETPLACE_IDS is empty: give comma-separated ids, e.g. ATVPDKIKX0DER.")
        if len(self.marketplace_ids) > MAX_MARKETPLACES:
            raise ValueError(f"AMAZON_MARKETPLACE_IDS has {len(self.marketplace_ids)} ids; searchOrders takes ≤ 50.")
        if not 1 <= self.page_size <= 100:
            raise ValueError(f"page_size must be within 1–100 (maxResultsPerPage), got {self.page_size}")
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError(f"rate_per_second ({self.rate_per_second}) and burst ({self.burst}) must be positive")
        if not 0 <= self.pacing_margin < 1:
            raise ValueError(f"pacing_margin must be within [0, 1), got {self.pacing_margin}")
        unknown = sorted(set(self.included_data) - set(INCLUDED_DATA))
        if unknown:
            raise ValueError(f"included_data {unknown} are not SP-API datasets; choose from {', '.join(INCLUDED_DATA)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> AmazonSettings:
        """Settings from ``AMAZON_*`` variables (e.g. a sandbox's ``env()``), plus keyword overrides."""
        values: dict[str, Any] = {key: (env.get(name) or "").strip() for key, name in ENV_NAMES.items()}
        values["marketplace_ids"] = tuple(m.strip() for m in values["marketplace_ids"].split(",") if m.strip())
        return cls(**{**values, **overrides})

    def with_(self, **changes: Any) -> AmazonSettings:
        """A copy with some values changed."""
        return replace(self, **changes)
