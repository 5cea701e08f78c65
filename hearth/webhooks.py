"""Incoming webhooks: SendGrid Event Webhook and Shopify (GDPR) topics — verification and handling.

Plain Python, no web framework: :class:`WebhookProcessor` takes the raw body and the
headers of a POST and returns a :class:`Reply` (status + JSON body); the ASGI app in
``flows/webhooks_app.py`` only moves bytes in and out.

SendGrid (``POST /webhooks/sendgrid``)
    * 401 when the signature or timestamp header is missing (unauthenticated);
      403 when the ECDSA signature does not verify, the timestamp is not a Unix time,
      or it is more than :data:`MAX_SKEW` away from now (a replay). Nothing is read
      from a body that is not verified.
    * 400 when a verified body is not a JSON array of objects.
    * Otherwise, within the request: suppress (unsubscribe, group_unsubscribe with its
      ASM group, bounce, spamreport, dropped — the mapping is
      :meth:`hearth.suppressions.Suppressions.apply_events`), land the batch in
      ``raw/hearth/email_events/``, hand it to the ledger's reconcile; then 200.
      Any failure answers 500 so SendGrid retries; every step is idempotent.

Shopify (``POST /webhooks/shopify``)
    * 401 when ``X-Shopify-Hmac-Sha256`` is missing or is not the base64 HMAC-SHA256
      of the raw body under the app secret (compared in constant time); 400 when the
      topic header or a JSON object body is missing.
    * Every topic lands in ``raw/shopify/webhooks/``; ``customers/redact`` also
      suppresses the customer's email for good (reason ``redacted``).

Raw-zone contracts (what dbt reads; ``record`` is JSON):
    ``raw/hearth/email_events``: ``id`` = :func:`sendgrid_event_id` (our send id + event
    + timestamp, stable across SendGrid's retries, whose ``sg_event_id`` is not),
    ``updated_at`` = the event's ``timestamp``; ``record`` = the event as SendGrid sent
    it: ``event, email, timestamp, sg_message_id, sg_event_id, category,
    asm_group_id, reason, type, url``, and our custom args flattened on it,
    among them :data:`SEND_ID_ARG`.

    ``raw/shopify/webhooks``: ``id`` = ``X-Shopify-Webhook-Id`` (same on retries),
    ``updated_at`` = ``X-Shopify-Triggered-At`` (null when absent); ``record`` =
    ``{topic, webhook_id, event_id, shop_domain, api_version, triggered_at, payload}``
    with ``payload`` the body verbatim. For ``topic = 'customers/redact'`` the
    person to erase is ``payload.customer.id`` / ``payload.customer.email`` /
    ``payload.customer.phone``, with ``payload.orders_to_redact`` (order ids).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from hearth.config import ConfigError, Settings
from hearth.ledger import SEND_ID_ARG, Ledger
from hearth.rawzone import RawZone, parse_timestamp
from hearth.suppressions import Suppressions
from hearth.unsubscribe import read_token

log = logging.getLogger(__name__)

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SHOPIFY_HMAC_HEADER = "X-Shopify-Hmac-Sha256"
SHOPIFY_TOPIC_HEADER = "X-Shopify-Topic"
SHOPIFY_WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
MAX_SKEW = timedelta(minutes=10)
MAX_BODY_BYTES = 16 * 1024 * 1024

EMAIL_EVENTS = ("hearth", "email_events")
SHOPIFY_WEBHOOKS = ("shopify", "webhooks")
REDACTED = "redacted"
# GDPR topics Hearth only records: answering a data request or erasing a shop's data is a person's job.
NEEDS_A_PERSON = frozenset({"customers/data_request", "shop/redact"})
SENDGRID_SOURCE, SHOPIFY_SOURCE = "sendgrid_webhook", "shopify_webhook"  # ``source`` of suppression rows


class SuppressionList(Protocol):
    """What the webhooks need of :class:`hearth.suppressions.Suppressions`."""

    def suppress(self, emails: str, reason: str, *, source: str = ...) -> int: ...

    def apply_events(self, events: Iterable[Mapping[str, Any]], *, source: str = ...) -> int: ...


Reconcile = Callable[[Sequence[dict[str, Any]]], object]


@dataclass(frozen=True)
class Reply:
    """What to answer: an HTTP status and a small JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Rejected(Exception):
    """A request that must be refused with ``status``; the message is safe to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- verification -------------------------------------------------------------------------------
def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def load_sendgrid_key(public_key: str) -> EventWebhook:
    """A verifier for the key shown in SendGrid's console (base64 DER SubjectPublicKeyInfo).

    Raises:
        ConfigError: the key does not parse.
    """
    try:
        verifier = EventWebhook(public_key.strip())
        if not isinstance(verifier.public_key, ec.EllipticCurvePublicKey):
            raise TypeError("not an elliptic-curve key")
        return verifier
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key: paste the verification key from "
            "SendGrid > Settings > Mail Settings > Signed Event Webhook (base64, no PEM lines)."
        ) from exc


def verify_sendgrid(
    verifier: EventWebhook,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    max_skew: timedelta = MAX_SKEW,
) -> None:
    """Check SendGrid's ECDSA signature over ``timestamp + body`` and the timestamp's freshness.

    Raises:
        Rejected: 401 without signature/timestamp headers, 403 for a bad signature or a
            timestamp more than ``max_skew`` from ``now`` (Unix seconds).
    """
    signature = _header(headers, SENDGRID_SIGNATURE_HEADER)
    timestamp = _header(headers, SENDGRID_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise Rejected(401, f"missing {SENDGRID_SIGNATURE_HEADER} or {SENDGRID_TIMESTAMP_HEADER}")
    try:
        valid = verifier.verify_signature(body.decode("utf-8"), signature, timestamp)
    except (UnicodeDecodeError, binascii.Error, ValueError):  # not UTF-8, signature not base64
        valid = False
    if not valid:
        raise Rejected(403, "invalid event webhook signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Rejected(403, "invalid event webhook timestamp") from None
    if abs(now - sent) > max_skew.total_seconds():
        raise Rejected(403, "stale event webhook timestamp (possible replay)")


def shopify_hmac(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value of ``body``: base64 HMAC-SHA256 under the app secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def verify_shopify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raises :class:`Rejected` (401) unless the HMAC header matches the body, compared in constant time."""
    given = _header(headers, SHOPIFY_HMAC_HEADER)
    if not given or not hmac.compare_digest(
        given.strip().encode(errors="replace"), shopify_hmac(secret, body).encode()
    ):
        raise Rejected(401, "invalid Shopify webhook HMAC")


# -- SendGrid events ------------------------------------------------------------------------------
def sendgrid_event_id(event: Mapping[str, Any]) -> str:
    """The raw-zone id of an event: our send id + event + timestamp.

    Falls back to SendGrid's message id, then the address, for mail that has no send
    id (sent outside the ledger). Clicks add a hash of the URL so two links clicked in
    the same second stay two rows.
    """
    send = event.get(SEND_ID_ARG) or event.get("sg_message_id") or event.get("email")
    if not send or "event" not in event or "timestamp" not in event:
        raise ValueError(f"event lacks {SEND_ID_ARG}/sg_message_id/email, event or timestamp")
    key = f"{send}:{event['event']}:{int(event['timestamp'])}"
    if event["event"] == "click" and event.get("url"):
        key += ":" + hashlib.sha256(str(event["url"]).encode()).hexdigest()[:12]
    return key


def _event_time(event: Mapping[str, Any]) -> str:
    return datetime.fromtimestamp(int(event["timestamp"]), UTC).isoformat()


def _json(body: bytes, kind: type) -> Any:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "body is not JSON") from None
    if not isinstance(value, kind):
        raise Rejected(400, f"body is not a JSON {'array' if kind is list else 'object'}")
    return value


# -- the processor ----------------------------------------------------------------------------------
class WebhookProcessor:
    """Verifies and applies webhook deliveries.

    Args:
        raw_zone: where batches land.
        suppressions: the suppression list (normally :class:`hearth.suppressions.Suppressions`).
        sendgrid_public_key: SendGrid's verification key; None answers 503 (not configured).
        shopify_secret: the Shopify app secret; None answers 503.
        reconcile: the ledger's event reconciliation, given each verified batch; optional.
            Requests are handled concurrently: the stores must be thread-safe (Hearth's are).
        clock: Unix time (injectable for tests).
        max_skew: how far a SendGrid timestamp may be from ``clock()``.
    """

    def __init__(
        self,
        *,
        raw_zone: RawZone,
        suppressions: SuppressionList,
        sendgrid_public_key: str | None = None,
        shopify_secret: str | None = None,
        reconcile: Reconcile | None = None,
        unsubscribe_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        max_skew: timedelta = MAX_SKEW,
    ) -> None:
        self.unsubscribe_secret = unsubscribe_secret
        self.raw_zone = raw_zone
        self.suppressions = suppressions
        self.sendgrid_verifier = load_sendgrid_key(sendgrid_public_key) if sendgrid_public_key else None
        self.shopify_secret = shopify_secret
        self.reconcile = reconcile
        self.clock = clock
        self.max_skew = max_skew

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookProcessor:
        """The processor over ``$HEARTH_DATA_DIR``: its raw zone, suppression list and ledger."""
        secret = settings.shopify.webhook_secret
        return cls(
            raw_zone=RawZone(settings.raw_dir),
            suppressions=Suppressions(settings.state_path),
            sendgrid_public_key=settings.sendgrid.webhook_public_key,
            shopify_secret=secret.reveal() if secret else None,
            # Events for keys the ledger does not know (mail sent outside it) are accepted unchanged.
            reconcile=Ledger(settings.state_path).reconcile,
            unsubscribe_secret=settings.shop.secret_key.reveal() if settings.shop.secret_key else None,
        )

    # -- one-click unsubscribe links (RFC 8058) ----------------------------------------------------
    def unsubscribe(self, token: str) -> Reply:
        """Suppress the address a signed link names, at once; forged links change nothing."""
        if self.unsubscribe_secret is None:
            return Reply(503, {"error": "HEARTH_SECRET_KEY is not configured"})
        email = read_token(token, self.unsubscribe_secret)
        if email is None:
            return Reply(403, {"error": "this unsubscribe link is not valid"})
        self.suppressions.suppress(email, "unsubscribe", source="unsubscribe_link")
        return Reply(200, {"unsubscribed": True})

    # -- SendGrid ---------------------------------------------------------------------------------
    def sendgrid(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Handle one Event Webhook POST (see the module docstring for the answers)."""
        if self.sendgrid_verifier is None:
            return Reply(503, {"error": "SENDGRID_WEBHOOK_PUBLIC_KEY is not configured"})
        try:
            _check_size(body)
            verify_sendgrid(self.sendgrid_verifier, body, headers, now=self.clock(), max_skew=self.max_skew)
            events = _json(body, list)
        except Rejected as exc:
            log.warning("sendgrid webhook rejected (%s): %s", exc.status, exc)
            return Reply(exc.status, {"error": str(exc)})
        try:
            return Reply(200, self._apply_sendgrid(events))
        except Exception:
            log.exception("sendgrid webhook batch of %d events failed; SendGrid will retry it", len(events))
            return Reply(500, {"error": "processing failed; retry"})

    def _apply_sendgrid(self, events: list[Any]) -> dict[str, Any]:
        objects = [e for e in events if isinstance(e, dict)]
        # First stop the mail: the suppression list maps events to reasons (hearth.suppressions).
        # A malformed timestamp only orders the event first; it must not block an unsubscribe.
        ordered = [e if _is_number(e.get("timestamp")) else {**e, "timestamp": 0} for e in objects]
        suppressed = self.suppressions.apply_events(ordered, source=SENDGRID_SOURCE)
        with self.raw_zone.open_load(*EMAIL_EVENTS) as load:
            for item in events:
                if not isinstance(item, dict):
                    load.quarantine(json.dumps(item, default=str), "event is not a JSON object", "webhooks.sendgrid")
            load.write(objects, id_of=sendgrid_event_id, updated_at_of=_event_time)
        if self.reconcile is not None:
            self.reconcile(objects)
        result = load.result
        log.info("sendgrid webhook: %d events landed, %d new suppressions", result.rows, suppressed)
        return {"landed": result.rows, "quarantined": result.quarantined, "suppressed": suppressed}

    # -- Shopify ------------------------------------------------------------------------------------
    def shopify(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Handle one Shopify webhook POST (see the module docstring for the answers)."""
        if self.shopify_secret is None:
            return Reply(503, {"error": "SHOPIFY_WEBHOOK_SECRET is not configured"})
        try:
            _check_size(body)
            verify_shopify(self.shopify_secret, body, headers)
            topic = _header(headers, SHOPIFY_TOPIC_HEADER)
            if not topic:
                raise Rejected(400, f"missing {SHOPIFY_TOPIC_HEADER}")
            payload = _json(body, dict)
        except Rejected as exc:
            log.warning("shopify webhook rejected (%s): %s", exc.status, exc)
            return Reply(exc.status, {"error": str(exc)})
        try:
            return Reply(200, self._apply_shopify(topic.strip(), payload, body, headers))
        except Exception:
            log.exception("shopify webhook %s failed; Shopify will retry it", topic)
            return Reply(500, {"error": "processing failed; retry"})

    def _apply_shopify(
        self, topic: str, payload: dict[str, Any], body: bytes, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        # Without a webhook id, a digest of topic + body still gives retries one id.
        webhook_id = _header(headers, SHOPIFY_WEBHOOK_ID_HEADER) or (
            "sha256-" + hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
        )
        record = {
            "topic": topic,
            "webhook_id": webhook_id,
            "event_id": _header(headers, "X-Shopify-Event-Id"),
            "shop_domain": _header(headers, "X-Shopify-Shop-Domain") or payload.get("shop_domain"),
            "api_version": _header(headers, "X-Shopify-API-Version"),
            "triggered_at": _header(headers, "X-Shopify-Triggered-At"),
            "payload": payload,
        }
        customer = payload.get("customer")
        customer = customer if isinstance(customer, dict) else {}
        suppressed = False
        if topic == "customers/redact":
            email = customer.get("email")
            if isinstance(email, str) and email.strip():
                # Before landing: stop the mail first; the warehouse follows at the next dbt build.
                self.suppressions.suppress(email, REDACTED, source=SHOPIFY_SOURCE)
                suppressed = True
        with self.raw_zone.open_load(*SHOPIFY_WEBHOOKS) as load:
            load.write([record], id_of=lambda r: r["webhook_id"], updated_at_of=lambda r: _instant(r["triggered_at"]))
        # Log ids only: the payloads of these topics are personal data.
        level = logging.WARNING if topic in NEEDS_A_PERSON else logging.INFO
        log.log(
            level,
            "shopify webhook %s %s from %s landed in raw/shopify/webhooks (customer id %s)%s",
            topic,
            webhook_id,
            record["shop_domain"],
            customer.get("id"),
            ": a person must act on it" if level == logging.WARNING else "",
        )
        return {"topic": topic, "landed": load.result.rows, "suppressed": suppressed}


def _instant(value: str | None) -> str | None:
    """A header timestamp in ISO form, or None when it does not parse (the delivery must land regardless)."""
    try:
        parsed = parse_timestamp(value)
    except (TypeError, ValueError):
        return None
    return parsed.isoformat() if parsed else None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(413, f"body larger than {MAX_BODY_BYTES} bytes")
