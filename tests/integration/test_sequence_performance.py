"""sequence_performance from the raw zone: ledger export + SendGrid events + orders, against hand-made rows.

A 200-customer demo shop is ingested through the sandboxes and built once with no Hearth
streams at all (the mart must build empty). Then a few ledger rows are written through
the real Ledger around real orders — treated and holdout people with an order inside the
window, one with an order just outside it, one skipped for consent — exported with
``export_ledger``, SendGrid events (one delivered twice, as a webhook retry does) land in
``raw/hearth/email_events``, and the mart is rebuilt.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.sources import land_every_stream
from hearth.config import Settings
from hearth.ledger import Ledger, SendKey, key_of
from hearth.ledger_export import export_ledger
from hearth.rawzone import RawZone
from hearth.webhooks import EMAIL_EVENTS, sendgrid_event_id
from sandbox.generator import generate_shop
from sandbox.run import start_sandboxes
from tests.integration.warehouse_fixture import dbt

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
WINDOW = timedelta(days=7)  # var attribution_window_days
# Tests of models outside the selection (e.g. relationships to customers) stay out.
SELECT = [
    "--select",
    "+sequence_performance",
    "--indirect-selection",
    "cautious",
    "--vars",
    f"as_of: '{NOW.isoformat()}'",
]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Person:
    customer_key: str
    email: str
    order_at: datetime | None = None
    revenue: Decimal = Decimal("0")


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        cursor = db.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def ingest(data_dir: Path) -> None:
    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=1000.0)
    try:
        settings = Settings.from_env({**sandboxes.env(), "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
        land_every_stream(settings, now=datetime.now(UTC))
    finally:
        sandboxes.stop()


def pick_people(data_dir: Path) -> dict[str, Person]:
    """Buyers whose one order has no other order of theirs within 10 days, and two people without orders."""
    buyers = query(data_dir, """
        with isolated as (
            select customer_key, channel, ordered_at, net_revenue,
                   coalesce(ordered_at - lag(ordered_at) over w > interval 10 day, true)
                   and coalesce(lead(ordered_at) over w - ordered_at > interval 10 day, true) as alone
            from orders where not is_cancelled
            window w as (partition by customer_key order by ordered_at)
        )
        select customer_key, ordered_at, net_revenue from isolated
        where alone and net_revenue > 0 and channel = 'shopify'
        qualify row_number() over (partition by customer_key order by ordered_at) = 1
        order by customer_key limit 4
    """)  # fmt: skip
    assert len(buyers) == 4, "the demo shop is too small for the scenario"
    people = {
        name: Person(row["customer_key"], f"{name}@example.com", row["ordered_at"], row["net_revenue"])
        for name, row in zip(("sent_buyer", "holdout_buyer", "late_buyer", "unsubscribed"), buyers, strict=True)
    }
    # Keys no order carries: people who bought nothing.
    people["sent_idle"] = Person("no-orders-1", "sent_idle@example.com")
    people["holdout_idle"] = Person("no-orders-2", "holdout_idle@example.com")
    return people


def key(person: Person, step: str = "reminder") -> SendKey:
    return SendKey(person.customer_key, person.email, "abandoned_cart", step, f"checkout-{person.customer_key[:8]}")


def write_ledger(data_dir: Path, people: dict[str, Person]) -> None:
    """Treated and holdout rows around the people's orders, through the real ledger."""
    clock = Clock()
    with Ledger(data_dir / "state.sqlite", clock=clock) as ledger:

        def send(person: Person, at: datetime, batch: str, step: str = "reminder") -> None:
            clock.now = at
            (reserved,) = ledger.reserve("run-1", [key(person, step)])
            ledger.mark_sending(batch, [reserved.send_key])
            ledger.mark_accepted(batch, f"msg-{batch}")

        def skip(person: Person, at: datetime, reason: str) -> None:
            clock.now = at
            assert ledger.record_skips("run-1", [(key(person), reason)]) == 1

        assert people["sent_buyer"].order_at and people["holdout_buyer"].order_at and people["late_buyer"].order_at
        send(people["sent_buyer"], people["sent_buyer"].order_at - timedelta(days=2), "b1")
        send(people["sent_idle"], NOW - timedelta(days=20), "b2")
        skip(people["holdout_buyer"], people["holdout_buyer"].order_at - timedelta(days=3), "holdout")
        skip(people["holdout_idle"], NOW - timedelta(days=20), "holdout")
        # Consent skips are neither treated nor control, even with an order in the window.
        assert people["unsubscribed"].order_at
        skip(people["unsubscribed"], people["unsubscribed"].order_at - timedelta(days=1), "unsubscribed")
        # The next step: its order comes a second after the window closes.
        send(people["late_buyer"], people["late_buyer"].order_at - WINDOW - timedelta(seconds=1), "b3", "nudge")


def land_events(data_dir: Path, people: dict[str, Person]) -> None:
    def event(person: Person, name: str, at: datetime, **extra: Any) -> dict[str, Any]:
        return {"event": name, "email": person.email.upper(), "timestamp": int(at.timestamp()),
                "sg_message_id": "msg.x", "hearth_send_key": key_of(key(person)), **extra}  # fmt: skip

    buyer, idle = people["sent_buyer"], people["sent_idle"]
    assert buyer.order_at
    sent = buyer.order_at - timedelta(days=2)
    batch = [
        event(buyer, "delivered", sent + timedelta(seconds=5)),
        event(buyer, "open", sent + timedelta(hours=1)),
        event(buyer, "open", sent + timedelta(hours=2)),
        event(buyer, "click", sent + timedelta(hours=2), url="https://shop.example/cart"),
        event(idle, "bounce", NOW - timedelta(days=20), reason="550 no such user"),
    ]
    zone = RawZone(data_dir / "raw")
    for events in (batch, batch[:1]):  # SendGrid retries a batch: the delivered event lands twice
        with zone.open_load(*EMAIL_EVENTS) as load:
            load.write(
                events,
                id_of=sendgrid_event_id,
                updated_at_of=lambda e: datetime.fromtimestamp(e["timestamp"], UTC).isoformat(),
            )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Person], list[dict[str, Any]]]]:
    data_dir = tmp_path_factory.mktemp("sequence_performance")
    generate_shop(data_dir / "sandbox" / "shop", seed=11, customers=200, now=NOW, years=1.0)
    ingest(data_dir)
    dbt(data_dir, "build", *SELECT)
    before = query(data_dir, "select * from sequence_performance")
    people = pick_people(data_dir)
    write_ledger(data_dir, people)
    assert export_ledger(data_dir) == 6
    land_events(data_dir, people)
    dbt(data_dir, "build", *SELECT)
    yield data_dir, people, before


def test_builds_empty_before_any_send(built: tuple[Path, dict[str, Person], list[dict[str, Any]]]) -> None:
    _, _, before = built
    assert before == []


def test_staging_keeps_one_row_per_send_and_per_event(built: tuple[Path, dict[str, Person], list[dict]]) -> None:
    data_dir, people, _ = built
    sends = query(data_dir, "select status, reason, is_accepted, is_holdout from stg_hearth__sends order by all")
    assert len(sends) == 6
    assert sum(s["is_accepted"] for s in sends) == 3 and sum(s["is_holdout"] for s in sends) == 2
    events = query(data_dir, "select send_key, event, email, url from stg_hearth__email_events")
    assert len(events) == 5  # the retried delivered event is one event
    clicks = [e for e in events if e["event"] == "click"]
    assert clicks == [{"send_key": key_of(key(people["sent_buyer"])), "event": "click",
                       "email": people["sent_buyer"].email.lower(), "url": "https://shop.example/cart"}]  # fmt: skip


def test_reminder_counts_and_attributed_revenue(built: tuple[Path, dict[str, Person], list[dict]]) -> None:
    data_dir, people, _ = built
    (row,) = query(data_dir, "select * from sequence_performance where step = 'reminder'")
    sent_revenue, holdout_revenue = people["sent_buyer"].revenue, people["holdout_buyer"].revenue
    assert {k: row[k] for k in ("sequence_step", "audience", "sends_accepted", "holdouts", "deliveries",
                                "unique_opens", "unique_clicks", "bounces", "unsubscribes")} == {
        "sequence_step": "abandoned_cart:reminder", "audience": 4, "sends_accepted": 2, "holdouts": 2,
        "deliveries": 1, "unique_opens": 1, "unique_clicks": 1, "bounces": 1, "unsubscribes": 0,
    }  # fmt: skip
    assert (row["sent_orders"], row["sent_revenue"]) == (1, sent_revenue)
    assert (row["holdout_orders"], row["holdout_revenue"]) == (1, holdout_revenue)
    assert row["sent_conversion_rate"] == row["holdout_conversion_rate"] == 0.5
    assert row["incremental_orders"] == 0.0
    expected = (sent_revenue / 2 - holdout_revenue / 2) * 4
    assert row["incremental_revenue"] == expected.quantize(Decimal("0.01"))
    assert row["incremental_revenue_per_1000"] == (expected * 250).quantize(Decimal("0.01"))


def test_an_order_after_the_window_is_not_attributed(built: tuple[Path, dict[str, Person], list[dict]]) -> None:
    data_dir, _, _ = built
    (row,) = query(data_dir, "select * from sequence_performance where step = 'nudge'")
    assert (row["audience"], row["sends_accepted"], row["holdouts"]) == (1, 1, 0)
    assert (row["sent_orders"], row["sent_revenue"], row["sent_conversion_rate"]) == (0, Decimal("0.00"), 0.0)
    assert row["holdout_conversion_rate"] is None and row["incremental_revenue"] is None
