"""The SendGrid v3 stand-in: Mail Send, dynamic templates, an outbox and the Event Webhook.

What the official ``sendgrid`` client sees is the live API's contract: bearer-key
auth, bodies validated against SendGrid's own OpenAPI file (see ``validation.py``),
``202`` + ``X-Message-Id`` on success, ``200`` in sandbox mode, 400/401/429/5xx in
SendGrid's ``{"errors": [{message, field, help}]}`` shape. What a real send would do
is recorded instead: one outbox line per recipient, and signed webhook events.

Files under ``outbox_dir``: ``outbox.jsonl``, ``templates.json`` and
``webhook_signing_key.pem`` (all survive restarts). ``/_sandbox/outbox`` renders
the received emails for a human.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.sendgrid import render
from sandbox.sendgrid.events import generate_events
from sandbox.sendgrid.outbox import Outbox, Record
from sandbox.sendgrid.template_store import GENERATIONS, TemplateError, TemplateStore
from sandbox.sendgrid.validation import Error, error, validate_mail
from sandbox.sendgrid.webhook import WebhookDispatcher, load_or_create_signing_key, public_key_base64

SANDBOX_API_KEY = "SG.hearth-sandbox.local-only-not-a-secret"
MAX_BODY_BYTES = 20 * 1024 * 1024  # SendGrid's limit on a whole mail-send request
INDEX_LIMIT = 500
INVALID_KEY = "The provided authorization grant is invalid, expired, or revoked"


def _errors(errors: list[Error], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response.json({"errors": errors}, status, headers)


class _Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    group: str  # rate-limit group
    handler: Callable[..., Response]


class RateLimiter:
    """Token bucket of ``rate`` requests a second (burst ``max(1, rate)``), with SendGrid's headers."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit_per_second must be positive, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, dict[str, str]]:
        """Spend one token if there is one; returns (allowed, rate-limit headers)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            allowed = self._tokens >= 1
            if allowed:
                self._tokens -= 1
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            return allowed, {
                "X-RateLimit-Limit": str(math.ceil(self.capacity)),
                "X-RateLimit-Remaining": str(int(self._tokens)),
                "X-RateLimit-Reset": str(math.ceil(time.time() + wait)),
            }


class SendGridSandbox(SandboxServer):
    """Local stand-in of SendGrid's v3 API. See the module docstring for what it serves.

    Args:
        outbox_dir: where the outbox, templates and signing key live (created if missing).
        faults: fault knobs; ``/_sandbox`` pages are exempt.
        host, port: where to listen (port 0 picks a free one).
        api_key: the only key accepted as ``Authorization: Bearer <key>``.
        webhook_url: where to POST signed event batches; None generates no events.
        rate_limit_per_second: enforce a real rate limit per endpoint group (429s).
        event_seed: seed of the deterministic event outcomes.
        signing_key_path: the webhook signing key (default ``<outbox_dir>/webhook_signing_key.pem``).
    """

    name = "sendgrid"

    def __init__(
        self,
        outbox_dir: Path,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = SANDBOX_API_KEY,
        webhook_url: str | None = None,
        rate_limit_per_second: float | None = None,
        event_seed: int = 0,
        signing_key_path: Path | None = None,
    ) -> None:
        super().__init__(faults=faults, host=host, port=port)
        self.outbox_dir = Path(outbox_dir)
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        self.outbox_path = self.outbox_dir / "outbox.jsonl"
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.event_seed = event_seed
        self.templates = TemplateStore(self.outbox_dir / "templates.json")
        self.signing_key_path = Path(signing_key_path or self.outbox_dir / "webhook_signing_key.pem")
        signing_key = load_or_create_signing_key(self.signing_key_path)
        self.webhook_public_key = public_key_base64(signing_key)
        self._outbox = Outbox(self.outbox_path)
        self._webhook = WebhookDispatcher(webhook_url, signing_key) if webhook_url else None
        self._limiters = (
            {group: RateLimiter(rate_limit_per_second) for group in ("mail", "templates")}
            if rate_limit_per_second
            else {}
        )
        templates, versions = r"/v3/templates", r"/v3/templates/([^/]+)/versions"
        self._routes = [
            _Route("POST", re.compile(r"/v3/mail/send"), "mail", self._mail_send),
            _Route("POST", re.compile(templates), "templates", self._create_template),
            _Route("GET", re.compile(templates), "templates", self._list_templates),
            _Route("GET", re.compile(templates + r"/([^/]+)"), "templates", self._get_template),
            _Route("DELETE", re.compile(templates + r"/([^/]+)"), "templates", self._delete_template),
            _Route("POST", re.compile(versions), "templates", self._add_version),
            _Route("GET", re.compile(versions + r"/([^/]+)"), "templates", self._get_version),
            _Route("PATCH", re.compile(versions + r"/([^/]+)"), "templates", self._update_version),
            _Route("POST", re.compile(versions + r"/([^/]+)/activate"), "templates", self._activate),
        ]

    # -- public helpers ----------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment that points Hearth at this server (it must be running)."""
        return {
            "SENDGRID_API_HOST": self.url,
            "SENDGRID_API_KEY": self.api_key,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": self.webhook_public_key,
        }

    def outbox(self) -> list[Record]:
        """Every outbox record (one per recipient), oldest first."""
        return self._outbox.records()

    def flush_events(self) -> list[dict[str, Any]]:
        """Deliver every pending webhook event now; returns the events delivered.

        Raises:
            sandbox.sendgrid.webhook.WebhookDeliveryError: the receiver kept refusing a batch.
        """
        return self._webhook.flush() if self._webhook else []

    def start(self) -> str:
        url = super().start()
        if self._webhook:
            self._webhook.start()
        return url

    def __enter__(self) -> SendGridSandbox:
        self.start()
        return self

    def stop(self) -> None:
        if self._webhook:
            self._webhook.stop()
        super().stop()

    # -- SandboxServer hooks ---------------------------------------------------------------
    def throttled(self, request: Request) -> Response:
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(time.time()) + 1),
        }
        return _errors([error("too many requests")], 429, headers)

    def server_error(self, request: Request) -> Response:
        # Alternate the two 5xx SendGrid answers with, deterministically by request count.
        if self.requests_served % 2:
            return _errors([error("internal server error")], 500)
        return _errors([error("service unavailable")], 503)

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path == "/_sandbox/outbox" or path.startswith("/_sandbox/outbox/"):
            return self._sandbox_page(request, path) if request.method == "GET" else self._not_allowed()
        matches = [(route, m) for route in self._routes if (m := route.pattern.fullmatch(path))]
        if not matches:
            return _errors([error("not found")], 404)
        route, match = next(((r, m) for r, m in matches if r.method == request.method), (None, None))
        if route is None or match is None:
            return self._not_allowed()
        auth = request.headers.get("authorization", "")
        if not auth:
            return _errors([error("authorization required")], 401)
        if auth != f"Bearer {self.api_key}":
            return _errors([error(INVALID_KEY)], 401)
        headers: dict[str, str] = {}
        if limiter := self._limiters.get(route.group):
            allowed, headers = limiter.take()
            if not allowed:
                return _errors([error("too many requests")], 429, headers)
        response = route.handler(request, *match.groups())
        response.headers.update(headers)
        return response

    @staticmethod
    def _not_allowed() -> Response:
        return _errors([error("method not allowed")], 405)

    # -- mail send -----------------------------------------------------------------------
    def _mail_send(self, request: Request) -> Response:
        raw = request.body
        if len(raw) > MAX_BODY_BYTES:
            return _errors([error("content too large")], 413)
        try:
            if request.headers.get("content-encoding", "").lower() == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw or b"null")
        except (ValueError, OSError, EOFError):  # bad JSON, bad or truncated gzip
            return _errors([error("Bad Request")], 400)
        now = time.time()
        errors = validate_mail(body, template_status=self.templates.send_problem, now=now)
        if errors:
            return _errors(errors, 400)
        if ((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return Response(200)  # validated, not sent: exactly what sandbox mode promises
        digest = hashlib.sha256(raw).hexdigest()
        received_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        records = self._outbox.append_message(lambda seq: self._records(body, seq, digest, received_at))
        if self._webhook:
            self._webhook.enqueue([e for r in records for e in generate_events(r, seed=self.event_seed)])
        return Response(202, headers={"X-Message-Id": records[0]["x_message_id"]})

    def _records(self, body: dict[str, Any], seq: int, digest: str, received_at: str) -> list[Record]:
        """One outbox record per recipient (to, cc and bcc) of a validated body."""
        # Derived, not random: a fresh outbox with the same seed and sends yields the same
        # ids, hence the same webhook events (they are drawn per message id).
        seed = f"{self.event_seed}|{seq}|{digest}".encode()
        x_message_id = base64.urlsafe_b64encode(hashlib.sha256(seed).digest()).decode()[:22]
        template_id = body.get("template_id")
        version = self.templates.active_version(template_id) if template_id else None
        records: list[Record] = []
        for personalization in body["personalizations"]:
            data = personalization.get("dynamic_template_data")
            subs = personalization.get("substitutions")
            if version is not None:
                subject = render.handlebars(version["subject"], data or {})
            else:
                subject = render.substitute(personalization.get("subject") or body.get("subject") or "", subs)
            common = {
                "from": personalization.get("from") or body["from"],
                "reply_to": body.get("reply_to"),
                "subject": subject,
                "template_id": template_id,
                "template_version_id": version["id"] if version else None,
                "dynamic_template_data": data,
                "substitutions": subs,
                "custom_args": {**body.get("custom_args", {}), **personalization.get("custom_args", {})},
                "categories": body.get("categories", []),
                "asm": body.get("asm"),
                "headers": {**body.get("headers", {}), **personalization.get("headers", {})},
                "send_at": personalization.get("send_at", body.get("send_at")),
                "batch_id": body.get("batch_id"),
                "content": body.get("content"),
            }
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind, []):
                    records.append(
                        {
                            "message_id": f"{x_message_id}.filterdrecv-sandbox.{len(records)}",
                            "x_message_id": x_message_id,
                            "received_at": received_at,
                            "to": {"email": address["email"], "name": address.get("name")},
                            "recipient_type": kind,
                            **common,
                        }
                    )
        return records

    # -- templates -------------------------------------------------------------------------
    def _template_call(self, status: int, call: Callable[[], Any]) -> Response:
        try:
            result = call()
        except TemplateError as exc:
            return _errors([error(str(exc), exc.field)], exc.status)
        return Response(204) if result is None else Response.json(result, status)

    def _create_template(self, request: Request) -> Response:
        return self._template_call(201, lambda: self.templates.create(_object_body(request)))

    def _list_templates(self, request: Request) -> Response:
        generations = tuple(g.strip() for g in (request.arg("generations") or "legacy").split(","))
        if any(g not in GENERATIONS for g in generations):
            return _errors([error("generations must be legacy, dynamic or legacy,dynamic.", "generations")], 400)
        try:
            page_size = int(request.arg("page_size") or "")
            offset = int(request.arg("page_token") or 0)
        except ValueError:
            return _errors([error("page_size is required: an integer from 1 to 200.", "page_size")], 400)
        if not 1 <= page_size <= 200:
            return _errors([error("page_size must be between 1 and 200.", "page_size")], 400)
        templates = self.templates.list_templates(generations)
        page = templates[offset : offset + page_size]
        base = f"{self.url}/v3/templates?generations={','.join(generations)}&page_size={page_size}"
        metadata: dict[str, Any] = {"self": f"{base}&page_token={offset}", "count": len(templates)}
        if offset + page_size < len(templates):
            metadata["next"] = f"{base}&page_token={offset + page_size}"
        return Response.json({"result": page, "_metadata": metadata})

    def _get_template(self, request: Request, template_id: str) -> Response:
        return self._template_call(200, lambda: self.templates.get(template_id))

    def _delete_template(self, request: Request, template_id: str) -> Response:
        return self._template_call(204, lambda: self.templates.delete(template_id))

    def _add_version(self, request: Request, template_id: str) -> Response:
        return self._template_call(201, lambda: self.templates.add_version(template_id, _object_body(request)))

    def _get_version(self, request: Request, template_id: str, version_id: str) -> Response:
        return self._template_call(200, lambda: self.templates.version(template_id, version_id))

    def _update_version(self, request: Request, template_id: str, version_id: str) -> Response:
        return self._template_call(
            200, lambda: self.templates.update_version(template_id, version_id, _object_body(request))
        )

    def _activate(self, request: Request, template_id: str, version_id: str) -> Response:
        return self._template_call(200, lambda: self.templates.activate(template_id, version_id))

    # -- rendered outbox -------------------------------------------------------------------------
    def _sandbox_page(self, request: Request, path: str) -> Response:
        html_type = "text/html; charset=utf-8"
        if path == "/_sandbox/outbox":
            rows = [(r, r.get("subject") or "") for r in self._outbox.newest(INDEX_LIMIT)]
            hint = f"Newest {len(rows)} recipients first; the full log is {self.outbox_path}."
            return Response.text(render.index_page(rows, hint), content_type=html_type)
        message_id, _, part = path.removeprefix("/_sandbox/outbox/").partition("/")
        record = self._outbox.find(message_id)
        if record is None or part not in ("", "html"):
            return Response.text(f"No message {message_id!r} in the outbox.", 404)
        email = render.render_email(record, self._version_sent(record))
        if part == "html":
            return Response.text(email.html or "", content_type=html_type)
        return Response.text(render.message_page(record, email), content_type=html_type)

    def _version_sent(self, record: Record) -> dict[str, Any] | None:
        """The template version a record was sent with, else the template's active one."""
        template_id = record.get("template_id")
        if not template_id:
            return None
        try:
            return self.templates.version(template_id, record.get("template_version_id") or "")
        except TemplateError:
            return self.templates.active_version(template_id)


def _object_body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError as exc:
        raise TemplateError(str(exc), None) from exc
    if not isinstance(body, dict):
        raise TemplateError("The request body must be a JSON object.", None)
    return body
