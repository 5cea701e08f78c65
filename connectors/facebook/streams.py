"""Facebook streams: daily ad-level ``insights`` and the ``campaigns`` / ``adsets`` / ``ads`` metadata.

Insights are days, not timestamps: a window ``[start, end)`` covers the UTC days
``start.date()`` … ``(end - 1 µs).date()`` (Graph's ``time_range`` is inclusive).
Numbers of recent days keep changing while attribution settles, so every pull
also re-reads the last ``lookback_days`` days before the window's end; staging
keeps the latest extraction of each (ad, day). Ranges longer than
``async_threshold_days`` go through an async report run instead of paging the
synchronous edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from typing import Any

from connectors.base import Page, Window
from connectors.facebook.client import FacebookClient
from connectors.facebook.reports import report_pages, start_report, wait_for_report

INSIGHTS_FIELDS = (
    "date_start",
    "date_stop",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "spend",
    "impressions",
    "clicks",
    "actions",
    "action_values",
)
METADATA_FIELDS = {
    "campaigns": ("id", "name", "status", "effective_status", "objective", "created_time", "updated_time"),
    "adsets": ("id", "name", "status", "effective_status", "campaign_id", "created_time", "updated_time"),
    "ads": ("id", "name", "status", "effective_status", "campaign_id", "adset_id", "created_time", "updated_time"),
}
# Every effective_status (adaccountcampaigns_effective_status_enum_param): without the filter
# Graph leaves out archived and deleted objects, whose past spend still needs names.
EFFECTIVE_STATUSES = (
    "ACTIVE",
    "ADSET_PAUSED",
    "ARCHIVED",
    "CAMPAIGN_PAUSED",
    "DELETED",
    "DISAPPROVED",
    "IN_PROCESS",
    "PAUSED",
    "PENDING_BILLING_INFO",
    "PENDING_REVIEW",
    "PREAPPROVED",
    "WITH_ISSUES",
)


class InsightsStream:
    """Daily ad-level insights of the window's days, plus the lookback days, one row per (ad, day)."""

    source = "facebook"
    name = "insights"
    # Insights are kept for 37 months; asking for more is an error, so a first run stops there.
    max_history = timedelta(days=37 * 30)

    def __init__(self, client: FacebookClient) -> None:
        self.client = client
        self.settings = client.settings

    def date_range(self, window: Window) -> tuple[date, date]:
        """The inclusive days ``(since, until)`` pulled for ``window``, lookback included."""
        until = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
        since = window.start.astimezone(UTC).date()
        if self.settings.lookback_days > 0:
            since = min(since, until - timedelta(days=self.settings.lookback_days - 1))
        return since, until

    def uses_async(self, window: Window) -> bool:
        since, until = self.date_range(window)
        return (until - since).days + 1 > self.settings.async_threshold_days

    def request_params(self, window: Window) -> dict[str, str]:
        """The insights parameters for ``window`` (GET of the edge, or the report run's POST)."""
        since, until = self.date_range(window)
        return {
            "level": "ad",
            "time_increment": "1",
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}, separators=(",", ":")),
            "fields": ",".join(INSIGHTS_FIELDS),
            "limit": str(self.settings.page_size),
        }

    def pages(self, window: Window) -> Iterator[Page]:
        if window.end <= window.start:
            return
        params = self.request_params(window)
        if self.uses_async(window):
            since, until = self.date_range(window)
            run_id = start_report(self.client, params)
            wait_for_report(self.client, run_id, describe=f"{since}..{until}")
            source = report_pages(self.client, run_id)
        else:
            source = self.client.pages(f"{self.settings.account}/insights", params)
        for rows, where in source:
            page = Page(records=[], where=where)
            for row in rows:
                if isinstance(row, dict) and row.get("ad_id") and row.get("date_start"):
                    page.records.append(row)
                else:
                    page.rejects.append((row, "insights row without ad_id or date_start"))
            if page.records or page.rejects:
                yield page

    def record_id(self, record: dict[str, Any]) -> str:
        return f"{record['ad_id']}:{record['date_start']}"

    def record_updated_at(self, record: dict[str, Any]) -> str | None:
        return None  # insights have no updated_at: staging keeps the latest extraction


class MetadataStream:
    """``campaigns``, ``adsets`` or ``ads`` of the ad account, with names, statuses and times.

    These lists are small and Graph cannot filter all of them by update time (and
    ``updated_time`` does not move for every change, e.g. a parent's pause), so
    each window returns a full snapshot; staging keeps the latest per
    (id, ``updated_time``).
    """

    source = "facebook"

    def __init__(self, client: FacebookClient, edge: str) -> None:
        if edge not in METADATA_FIELDS:
            raise ValueError(f"unknown Facebook metadata stream {edge!r}; choose from {', '.join(METADATA_FIELDS)}")
        self.client = client
        self.settings = client.settings
        self.name = edge

    def request_params(self, window: Window | None = None) -> dict[str, str]:
        """The list parameters (the same for every window: a snapshot)."""
        return {
            "fields": ",".join(METADATA_FIELDS[self.name]),
            "effective_status": json.dumps(list(EFFECTIVE_STATUSES)),
            "limit": str(self.settings.page_size),
        }

    def pages(self, window: Window) -> Iterator[Page]:
        for rows, where in self.client.pages(f"{self.settings.account}/{self.name}", self.request_params(window)):
            page = Page(records=[], where=where)
            for row in rows:
                if isinstance(row, dict) and row.get("id"):
                    page.records.append(row)
                else:
                    page.rejects.append((row, f"{self.name} object without id"))
            if page.records or page.rejects:
                yield page

    def record_id(self, record: dict[str, Any]) -> str:
        return str(record["id"])

    def record_updated_at(self, record: dict[str, Any]) -> str | None:
        value = record.get("updated_time")
        return str(value) if value else None


def metadata_streams(client: FacebookClient) -> list[MetadataStream]:
    """The three metadata streams."""
    return [MetadataStream(client, edge) for edge in METADATA_FIELDS]
