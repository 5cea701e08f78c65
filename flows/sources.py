"""Which sources exist, which are configured, and the connector streams of each.

The one place that turns Hearth's settings into connector settings, so the
flows never care which vendor they are talking to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from connectors.amazon import AmazonClient, AmazonSettings, OrdersStream
from connectors.base import Stream
from connectors.facebook import FacebookClient, FacebookSettings, InsightsStream, metadata_streams
from connectors.shopify import ShopifyClient, ShopifySettings, shopify_streams
from hearth.config import ConfigError, Settings
from hearth.extract import extract_incremental
from hearth.rawzone import RawZone
from hearth.state import StateStore

SOURCES = ("shopify", "amazon", "facebook")


def _shopify(settings: Settings) -> list[Stream]:
    s = settings.shopify
    config = ShopifySettings(api_url=s.api_url or "", access_token=_reveal(s.access_token),
                             api_version=s.api_version)  # fmt: skip
    return list(shopify_streams(ShopifyClient(config)))


def _amazon(settings: Settings) -> list[Stream]:
    a = settings.amazon
    config = AmazonSettings(
        sp_api_url=a.sp_api_url or "",
        lwa_url=a.lwa_url or "",
        client_id=a.client_id or "",
        client_secret=_reveal(a.client_secret),
        refresh_token=_reveal(a.refresh_token),
        marketplace_ids=a.marketplace_ids,
    )
    return [OrdersStream(AmazonClient(config))]


def _facebook(settings: Settings) -> list[Stream]:
    f = settings.facebook
    config = FacebookSettings(graph_url=f.graph_url or "", access_token=_reveal(f.access_token),
                              ad_account_id=f.ad_account_id or "", api_version=f.api_version)  # fmt: skip
    client = FacebookClient(config)
    return [InsightsStream(client), *metadata_streams(client)]


_BUILDERS: dict[str, Callable[[Settings], list[Stream]]] = {
    "shopify": _shopify,
    "amazon": _amazon,
    "facebook": _facebook,
}

# A source counts as configured when its endpoint is set; its other settings are then required.
_ENDPOINTS = {
    "shopify": lambda s: s.shopify.api_url,
    "amazon": lambda s: s.amazon.sp_api_url,
    "facebook": lambda s: s.facebook.graph_url,
}


def _reveal(secret: object) -> str:
    return secret.reveal() if secret is not None else ""  # type: ignore[attr-defined]


def configured_sources(settings: Settings) -> list[str]:
    """The sources whose endpoint is configured; none configured is an error worth explaining."""
    chosen = [source for source in SOURCES if _ENDPOINTS[source](settings)]
    if not chosen:
        raise ConfigError(
            "No source is configured: set SHOPIFY_API_URL, AMAZON_SP_API_URL or FACEBOOK_GRAPH_URL "
            "(with their credentials), or run `hearth sandbox` and load data/sandbox/sandbox.env."
        )
    return chosen


def streams_for(source: str, settings: Settings) -> list[Stream]:
    """The connector streams of one source; a missing setting fails naming the variable."""
    try:
        return _BUILDERS[source](settings)
    except KeyError:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}") from None
    except ValueError as exc:  # connector settings name the missing variable
        raise ConfigError(str(exc)) from exc


def land_every_stream(
    settings: Settings, *, now: datetime, sources: Sequence[str] = SOURCES, zone: RawZone | None = None
) -> dict[str, int]:
    """Every stream of ``sources`` from its cursor up to ``now`` (a first run: from the history start).

    The ingest flow without Prefect, retries or per-stream error isolation: for set-up that
    wants a whole shop landed (benchmarks, test fixtures, crash-test children). Returns the
    rows landed per ``"source.stream"``; the first failing stream raises.
    """
    zone = zone or RawZone(settings.raw_dir)
    rows: dict[str, int] = {}
    with StateStore(settings.state_path) as state:
        for source in sources:
            for stream in streams_for(source, settings):
                result = extract_incremental(stream, zone, state, now=now, initial_start=settings.history_start)
                rows[f"{source}.{stream.name}"] = result.rows
    return rows
