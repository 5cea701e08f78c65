"""The buying behaviour of simulated people: a heterogeneous buy-till-you-die process.

Every buyer has
- an acquisition time (first purchase), denser towards the end of the period (the shop
  grows) with a bump in Black Friday weeks;
- a lifetime: a share of buyers are one-and-done (days), the rest exponential (years);
- an ad-hoc purchase rate drawn from a gamma distribution (Poisson purchases while alive);
- 0–2 *replenishment streams*: a consumable bought again every ``cycle × quantity ×
  personal usage × noise`` days while alive, so that the median of same-product
  intervals recovers the product's true cycle;
- a spend level (lognormal) that scales basket size.

All of it is vectorised: per-stream event sequences are expanded with ``np.repeat`` and
a grouped cumulative sum, never a Python loop per person or per order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from sandbox.generator._base import MINUTE, YEAR_DAYS, Clock, group_starts, rank_within, snap_to_local_hours
from sandbox.generator.catalog import Catalog

FIRST, STREAM, ADHOC = 0, 1, 2
NATURAL_ORDERS_PER_PERSON = 3.3  # what the default parameters give over 3 years


@dataclass(frozen=True)
class BehaviourParams:
    """Knobs of the process; the defaults give ~3.3 orders per Shopify person in 3 years."""

    adhoc_per_year: float = 1.6  # mean of the gamma-distributed ad-hoc purchase rate
    adhoc_shape: float = 1.2
    one_and_done: float = 0.35  # share of buyers whose lifetime is days, not years
    short_life_days: float = 15.0
    life_days: float = 730.0
    p_stream: float = 0.42  # share of buyers who replenish a consumable
    p_second_stream: float = 0.25  # of those, share who replenish a second one
    growth: float = 2.0  # acquisition density at the end is (1 + growth) × the start
    bfcm_share: float = 0.08  # share of acquisitions in Black Friday weeks
    cycle_noise: float = 0.07  # sd of the per-interval noise on a replenishment cycle
    skip_rate: float = 0.04  # chance a replenishment interval is doubled (skipped once)

    def busier(self, factor: float) -> BehaviourParams:
        """A shop whose buyers are ``factor`` × as loyal: longer lives, more replenishers.

        Used to reach a requested number of orders per customer without drowning the
        replenishment signal in random purchases (the ad-hoc rate then fine-tunes it).
        """
        return replace(
            self,
            life_days=self.life_days * factor,
            one_and_done=min(self.one_and_done / factor, 0.9),
            p_stream=min(self.p_stream * factor, 0.9),
            p_second_stream=min(self.p_second_stream * factor, 0.6),
        )


@dataclass
class Behaviour:
    """Per-person parameters (arrays of length n)."""

    start: np.ndarray  # first purchase, days
    dropout: np.ndarray  # days; > span means alive at the end
    adhoc_rate: np.ndarray  # purchases per day while alive (after any scaling)
    spend: np.ndarray  # basket multiplier
    stream_product: np.ndarray  # (n, 2) product index, -1 = none
    stream_qty: np.ndarray  # (n, 2) units per replenishment order
    stream_start: np.ndarray  # (n, 2) days
    usage: np.ndarray  # personal speed of use (multiplies cycles)

    def subset(self, who: np.ndarray) -> Behaviour:
        """The behaviour of the people at positions ``who`` (a copy)."""
        return replace(self, **{f.name: getattr(self, f.name)[who] for f in fields(self)})

    def update(self, who: np.ndarray, sub: Behaviour) -> None:
        """Write a subset's (changed) arrays back."""
        for f in fields(self):
            getattr(self, f.name)[who] = getattr(sub, f.name)

    def end(self, span: float) -> np.ndarray:
        return np.minimum(self.dropout, span)

    def stream_period(self, catalog: Catalog) -> np.ndarray:
        """(n, 2) mean days between replenishment orders; inf where there is no stream."""
        cycle = np.where(self.stream_product >= 0, catalog.cycle[np.maximum(self.stream_product, 0)], np.inf)
        return cycle * self.stream_qty * self.usage[:, None]


@dataclass
class Events:
    """Purchase events; each becomes one order."""

    person: np.ndarray  # int64 index into the people the behaviour was drawn for
    t: np.ndarray  # days
    kind: np.ndarray  # FIRST, STREAM or ADHOC
    product: np.ndarray  # replenished product index, -1 for none
    qty: np.ndarray  # units of that product

    def __len__(self) -> int:
        return len(self.t)


def acquisition_times(n: int, clock: Clock, rng: np.random.Generator, params: BehaviourParams) -> np.ndarray:
    """First-purchase times: linear growth over the period plus Black Friday bumps."""
    g, span = params.growth, clock.span
    u = rng.random(n)
    # Inverse CDF of the density ∝ 1 + g·x on [0, 1].
    x = (np.sqrt(1.0 + 2.0 * g * u * (1.0 + g / 2.0)) - 1.0) / g if g > 0 else u
    t = x * span
    windows = clock.bfcm_windows()
    if windows:
        bump = rng.random(n) < params.bfcm_share
        lengths = np.array([hi - lo for lo, hi in windows])
        which = rng.choice(len(windows), size=n, p=lengths / lengths.sum())
        lo = np.array([w[0] for w in windows])[which]
        t = np.where(bump, lo + rng.random(n) * lengths[which], t)
    return np.minimum(t, span * (1.0 - 1e-9))


def draw_behaviour(
    n: int, clock: Clock, catalog: Catalog, rng: np.random.Generator, params: BehaviourParams
) -> Behaviour:
    """Draw everyone's behaviour (non-buyers too: their start is when they signed up)."""
    start = acquisition_times(n, clock, rng, params)
    short = rng.random(n) < params.one_and_done
    life = rng.exponential(np.where(short, params.short_life_days, params.life_days))
    adhoc = rng.gamma(params.adhoc_shape, params.adhoc_per_year / params.adhoc_shape, n) / YEAR_DAYS
    spend = rng.lognormal(0.0, 0.35, n)

    consumables = catalog.consumables
    weights = catalog.popularity[consumables] / catalog.popularity[consumables].sum()
    picks = rng.choice(len(consumables), size=(n, 2), p=weights)
    # A second stream is always a different product: step to the next consumable.
    picks[:, 1] = np.where(picks[:, 1] == picks[:, 0], (picks[:, 0] + 1) % len(consumables), picks[:, 1])
    has = np.empty((n, 2), dtype=bool)
    has[:, 0] = rng.random(n) < params.p_stream
    has[:, 1] = has[:, 0] & (rng.random(n) < params.p_second_stream)
    product = np.where(has, consumables[picks], -1).astype(np.int32)
    qty = rng.choice(np.array([1, 2, 3], dtype=np.int32), size=(n, 2), p=[0.85, 0.12, 0.03])
    end = np.minimum(start + life, clock.span)
    stream_start = np.stack([start, start + rng.uniform(0.05, 1.0, n) * (end - start)], axis=1)
    return Behaviour(
        start=start,
        dropout=start + life,
        adhoc_rate=adhoc,
        spend=spend,
        stream_product=product,
        stream_qty=qty,
        stream_start=stream_start,
        usage=rng.lognormal(0.0, 0.05, n),
    )


def _stream_events(
    beh: Behaviour, catalog: Catalog, span: float, rng: np.random.Generator, params: BehaviourParams
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Replenishment orders (person, time, product, quantity) of every stream.

    Each stream gets a generous number of steps, its intervals are summed per stream
    (a grouped cumulative sum) and the steps past the person's end are dropped.
    """
    period = beh.stream_period(catalog)
    end = beh.end(span)
    parts = []
    for s in (0, 1):
        idx = np.flatnonzero((beh.stream_product[:, s] >= 0) & (beh.stream_start[:, s] < end))
        if not len(idx):
            continue
        st, per = beh.stream_start[idx, s], period[idx, s]
        steps = (np.floor((end[idx] - st) / (per * 0.6)) + 2).astype(np.int64)
        rep = np.repeat(np.arange(len(idx)), steps)
        step = rank_within(rep)
        noise = 1.0 + np.clip(rng.normal(0.0, params.cycle_noise, len(rep)), -0.25, 0.25)
        noise *= np.where(rng.random(len(rep)) < params.skip_rate, 2.0, 1.0)
        interval = np.where(step == 0, 0.0, per[rep] * noise)
        cum = np.cumsum(interval)
        t = st[rep] + cum - np.repeat(cum[group_starts(rep)], steps)
        # Stream 0 starts with the first order itself, which is generated separately.
        keep = (t < end[idx][rep]) & ((step > 0) | (s == 1))
        person = idx[rep[keep]]
        parts.append((person, t[keep], beh.stream_product[person, s], beh.stream_qty[person, s]))
    return parts


def simulate(
    beh: Behaviour,
    who: np.ndarray,
    catalog: Catalog,
    clock: Clock,
    loc: np.ndarray,
    rng: np.random.Generator,
    params: BehaviourParams,
    target_orders: int | None = None,
) -> tuple[Events, float]:
    """Generate every purchase event of the buyers ``who`` (each buys at least once).

    Args:
        beh: everyone's behaviour; for ``who`` the first purchase is snapped to a local
            hour and the ad-hoc rate scaled, in place.
        who: positions of the buyers in ``beh`` (and ``loc``).
        loc: location index per person (for local hours of day).
        target_orders: when given, ad-hoc rates are scaled so the expected number of
            events is this (replenishment cycles stay true; they cannot be scaled).

    Returns:
        The events (``person`` indexes ``beh``) and the ad-hoc rate scale used.
    """
    span = clock.span
    sub = beh.subset(who)
    loc = loc[who]
    n = len(who)
    persons = np.arange(n, dtype=np.int64)
    sub.start = snap_to_local_hours(sub.start, loc, span, rng)
    sub.dropout = np.maximum(sub.dropout, sub.start + MINUTE)
    sub.stream_start[:, 0] = sub.start
    end = sub.end(span)

    streams = _stream_events(sub, catalog, span, rng, params)
    n_stream = sum(len(p[0]) for p in streams)
    alive = np.maximum(end - sub.start, 0.0)
    scale = 1.0
    if target_orders is not None:
        denominator = float((sub.adhoc_rate * alive).sum())
        scale = max(target_orders - n - n_stream, 0) / denominator if denominator > 0 else 0.0
    sub.adhoc_rate = sub.adhoc_rate * scale
    n_adhoc = rng.poisson(sub.adhoc_rate * alive)
    adhoc_person = np.repeat(persons, n_adhoc)
    adhoc_t = sub.start[adhoc_person] + rng.random(len(adhoc_person)) * alive[adhoc_person]

    person = np.concatenate([persons, adhoc_person, *[p[0] for p in streams]])
    t = np.concatenate([sub.start, adhoc_t, *[p[1] for p in streams]])
    kind = np.concatenate(
        [np.full(n, FIRST, np.int8), np.full(len(adhoc_person), ADHOC, np.int8), np.full(n_stream, STREAM, np.int8)]
    )
    none = np.full(len(adhoc_person), -1, np.int32)
    product = np.concatenate([sub.stream_product[:, 0], none, *[p[2] for p in streams]])
    qty = np.concatenate([sub.stream_qty[:, 0], np.zeros_like(none), *[p[3] for p in streams]])
    qty = np.where(product >= 0, qty, 0).astype(np.int32)

    later = kind != FIRST
    t[later] = snap_to_local_hours(t[later], loc[person[later]], span, rng)
    # Snapping must not move a later order before the person's first one.
    first = sub.start[person]
    early = later & (t <= first)
    t[early] = first[early] + (span - first[early]) * rng.uniform(0.1, 0.9, int(early.sum()))
    beh.update(who, sub)
    return Events(person=who[person], t=t, kind=kind, product=product.astype(np.int32), qty=qty), scale


def true_rate_per_year(beh: Behaviour, catalog: Catalog, span: float) -> np.ndarray:
    """Expected purchases per year while alive: ad-hoc rate plus active replenishment streams."""
    period = beh.stream_period(catalog)
    active = beh.stream_start < beh.end(span)[:, None]
    stream_rate = np.where(active & np.isfinite(period), 1.0 / period, 0.0).sum(axis=1)
    return (beh.adhoc_rate + stream_rate) * YEAR_DAYS
