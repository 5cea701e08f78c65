"""One sequence run: trigger rows → candidates → policy → ledger → SendGrid → ledger.

Plain Python (the Prefect flow in ``flows/sequences.py`` wraps it). The protocol
that keeps email at most once:

1. keys already in the ledger (sent, skipped, in flight) are not considered again;
2. every policy skip is written as a terminal ``skipped`` row with its reason;
3. sendable keys are *reserved* in one transaction — two runs at once split them,
   never share them;
4. each batch (≤ 1000) is marked ``sending`` before the API call and ``accepted``,
   ``failed`` (nothing sent) or ``unknown`` (maybe sent) after it, one batch at a time
   (a background thread makes the calls while the next body is built). ``unknown`` keys
   are reconciled from webhook events, never resent.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from hearth.ledger import Ledger, key_of
from hearth.policy import Candidate, Decision, PolicyConfig, decide
from hearth.sequences import Sequence, Step
from hearth.suppressions import Suppressions
from hearth.templates import TemplateError, dynamic_template_data
from hearth.unsubscribe import unsubscribe_url


@dataclass(frozen=True)
class ShopContext:
    """What every email says about the shop, and where unsubscribe links point."""

    name: str
    url: str
    address: str
    public_url: str
    secret_key: str


@dataclass
class Planned:
    """A candidate the policy let through, with its rendered template data."""

    candidate: Candidate
    data: dict[str, Any]

    @functools.cached_property
    def send_key(self) -> str:
        return key_of(self.candidate)  # a SHA-256, read several times per send: computed once


@dataclass
class RunSummary:
    sequence: str
    dry_run: bool
    considered: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # who would get / got what (dry runs, artifacts)

    def count(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1


# -- candidates from the warehouse ---------------------------------------------------


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"trigger time {value!r} is neither a date nor a timestamp")


def _matches(step: Step, row: dict[str, Any]) -> bool:
    return all(row.get(column) == expected for column, expected in step.when.items())


def load_candidates(conn: duckdb.DuckDBPyConnection, sequence: Sequence, *, now: datetime) -> list[Candidate]:
    """Every (trigger row, step) of ``sequence`` that is due by ``now``."""
    rows = (
        conn.sql(
            f"""
        select t.*, c.email_consent, c.channels
        from {sequence.trigger_table} as t
        left join customers as c using (customer_key)
        """
        )
        .to_arrow_table()
        .to_pylist()
    )
    candidates = []
    for row in rows:
        trigger_at = _as_datetime(row[sequence.trigger_time])
        for step in sequence.steps:
            due_at = trigger_at + step.delay
            if not _matches(step, row) or due_at > now:
                continue
            candidates.append(
                Candidate(
                    customer_key=row["customer_key"],
                    email=row.get("email"),
                    first_name=row.get("first_name"),
                    timezone=row.get("timezone"),
                    is_marketable=bool(row.get("is_marketable")),
                    email_consent=row.get("email_consent"),
                    channels=row.get("channels") or "shopify",
                    sequence=sequence.name,
                    step=step.name,  # type: ignore[arg-type] - names, not positions: reordering steps keeps keys
                    trigger_id=str(row["trigger_id"]),
                    trigger_at=trigger_at,
                    due_at=due_at,
                    priority=sequence.priority,
                    payload=row,
                )
            )
    return candidates


def ordered_since_trigger(conn: duckdb.DuckDBPyConnection, sequence: Sequence) -> set[tuple[str, str]]:
    """(customer, trigger) pairs with an order after the trigger — re-checked at send time."""
    if "ordered_since_trigger" not in sequence.exit_when:
        return set()
    rows = conn.sql(
        f"""
        select distinct t.customer_key, cast(t.trigger_id as varchar)
        from {sequence.trigger_table} as t
        join orders as o
          on o.customer_key = t.customer_key and o.ordered_at > cast(t.{sequence.trigger_time} as timestamptz)
        """
    ).fetchall()
    return {(customer_key, trigger_id) for customer_key, trigger_id in rows}


# -- template data ------------------------------------------------------------------


def _money(value: Any) -> str:
    try:
        return _money_of(value)
    except TypeError:  # unhashable: not a price, and Decimal says so below
        return _money_of.__wrapped__(value)


@functools.lru_cache(maxsize=4096, typed=True)  # prices repeat across carts: formatted once each
def _money_of(value: Any) -> str:
    return f"${Decimal(str(value or 0)):,.2f}"


def _items(raw: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "title": item.get("title"),
            "quantity": item.get("quantity") or 1,
            "price": _money(item.get("unit_price") if "unit_price" in item else item.get("price")),
            "image_url": item.get("image_url"),
            "product_url": item.get("product_url"),
        }
        for item in raw or []
    ]


def template_data(candidate: Candidate, step: Step, shop: ShopContext) -> dict[str, Any]:
    """What a step's template renders, from the trigger row (validated by the template's contract)."""
    row = candidate.payload
    data: dict[str, Any] = {
        "first_name": candidate.first_name,
        "shop_name": shop.name,
        "shop_url": shop.url,
        "shop_address": shop.address,
        "unsubscribe_url": unsubscribe_url(shop.public_url, candidate.email or "", shop.secret_key),
    }
    if candidate.sequence == "abandoned_cart":
        data |= {"items": _items(row.get("items")), "checkout_url": row.get("checkout_url")}
    elif candidate.sequence == "replenishment":
        product = {"title": row.get("product_title"), "quantity": row.get("last_quantity"),
                   "price": row.get("product_price"), "image_url": row.get("product_image_url"),
                   "product_url": row.get("product_url")}  # fmt: skip
        data |= {"items": _items([product]), "reorder_url": row.get("product_url")}
    else:
        data |= {"items": _items(row.get("last_items"))}
    if step.discount:
        data["discount"] = {"code": step.discount.code, "percent": step.discount.percent}
    return dynamic_template_data(candidate.sequence, str(candidate.step), data)


# -- the run ------------------------------------------------------------------------


def policy_config(sequence: Sequence, *, cap_hours: float, shop_timezone: str) -> PolicyConfig:
    lateness = {(sequence.name, step.name): step.max_lateness or timedelta(days=36500) for step in sequence.steps}
    start, end = sequence.send_window
    return PolicyConfig(
        cap_hours=cap_hours,
        quiet_hours=(end, start),  # quiet outside the send window
        shop_timezone=shop_timezone,
        holdout={sequence.name: sequence.holdout_share},
        max_lateness=lateness,  # type: ignore[arg-type]
    )


def plan(
    conn: duckdb.DuckDBPyConnection,
    sequence: Sequence,
    ledger: Ledger,
    suppressions: Suppressions,
    *,
    now: datetime,
    shop: ShopContext,
    cap_hours: float = 16,
    shop_timezone: str = "UTC",
    dead_runs: Iterable[str] = (),
) -> tuple[list[Planned], list[tuple[Candidate, str]], RunSummary]:
    """Decide every due candidate: (to send, to skip with reason, summary with the deferrals).

    First turns the ``sending`` rows of dead runs (named in ``dead_runs``, or past the ledger's
    lease) into ``unknown``: they may have reached SendGrid and are never resent.
    """
    summary = RunSummary(sequence.name, dry_run=False)
    ledger.recover(dead_runs=dead_runs)
    candidates = load_candidates(conn, sequence, now=now)
    keys = [key_of(c) for c in candidates]  # hashed once, read twice
    known = ledger.statuses(keys)
    # A `reserved` key was never handed to SendGrid: it stays a candidate, and `reserve` claims it
    # again only once its run's lease is over (a crashed run must not strand it forever).
    fresh = [c for c, key in zip(candidates, keys, strict=True) if known.get(key, "reserved") == "reserved"]
    summary.considered = len(fresh)
    emails = [c.email for c in fresh if c.email]
    decisions = decide(
        fresh,
        now=now,
        suppressed=suppressions.suppressed_set(emails),
        recent_sends=ledger.recent_sends({c.customer_key for c in fresh}, now - timedelta(hours=cap_hours)),
        ordered_since=ordered_since_trigger(conn, sequence),
        config=policy_config(sequence, cap_hours=cap_hours, shop_timezone=shop_timezone),
    )
    to_send: list[Planned] = []
    skips: list[tuple[Candidate, str]] = []
    for candidate, decision in decisions:
        if decision.kind == "defer":
            summary.count(summary.deferred, decision.reason or "deferred")
        elif decision.kind == "skip":
            skips.append((candidate, decision.reason or "skipped"))
        else:
            try:
                data = template_data(candidate, sequence.step(str(candidate.step)), shop)
            except TemplateError as exc:  # one person's bad data must not stop the others
                skips.append((candidate, f"template_error: {exc}"))
                summary.rows.append(_row(candidate, Decision("skip", f"template_error: {exc}")))
                continue
            to_send.append(Planned(candidate, data))
        summary.rows.append(_row(candidate, decision))
    for _, reason in skips:
        summary.count(summary.skipped, reason.split(":")[0])
    return to_send, skips, summary


def _row(candidate: Candidate, decision: Decision) -> dict[str, Any]:
    return {
        "customer_key": candidate.customer_key,
        "email": candidate.email,
        "sequence": candidate.sequence,
        "step": candidate.step,
        "trigger_id": candidate.trigger_id,
        "decision": decision.kind,
        "reason": decision.reason or "",
        "not_before": decision.not_before.isoformat() if decision.not_before else "",
    }


def new_run_id() -> str:
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
