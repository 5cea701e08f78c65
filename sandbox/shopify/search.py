"""The subset of Shopify's search syntax the sandbox understands.

Connectors filter incremental windows with terms like
``updated_at:>='2025-01-01T00:00:00Z' AND updated_at:<'2025-02-01T00:00:00Z'``.
The sandbox supports range terms on timestamps and ids joined by ``AND`` (or plain
whitespace, which Shopify also treats as AND). Anything else — ``OR``, ``NOT``,
``-term``, free text, other fields — is refused with an error naming the term:
real Shopify often ignores what it does not understand and returns everything,
which would hide a connector bug behind a silently wrong result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

# One token: a ``field:[op]value`` term, the AND connective, or anything else (refused).
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<and>AND)(?=\s|$)
      | (?P<field>[A-Za-z_]+):\s*(?P<op>>=|<=|>|<)?\s*(?P<value>'[^']*'|"[^"]*"|[^\s()]+)
      | (?P<other>\S+)
    )""",
    re.VERBOSE,
)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Search field → table column, per root connection (Shopify's documented filter names).
SEARCH_FIELDS: dict[str, dict[str, str]] = {
    "customers": {"updated_at": "updated_at", "created_at": "created_at", "customer_date": "created_at", "id": "id"},
    "orders": {"updated_at": "updated_at", "created_at": "created_at", "processed_at": "processed_at", "id": "id"},
    "abandonedCheckouts": {"updated_at": "updated_at", "created_at": "created_at", "id": "id"},
    "products": {"updated_at": "updated_at", "created_at": "created_at", "id": "id"},
}

Ranges = dict[str, tuple[int, int]]  # column → half-open [low, high) over int64 values

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class SearchError(ValueError):
    """A search string the sandbox does not support; the message names the term."""


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_time(raw: str, term: str) -> int:
    text = raw.strip()
    if _DATE_ONLY.match(text):
        text += "T00:00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SearchError(
            f"unsupported value in search term {term!r}: use an ISO 8601 time such as '2025-01-01T00:00:00Z'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Shopify reads a bare time as UTC for API clients
    return to_micros(parsed)


def _parse_id(raw: str, term: str) -> int:
    text = raw.strip().rsplit("/", 1)[-1]  # a gid works as well as the numeric id
    if not text.isdigit():
        raise SearchError(f"unsupported value in search term {term!r}: ids are numbers")
    return int(text)


def parse_search(query: str | None, connection: str) -> Ranges:
    """Turn a ``query`` argument into half-open ranges per column.

    Args:
        query: the search string, e.g. ``"updated_at:>='2025-01-01T00:00:00Z'"``; None or blank = no filter.
        connection: the root connection it filters (``"customers"``, ``"orders"`` …).

    Returns:
        ``{column: (low, high)}``: rows match when ``low <= value < high`` for every column.
        Times are microseconds since the epoch (UTC), ids plain integers.

    Raises:
        SearchError: a term, connective or value outside the supported subset.
    """
    fields: Mapping[str, str] = SEARCH_FIELDS[connection]
    ranges: Ranges = {}
    text = query or ""
    position = 0
    expect_term = True  # AND must sit between two terms
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern matches any non-blank text
            raise SearchError(f"cannot read search query {text!r} at {text[position:]!r}")
        position = match.end()
        token = match.group(0).strip()
        if match.group("and"):
            if expect_term:
                raise SearchError(f"misplaced AND in search query {text!r}")
            expect_term = True
            continue
        if match.group("other") is not None:
            raise SearchError(
                f"unsupported search term {token!r} in query {text!r}: the Hearth sandbox supports "
                f"range terms on {', '.join(sorted(fields))} (e.g. updated_at:>='2025-01-01T00:00:00Z') joined by AND"
            )
        name, op, raw = match.group("field"), match.group("op") or "", match.group("value")
        if name not in fields:
            raise SearchError(
                f"unsupported search field {name!r} in term {token!r}: the Hearth sandbox filters "
                f"{connection} on {', '.join(sorted(fields))} only"
            )
        column = fields[name]
        value_text = raw[1:-1] if raw[:1] in "'\"" else raw
        if column == "id":
            value = _parse_id(value_text, token)
        else:
            if not op:
                raise SearchError(f"unsupported search term {token!r}: compare times with >, >=, < or <=")
            value = _parse_time(value_text, token)
        low, high = {
            ">": (value + 1, INT64_MAX),
            ">=": (value, INT64_MAX),
            "<": (INT64_MIN, value),
            "<=": (INT64_MIN, value + 1),
            "": (value, value + 1),
        }[op]
        old_low, old_high = ranges.get(column, (INT64_MIN, INT64_MAX))
        ranges[column] = (max(old_low, low), min(old_high, high))
        expect_term = False
    if expect_term and ranges:
        raise SearchError(f"search query {text!r} ends with AND")
    return ranges
