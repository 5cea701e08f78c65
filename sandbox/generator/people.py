"""Simulated people: names, places, email addresses with real-world quirks, consent intent.

Email addresses use the reserved ``.example`` top-level domain (RFC 2606) on purpose:
a demo shop whose data is ever sent through a real SendGrid account must not reach
real mailboxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.generator._base import (
    LOC_COUNTRY,
    LOC_WEIGHT,
    LOCAL_CURRENCY,
    US_LOCATIONS,
    concat,
    digits,
    rank_within,
    take,
)

# (as displayed, as used in an email address)
FIRST_NAMES = (
    ("Emma", "emma"), ("Olivia", "olivia"), ("Ava", "ava"), ("Sophia", "sophia"), ("Mia", "mia"),
    ("Isabella", "isabella"), ("Charlotte", "charlotte"), ("Amelia", "amelia"), ("Harper", "harper"),
    ("Evelyn", "evelyn"), ("Grace", "grace"), ("Chloé", "chloe"), ("Zoë", "zoe"), ("Léa", "lea"),
    ("Hannah", "hannah"), ("Lena", "lena"), ("Sarah", "sarah"), ("Laura", "laura"), ("Julia", "julia"),
    ("Siobhán", "siobhan"), ("Priya", "priya"), ("Mei", "mei"), ("Aisha", "aisha"), ("Renée", "renee"),
    ("Liam", "liam"), ("Noah", "noah"), ("Oliver", "oliver"), ("James", "james"), ("Lucas", "lucas"),
    ("Henry", "henry"), ("Jack", "jack"), ("Samuel", "samuel"), ("Daniel", "daniel"), ("Matthew", "matthew"),
    ("David", "david"), ("Joseph", "joseph"), ("Ethan", "ethan"), ("Jürgen", "juergen"), ("Lukas", "lukas"),
    ("Felix", "felix"), ("Jonas", "jonas"), ("Hugo", "hugo"), ("Louis", "louis"), ("Théo", "theo"),
    ("Arjun", "arjun"), ("Wei", "wei"), ("Omar", "omar"), ("Mateo", "mateo"), ("Thomas", "thomas"),
    ("Ryan", "ryan"), ("Jordan", "jordan"), ("Alex", "alex"), ("Sam", "sam"), ("Taylor", "taylor"),
)  # fmt: skip
LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"), ("Jones", "jones"),
    ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"), ("Rodriguez", "rodriguez"),
    ("Martinez", "martinez"), ("Wilson", "wilson"), ("Anderson", "anderson"), ("Taylor", "taylor"),
    ("Thomas", "thomas"), ("Moore", "moore"), ("Jackson", "jackson"), ("Martin", "martin"), ("Lee", "lee"),
    ("Walker", "walker"), ("Hall", "hall"), ("Young", "young"), ("King", "king"), ("Wright", "wright"),
    ("Scott", "scott"), ("Green", "green"), ("Baker", "baker"), ("Adams", "adams"), ("Nelson", "nelson"),
    ("Campbell", "campbell"), ("Evans", "evans"), ("O'Brien", "obrien"), ("Murphy", "murphy"),
    ("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schäfer", "schaefer"), ("Fischer", "fischer"),
    ("Weber", "weber"), ("Becker", "becker"), ("Dubois", "dubois"), ("Lefèvre", "lefevre"),
    ("Moreau", "moreau"), ("Laurent", "laurent"), ("Bernard", "bernard"), ("Nguyen", "nguyen"),
    ("Patel", "patel"), ("Chen", "chen"), ("Kim", "kim"), ("Singh", "singh"), ("Kowalski", "kowalski"),
    ("Rossi", "rossi"), ("Cohen", "cohen"), ("Clarke", "clarke"), ("Hughes", "hughes"), ("Kelly", "kelly"),
    ("Turner", "turner"), ("Parker", "parker"), ("Collins", "collins"), ("Stewart", "stewart"),
)  # fmt: skip

# Mailbox providers per country, all under the reserved .example TLD.
DOMAINS = {
    "US": (("gmail.example", 0.45), ("yahoo.example", 0.15), ("outlook.example", 0.15), ("icloud.example", 0.15),
           ("aol.example", 0.05), ("proton.example", 0.05)),
    "CA": (("gmail.example", 0.5), ("outlook.example", 0.2), ("shaw.example", 0.15), ("icloud.example", 0.15)),
    "GB": (("gmail.example", 0.4), ("btinternet.example", 0.2), ("outlook.example", 0.2), ("yahoo.example", 0.2)),
    "DE": (("gmx.example", 0.35), ("web.example", 0.3), ("gmail.example", 0.25), ("t-online.example", 0.1)),
    "FR": (("orange.example", 0.35), ("gmail.example", 0.35), ("free.example", 0.15), ("laposte.example", 0.15)),
    "AU": (("gmail.example", 0.5), ("bigpond.example", 0.25), ("outlook.example", 0.25)),
}  # fmt: skip
COUNTRIES = tuple(DOMAINS)

STATES = ("SUBSCRIBED", "NOT_SUBSCRIBED", "UNSUBSCRIBED", "PENDING", "INVALID")
STATE_SHARES = np.array([0.45, 0.35, 0.12, 0.05, 0.03])
SUBSCRIBED, NOT_SUBSCRIBED, UNSUBSCRIBED, PENDING, INVALID = range(5)
SOURCES = ("facebook", "google", "organic", "email", "referral")
SOURCE_SHARES = np.array([0.28, 0.22, 0.30, 0.10, 0.10])

VALID, BROKEN, MISSING = 0, 1, 2  # email kinds
MISSING_EMAIL_SHARE = 0.02
# How an address is typed: as is, Capitalised, UPPER, leading / trailing space, Title.Case
VARIANT_SHARES = np.array([0.86, 0.04, 0.02, 0.03, 0.02, 0.03])


@dataclass
class Names:
    first: pa.Array
    last: pa.Array
    first_ascii: pa.Array
    last_ascii: pa.Array


@dataclass
class People:
    """Shopify persons (arrays of length n)."""

    names: Names
    loc: np.ndarray  # index into LOCATIONS
    email: pa.Array  # lower-case address as the person types it; broken for BROKEN; null for MISSING
    email_kind: np.ndarray  # VALID, BROKEN, MISSING
    email_variant: np.ndarray  # how the primary customer record typed it
    source: np.ndarray  # index into SOURCES
    currency: np.ndarray  # index into CURRENCIES
    phone: pa.Array
    target_state: np.ndarray  # index into STATES; -1 when there is no email
    discount_prone: np.ndarray  # bool
    buyer: np.ndarray  # bool: places at least one order

    @property
    def n(self) -> int:
        return len(self.loc)

    def canonical_email(self) -> pa.Array:
        """Trimmed, lower-cased address; null when unusable (broken or missing)."""
        return pc.if_else(pa.array(self.email_kind == VALID), self.email, pa.scalar(None, pa.string()))


def draw_names(n: int, rng: np.random.Generator) -> Names:
    f = rng.integers(0, len(FIRST_NAMES), n)
    lname = rng.integers(0, len(LAST_NAMES), n)
    return Names(
        first=take([x[0] for x in FIRST_NAMES], f),
        last=take([x[0] for x in LAST_NAMES], lname),
        first_ascii=take([x[1] for x in FIRST_NAMES], f),
        last_ascii=take([x[1] for x in LAST_NAMES], lname),
    )


def draw_locations(n: int, rng: np.random.Generator, us_only: bool = False) -> np.ndarray:
    if us_only:
        w = LOC_WEIGHT[US_LOCATIONS] / LOC_WEIGHT[US_LOCATIONS].sum()
        return US_LOCATIONS[rng.choice(len(US_LOCATIONS), size=n, p=w)]
    return rng.choice(len(LOC_WEIGHT), size=n, p=LOC_WEIGHT)


def _unique(local: pa.Array, domain: pa.Array) -> pa.Array:
    """``local@domain`` made unique by appending a number to later duplicates."""
    while True:
        email = concat(local, "@", domain)
        codes = pc.dictionary_encode(email).indices.to_numpy()
        order = np.argsort(codes, kind="stable")
        rank = np.empty(len(codes), np.int64)
        rank[order] = rank_within(codes[order])
        if not (rank > 0).any():
            return email
        local = concat(local, pc.if_else(pa.array(rank > 0), digits(rank + 1, 1), ""))


def _emails(names: Names, loc: np.ndarray, rng: np.random.Generator) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Unique lower-case addresses, plus each one's local part and provider stem."""
    n = len(loc)
    country = LOC_COUNTRY[loc]
    domain_idx = np.zeros(n, dtype=np.int64)
    all_domains: list[str] = []
    for c, options in DOMAINS.items():  # a loop over 6 countries, not over people
        rows = np.flatnonzero(country == c)
        p = np.array([o[1] for o in options])
        domain_idx[rows] = len(all_domains) + rng.choice(len(options), size=len(rows), p=p / p.sum())
        all_domains += [o[0] for o in options]
    domain = take(all_domains, domain_idx)
    f, last = names.first_ascii, names.last_ascii
    two = digits(rng.integers(10, 100, n), 2)
    patterns = [
        concat(f, ".", last),
        concat(f, last),
        concat(pc.utf8_slice_codeunits(f, 0, 1), last),
        concat(f, "_", last),
        concat(f, two),
        concat(f, ".", last, two),
        concat(last, ".", f),
    ]
    pattern = rng.choice(len(patterns), size=n, p=[0.35, 0.15, 0.10, 0.08, 0.12, 0.12, 0.08])
    local = pc.choose(pa.array(pattern), *patterns)
    email = _unique(local, domain)
    parts = pc.split_pattern(email, "@")
    local, domain = pc.list_element(parts, 0), pc.list_element(parts, 1)
    stem = pc.list_element(pc.split_pattern(domain, "."), 0)
    return email, local, stem


def apply_variant(email: pa.Array, variant: np.ndarray) -> pa.Array:
    """Retype addresses: as is, Capitalised, UPPER, with a leading or trailing space, Title.Case."""
    choices = [
        email,
        pc.utf8_capitalize(email),
        pc.utf8_upper(email),
        concat(" ", email),
        concat(email, " "),
        pc.utf8_title(email),
    ]
    return pc.choose(pa.array(np.asarray(variant, dtype=np.int8)), *choices)


def _phones(loc: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """E.164 numbers from fictional ranges (555-01xx, Ofcom drama, ACMA drama); ~55% have one."""
    n = len(loc)
    country = np.array([COUNTRIES.index(c) for c in LOC_COUNTRY])[loc]
    north_america = concat("+1", digits(rng.integers(201, 990, n), 3), "55501", digits(rng.integers(0, 100, n), 2))
    by_country = {
        "US": north_america,
        "CA": north_america,
        "GB": concat("+447700900", digits(rng.integers(0, 1000, n), 3)),
        "DE": concat("+49151", digits(rng.integers(0, 10**8, n), 8)),
        "FR": concat("+336", digits(rng.integers(0, 10**8, n), 8)),
        "AU": concat("+61491570", digits(rng.integers(0, 1000, n), 3)),
    }
    patterns = [by_country[c] for c in COUNTRIES]
    phone = pc.choose(pa.array(country), *patterns)
    return pc.if_else(pa.array(rng.random(n) < 0.55), phone, pa.scalar(None, pa.string()))


def draw_people(n: int, rng: np.random.Generator, buyer_share: float = 0.82) -> People:
    """Draw ``n`` Shopify persons."""
    names = draw_names(n, rng)
    loc = draw_locations(n, rng)
    email, local, stem = _emails(names, loc, rng)

    state = rng.choice(len(STATES), size=n, p=STATE_SHARES)
    kind = np.where(state == INVALID, BROKEN, VALID)
    kind = np.where(rng.random(n) < MISSING_EMAIL_SHARE, MISSING, kind).astype(np.int8)
    state = np.where(kind == MISSING, -1, state)
    # Broken addresses as people really type them: a doubled @, no @ at all, no TLD.
    broken = pc.choose(
        pa.array(rng.integers(0, 3, n)),
        concat(local, "@@", stem),
        concat(local, ".", stem, ".example"),
        concat(local, "@", stem),
    )
    email = pc.if_else(pa.array(kind == BROKEN), broken, email)
    email = pc.if_else(pa.array(kind == MISSING), pa.scalar(None, pa.string()), email)

    local_currency = np.array([LOCAL_CURRENCY[c] for c in LOC_COUNTRY])[loc]
    currency = np.where(rng.random(n) < 0.75, local_currency, 0)
    return People(
        names=names,
        loc=loc,
        email=email,
        email_kind=kind,
        email_variant=rng.choice(len(VARIANT_SHARES), size=n, p=VARIANT_SHARES).astype(np.int8),
        source=rng.choice(len(SOURCES), size=n, p=SOURCE_SHARES),
        currency=currency,
        phone=_phones(loc, rng),
        target_state=state,
        discount_prone=rng.random(n) < 0.2,
        buyer=rng.random(n) < buyer_share,
    )
