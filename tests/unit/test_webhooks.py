"""Webhook verification and handling (hearth/webhooks.py), as plain Python."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from hearth.config import ConfigError
from hearth.ledger import SEND_ID_ARG, Ledger, SendKey
from hearth.rawzone import RawZone
from hearth.suppressions import Suppressions
from hearth.webhooks import (
    EMAIL_EVENTS,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SHOPIFY_HMAC_HEADER,
    SHOPIFY_WEBHOOKS,
    WebhookProcessor,
    sendgrid_event_id,
    shopify_hmac,
)
from sandbox.sendgrid.webhook import public_key_base64, sign

NOW = 1_780_000_000  # the fixed clock (Unix seconds)
SECRET = "shpss_test_secret"


class FlakySuppressions(Suppressions):
    """The real suppression list; ``fail`` makes writes raise (a store outage)."""

    fail = False

    def apply_events(self, events: Any, *, source: str = "sendgrid_webhook") -> int:
        if self.fail:
            raise OSError("disk full")
        return super().apply_events(events, source=source)


def rows(store: Suppressions) -> set[tuple[str, str, str | None, str]]:
    return {(r["email"], r["reason"], r["group"], r["source"]) for r in store.entries()}


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlakySuppressions]:
    suppressions = FlakySuppressions(tmp_path / "state.sqlite")
    yield suppressions
    suppressions.close()


@pytest.fixture
def processor(tmp_path: Path, key: ec.EllipticCurvePrivateKey, store: FlakySuppressions) -> WebhookProcessor:
    return WebhookProcessor(
        raw_zone=RawZone(tmp_path / "raw"),
        suppressions=store,
        sendgrid_public_key=public_key_base64(key),
        shopify_secret=SECRET,
        clock=lambda: float(NOW),
    )


def signed(key: ec.EllipticCurvePrivateKey, events: Any, at: int = NOW) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events, separators=(",", ":")).encode()
    return body, {SENDGRID_SIGNATURE_HEADER: sign(key, str(at), body), SENDGRID_TIMESTAMP_HEADER: str(at)}


def event(kind: str, email: str = "Ada@Example.com", at: int = NOW - 60, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": at,
        "event": kind,
        "sg_event_id": f"ev-{kind}-{email}-{at}",
        "sg_message_id": f"msg-{email}.filterdrecv-0",
        SEND_ID_ARG: f"key-{email}",
        **extra,
    }


def landed(raw: Path, source: str, stream: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in RawZone(raw).files(source, stream):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


# -- SendGrid signature -------------------------------------------------------------------------
def test_valid_signature_lands_the_batch(processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey) -> None:
    batch = [event("processed"), event("delivered", at=NOW - 30), event("open", at=NOW - 10)]
    reply = processor.sendgrid(*signed(key, batch))

    assert reply.status == 200
    assert reply.body == {"landed": 3, "quarantined": 0, "suppressed": 0}
    rows = landed(processor.raw_zone.raw_dir, *EMAIL_EVENTS)
    assert [r["id"] for r in rows] == [f"key-Ada@Example.com:{e['event']}:{e['timestamp']}" for e in batch]
    assert [r["updated_at"] for r in rows] == [datetime.fromtimestamp(e["timestamp"], UTC) for e in batch]
    assert [json.loads(r["record"]) for r in rows] == batch


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda body, headers: (body.replace(b"Ada", b"Eve"), headers), 403),  # tampered body
        (lambda body, headers: (body, {**headers, SENDGRID_TIMESTAMP_HEADER: str(NOW + 1)}), 403),  # moved stamp
        (lambda body, headers: (body, {**headers, SENDGRID_SIGNATURE_HEADER: "not base64!"}), 403),
        (lambda body, headers: (body, {SENDGRID_TIMESTAMP_HEADER: str(NOW)}), 401),  # no signature
        (lambda body, headers: (body, {SENDGRID_SIGNATURE_HEADER: headers[SENDGRID_SIGNATURE_HEADER]}), 401),
    ],
    ids=["tampered-body", "other-timestamp", "garbage-signature", "no-signature", "no-timestamp"],
)
def test_forged_or_unsigned_posts_are_refused_and_change_nothing(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey, store: FlakySuppressions, mutate: Any, status: int
) -> None:
    body, headers = mutate(*signed(key, [event("unsubscribe")]))
    reply = processor.sendgrid(body, headers)

    assert reply.status == status
    assert rows(store) == set()
    assert landed(processor.raw_zone.raw_dir, *EMAIL_EVENTS) == []


def test_a_signature_by_another_key_is_refused(processor: WebhookProcessor, store: FlakySuppressions) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert processor.sendgrid(*signed(other, [event("bounce")])).status == 403
    assert rows(store) == set()


@pytest.mark.parametrize(("offset", "status"), [(-601, 403), (601, 403), (-599, 200), (599, 200)])
def test_timestamps_more_than_ten_minutes_off_are_replays(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey, offset: int, status: int
) -> None:
    assert processor.sendgrid(*signed(key, [event("delivered")], at=NOW + offset)).status == status


def test_header_names_are_case_insensitive(processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey) -> None:
    body, headers = signed(key, [event("delivered")])
    assert processor.sendgrid(body, {k.lower(): v for k, v in headers.items()}).status == 200


def test_a_signed_body_that_is_not_an_array_is_a_bad_request(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey
) -> None:
    assert processor.sendgrid(*signed(key, {"event": "open"})).status == 400


def test_unconfigured_endpoints_answer_503(tmp_path: Path, store: FlakySuppressions) -> None:
    bare = WebhookProcessor(raw_zone=RawZone(tmp_path), suppressions=store)
    assert bare.sendgrid(b"[]", {}).status == 503
    assert bare.shopify(b"{}", {}).status == 503


def test_a_malformed_public_key_names_the_setting(tmp_path: Path, store: FlakySuppressions) -> None:
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        WebhookProcessor(raw_zone=RawZone(tmp_path), suppressions=store, sendgrid_public_key="bm90IGEga2V5")


# -- events → suppressions ------------------------------------------------------------------------
SG = "sendgrid_webhook"


def test_suppressing_events_are_applied_in_the_request(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey, store: FlakySuppressions
) -> None:
    batch = [
        event("delivered", "a@example.com"),
        event("unsubscribe", " A@Example.com"),
        event("group_unsubscribe", "b@example.com", asm_group_id=3),
        event("bounce", "c@example.invalid", type="bounce", status="5.1.1"),
        event("bounce", "blocked@example.com", type="blocked", status="4.0.0"),  # temporary: not suppressed
        event("spamreport", "d@example.com"),
        event("dropped", "e@example.com", reason="Invalid"),
        event("open", "f@example.com"),
        event("click", "g@example.com", url="https://shop.example.com/"),
        {"event": "unsubscribe", "timestamp": NOW},  # no address: nothing to suppress
    ]
    reply = processor.sendgrid(*signed(key, batch))

    assert reply.status == 200 and reply.body["suppressed"] == 5
    assert rows(store) == {
        ("a@example.com", "unsubscribe", None, SG),
        ("b@example.com", "group_unsubscribe", "3", SG),
        ("c@example.invalid", "bounce", None, SG),
        ("d@example.com", "spamreport", None, SG),
        ("e@example.com", "dropped", None, SG),
    }
    assert store.is_suppressed("b@example.com", group=3) and not store.is_suppressed("b@example.com", group=4)


# -- idempotency and failures -----------------------------------------------------------------------
def test_event_ids_ignore_sendgrids_unstable_event_id() -> None:
    first = event("open", sg_event_id="one")
    retry = event("open", sg_event_id="two")
    assert sendgrid_event_id(first) == sendgrid_event_id(retry) == f"key-Ada@Example.com:open:{NOW - 60}"
    clicks = {sendgrid_event_id(event("click", url=f"https://shop.example.com/{n}")) for n in range(2)}
    assert len(clicks) == 2  # two links clicked in the same second stay two rows
    no_send_id = {k: v for k, v in event("open").items() if k != SEND_ID_ARG}
    assert sendgrid_event_id(no_send_id) == f"msg-Ada@Example.com.filterdrecv-0:open:{NOW - 60}"


def test_redelivery_lands_the_same_ids_and_suppresses_the_same(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey, store: FlakySuppressions
) -> None:
    batch = [event("delivered", "a@example.com"), event("unsubscribe", "a@example.com")]
    retry = [{**e, "sg_event_id": e["sg_event_id"] + "-retry"} for e in batch]  # SendGrid's retry
    assert processor.sendgrid(*signed(key, batch)).status == 200
    assert processor.sendgrid(*signed(key, retry, at=NOW + 30)).status == 200

    events = landed(processor.raw_zone.raw_dir, *EMAIL_EVENTS)
    assert len(events) == 4
    assert len({(r["id"], r["updated_at"]) for r in events}) == 2  # what staging keeps
    assert rows(store) == {("a@example.com", "unsubscribe", None, SG)}


def test_a_processing_failure_answers_500_and_the_retry_applies_it(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey, store: FlakySuppressions
) -> None:
    body, headers = signed(key, [event("spamreport", "a@example.com")])
    store.fail = True
    assert processor.sendgrid(body, headers).status == 500
    assert landed(processor.raw_zone.raw_dir, *EMAIL_EVENTS) == []
    store.fail = False
    assert processor.sendgrid(body, headers).status == 200
    assert rows(store) == {("a@example.com", "spamreport", None, SG)}


def test_events_that_cannot_land_are_quarantined_not_lost(
    processor: WebhookProcessor, key: ec.EllipticCurvePrivateKey
) -> None:
    batch = [event("delivered"), {"event": "open"}, "not an object"]
    reply = processor.sendgrid(*signed(key, batch))
    assert reply.status == 200
    assert reply.body == {"landed": 1, "quarantined": 2, "suppressed": 0}


def test_events_reconcile_the_ledger(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    ledger = Ledger(tmp_path / "state.sqlite")
    send = SendKey("cust-1", "a@example.com", "winback", 1, "order-9")
    ledger.reserve("run-1", [send])
    ledger.mark_sending("batch-1", [send.send_key])
    ledger.mark_unknown("batch-1", "timeout")  # the API call timed out: did it send?
    processor = WebhookProcessor(
        raw_zone=RawZone(tmp_path / "raw"),
        suppressions=Suppressions(tmp_path / "state.sqlite"),
        sendgrid_public_key=public_key_base64(key),
        reconcile=ledger.reconcile,
        clock=lambda: float(NOW),
    )
    stranger = event("delivered", "b@example.com")  # a key the ledger never saw is accepted too
    delivered = {**event("delivered", "a@example.com"), SEND_ID_ARG: send.send_key, "sg_message_id": "X1.f.0"}
    assert processor.sendgrid(*signed(key, [delivered, stranger])).status == 200
    row = ledger.get(send.send_key)
    assert row is not None and (row["status"], row["message_id"]) == ("accepted", "X1")


# -- Shopify --------------------------------------------------------------------------------------------
def shopify_headers(body: bytes, topic: str, webhook_id: str = "wh-1", secret: str = SECRET) -> dict[str, str]:
    return {
        SHOPIFY_HMAC_HEADER: shopify_hmac(secret, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-API-Version": "2026-04",
        "X-Shopify-Triggered-At": "2026-05-01T12:00:00.123456789Z",
    }


REDACT = {
    "shop_id": 954889,
    "shop_domain": "demo.myshopify.com",
    "customer": {"id": 191167, "email": " Ada@Example.com ", "phone": "555-625-1199"},
    "orders_to_redact": [299938, 280263],
}


def test_shopify_hmac_matches_the_documented_construction() -> None:
    # base64(HMAC-SHA256(secret, body)), checked against an independently computed value
    assert shopify_hmac("hush", b'{"a":1}') == "3+Yq/TpwjqJ7IXuMq8EfED7b+y0XbokqOKLUdagDxMI="


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: shopify_headers(body, "customers/redact", secret="wrong"),
        lambda body: {**shopify_headers(body, "customers/redact"), SHOPIFY_HMAC_HEADER: ""},
        lambda body: {k: v for k, v in shopify_headers(body, "customers/redact").items() if k != SHOPIFY_HMAC_HEADER},
        lambda body: shopify_headers(body.replace(b"Ada", b"Eve"), "customers/redact"),  # HMAC of another body
    ],
    ids=["wrong-secret", "empty", "missing", "other-body"],
)
def test_shopify_bad_hmac_is_401_and_changes_nothing(
    processor: WebhookProcessor, store: FlakySuppressions, headers: Any
) -> None:
    body = json.dumps(REDACT).encode()
    assert processor.shopify(body, headers(body)).status == 401
    assert rows(store) == set()
    assert landed(processor.raw_zone.raw_dir, *SHOPIFY_WEBHOOKS) == []


def test_customers_redact_suppresses_forever_and_lands_the_request(
    processor: WebhookProcessor, store: FlakySuppressions
) -> None:
    body = json.dumps(REDACT).encode()
    reply = processor.shopify(body, shopify_headers(body, "customers/redact"))

    assert reply.status == 200 and reply.body == {"topic": "customers/redact", "landed": 1, "suppressed": True}
    assert rows(store) == {("ada@example.com", "redacted", None, "shopify_webhook")}
    with pytest.raises(ValueError, match="forever"):
        store.remove("ada@example.com", "redacted")
    [row] = landed(processor.raw_zone.raw_dir, *SHOPIFY_WEBHOOKS)
    assert row["id"] == "wh-1"
    assert row["updated_at"] == datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    record = json.loads(row["record"])
    assert record == {
        "topic": "customers/redact",
        "webhook_id": "wh-1",
        "event_id": None,
        "shop_domain": "demo.myshopify.com",
        "api_version": "2026-04",
        "triggered_at": "2026-05-01T12:00:00.123456789Z",
        "payload": REDACT,
    }


@pytest.mark.parametrize(
    ("topic", "level"),
    [("customers/data_request", logging.WARNING), ("shop/redact", logging.WARNING), ("orders/create", logging.INFO)],
)
def test_other_topics_are_landed_and_logged_without_suppressing(
    processor: WebhookProcessor, store: FlakySuppressions, caplog: pytest.LogCaptureFixture, topic: str, level: int
) -> None:
    payload = {"shop_id": 954889, "shop_domain": "demo.myshopify.com", "customer": {"id": 1, "email": "a@b.co"}}
    body = json.dumps(payload).encode()
    with caplog.at_level(logging.INFO, logger="hearth.webhooks"):
        reply = processor.shopify(body, shopify_headers(body, topic, webhook_id="wh-9"))

    assert reply.status == 200 and reply.body["suppressed"] is False
    assert rows(store) == set()
    [row] = landed(processor.raw_zone.raw_dir, *SHOPIFY_WEBHOOKS)
    assert json.loads(row["record"])["topic"] == topic
    [logged] = [r for r in caplog.records if r.name == "hearth.webhooks"]
    assert logged.levelno == level and topic in logged.getMessage() and "wh-9" in logged.getMessage()
    assert "a@b.co" not in caplog.text  # personal data stays out of the logs


def test_shopify_without_topic_or_json_object_is_a_bad_request(processor: WebhookProcessor) -> None:
    body = json.dumps(REDACT).encode()
    no_topic = {k: v for k, v in shopify_headers(body, "x").items() if k != "X-Shopify-Topic"}
    assert processor.shopify(body, no_topic).status == 400
    array = b"[1, 2]"
    assert processor.shopify(array, shopify_headers(array, "customers/redact")).status == 400


def test_shopify_retries_land_under_one_id(processor: WebhookProcessor) -> None:
    body = json.dumps(REDACT).encode()
    headers = {k: v for k, v in shopify_headers(body, "customers/redact").items() if k != "X-Shopify-Webhook-Id"}
    assert processor.shopify(body, headers).status == 200
    assert processor.shopify(body, headers).status == 200
    deliveries = landed(processor.raw_zone.raw_dir, *SHOPIFY_WEBHOOKS)
    assert len(deliveries) == 2 and len({(r["id"], r["updated_at"]) for r in deliveries}) == 1


def test_signed_unsubscribe_link_suppresses_and_forged_one_does_not(tmp_path: Path) -> None:
    from hearth.rawzone import RawZone
    from hearth.suppressions import Suppressions
    from hearth.unsubscribe import make_token
    from hearth.webhooks import WebhookProcessor

    with Suppressions(tmp_path / "state.sqlite") as suppressions:
        processor = WebhookProcessor(raw_zone=RawZone(tmp_path / "raw"), suppressions=suppressions,
                                     unsubscribe_secret="s3cret")  # fmt: skip
        assert processor.unsubscribe(make_token("Jane@Example.com ", "s3cret")).status == 200
        assert suppressions.is_suppressed("jane@example.com")
        forged = processor.unsubscribe(make_token("bob@example.com", "not-the-secret"))
        assert forged.status == 403
        assert not suppressions.is_suppressed("bob@example.com")


@given(st.emails() | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_an_unsubscribe_link_reads_back_to_its_address_through_a_query_string(email: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    from hearth.suppressions import normalize_email
    from hearth.unsubscribe import read_token, unsubscribe_url

    url = unsubscribe_url("https://hearth.example/", email, "s3cret")
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("hearth.example", "/unsubscribe")
    [token] = parse_qs(parts.query, strict_parsing=True)["token"]  # as the webhooks app's router reads it
    assert read_token(token, "s3cret") == normalize_email(email)
