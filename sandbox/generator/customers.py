"""Shopify customer records: one per person, plus guest-checkout duplicates, and email consent.

A person owns record ``person`` (the primary); guest checkouts add records after
position ``n_people``. The person's current consent is the one on their most recently
updated record (``updated_at == marketing_updated_at`` whenever there is an email, so
either column orders the records the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sandbox.generator._base import MINUTE, Clock, group_starts, rank_within
from sandbox.generator.orders import Orders
from sandbox.generator.people import (
    BROKEN,
    INVALID,
    MISSING,
    NOT_SUBSCRIBED,
    PENDING,
    SUBSCRIBED,
    UNSUBSCRIBED,
    VARIANT_SHARES,
    People,
    apply_variant,
)

GUEST_PERSON_SHARE = 0.08  # persons with a second (or third) record
OPT_IN_LEVELS = ("SINGLE_OPT_IN", "CONFIRMED_OPT_IN", "UNKNOWN")


@dataclass
class Records:
    person: np.ndarray  # owner of each record
    guest: np.ndarray  # bool
    created: np.ndarray  # days (set by finalize)
    email: pa.Array  # as typed on the record
    state: np.ndarray  # index into STATES, -1 = no email
    opt_in: np.ndarray  # index into OPT_IN_LEVELS, -1 = null
    marketing_t: np.ndarray  # days, NaN = null

    def __len__(self) -> int:
        return len(self.person)

    @property
    def updated(self) -> np.ndarray:
        return np.fmax(self.created, self.marketing_t)


def assign_records(orders: Orders, people: People, rng: np.random.Generator) -> Records:
    """Give ~8% of persons guest records; each guest record places one of their later orders.

    Sets ``orders.record``; returns records with ``person``, ``guest`` and ``email`` filled.
    """
    n = people.n
    counts = np.bincount(orders.person, minlength=n)
    candidates = np.flatnonzero((counts >= 2) & (people.email_kind != MISSING))
    chosen = rng.permutation(candidates)[: round(GUEST_PERSON_SHARE * n)]
    guests_wanted = np.zeros(n, np.int64)
    guests_wanted[chosen] = 1 + (rng.random(len(chosen)) < 0.2)

    later = np.flatnonzero((guests_wanted[orders.person] > 0) & (orders.kind != 0))
    later = later[np.lexsort((rng.random(len(later)), orders.person[later]))]
    person_sorted = orders.person[later]
    idx = np.arange(len(later))
    rank = idx - np.maximum.accumulate(np.where(group_starts(person_sorted), idx, 0))
    guest_orders = np.sort(later[rank < guests_wanted[person_sorted]])
    orders.record = orders.person.copy()
    orders.record[guest_orders] = n + np.arange(len(guest_orders))

    person = np.concatenate([np.arange(n), orders.person[guest_orders]])
    guest = np.concatenate([np.zeros(n, bool), np.ones(len(guest_orders), bool)])
    # Each record of a person types the address differently (case, whitespace).
    guest_person = person[n:]
    by_person = np.argsort(guest_person, kind="stable")
    nth = np.empty(len(guest_person), np.int64)
    nth[by_person] = rank_within(guest_person[by_person])
    k = len(VARIANT_SHARES)
    shift = 1 + (rng.integers(0, k - 1, n)[guest_person] + nth) % (k - 1)
    variant = np.concatenate([people.email_variant, (people.email_variant[guest_person] + shift) % k])
    email = apply_variant(people.email.take(pa.array(person)), variant)
    empty = np.full(len(person), np.nan)
    return Records(person, guest, empty, email, np.full(len(person), -1), np.full(len(person), -1), empty.copy())


def finalize(
    records: Records,
    signup: np.ndarray,
    refs: list[tuple[np.ndarray, np.ndarray]],
    people: People,
    clock: Clock,
    rng: np.random.Generator,
) -> None:
    """Creation times and consent of every record.

    Args:
        signup: per person, when they signed up (first order or newsletter sign-up).
        refs: (record row, time) pairs of everything that references a record (orders,
            checkouts): a record exists a few minutes before its first use.
    """
    n_rec = len(records)
    first_use = np.full(n_rec, np.inf)
    for rec, t in refs:
        np.minimum.at(first_use, rec, t)
    n = people.n
    first_use[:n] = np.minimum(first_use[:n], signup)
    created = first_use - rng.uniform(1.0, 15.0, n_rec) * MINUTE
    records.created = created

    person = records.person
    # The latest-created record of each person carries the person's current consent.
    order = np.lexsort((created, person))
    latest = np.zeros(n_rec, bool)
    latest[order[np.r_[person[order][1:] != person[order][:-1], True]]] = True

    kind = people.email_kind[person]
    target = people.target_state[person]
    old_state = np.where(rng.random(n_rec) < 0.4, SUBSCRIBED, NOT_SUBSCRIBED)
    state = np.where(latest, target, old_state)
    state = np.where(kind == BROKEN, INVALID, state)
    state = np.where(kind == MISSING, -1, state)

    room = clock.span - created
    later = rng.random(n_rec) < 0.3  # subscribed after the first order, e.g. from a pop-up
    delay = np.select(
        [state == SUBSCRIBED, state == UNSUBSCRIBED, state == PENDING, state == INVALID],
        [
            np.where(later, rng.uniform(0.0, 1.0, n_rec) * room, rng.uniform(0.2, 3.0, n_rec) * MINUTE),
            rng.uniform(0.05, 1.0, n_rec) * room,
            rng.uniform(0.2, 5.0, n_rec) * MINUTE,
            np.minimum(rng.uniform(0.01, 3.0, n_rec), room),
        ],
        0.0,
    )
    delay = np.where(latest, delay, 0.0)
    records.marketing_t = np.where(state >= 0, np.minimum(created + delay, clock.span), np.nan)
    records.state = state

    confirmed = rng.random(n_rec) < 0.35
    opt_in = np.select(
        [
            (state == SUBSCRIBED) | (state == UNSUBSCRIBED),
            state == PENDING,
            state == INVALID,
            state == NOT_SUBSCRIBED,
        ],
        [np.where(confirmed, 1, 0), 1, 2, np.where(rng.random(n_rec) < 0.2, 2, -1)],
        -1,
    )
    records.opt_in = opt_in


def true_state(records: Records, n_people: int) -> np.ndarray:
    """Per person, the consent (index into STATES, -1 none) of their most recently updated record."""
    updated = np.nan_to_num(records.updated, nan=-np.inf)
    order = np.lexsort((updated, records.person))
    last = order[np.r_[records.person[order][1:] != records.person[order][:-1], True]]
    out = np.full(n_people, -1)
    out[records.person[last]] = records.state[last]
    return out
