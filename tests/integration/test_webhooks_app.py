"""The webhook app on loopback, fed by the SendGrid sandbox's real signed event batches.

One module-scoped stack: the app over a fresh ``$HEARTH_DATA_DIR``, the SendGrid
sandbox posting to it, two sends through the official client (one with an ASM
group, one without) whose recipients include ``example.invalid`` addresses that
always bounce. The sandbox's event outcomes are a pure function of seed, message
and recipient (``sandbox/sendgrid/events.py``), so the events it must have posted
are recomputed from its outbox and compared with what landed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid import SendGridAPIClient

from flows.webhooks_app import WebhookServer
from hearth.config import Settings
from hearth.ledger import SEND_ID_ARG, Ledger, SendKey
from hearth.rawzone import RawZone
from hearth.suppressions import Suppressions
from hearth.webhooks import EMAIL_EVENTS, SHOPIFY_WEBHOOKS, WebhookProcessor, sendgrid_event_id, shopify_hmac
from sandbox.sendgrid import SANDBOX_API_KEY, SendGridSandbox
from sandbox.sendgrid.events import generate_events
from sandbox.sendgrid.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    load_or_create_signing_key,
    public_key_base64,
    sign,
)

SEED = 6  # an event seed under which these sends see every suppressing event (asserted, not assumed)
GROUP = 7
SECRET = "shpss_integration_secret"
GLOBAL_REASONS = {"unsubscribe", "bounce", "spamreport", "dropped"}


@dataclass
class Stack:
    settings: Settings
    app: WebhookServer
    sandbox: SendGridSandbox
    http: requests.Session
    expected: list[dict[str, Any]]  # every event the sandbox had to post
    keys: list[str]  # ledger keys of the sends

    def suppressions(self) -> Suppressions:
        return Suppressions(self.settings.state_path)

    def landed(self, source: str, stream: str) -> list[dict[str, Any]]:
        zone = RawZone(self.settings.raw_dir)
        return [row for path in zone.files(source, stream) for row in pq.read_table(path).to_pylist()]


def mail(recipients: list[tuple[str, str]], asm_group: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "shop@example.com"},
        "subject": "We miss you",
        "content": [{"type": "text/plain", "value": "Come back: https://shop.example.com/"}],
        "personalizations": [
            {"to": [{"email": email}], "custom_args": {SEND_ID_ARG: key}} for email, key in recipients
        ],
        "categories": ["winback"],
    }
    if asm_group is not None:
        body["asm"] = {"group_id": asm_group}
    return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("data")
    outbox = data / "sandbox" / "sendgrid"
    # The sandbox signs with the key in its outbox directory: create it first so the app can trust it.
    public_key = public_key_base64(load_or_create_signing_key(outbox / "webhook_signing_key.pem"))
    env = {"HEARTH_DATA_DIR": str(data), "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key, "SHOPIFY_WEBHOOK_SECRET": SECRET}
    settings = Settings.from_env(env, dotenv=False)
    ledger = Ledger(settings.state_path)
    http = requests.Session()
    http.trust_env = False  # loopback only: never through a proxy from the environment
    with (
        WebhookServer(WebhookProcessor.from_settings(settings)) as app,
        SendGridSandbox(outbox, webhook_url=f"{app.url}/webhooks/sendgrid", event_seed=SEED) as sandbox,
    ):
        client = SendGridAPIClient(SANDBOX_API_KEY, host=sandbox.url)
        keys: list[str] = []
        for name, group in (("grouped", GROUP), ("global", None)):
            people = [SendKey(f"{name}-{i}", f"{name}{i}@example.com", "winback", 1, "t") for i in range(150)]
            people.append(SendKey(f"{name}-gone", f"{name}.gone@example.invalid", "winback", 1, "t"))
            ledger.reserve("run-1", people)
            batch = [p.send_key for p in people]
            ledger.mark_sending(name, batch)
            client.send(mail([(p.email, p.send_key) for p in people], group))
            ledger.mark_unknown(name, "response lost")  # only the webhook can now prove the send
            keys.extend(batch)
        sandbox.flush_events()  # the background thread may have posted some already
        expected = [e for record in sandbox.outbox() for e in generate_events(record, seed=SEED)]
        yield Stack(settings, app, sandbox, http, expected, keys)
    ledger.close()


def test_every_event_landed_once_per_id(stack: Stack) -> None:
    landed = stack.landed(*EMAIL_EVENTS)
    assert len(stack.expected) > 302  # processed for every recipient, and more
    assert {row["id"] for row in landed} == {sendgrid_event_id(e) for e in stack.expected}
    by_id = {row["id"]: json.loads(row["record"]) for row in landed}
    for event in stack.expected:
        record = by_id[sendgrid_event_id(event)]
        assert (record["email"], record["event"], record[SEND_ID_ARG]) == (
            event["email"],
            event["event"],
            event[SEND_ID_ARG],
        )


def test_unsubscribes_and_bounces_are_suppressed_at_once(stack: Stack) -> None:
    kinds = {e["event"] for e in stack.expected}
    assert GLOBAL_REASONS | {"group_unsubscribe"} <= kinds  # the seed exercises each path
    everywhere = {e["email"] for e in stack.expected if e["event"] in GLOBAL_REASONS}
    in_group = {e["email"] for e in stack.expected if e["event"] == "group_unsubscribe"}
    assert {"grouped.gone@example.invalid", "global.gone@example.invalid"} <= everywhere
    recipients = {e["email"] for e in stack.expected}
    with stack.suppressions() as suppressions:
        assert suppressions.suppressed_set(recipients) == everywhere | in_group
        assert suppressions.suppressed_set(in_group, group=GROUP) == in_group
        assert suppressions.suppressed_set(in_group - everywhere, group=GROUP + 1) == set()


def test_webhook_events_reconcile_the_ledger(stack: Stack) -> None:
    with Ledger(stack.settings.state_path) as ledger:
        assert set(ledger.statuses(stack.keys).values()) == {"accepted"}


def test_a_forged_post_is_rejected_and_changes_nothing(stack: Stack) -> None:
    url = f"{stack.app.url}/webhooks/sendgrid"
    victim = "grouped0@example.com"
    body = json.dumps([{"email": victim, "event": "unsubscribe", "timestamp": 1_780_000_000}]).encode()
    files = RawZone(stack.settings.raw_dir).files(*EMAIL_EVENTS)
    with stack.suppressions() as suppressions:
        before = suppressions.entries()
    forger = ec.generate_private_key(ec.SECP256R1())
    stamp = str(int(time.time()))
    forged = stack.http.post(
        url, data=body, headers={SIGNATURE_HEADER: sign(forger, stamp, body), TIMESTAMP_HEADER: stamp}
    )
    unsigned = stack.http.post(url, data=body, headers={"Content-Type": "application/json"})

    assert (forged.status_code, unsigned.status_code) == (403, 401)
    assert RawZone(stack.settings.raw_dir).files(*EMAIL_EVENTS) == files
    with stack.suppressions() as suppressions:
        assert suppressions.entries() == before


def test_shopify_redact_with_a_valid_hmac_suppresses_and_a_forged_one_is_401(stack: Stack) -> None:
    url = f"{stack.app.url}/webhooks/shopify"

    def post(payload: dict[str, Any], webhook_id: str, secret: str) -> requests.Response:
        body = json.dumps(payload).encode()
        headers = {
            "X-Shopify-Hmac-Sha256": shopify_hmac(secret, body),
            "X-Shopify-Topic": "customers/redact",
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "Content-Type": "application/json",
        }
        return stack.http.post(url, data=body, headers=headers)

    def redact(email: str) -> dict[str, Any]:
        return {"shop_domain": "demo.myshopify.com", "customer": {"id": 7, "email": email}, "orders_to_redact": [1]}

    forged = post(redact("forged@example.com"), "wh-forged", "not-the-secret")
    valid = post(redact("Redact.Me@example.com"), "wh-valid", SECRET)

    assert (forged.status_code, valid.status_code) == (401, 200)
    with stack.suppressions() as suppressions:
        assert suppressions.is_suppressed("redact.me@example.com")
        assert not suppressions.is_suppressed("forged@example.com")
        assert [e["reason"] for e in suppressions.entries("redact.me@example.com")] == ["redacted"]
    [row] = stack.landed(*SHOPIFY_WEBHOOKS)
    record = json.loads(row["record"])
    assert (row["id"], record["topic"], record["payload"]["customer"]["email"]) == (
        "wh-valid",
        "customers/redact",
        "Redact.Me@example.com",
    )


def test_healthz(stack: Stack) -> None:
    reply = stack.http.get(f"{stack.app.url}/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "sendgrid": True, "shopify": True}
