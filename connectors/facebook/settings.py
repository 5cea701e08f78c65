"""Settings of the Facebook Marketing API connector (Graph API, insights and ad metadata)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

API_VERSION = "v25.0"
ENV_NAMES = {
    "graph_url": "FACEBOOK_GRAPH_URL",
    "access_token": "FACEBOOK_ACCESS_TOKEN",
    "ad_account_id": "FACEBOOK_AD_ACCOUNT_ID",
}
_VERSION = re.compile(r"v\d+\.\d+")


@dataclass(frozen=True)
class FacebookSettings:
    """Everything the Facebook connector needs.

    Attributes:
        graph_url: the Graph API host, e.g. ``https://graph.facebook.com`` (no version).
        access_token: a system-user token with ``ads_read`` on the ad account.
        ad_account_id: the account's numeric id (an ``act_`` prefix is accepted and dropped).
        api_version: pinned Graph version, e.g. ``v25.0``.
        lookback_days: the last N days before a window's end are always re-pulled, because
            their numbers still change as attribution settles.
        async_threshold_days: insights ranges longer than this run as async report runs.
        page_size: ``limit`` per page.
        poll_interval, poll_max_interval, poll_timeout: report-run polling (seconds; the
            interval doubles up to the maximum; past the timeout the run is given up).
        timeout: (connect, read) seconds per attempt.
        max_attempts, backoff_base: retries of the shared HTTP layer.
        slow_above, max_delay: the usage pacer (slow down above this usage %, up to this gap).
    """

    graph_url: str
    access_token: str = field(repr=False)
    ad_account_id: str
    api_version: str = API_VERSION
    lookback_days: int = 7
    async_threshold_days: int = 31
    page_size: int = 500
    poll_interval: float = 2.0
    poll_max_interval: float = 30.0
    poll_timeout: float = 3600.0
    timeout: float | tuple[float, float] = (5.0, 120.0)
    max_attempts: int = 8
    backoff_base: float = 1.0
    slow_above: float = 75.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        for name in ("graph_url", "access_token", "ad_account_id"):
            if not getattr(self, name):
                raise ValueError(f"{ENV_NAMES[name]} is not set: the Facebook connector needs it.")
        account = self.ad_account_id.removeprefix("act_")
        if not account.isdigit():
            raise ValueError(f"FACEBOOK_AD_ACCOUNT_ID must be the numeric ad account id, got {self.ad_account_id!r}")
        object.__setattr__(self, "ad_account_id", account)
        if not _VERSION.fullmatch(self.api_version):
            raise ValueError(f"api_version must look like v25.0, got {self.api_version!r}")
        if self.lookback_days < 0 or self.async_threshold_days < 1 or self.page_size < 1:
            raise ValueError("lookback_days must be ≥ 0, async_threshold_days and page_size ≥ 1")

    @property
    def account(self) -> str:
        """The ad account node, ``act_<id>``."""
        return f"act_{self.ad_account_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> FacebookSettings:
        """Settings from ``FACEBOOK_*`` variables (e.g. a sandbox's ``env()``), plus keyword overrides."""
        values: dict[str, Any] = {key: (env.get(name) or "").strip() for key, name in ENV_NAMES.items()}
        if version := (env.get("FACEBOOK_API_VERSION") or "").strip():
            values["api_version"] = version
        return cls(**{**values, **overrides})

    def with_(self, **changes: Any) -> FacebookSettings:
        """A copy with some values changed."""
        return replace(self, **changes)
