"""Shared pieces of the demo-shop generator: clock, random streams, ids, vectorised helpers.

Simulated time is kept as float64 *days since the start of the period* (``0`` is
``now - years``, ``span`` is ``now``); it becomes ``timestamp[us, UTC]`` only when a
table is assembled. Every random draw comes from a named stream derived from the seed,
so adding draws to one part of the generator leaves the others unchanged.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.shop.tables import TS

DAY_US = 86_400_000_000
HOUR = 1.0 / 24.0
MINUTE = HOUR / 60.0
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Clock:
    """The simulated period ``[now - years, now]``."""

    now: datetime
    years: float

    @property
    def now_us(self) -> int:
        return (self.now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    @property
    def span(self) -> float:
        """Length of the period in days; also the day coordinate of ``now``."""
        return self.years * YEAR_DAYS

    @property
    def start_us(self) -> int:
        return self.now_us - round(self.span * DAY_US)

    @property
    def start(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.start_us)

    def us(self, days: np.ndarray) -> np.ndarray:
        """Day coordinates → epoch microseconds (int64)."""
        return self.start_us + np.round(np.asarray(days, dtype=np.float64) * DAY_US).astype(np.int64)

    def days_of(self, when: datetime) -> float:
        """A datetime → day coordinate."""
        return ((when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) - self.start_us) / DAY_US

    def ts(self, days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        """Day coordinates → a ``timestamp[us, UTC]`` array; ``mask`` marks nulls."""
        return pa.array(self.us(days), type=TS, mask=mask)

    def bfcm_windows(self) -> list[tuple[float, float]]:
        """Black Friday / Cyber Monday weeks (Nov 20 – Dec 2) inside the period, in days."""
        out = []
        for year in range(self.start.year, self.now.year + 1):
            lo = max(self.days_of(datetime(year, 11, 20, tzinfo=UTC)), 0.0)
            hi = min(self.days_of(datetime(year, 12, 2, tzinfo=UTC)), self.span)
            if hi - lo > 1.0:
                out.append((lo, hi))
        return out


def normalise_now(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime; the default is the current hour (truncated)."""
    if now is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def rng_for(seed: int, name: str) -> np.random.Generator:
    """An independent random stream for one part of the generator."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


# ---------------------------------------------------------------- geography and money

# (country, province, city, IANA timezone, standard UTC offset h, US zip prefix, tax rate, weight)
LOCATIONS: tuple[tuple[str, str | None, str, str, float, str, float, float], ...] = (
    ("US", "NY", "New York", "America/New_York", -5, "100", 0.08875, 0.10),
    ("US", "CA", "Los Angeles", "America/Los_Angeles", -8, "900", 0.095, 0.09),
    ("US", "CA", "San Francisco", "America/Los_Angeles", -8, "941", 0.08625, 0.05),
    ("US", "IL", "Chicago", "America/Chicago", -6, "606", 0.1025, 0.06),
    ("US", "TX", "Austin", "America/Chicago", -6, "787", 0.0825, 0.06),
    ("US", "WA", "Seattle", "America/Los_Angeles", -8, "981", 0.1035, 0.05),
    ("US", "CO", "Denver", "America/Denver", -7, "802", 0.0881, 0.04),
    ("US", "AZ", "Phoenix", "America/Phoenix", -7, "850", 0.086, 0.03),
    ("US", "MA", "Boston", "America/New_York", -5, "021", 0.0625, 0.04),
    ("US", "FL", "Miami", "America/New_York", -5, "331", 0.07, 0.05),
    ("US", "GA", "Atlanta", "America/New_York", -5, "303", 0.089, 0.03),
    ("CA", "ON", "Toronto", "America/Toronto", -5, "", 0.13, 0.05),
    ("CA", "BC", "Vancouver", "America/Vancouver", -8, "", 0.12, 0.03),
    ("CA", "AB", "Calgary", "America/Edmonton", -7, "", 0.05, 0.02),
    ("GB", None, "London", "Europe/London", 0, "", 0.20, 0.07),
    ("GB", None, "Manchester", "Europe/London", 0, "", 0.20, 0.03),
    ("GB", None, "Edinburgh", "Europe/London", 0, "", 0.20, 0.02),
    ("DE", None, "Berlin", "Europe/Berlin", 1, "", 0.19, 0.03),
    ("DE", None, "Munich", "Europe/Berlin", 1, "", 0.19, 0.02),
    ("DE", None, "Hamburg", "Europe/Berlin", 1, "", 0.19, 0.02),
    ("FR", None, "Paris", "Europe/Paris", 1, "", 0.20, 0.035),
    ("FR", None, "Lyon", "Europe/Paris", 1, "", 0.20, 0.015),
    ("AU", "NSW", "Sydney", "Australia/Sydney", 10, "", 0.10, 0.025),
    ("AU", "VIC", "Melbourne", "Australia/Melbourne", 10, "", 0.10, 0.02),
    ("AU", "QLD", "Brisbane", "Australia/Brisbane", 10, "", 0.10, 0.01),
    ("AU", "WA", "Perth", "Australia/Perth", 8, "", 0.10, 0.005),
)
LOC_COUNTRY = np.array([loc[0] for loc in LOCATIONS])
LOC_OFFSET_H = np.array([loc[4] for loc in LOCATIONS], dtype=np.float64)
LOC_TAX = np.array([loc[6] for loc in LOCATIONS], dtype=np.float64)
LOC_WEIGHT = np.array([loc[7] for loc in LOCATIONS], dtype=np.float64) / sum(loc[7] for loc in LOCATIONS)
US_LOCATIONS = np.flatnonzero(LOC_COUNTRY == "US")

CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD")
FX_RATES = np.array([1.0, 0.92, 0.79, 1.37, 1.53])  # presentment units per USD, fixed
LOCAL_CURRENCY = {"US": 0, "DE": 1, "FR": 1, "GB": 2, "CA": 3, "AU": 4}
# Flat shipping fee and free-shipping threshold (cents, on the discounted subtotal).
SHIPPING = {"US": (595, 5_000), "CA": (995, 7_500), "GB": (1_495, 10_000), "DE": (1_495, 10_000)}
SHIPPING |= {"FR": (1_495, 10_000), "AU": (1_495, 10_000)}
LOC_SHIP_FEE = np.array([SHIPPING[c][0] for c in LOC_COUNTRY], dtype=np.int64)
LOC_SHIP_FREE = np.array([SHIPPING[c][1] for c in LOC_COUNTRY], dtype=np.int64)

# Share of orders by local hour of day: quiet nights, a lunch bump, an evening peak.
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 6, 6, 7, 8, 10, 11, 10, 7, 4], dtype=float)
HOUR_WEIGHTS /= HOUR_WEIGHTS.sum()


def snap_to_local_hours(t: np.ndarray, loc: np.ndarray, span: float, rng: np.random.Generator) -> np.ndarray:
    """Move each time within its local day to a realistic hour (standard time; DST is ignored).

    Times stay within about a day of where they were, and never pass ``span`` (now).
    """
    offset = LOC_OFFSET_H[loc] / 24.0
    day = np.floor(t + offset)
    hour = rng.choice(24, size=len(t), p=HOUR_WEIGHTS) + rng.random(len(t))
    out = day + hour / 24.0 - offset
    return np.where(out >= span, out - 1.0, out)


# ---------------------------------------------------------------- ids and strings


def increasing_ids(days: np.ndarray, base: int, rng: np.random.Generator, mean_gap: int = 40_000) -> np.ndarray:
    """Shopify-like int64 ids that grow with time (ties keep input order); returns ids per row."""
    order = np.argsort(days, kind="stable")
    ids = np.empty(len(days), dtype=np.int64)
    ids[order] = base + np.cumsum(rng.integers(1, 2 * mean_gap, size=len(days), dtype=np.int64))
    return ids


def unique_random_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct random integers in ``[low, high)`` (redraws the rare duplicates)."""
    values = rng.integers(low, high, size=n, dtype=np.int64)
    while True:
        _, first = np.unique(values, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            return values
        values[dup] = rng.integers(low, high, size=int(dup.sum()), dtype=np.int64)


def hex_strings(values: np.ndarray, width: int = 16) -> pa.Array:
    """Lower-case hex of uint64 values, zero-padded to ``width`` (≤ 16) characters."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = ((v[:, None] >> shifts) & np.uint64(15)).astype(np.uint8)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles]
    return pa.array(np.ascontiguousarray(chars).view(f"S{width}").ravel()).cast(pa.string())


def splitmix64(values: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer: distinct inputs give distinct, random-looking outputs."""
    z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def digits(values: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers as zero-padded decimal strings."""
    return pc.utf8_lpad(pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string()), width, "0")


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation of arrays and literals (null in → null out)."""
    return pc.binary_join_element_wise(*parts, "")


def take(values: list[str | None] | tuple[str | None, ...] | pa.Array, index: np.ndarray) -> pa.Array:
    """Look strings up by index (vectorised); a negative index gives null."""
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    idx = np.asarray(index, dtype=np.int64)
    return arr.take(pa.array(idx, mask=idx < 0))


# ---------------------------------------------------------------- grouped operations


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys begins."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def rank_within(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2 … within each run of equal keys."""
    idx = np.arange(len(sorted_keys))
    return idx - np.maximum.accumulate(np.where(group_starts(sorted_keys), idx, 0))


def choose_weighted(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column per row of a non-negative weight matrix (rows must not be all zero)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)
