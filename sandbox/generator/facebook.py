"""Facebook ads and order attribution: campaigns → ad sets → ads, landing sources, daily insights.

Facebook-acquired persons' first orders land from a sales campaign active at the
time (``orders.landing_campaign`` = campaign id); a few repeat orders come from the
retargeting campaign. Daily insights per ad are built from those orders: tracked
purchases plus some view-through ones, spend set by each campaign's cost per
acquisition, impressions from a CPM and clicks from a CTR (~1%, CPC $0.5–2).

The account holds ~41 ads, or exactly as many as ``generate_shop(fb_ads=…)`` asks for
(a benchmark's 500); every other table is the same whatever the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa

from sandbox.generator._base import DAY_US, Clock, choose_weighted, take
from sandbox.generator.behaviour import FIRST
from sandbox.generator.orders import Orders
from sandbox.generator.people import People

# name, objective, start and end as fractions of the period (None = still running), CPA $, weight
CAMPAIGNS: tuple[tuple[str, str, float, float | None, float, float], ...] = (
    ("Prospecting | Always-on | Broad", "OUTCOME_SALES", -0.03, None, 38.0, 3.0),
    ("Retargeting | Cart + Viewers 30d", "OUTCOME_SALES", 0.05, None, 15.0, 0.0),
    ("Coffee Subscription Launch", "OUTCOME_SALES", 0.30, 0.42, 55.0, 2.0),
    ("BFCM", "OUTCOME_SALES", 0.62, 0.66, 24.0, 4.0),  # moved onto the last Black Friday week
    ("Brand Video | Awareness", "OUTCOME_AWARENESS", 0.55, None, 0.0, 0.0),
    ("Skincare Spring Push", "OUTCOME_SALES", 0.80, 0.90, 45.0, 2.0),
)
RETARGETING, AWARENESS = 1, 4
ADSET_NAMES = ("Broad 25-54", "Lookalike 1% Purchasers", "Interest: Coffee & Tea", "Website Visitors 30d")
AD_NAMES = ("Video | Morning ritual", "Carousel | Bestsellers", "Static | 15% off first order", "UGC | Review")
LANDING_SOURCES = (None, "facebook", "google", "email", "referral")  # index 0 = no utm (organic)
SOURCE_TO_LANDING = np.array([1, 2, 0, 3, 4])  # people.SOURCES → LANDING_SOURCES
MIN_ADS = 2 * len(CAMPAIGNS)  # an ad count asked for gives every campaign two ads at least
CHOICE_CELLS = 1 << 24  # orders × ads per block of the ad choice: ~130 MB of weights
OTHER_CAMPAIGNS = (None, "brand_search", "shopping", "pmax", "newsletter", "replenishment", "winback")


@dataclass
class Facebook:
    c_id: list[str]
    c_name: list[str]
    c_start: np.ndarray
    c_end: np.ndarray  # inf while running
    s_id: list[str]
    s_campaign: np.ndarray
    s_name: list[str]
    s_start: np.ndarray
    a_id: list[str]
    a_adset: np.ndarray
    a_campaign: np.ndarray
    a_name: list[str]
    a_start: np.ndarray
    a_end: np.ndarray

    @staticmethod
    def status(end: np.ndarray) -> list[str]:
        return ["ACTIVE" if np.isinf(e) else "PAUSED" for e in end]


def _fb_id(kind: int, number: int) -> str:
    return f"1202{kind}{number:013d}"


def check_ad_count(ads: int | None) -> None:
    """Refuse an ad count too small to give every campaign two ads (None: today's ~41 ads)."""
    if ads is not None and ads < MIN_ADS:
        raise ValueError(f"fb_ads={ads}: the {len(CAMPAIGNS)} campaigns need at least {MIN_ADS} ads (or None)")


class _Shape(Protocol):
    """How many ad sets a campaign has and how many ads an ad set has, asked as the loop reaches them."""

    def adsets(self, campaign: int) -> int: ...

    def ads(self, campaign: int, adset: int) -> int: ...


class _DrawnShape:
    """Today's shape: 2–3 ad sets per campaign, 2–3 ads per ad set, drawn as the loop reaches them.

    The draws stay inside the loop, in its order, so the default shop keeps its exact tables.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def adsets(self, campaign: int) -> int:
        return int(self.rng.integers(2, 4))

    def ads(self, campaign: int, adset: int) -> int:
        return int(self.rng.integers(2, 4))


class _FixedShape:
    """``total`` ads over the campaigns by how long each runs, ~sqrt(share) ad sets each, ≥ 1 ad per ad set.

    Long-running campaigns carry most creatives (as real accounts do), so the ads' daily
    insights come near ``total`` × the period's days (~400k rows for 500 ads over 3 years).
    """

    def __init__(self, total: int, days_run: np.ndarray, rng: np.random.Generator) -> None:
        check_ad_count(total)
        self.per_adset: list[np.ndarray] = []
        for n in _apportion(total, days_run, minimum=MIN_ADS // len(CAMPAIGNS)):  # a loop over six campaigns
            k = max(1, round(math.sqrt(n)))  # as many ad sets as ads per ad set, roughly
            self.per_adset.append(1 + rng.multinomial(n - k, np.full(k, 1.0 / k)))

    def adsets(self, campaign: int) -> int:
        return len(self.per_adset[campaign])

    def ads(self, campaign: int, adset: int) -> int:
        return int(self.per_adset[campaign][adset])


def _apportion(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """``total`` split into whole shares of at least ``minimum``, the rest by ``weights`` (largest remainders)."""
    quota = (total - minimum * len(weights)) * weights / weights.sum()
    share = np.floor(quota).astype(np.int64)
    share[np.argsort(share - quota, kind="stable")[: total - minimum * len(weights) - share.sum()]] += 1
    return minimum + share


def _numbered(pool: tuple[str, ...], first: int, i: int) -> str:
    """The ``i``-th name of ``pool`` starting at ``first``; " #2", " #3" … once the pool has gone round."""
    name = pool[(first + i) % len(pool)]
    return name if i < len(pool) else f"{name} #{i // len(pool) + 1}"


def build_facebook(clock: Clock, rng: np.random.Generator, ads: int | None = None) -> Facebook:
    """Six campaigns with 2–3 ad sets of 2–3 ads each, or exactly ``ads`` ads (see :class:`_FixedShape`).

    Plain loops over the ad sets and ads: a few dozen objects, or the few hundred asked for.
    """
    span = clock.span
    starts = np.array([c[2] for c in CAMPAIGNS]) * span
    ends = np.array([np.inf if c[3] is None else c[3] * span for c in CAMPAIGNS])
    names = [c[0] for c in CAMPAIGNS]
    windows = [w for w in clock.bfcm_windows() if w[1] - w[0] > 5.0]
    if windows:
        lo, hi = windows[-1]
        starts[3], ends[3] = lo - 6.0, (np.inf if hi >= span else hi)
        names[3] = f"BFCM {(clock.start + timedelta(days=hi)).year} | Sitewide 25%"
    days_run = np.minimum(ends, span) - np.maximum(starts, 0.0)  # each campaign's days inside the period
    shape: _Shape = _DrawnShape(rng) if ads is None else _FixedShape(ads, days_run, rng)
    s_campaign, s_start, a_adset, a_start, a_end, s_names, a_names = [], [], [], [], [], [], []
    for c in range(len(CAMPAIGNS)):
        for s in range(shape.adsets(c)):
            s_campaign.append(c)
            s_start.append(starts[c] + (0.0 if s == 0 else rng.uniform(0.0, 5.0)))
            s_names.append(_numbered(ADSET_NAMES, c, s))
            for a in range(shape.ads(c, s)):
                a_adset.append(len(s_campaign) - 1)
                a_start.append(s_start[-1])
                paused_early = a > 0 and rng.random() < 0.2
                life = min(ends[c], span) - s_start[-1]
                a_end.append(s_start[-1] + rng.uniform(0.3, 0.8) * life if paused_early else ends[c])
                a_names.append(_numbered(AD_NAMES, s, a))
    adset = np.array(a_adset)
    return Facebook(
        c_id=[_fb_id(0, i + 1) for i in range(len(CAMPAIGNS))],
        c_name=names,
        c_start=starts,
        c_end=ends,
        s_id=[_fb_id(1, i + 1) for i in range(len(s_campaign))],
        s_campaign=np.array(s_campaign),
        s_name=s_names,
        s_start=np.array(s_start),
        a_id=[_fb_id(2, i + 1) for i in range(len(a_adset))],
        a_adset=adset,
        a_campaign=np.array(s_campaign)[adset],
        a_name=a_names,
        a_start=np.array(a_start),
        a_end=np.array(a_end),
    )


def _attribute(fb: Facebook, t: np.ndarray, retarget: np.ndarray, rng: np.random.Generator):
    """Campaign and ad (indices) for each Facebook-landed order at time ``t``."""
    active = (t[:, None] >= fb.c_start) & (t[:, None] < fb.c_end)
    weight = np.array([c[5] for c in CAMPAIGNS])
    w = active * np.where(retarget[:, None], np.eye(len(CAMPAIGNS))[RETARGETING], weight)
    w[w.sum(axis=1) == 0, 0] = 1.0  # the always-on prospecting campaign covers the whole period
    campaign = choose_weighted(rng, w)
    # The campaign depends on the campaigns' windows only, and the ads are chosen last with one
    # draw per order whatever their number: the orders are the same however many ads there are.
    ad = np.zeros(len(t), np.int64)
    for c in range(len(CAMPAIGNS)):  # a loop over six campaigns
        rows = np.flatnonzero(campaign == c)
        ad[rows] = _live_ad(fb, np.flatnonzero(fb.a_campaign == c), t[rows], rng)
    return campaign, ad


def _live_ad(fb: Facebook, ads: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of ``ads`` live at each time ``t``, uniformly (the campaign's first ad when none is).

    In blocks of rows: a campaign with ~200 ads and half a million orders (the benchmark's
    shop) would otherwise build a 1.7 GB matrix. ``choose_weighted`` draws one number per
    row, in order, so blocks choose exactly what one pass would.
    """
    out = np.empty(len(t), np.int64)
    step = max(1, CHOICE_CELLS // len(ads))
    for lo in range(0, len(t), step):
        when = t[lo : lo + step, None]
        live = (when >= fb.a_start[ads]) & (when < fb.a_end[ads])
        live[live.sum(axis=1) == 0, 0] = True
        out[lo : lo + step] = ads[choose_weighted(rng, live.astype(float))]
    return out


def landing(orders: Orders, people: People, fb: Facebook, rng: np.random.Generator):
    """utm source and campaign of every order; returns (source, campaign, ad index or -1)."""
    n = len(orders)
    first = orders.kind == FIRST
    repeat_source = rng.choice(len(LANDING_SOURCES), size=n, p=[0.55, 0.06, 0.10, 0.25, 0.04])
    source = np.where(first, SOURCE_TO_LANDING[people.source[orders.person]], repeat_source)
    other = np.zeros(n, np.int64)
    other = np.where(source == 2, rng.integers(1, 4, n), other)  # google
    other = np.where(source == 3, np.where(first, 4, rng.integers(4, 7, n)), other)  # email
    fb_rows = np.flatnonzero(source == 1)
    campaign, ad_of_row = _attribute(fb, orders.t[fb_rows], ~first[fb_rows], rng)
    names = list(OTHER_CAMPAIGNS) + fb.c_id
    other[fb_rows] = len(OTHER_CAMPAIGNS) + campaign
    ad = np.full(n, -1, np.int64)
    ad[fb_rows] = ad_of_row
    return take(LANDING_SOURCES, source), take(names, other), ad


def insights(fb: Facebook, orders: Orders, ad: np.ndarray, clock: Clock, rng: np.random.Generator) -> pa.Table:
    """Settled daily numbers per ad over its active days (today's row is a partial day)."""
    offset = clock.start_us / DAY_US  # day coordinate → epoch day
    first_day = np.floor(offset + np.maximum(fb.a_start, 0.0)).astype(np.int64)
    last_day = np.floor(offset + np.minimum(fb.a_end, clock.span) - 1e-9).astype(np.int64)
    n_days = np.maximum(last_day - first_day + 1, 0)
    row_start = np.concatenate([[0], np.cumsum(n_days)[:-1]])
    row_ad = np.repeat(np.arange(len(fb.a_id)), n_days)
    day = first_day[row_ad] + np.arange(len(row_ad)) - row_start[row_ad]
    n_rows = len(row_ad)

    rows = np.flatnonzero(ad >= 0)
    o_day = np.floor(offset + orders.t[rows]).astype(np.int64)
    o_row = row_start[ad[rows]] + o_day - first_day[ad[rows]]
    inside = (o_row >= row_start[ad[rows]]) & (o_row < row_start[ad[rows]] + n_days[ad[rows]])
    tracked = np.bincount(o_row[inside], minlength=n_rows)
    value = np.rint(np.bincount(o_row[inside], weights=orders.total[rows][inside], minlength=n_rows)).astype(np.int64)

    today = np.floor(offset + clock.span)
    frac = np.where(day == today, offset + clock.span - today, 1.0)
    weekend = np.isin((day + 3) % 7, [5, 6])  # epoch day 0 was a Thursday
    weight = rng.lognormal(0.0, 0.3, n_rows) * np.where(weekend, 1.15, 1.0) * frac
    campaign = fb.a_campaign[row_ad]
    per_campaign = np.bincount(campaign, weights=tracked, minlength=len(CAMPAIGNS))
    budget = np.array([c[4] for c in CAMPAIGNS]) * 100 * np.maximum(per_campaign, 1)
    budget[AWARENESS] = 0.06 * budget.sum()
    spend = np.floor(budget[campaign] * weight / np.bincount(campaign, weights=weight)[campaign]).astype(np.int64)

    cpm = rng.uniform(7.0, 14.0, len(fb.a_id))[row_ad] * 100  # cents per 1000 impressions
    impressions = np.rint(spend / cpm * 1000 * rng.lognormal(0.0, 0.1, n_rows)).astype(np.int64)
    ctr_ad = np.where(fb.a_campaign == AWARENESS, rng.uniform(0.003, 0.006, len(fb.a_id)), 0.0)
    ctr_ad = np.where(ctr_ad == 0, rng.uniform(0.008, 0.016, len(fb.a_id)), ctr_ad)
    clicks = rng.binomial(impressions, ctr_ad[row_ad])
    purchases = tracked + rng.binomial(tracked, 0.2)  # view-through conversions the pixel also counts
    clicks = np.maximum(clicks, purchases)
    value = value + (purchases - tracked) * (value // np.maximum(tracked, 1))
    return pa.table(
        {
            "ad_id": take(fb.a_id, row_ad),
            "date": pa.array(day.astype(np.int32), type=pa.date32()),
            "spend_cents": spend,
            "impressions": impressions,
            "clicks": clicks.astype(np.int64),
            "purchases": purchases.astype(np.int64),
            "purchase_value_cents": value,
        }
    )


def structure_tables(fb: Facebook, clock: Clock) -> dict[str, pa.Table]:
    """fb_campaigns, fb_adsets and fb_ads."""
    c_status = fb.status(fb.c_end)
    a_status = fb.status(fb.a_end)
    return {
        "fb_campaigns": pa.table(
            {
                "id": fb.c_id,
                "name": fb.c_name,
                "objective": [c[1] for c in CAMPAIGNS],
                "status": c_status,
                "created_time": clock.ts(fb.c_start - 0.5),
            }
        ),
        "fb_adsets": pa.table(
            {
                "id": fb.s_id,
                "campaign_id": take(fb.c_id, fb.s_campaign),
                "name": fb.s_name,
                "status": take(c_status, fb.s_campaign),
                "created_time": clock.ts(fb.s_start - 0.25),
            }
        ),
        "fb_ads": pa.table(
            {
                "id": fb.a_id,
                "adset_id": take(fb.s_id, fb.a_adset),
                "campaign_id": take(fb.c_id, fb.a_campaign),
                "name": fb.a_name,
                "status": a_status,
                "created_time": clock.ts(fb.a_start - 0.25),
            }
        ),
    }
