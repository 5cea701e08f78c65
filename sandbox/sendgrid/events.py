"""Deterministic Event Webhook events for the recipients in the outbox.

Each recipient's fate is drawn from a generator seeded by (event seed, message id,
recipient address), so the same send with the same seed always produces the same
events, whatever else the server handled in between. Shares are plausible for a
marketing list (mostly delivered, ~40 % opened, ~10 % clicked, ~1 % unsubscribed),
and addresses at ``example.invalid`` always bounce, so tests can force a bounce.

Event fields follow SendGrid's Event Webhook: ``email, timestamp, event,
sg_event_id, sg_message_id, category`` plus per-event extras, and every
``custom_args`` key flattened onto the event.

Timestamps start at the send (or its ``send_at``) and follow within minutes,
compressed from a real audience's hours so a demo sees opens and clicks at once;
all of a message's events are queued for delivery when it is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

Event = dict[str, Any]

BOUNCE_DOMAIN = "example.invalid"
BOUNCE_RATE = 0.02
DROP_RATE = 0.01
DEFER_RATE = 0.03
OPEN_RATE = 0.40
CLICK_GIVEN_OPEN = 0.25  # 40 % x 25 % = 10 % of delivered recipients click
UNSUBSCRIBE_RATE = 0.01
SPAMREPORT_RATE = 0.002
DEFAULT_CLICK_URL = "https://shop.example.com/"

# Keys SendGrid itself sets on an event; a custom arg of the same name must not clobber them.
RESERVED = frozenset(
    {
        "email",
        "timestamp",
        "event",
        "sg_event_id",
        "sg_message_id",
        "category",
        "asm_group_id",
        "url",
        "reason",
        "type",
        "status",
        "response",
        "smtp-id",
        "useragent",
        "ip",
        "attempt",
        "tls",
    }
)
_URL = re.compile(r"""https?://[^\s"'<>)]+""")


def _rng(seed: int, message_id: str, email: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{message_id}|{email.lower()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _event_id(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("=")


def _urls(value: Any) -> Iterator[str]:
    """Links a recipient could click: URLs among template data values and in the content."""
    if isinstance(value, str):
        yield from _URL.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def _base_time(record: dict[str, Any]) -> int:
    received = int(datetime.fromisoformat(record["received_at"]).timestamp())
    return max(received, int(record.get("send_at") or 0))


def generate_events(record: dict[str, Any], *, seed: int) -> list[Event]:
    """The webhook events of one outbox record (one recipient of one message), in time order."""
    email: str = record["to"]["email"]
    rng = _rng(seed, record["x_message_id"], email)
    asm = record.get("asm") or {}
    smtp_id = f"<{record['x_message_id']}@sandbox.hearth>"
    custom = {k: v for k, v in (record.get("custom_args") or {}).items() if k not in RESERVED}
    events: list[Event] = []

    def emit(kind: str, at: int, **extra: Any) -> None:
        event = {
            **custom,
            "email": email,
            "timestamp": at,
            "event": kind,
            "sg_event_id": _event_id(rng),
            "sg_message_id": record["message_id"],
            "category": list(record.get("categories") or []),
            **extra,
        }
        if asm.get("group_id") is not None:
            event["asm_group_id"] = asm["group_id"]
        events.append(event)

    at = _base_time(record)
    emit("processed", at, **{"smtp-id": smtp_id})
    roll = rng.random()
    if email.lower().endswith("@" + BOUNCE_DOMAIN) or roll < BOUNCE_RATE:
        emit(
            "bounce",
            at + rng.randint(1, 30),
            **{"smtp-id": smtp_id},
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
        )
        return events
    if roll < BOUNCE_RATE + DROP_RATE:
        emit("dropped", at + 1, **{"smtp-id": smtp_id}, reason="Bounced Address")
        return events
    if roll < BOUNCE_RATE + DROP_RATE + DEFER_RATE:
        at += rng.randint(30, 120)
        emit(
            "deferred",
            at,
            **{"smtp-id": smtp_id},
            attempt="1",
            response="421 4.7.0 Try again later, closing connection.",
        )
    at += rng.randint(1, 30)
    emit("delivered", at, **{"smtp-id": smtp_id}, response="250 2.0.0 OK", tls=1)

    opened = rng.random() < OPEN_RATE
    clicked = opened and rng.random() < CLICK_GIVEN_OPEN
    leaves = rng.random()
    if opened:
        at += rng.randint(10, 300)
        emit("open", at, useragent="Mozilla/5.0 (sandbox)", ip="192.0.2.10", sg_machine_open=False)
    if clicked:
        links = sorted(set(_urls(record.get("dynamic_template_data")))) or sorted(set(_urls(record.get("content"))))
        at += rng.randint(5, 120)
        emit(
            "click",
            at,
            url=rng.choice(links) if links else DEFAULT_CLICK_URL,
            url_offset={"index": 0, "type": "html"},
            useragent="Mozilla/5.0 (sandbox)",
            ip="192.0.2.10",
        )
    if leaves < UNSUBSCRIBE_RATE:
        emit("group_unsubscribe" if asm.get("group_id") is not None else "unsubscribe", at + rng.randint(5, 120))
    elif leaves < UNSUBSCRIBE_RATE + SPAMREPORT_RATE:
        emit("spamreport", at + rng.randint(5, 120))
    return events
