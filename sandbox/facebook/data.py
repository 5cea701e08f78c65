"""The demo shop's Facebook tables (campaigns, ad sets, ads, daily insights) and attribution settling.

Attribution settling — what the sandbox serves for recent days
---------------------------------------------------------------
``fb_insights`` holds final numbers. The shop's "today" is its last date. A day whose
age ``a = today - day`` is below ``settle_days`` is still settling: with
``k = settle_days - a`` (1 for the oldest settling day, ``settle_days`` for today) and
``p`` the insights pull the answer belongs to (1, 2, 3 …), the sandbox serves

- conversions (purchases, purchase value): ``final × (1 − k / (2·settle_days·p))``
- delivery (spend, impressions, clicks):    ``final × (1 − k / (10·settle_days·p))``

rounded down. So today's conversions start at half their final value, older days
are closer to final, every pull moves every settling day towards final without
ever passing it, and days older than ``settle_days`` are always final.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sandbox.shop.tables import read_table

EDGE_NODE = {"campaigns": "Campaign", "adsets": "AdSet", "ads": "Ad"}
# Fields the sandbox renders on GET /act_{id}/campaigns|adsets|ads (no node spec to check others against).
EDGE_FIELDS = {
    "campaigns": (
        "id",
        "name",
        "status",
        "effective_status",
        "objective",
        "account_id",
        "created_time",
        "updated_time",
    ),
    "adsets": ("id", "name", "status", "effective_status", "campaign_id", "account_id", "created_time", "updated_time"),
    "ads": (
        "id",
        "name",
        "status",
        "effective_status",
        "adset_id",
        "campaign_id",
        "account_id",
        "created_time",
        "updated_time",
    ),
}


@dataclass(frozen=True)
class Daily:
    """One ad's numbers on one day (cents in the account currency)."""

    ad_id: str
    day: date
    spend_cents: int
    impressions: int
    clicks: int
    purchases: int
    purchase_value_cents: int


def settle(row: Daily, today: date, settle_days: int, pull: int) -> Daily:
    """The numbers of ``row`` as served on insights pull ``pull`` (see the module docstring)."""
    k = settle_days - (today - row.day).days
    if k <= 0:
        return row
    conversions, delivery = 2 * settle_days * pull, 10 * settle_days * pull

    def part(value: int, denominator: int) -> int:
        return value * (denominator - k) // denominator

    return dataclasses.replace(
        row,
        spend_cents=part(row.spend_cents, delivery),
        impressions=part(row.impressions, delivery),
        clicks=part(row.clicks, delivery),
        purchases=part(row.purchases, conversions),
        purchase_value_cents=part(row.purchase_value_cents, conversions),
    )


def graph_time(value: datetime | None) -> str | None:
    """Graph API time format: ``2025-01-15T09:30:00+0000``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000") if value else None


class AdsData:
    """Campaigns, ad sets, ads and daily insights of one shop, indexed by id and day."""

    def __init__(self, shop_dir: Path) -> None:
        self.campaigns = {r["id"]: r for r in read_table(shop_dir, "fb_campaigns").to_pylist()}
        self.adsets = {r["id"]: r for r in read_table(shop_dir, "fb_adsets").to_pylist()}
        self.ads = {r["id"]: r for r in read_table(shop_dir, "fb_ads").to_pylist()}
        self.by_day: dict[date, list[Daily]] = defaultdict(list)
        for r in read_table(shop_dir, "fb_insights").to_pylist():
            self.by_day[r["date"]].append(
                Daily(
                    ad_id=r["ad_id"],
                    day=r["date"],
                    spend_cents=int(r["spend_cents"]),
                    impressions=int(r["impressions"]),
                    clicks=int(r["clicks"]),
                    purchases=int(r["purchases"]),
                    purchase_value_cents=int(r["purchase_value_cents"]),
                )
            )
        for rows in self.by_day.values():
            rows.sort(key=lambda d: d.ad_id)
        # The shop's "today" is its last insights day; with no insights at all, the calendar's.
        self.today: date = max(self.by_day, default=datetime.now(UTC).date())
        self.first_day: date = min(self.by_day, default=self.today)

    def parents(self, ad_id: str) -> tuple[str | None, str | None]:
        """``(adset_id, campaign_id)`` of an ad."""
        ad = self.ads.get(ad_id, {})
        adset_id = ad.get("adset_id")
        campaign_id = ad.get("campaign_id") or self.adsets.get(adset_id or "", {}).get("campaign_id")
        return adset_id, campaign_id

    def entities(self, edge: str, account_id: str, statuses: frozenset[str] | None) -> list[dict[str, Any]]:
        """Every campaign, ad set or ad as the Graph API renders it, oldest first."""
        table = {"campaigns": self.campaigns, "adsets": self.adsets, "ads": self.ads}[edge]
        rendered = []
        for row in sorted(table.values(), key=lambda r: (r["created_time"], r["id"])):
            if statuses is not None and row["status"] not in statuses:
                continue
            created = graph_time(row["created_time"])
            values = {
                **{key: row.get(key) for key in ("id", "name", "status", "objective", "campaign_id", "adset_id")},
                "effective_status": row["status"],
                "account_id": account_id,
                "created_time": created,
                "updated_time": created,  # the demo shop does not edit its ads
            }
            rendered.append({key: values[key] for key in EDGE_FIELDS[edge] if values.get(key) is not None})
        return rendered
