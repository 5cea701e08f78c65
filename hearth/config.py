"""Configuration from the environment (and ``.env`` when present).

Every endpoint and credential is a setting, so the same code talks to the real
APIs, the sandbox, or a server a test starts. A missing setting fails with a
message that names it; secret values never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dotenv import load_dotenv

SHOPIFY_API_VERSION = "2026-04"
FACEBOOK_API_VERSION = "v25.0"
# A stream without a cursor starts here: before any shop existed, i.e. "everything".
# Streams with a shorter memory (Facebook insights: 37 months) clamp it themselves.
DEFAULT_HISTORY_START = datetime(2006, 1, 1, tzinfo=UTC)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it and how to fix it."""


class Secret(str):
    """A string that hides itself in ``repr`` and ``str`` formatting of containers."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


def _get(env: dict[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name, default)
    return value.strip() if isinstance(value, str) and value.strip() else default


def _timestamp(env: dict[str, str], name: str) -> datetime | None:
    value = _get(env, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not an ISO date or timestamp (e.g. 2024-01-01).") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ShopifySettings:
    api_url: str | None
    access_token: Secret | None = field(repr=False)
    api_version: str = SHOPIFY_API_VERSION
    webhook_secret: Secret | None = field(default=None, repr=False)  # the app's HMAC key for webhooks


@dataclass(frozen=True)
class AmazonSettings:
    sp_api_url: str | None
    lwa_url: str | None
    client_id: str | None
    client_secret: Secret | None = field(repr=False)
    refresh_token: Secret | None = field(repr=False)
    marketplace_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FacebookSettings:
    graph_url: str | None
    access_token: Secret | None = field(repr=False)
    ad_account_id: str | None = None
    api_version: str = FACEBOOK_API_VERSION


@dataclass(frozen=True)
class SendGridSettings:
    api_host: str | None
    api_key: Secret | None = field(repr=False)
    webhook_public_key: str | None = None


@dataclass(frozen=True)
class ShopSettings:
    """What emails say about the shop, and how sends are governed."""

    name: str = "Hearth Demo Shop"
    url: str = "https://hearth-demo.myshopify.com"
    address: str = "1 Demo Street, Springfield, USA"  # CAN-SPAM: a postal address in every email
    timezone: str = "America/New_York"  # for people whose own time zone is unknown
    public_url: str = "http://127.0.0.1:8710"  # where `hearth webhooks serve` is reachable (unsubscribe links)
    secret_key: Secret | None = field(default=None, repr=False)  # signs unsubscribe links
    send_ceiling: int = 5000  # a run that would send more pauses for approval


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    ingest_start: datetime | None  # where a stream's first incremental run starts
    shopify: ShopifySettings
    amazon: AmazonSettings
    facebook: FacebookSettings
    sendgrid: SendGridSettings
    shop: ShopSettings = field(default_factory=ShopSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read settings from ``env`` (default: the process environment, after ``.env``)."""
        if env is None:
            if dotenv:
                load_dotenv(Path.cwd() / ".env", override=False)
            env = dict(os.environ)

        def secret(name: str) -> Secret | None:
            value = _get(env, name)
            return Secret(value) if value else None

        return cls(
            data_dir=Path(_get(env, "HEARTH_DATA_DIR", "./data") or "./data").expanduser().resolve(),
            ingest_start=_timestamp(env, "HEARTH_INGEST_START"),
            shopify=ShopifySettings(
                api_url=_get(env, "SHOPIFY_API_URL"),
                access_token=secret("SHOPIFY_ACCESS_TOKEN"),
                api_version=_get(env, "SHOPIFY_API_VERSION", SHOPIFY_API_VERSION) or SHOPIFY_API_VERSION,
                webhook_secret=secret("SHOPIFY_WEBHOOK_SECRET"),
            ),
            amazon=AmazonSettings(
                sp_api_url=_get(env, "AMAZON_SP_API_URL"),
                lwa_url=_get(env, "AMAZON_LWA_URL"),
                client_id=_get(env, "AMAZON_CLIENT_ID"),
                client_secret=secret("AMAZON_CLIENT_SECRET"),
                refresh_token=secret("AMAZON_REFRESH_TOKEN"),
                marketplace_ids=tuple(
                    m.strip() for m in (_get(env, "AMAZON_MARKETPLACE_IDS") or "").split(",") if m.strip()
                ),
            ),
            facebook=FacebookSettings(
                graph_url=_get(env, "FACEBOOK_GRAPH_URL"),
                access_token=secret("FACEBOOK_ACCESS_TOKEN"),
                ad_account_id=_get(env, "FACEBOOK_AD_ACCOUNT_ID"),
            ),
            shop=ShopSettings(
                name=_get(env, "SHOP_NAME", ShopSettings.name) or ShopSettings.name,
                url=_get(env, "SHOP_URL", ShopSettings.url) or ShopSettings.url,
                address=_get(env, "SHOP_ADDRESS", ShopSettings.address) or ShopSettings.address,
                timezone=_get(env, "SHOP_TIMEZONE", ShopSettings.timezone) or ShopSettings.timezone,
                public_url=_get(env, "HEARTH_PUBLIC_URL", ShopSettings.public_url) or ShopSettings.public_url,
                secret_key=secret("HEARTH_SECRET_KEY"),
                send_ceiling=int(_get(env, "HEARTH_SEND_CEILING", "5000") or 5000),
            ),
            sendgrid=SendGridSettings(
                api_host=_get(env, "SENDGRID_API_HOST"),
                api_key=secret("SENDGRID_API_KEY"),
                webhook_public_key=_get(env, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
            ),
        )

    # Files under the data dir (the public layout of DESIGN.md).
    @property
    def history_start(self) -> datetime:
        """Where a stream without a cursor starts: ``HEARTH_INGEST_START`` or all history."""
        return self.ingest_start or DEFAULT_HISTORY_START

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def dbt_target_dir(self) -> Path:
        """The transform's dbt artifacts (manifest, run results, partial parse), beside the warehouse they describe."""
        return self.data_dir / "dbt_target"

    @property
    def dbt_log_dir(self) -> Path:
        return self.data_dir / "dbt_logs"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    @property
    def shop_dir(self) -> Path:
        """Where the demo-shop generator writes and the sandbox servers read."""
        return self.sandbox_dir / "shop"


def require(value: object, name: str, hint: str = "") -> object:
    """Return ``value`` or fail with a message naming the environment variable to set."""
    if value in (None, "", ()):
        raise ConfigError(f"{name} is not set. Set it in the environment or in .env{'; ' + hint if hint else ''}.")
    return value
