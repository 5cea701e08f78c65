"""The send policy: the one place that decides whether a candidate email goes out now.

:func:`decide` is a pure function over data: the caller passes the candidates, the
clock, the suppressed addresses, the recent sends and who ordered since their
trigger; nothing in here reads a file, a database or the clock. Rules apply in
this order, the first that matches wins:

1. no valid address                          → skip ``invalid_email``
2. bought only on Amazon (Amazon's policy)   → skip ``amazon_only``
3. consent not ``SUBSCRIBED`` / not marketable → skip ``not_subscribed``
4. address on the suppression list           → skip ``suppressed``
5. in the sequence's holdout (stable hash)   → skip ``holdout``
6. ordered since the trigger                 → skip ``ordered_since_trigger``
7. due longer ago than the step's lateness   → skip ``stale`` (backfills never send for the past)
8. not due yet                               → defer ``not_due`` until ``due_at``
9. quiet hours in the person's timezone      → defer ``quiet_hours`` until they end
10. frequency cap (recent sends, and sends decided earlier in this call, most
    important sequence first)                → defer ``capped`` until the window ends
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hearth.suppressions import normalize_email

INVALID_EMAIL = "invalid_email"
AMAZON_ONLY = "amazon_only"
NOT_SUBSCRIBED = "not_subscribed"
SUPPRESSED = "suppressed"
HOLDOUT = "holdout"
ORDERED_SINCE_TRIGGER = "ordered_since_trigger"
STALE = "stale"
NOT_DUE = "not_due"
QUIET_HOURS = "quiet_hours"
CAPPED = "capped"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

DecisionKind = Literal["send", "defer", "skip"]
RecentSends = Mapping[str, Iterable[tuple[str, Any, datetime]]]  # customer_key → [(sequence, step, at)]
OrderedSince = set[tuple[str, str]] | frozenset[tuple[str, str]] | Callable[[str, str], bool]


@dataclass(frozen=True)
class Candidate:
    """One email a sequence wants to send (a row of a trigger table, joined to the customer).

    ``channels`` is where the person bought (``shopify``, ``amazon``); ``priority``: lower is
    more important. ``payload`` is the template data and takes no part in equality.
    """

    customer_key: str
    email: str | None
    first_name: str | None
    timezone: str | None
    is_marketable: bool
    email_consent: str | None
    channels: frozenset[str]
    sequence: str
    step: int
    trigger_id: str
    trigger_at: datetime
    due_at: datetime
    priority: int = 100
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Accept any iterable of channels (or one channel name) and keep an immutable set.
        channels = {self.channels} if isinstance(self.channels, str) else set(self.channels)
        object.__setattr__(self, "channels", frozenset(c.lower() for c in channels))


@dataclass(frozen=True)
class Decision:
    """What to do with a candidate now; ``not_before`` is set for a ``defer``."""

    kind: DecisionKind
    reason: str | None = None
    not_before: datetime | None = None


SEND = Decision("send")


@dataclass(frozen=True)
class PolicyConfig:
    """The knobs of :func:`decide`.

    Attributes:
        cap_hours: at most one marketing email per person per this many hours, across sequences.
        quiet_hours: ``(start, end)`` local times when nothing is sent (may wrap midnight);
            ``None`` turns quiet hours off.
        shop_timezone: used for people whose timezone is missing or unknown.
        holdout: share (0–1) of each sequence's audience kept out, by sequence name.
        max_lateness: how late a step may still go, by ``(sequence, step)`` or by sequence.
        default_max_lateness: for steps not listed in ``max_lateness``.
    """

    cap_hours: float = 16
    quiet_hours: tuple[time, time] | None = (time(21), time(8))
    shop_timezone: str = "UTC"
    holdout: Mapping[str, float] = field(default_factory=dict)
    max_lateness: Mapping[str | tuple[str, int], timedelta] = field(default_factory=dict)
    default_max_lateness: timedelta = timedelta(days=2)

    @property
    def cap(self) -> timedelta:
        return timedelta(hours=self.cap_hours)

    def lateness(self, sequence: str, step: int) -> timedelta:
        found = self.max_lateness.get((sequence, step), self.max_lateness.get(sequence))
        return self.default_max_lateness if found is None else found


def is_valid_email(email: str | None) -> bool:
    return bool(_EMAIL.match(normalize_email(email)))


def holdout_fraction(customer_key: str, sequence: str) -> float:
    """A stable pseudo-random number in [0, 1) for a person in a sequence."""
    digest = hashlib.sha256(f"{customer_key}\x1f{sequence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(customer_key: str, sequence: str, share: float) -> bool:
    """Whether a person is held out of a sequence: always the same answer for the same inputs."""
    return holdout_fraction(customer_key, sequence) < share


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The timezone called ``name``, or ``fallback`` when it is missing or unknown."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _is_quiet(local: time, quiet: tuple[time, time]) -> bool:
    start, end = quiet
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight


def quiet_until(now: datetime, tz: ZoneInfo, quiet: tuple[time, time] | None) -> datetime | None:
    """When the quiet hours around ``now`` end in ``tz`` (as UTC), or ``None`` when it is not quiet."""
    if quiet is None or quiet[0] == quiet[1]:
        return None
    local = now.astimezone(tz)
    if not _is_quiet(local.time().replace(tzinfo=None), quiet):
        return None
    end_day = local.date() if local.time().replace(tzinfo=None) < quiet[1] else local.date() + timedelta(days=1)
    end = datetime.combine(end_day, quiet[1], tzinfo=tz).astimezone(UTC)
    # A DST jump can land the naive wall time inside the gap; never hand back a quiet instant.
    while _is_quiet(end.astimezone(tz).time().replace(tzinfo=None), quiet):
        end += timedelta(minutes=15)
    return end


def _sort_key(item: tuple[int, Candidate]) -> tuple[Any, ...]:
    _, c = item
    return (c.priority, c.due_at, c.sequence, str(c.step), c.trigger_id, c.customer_key)


def _skip_reason(
    c: Candidate,
    email: str,
    now: datetime,
    suppressed: set[str],
    ordered: Callable[[str, str], bool],
    config: PolicyConfig,
) -> str | None:
    """The first skip rule ``c`` meets, if any; ``email`` is its address normalised."""
    if not _EMAIL.match(email):  # is_valid_email, on the address normalised already
        return INVALID_EMAIL
    if "amazon" in c.channels and not (c.channels - {"amazon"}):
        return AMAZON_ONLY
    if (c.email_consent or "").upper() != "SUBSCRIBED" or not c.is_marketable:
        return NOT_SUBSCRIBED
    if email in suppressed:
        return SUPPRESSED
    if in_holdout(c.customer_key, c.sequence, config.holdout.get(c.sequence, 0.0)):
        return HOLDOUT
    if ordered(c.customer_key, c.trigger_id):
        return ORDERED_SINCE_TRIGGER
    if now - c.due_at > config.lateness(c.sequence, c.step):
        return STALE
    return None


def decide(
    candidates: Iterable[Candidate],
    *,
    now: datetime,
    suppressed: Iterable[str],
    recent_sends: RecentSends,
    ordered_since: OrderedSince,
    config: PolicyConfig,
) -> list[tuple[Candidate, Decision]]:
    """Decide every candidate; returns ``(candidate, decision)`` in the order given.

    Args:
        candidates: what the sequences want to send now.
        now: the decision time (aware).
        suppressed: suppressed addresses (any case; compared normalised).
        recent_sends: ``{customer_key: [(sequence, step, sent_at), …]}`` of sends that may have
            reached the person (:meth:`hearth.ledger.Ledger.recent_sends`).
        ordered_since: ``(customer_key, trigger_id)`` pairs with an order after the trigger, or a
            predicate over them.
        config: the policy's knobs.
    """
    if now.tzinfo is None:
        raise ValueError(f"decide(now={now!r}) needs an aware datetime (UTC)")
    items = list(enumerate(candidates))
    blocked = {normalize_email(e) for e in suppressed}
    ordered = ordered_since if callable(ordered_since) else (lambda ck, tid: (ck, tid) in ordered_since)
    cap = config.cap
    # Per person, when their cap window ends, from sends already made …
    busy_until: dict[str, datetime] = {}
    for customer_key, sends in recent_sends.items():
        latest = max((at for _, _, at in sends), default=None)
        if latest is not None and latest + cap > now:
            busy_until[customer_key] = latest + cap
    busy_emails: dict[str, datetime] = {}  # … and from this call's sends, also by address
    quiet_ends: dict[str | None, datetime | None] = {}  # by timezone name: `now` is the same for everyone
    decisions: dict[int, Decision] = {}
    for index, c in sorted(items, key=_sort_key):  # most important first: it takes the cap
        email = normalize_email(c.email)
        reason = _skip_reason(c, email, now, blocked, ordered, config)
        if reason is not None:
            decisions[index] = Decision("skip", reason)
            continue
        if c.due_at > now:
            decisions[index] = Decision("defer", NOT_DUE, c.due_at)
            continue
        if c.timezone not in quiet_ends:
            quiet_ends[c.timezone] = quiet_until(now, zone(c.timezone, config.shop_timezone), config.quiet_hours)
        quiet_end = quiet_ends[c.timezone]
        if quiet_end is not None:
            decisions[index] = Decision("defer", QUIET_HOURS, quiet_end)
            continue
        until = max(busy_until.get(c.customer_key, now), busy_emails.get(email, now))
        if until > now:
            decisions[index] = Decision("defer", CAPPED, until)
            continue
        decisions[index] = SEND
        busy_until[c.customer_key] = busy_emails[email] = now + cap
    return [(c, decisions[index]) for index, c in items]
