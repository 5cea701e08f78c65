"""Pacers keep a stream under its vendor's limit instead of bouncing off 429s."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import requests

from connectors._classify import _float, _requested_cost, _throttle_status, facebook_usage

log = logging.getLogger(__name__)


# -- pacing ----------------------------------------------------------------------


class Pacer(Protocol):
    """Keeps one stream under its vendor's limit: ``acquire`` before a call, ``observe`` after."""

    def acquire(self, cost: float = 1.0) -> None: ...

    def observe(self, response: requests.Response, body: Any = None) -> None: ...


class TokenBucketPacer:
    """A token bucket: ``burst`` calls at once, then ``rate_per_second`` (Amazon SP-API).

    When the server states a different rate in ``x-amzn-RateLimit-Limit`` the bucket
    adopts it; a 429 empties the bucket so the next call waits a full interval.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second <= 0 or burst <= 0:
            raise ValueError(f"rate_per_second ({rate_per_second}) and burst ({burst}) must be positive")
        self.rate, self.burst = float(rate_per_second), float(burst)
        self._sleep, self._clock = sleep, clock
        self._tokens, self._stamp = self.burst, clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, cost: float = 1.0) -> None:
        # The lock is held while sleeping on purpose: threads sharing a pacer queue up.
        with self._lock:
            self._refill()
            if self._tokens < cost:
                self._sleep((cost - self._tokens) / self.rate)
                self._refill()
            self._tokens -= cost

    def observe(self, response: requests.Response, body: Any = None) -> None:
        with self._lock:
            limit = _float(response.headers.get("x-amzn-RateLimit-Limit"))
            if limit and limit > 0 and abs(limit - self.rate) > 1e-12:
                log.info("server states a rate limit of %s req/s (was %s); pacing to it", limit, self.rate)
                self._refill()
                self.rate = limit
            if response.status_code == 429:
                self._refill()
                self._tokens = min(self._tokens, 0.0)


class CostBucketPacer:
    """Shopify's leaky bucket of query cost, mirrored from every response's ``extensions.cost``.

    Before a query it waits until the bucket (as last reported, refilled at
    ``restoreRate`` since) covers the query's cost: the ``cost`` passed to
    :meth:`acquire`, else the ``requestedQueryCost`` of the previous response.
    """

    def __init__(
        self,
        maximum_available: float = 2000.0,
        restore_rate: float = 100.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum, self.restore_rate = float(maximum_available), float(restore_rate)
        self.available = self.maximum
        self.expected_cost = 0.0
        self._sleep, self._clock = sleep, clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.available = min(self.maximum, self.available + (now - self._stamp) * self.restore_rate)
        self._stamp = now

    def acquire(self, cost: float | None = None) -> None:
        with self._lock:
            need = min(self.maximum, cost if cost is not None else self.expected_cost)
            self._refill()
            if self.available < need:
                self._sleep((need - self.available) / self.restore_rate)
                self._refill()
            self.available -= need

    def observe(self, response: requests.Response, body: Any = None) -> None:
        status = _throttle_status(body)
        with self._lock:
            if (requested := _requested_cost(body)) is not None:
                self.expected_cost = requested
            if status is None:
                return
            self.maximum = _float(status.get("maximumAvailable")) or self.maximum
            self.restore_rate = _float(status.get("restoreRate")) or self.restore_rate
            self.available = _float(status.get("currentlyAvailable")) or 0.0
            self._stamp = self._clock()


class UsagePacer:
    """Facebook: no wait below ``slow_above`` % usage, then a gap growing to ``max_delay`` at 100 %.

    Usage is the highest percentage in ``X-Business-Use-Case-Usage``, ``X-Ad-Account-Usage``
    and ``X-App-Usage``; a stated ``estimated_time_to_regain_access`` is always honoured.
    """

    def __init__(
        self,
        slow_above: float = 75.0,
        max_delay: float = 60.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slow_above, self.max_delay = slow_above, max_delay
        self.usage = 0.0
        self._sleep, self._clock = sleep, clock
        self._last: float | None = None
        self._blocked_until = float("-inf")
        self._lock = threading.Lock()

    def delay(self) -> float:
        """The gap currently kept between calls, in seconds."""
        share = (self.usage - self.slow_above) / max(1e-9, 100.0 - self.slow_above)
        return self.max_delay * min(1.0, max(0.0, share))

    def acquire(self, cost: float = 1.0) -> None:
        with self._lock:
            now = self._clock()
            wait = self._blocked_until - now
            if self._last is not None:
                wait = max(wait, self.delay() - (now - self._last))
            if wait > 0:
                self._sleep(wait)
            self._last = self._clock()

    def observe(self, response: requests.Response, body: Any = None) -> None:
        usage, regain = facebook_usage(response.headers)
        with self._lock:
            if usage is not None:
                self.usage = usage
            if regain:
                self._blocked_until = self._clock() + regain
