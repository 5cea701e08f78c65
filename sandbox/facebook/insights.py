"""Insights queries: parameter validation, date presets, time buckets, aggregation, row rendering.

A query reads the settled daily rows (:func:`sandbox.facebook.data.settle`) of the
requested days, sums them per ``level`` entity and time bucket, and renders rows as
AdsInsights objects: numbers are strings (spend and money as decimal strings), and
``actions`` / ``action_values`` are lists of AdsActionStats. Rows come sorted by
``date_start`` then entity id. Fields of AdsInsights that the demo shop has no data
for (reach, video metrics …) are accepted and left out of the rows, as Meta leaves
out empty fields; fields finer than the level (``ad_id`` at ``level=campaign``) too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sandbox.facebook.contract import (
    ACTION_ATTRIBUTION_WINDOWS,
    ACTION_BREAKDOWNS,
    ACTION_REPORT_TIMES,
    DATE_PRESETS,
    GRAPH_PARAMS,
    INSIGHTS_FIELDS,
    INSIGHTS_PARAMS,
    LEVELS,
    UNSUPPORTED_INSIGHTS_PARAMS,
    invalid_param,
)
from sandbox.facebook.data import AdsData, settle

DEFAULT_FIELDS = ("impressions", "spend")
PIXEL_PURCHASE = "offsite_conversion.fb_pixel_purchase"
PURCHASE_TYPES = (PIXEL_PURCHASE, "omni_purchase", "purchase")
LEVEL_FIELDS = {  # the id/name fields each level can fill
    "account": {"account_id", "account_name", "account_currency"},
    "campaign": {"campaign_id", "campaign_name", "objective"},
    "adset": {"adset_id", "adset_name"},
    "ad": {"ad_id", "ad_name"},
}
LEVEL_DEPTH = {"account": 0, "campaign": 1, "adset": 2, "ad": 3}


@dataclass(frozen=True)
class InsightsQuery:
    """A validated insights request. ``increment`` is a day count, ``"monthly"`` or ``"all_days"``."""

    level: str
    since: date
    until: date
    increment: int | str
    fields: tuple[str, ...]


def as_list(name: str, value: Any) -> list[str]:
    """A Graph list parameter: a JSON array, a comma-separated string, or already a list."""
    if isinstance(value, list):
        return [str(item) for item in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise invalid_param(f"{name} must be a JSON array or a comma-separated list") from None
        return [str(item) for item in parsed]
    return [part.strip() for part in text.split(",") if part.strip()]


def as_map(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(str(value))
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_param(f'{name} must be a JSON object, e.g. {{"since":"2025-01-01","until":"2025-01-31"}}')
    return parsed


def _enum(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise invalid_param(f"{name} must be one of the following values: {', '.join(allowed)}")
    return str(value)


def parse_insights(params: dict[str, Any], data: AdsData) -> InsightsQuery:
    """Validate insights parameters (names and enums per AdAccount.json) into a query."""
    unknown = sorted(set(params) - INSIGHTS_PARAMS - GRAPH_PARAMS)
    if unknown:
        raise invalid_param(f"Param {unknown[0]} is not a valid parameter of the insights edge")
    unsupported = sorted(set(params) & UNSUPPORTED_INSIGHTS_PARAMS)
    if unsupported:
        raise invalid_param(f"{unsupported[0]} is valid for Meta but not supported by the Hearth sandbox")
    for window in as_list("action_attribution_windows", params.get("action_attribution_windows", [])):
        _enum("action_attribution_windows", window, ACTION_ATTRIBUTION_WINDOWS)
    for breakdown in as_list("action_breakdowns", params.get("action_breakdowns", [])):
        if _enum("action_breakdowns", breakdown, ACTION_BREAKDOWNS) != "action_type":
            raise invalid_param(f"action_breakdowns={breakdown} is not supported by the Hearth sandbox")
    if "action_report_time" in params:
        _enum("action_report_time", params["action_report_time"], ACTION_REPORT_TIMES)

    level = _enum("level", params.get("level", "account"), LEVELS)
    fields = tuple(as_list("fields", params["fields"])) if "fields" in params else DEFAULT_FIELDS
    for field in fields:
        if field not in INSIGHTS_FIELDS:
            raise invalid_param(
                f"{field} is not valid for fields param. please check "
                "https://developers.facebook.com/docs/marketing-api/reference/ads-insights/ for all valid values"
            )
    if "time_range" in params:  # time_range wins over date_preset, as at Meta
        since, until = _time_range(params["time_range"])
    else:
        preset = _enum("date_preset", params.get("date_preset", "last_30d"), DATE_PRESETS)
        since, until = preset_range(preset, data.today, data.first_day)
    return InsightsQuery(level, since, until, _increment(params.get("time_increment", "all_days")), fields)


def _time_range(value: Any) -> tuple[date, date]:
    window = as_map("time_range", value)
    try:
        since, until = date.fromisoformat(window["since"]), date.fromisoformat(window["until"])
    except (KeyError, TypeError, ValueError):
        raise invalid_param('time_range needs "since" and "until" dates as YYYY-MM-DD') from None
    if since > until:
        raise invalid_param("time_range: since must be on or before until")
    return since, until


def _increment(value: Any) -> int | str:
    text = str(value).strip()
    if text in ("monthly", "all_days"):
        return text
    if text.isdigit() and 1 <= int(text) <= 90:
        return int(text)
    raise invalid_param("time_increment must be an integer between 1 and 90, monthly or all_days")


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _quarter_start(day: date) -> date:
    return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)


def preset_range(preset: str, today: date, first_day: date) -> tuple[date, date]:
    """The days a ``date_preset`` covers when the shop's "today" is ``today`` (``last_Nd`` excludes today)."""
    yesterday = today - timedelta(days=1)
    if preset == "today":
        return today, today
    if preset == "yesterday":
        return yesterday, yesterday
    if preset.startswith("last_") and preset.endswith("d") and preset[5:-1].isdigit():
        return today - timedelta(days=int(preset[5:-1])), yesterday
    if preset in ("maximum", "data_maximum"):
        return min(first_day, today), today
    if preset == "this_month":
        return _month_start(today), today
    if preset == "last_month":
        end = _month_start(today) - timedelta(days=1)
        return _month_start(end), end
    if preset == "this_quarter":
        return _quarter_start(today), today
    if preset == "last_quarter":
        end = _quarter_start(today) - timedelta(days=1)
        return _quarter_start(end), end
    if preset == "this_year":
        return today.replace(month=1, day=1), today
    if preset == "last_year":
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    # Weeks: Monday-based (…_mon_…) or Sunday-based (…_sun_…).
    week_start = today - timedelta(days=(today.weekday() + (1 if "_sun_" in preset else 0)) % 7)
    if preset.startswith("this_week"):
        return week_start, today
    return week_start - timedelta(days=7), week_start - timedelta(days=1)  # last_week_mon_sun / _sun_sat


def bucket(query: InsightsQuery, day: date) -> tuple[date, date]:
    """The ``(date_start, date_stop)`` of the time bucket ``day`` falls in."""
    if query.increment == "all_days":
        return query.since, query.until
    if query.increment == "monthly":
        next_month = (_month_start(day) + timedelta(days=32)).replace(day=1)
        return max(query.since, _month_start(day)), min(query.until, next_month - timedelta(days=1))
    assert isinstance(query.increment, int)
    start = query.since + timedelta(days=(day - query.since).days // query.increment * query.increment)
    return start, min(query.until, start + timedelta(days=query.increment - 1))


def run_query(
    query: InsightsQuery, data: AdsData, *, pull: int, settle_days: int, account: dict[str, str]
) -> list[dict[str, Any]]:
    """Every row of ``query`` as served on insights pull ``pull``."""
    totals: dict[tuple[date, date, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    day, last = max(query.since, data.first_day), min(query.until, data.today)
    while day <= last:
        span = bucket(query, day)
        for row in data.by_day.get(day, ()):
            served = settle(row, data.today, settle_days, pull)
            adset_id, campaign_id = data.parents(row.ad_id)
            key = {"ad": row.ad_id, "adset": adset_id, "campaign": campaign_id, "account": account["account_id"]}
            sums = totals[(*span, key[query.level] or "")]
            for i, value in enumerate(
                (served.spend_cents, served.impressions, served.clicks, served.purchases, served.purchase_value_cents)
            ):
                sums[i] += value
        day += timedelta(days=1)
    return [_render(query, data, account, key, span, sums) for (*span, key), sums in sorted(totals.items())]


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _ratio(numerator: float, denominator: float) -> str | None:
    return f"{numerator / denominator:.6f}" if denominator else None


def _render(
    query: InsightsQuery, data: AdsData, account: dict[str, str], key: str, span: list[date], sums: list[int]
) -> dict[str, Any]:
    spend, impressions, clicks, purchases, value = sums
    names: dict[str, Any] = dict(account)
    ad_id = adset_id = campaign_id = None
    if query.level == "ad":
        ad_id = key
        adset_id, campaign_id = data.parents(key)
    elif query.level == "adset":
        adset_id, campaign_id = key, data.adsets.get(key, {}).get("campaign_id")
    elif query.level == "campaign":
        campaign_id = key
    campaign = data.campaigns.get(campaign_id or "", {})
    names.update(
        campaign_id=campaign_id,
        campaign_name=campaign.get("name"),
        objective=campaign.get("objective"),
        adset_id=adset_id,
        adset_name=data.adsets.get(adset_id or "", {}).get("name"),
        ad_id=ad_id,
        ad_name=data.ads.get(ad_id or "", {}).get("name"),
    )
    counts = [("link_click", clicks)] + [(kind, purchases) for kind in PURCHASE_TYPES]
    metrics: dict[str, Any] = {
        "spend": _money(spend),
        "impressions": str(impressions),
        "clicks": str(clicks),
        "inline_link_clicks": str(clicks),
        "ctr": _ratio(100 * clicks, impressions),
        "cpc": _ratio(spend / 100, clicks),
        "cpm": _ratio(10 * spend, impressions),
        "actions": [{"action_type": kind, "value": str(n)} for kind, n in counts if n] or None,
        "action_values": [{"action_type": kind, "value": _money(value)} for kind in PURCHASE_TYPES if value] or None,
        "cost_per_action_type": [{"action_type": kind, "value": _ratio(spend / 100, n)} for kind, n in counts if n]
        or None,
        "purchase_roas": [{"action_type": "omni_purchase", "value": _ratio(value, spend)}] if value and spend else None,
    }
    allowed = set().union(*(LEVEL_FIELDS[lv] for lv, depth in LEVEL_DEPTH.items() if depth <= LEVEL_DEPTH[query.level]))
    row: dict[str, Any] = {}
    for field in query.fields:
        known = names.get(field) if field in allowed else metrics.get(field)
        if known is not None:
            row[field] = known
    row["date_start"], row["date_stop"] = span[0].isoformat(), span[1].isoformat()
    return row
