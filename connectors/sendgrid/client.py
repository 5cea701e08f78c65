"""The SendGrid client: one Mail Send attempt per call, and the Templates API with safe retries.

It wraps the official ``sendgrid.SendGridAPIClient`` (urllib underneath) and maps
what it raises onto the shared vocabulary of ``connectors/_http.py``: answers go
through the same :func:`~connectors._http.classify`, refused credentials raise
:class:`~connectors._http.AuthError` naming ``SENDGRID_API_KEY``.

Mail Send is never retried here. SendGrid has no idempotency key, so repeating a
request whose fate is unknown could email people twice; :meth:`SendGridClient.send`
makes exactly one attempt and reports what is known in a :class:`SendResult`:

============  ==========================================================  =============
status        when                                                        retryable
============  ==========================================================  =============
accepted      2xx (202 with ``X-Message-Id``; 200 in sandbox mode)         –
failed        4xx: SendGrid refused the request, nothing was sent          no
failed        429, or the connection was refused before any byte left      yes (after ``retry_after``)
unknown       5xx, 408, timeout, connection dropped: it may have been sent  the ledger decides
============  ==========================================================  =============

401/403 raise :class:`AuthError` instead: nothing was sent and nothing will be until the key is fixed.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import python_http_client
import requests
from python_http_client.exceptions import HTTPError as SendGridHTTPError
from requests.structures import CaseInsensitiveDict
from sendgrid import SendGridAPIClient

from connectors._http import (
    ApiError,
    AuthError,
    HttpError,
    RetriesExhausted,
    Verdict,
    classify,
    install_redaction,
    register_secrets,
)
from connectors.sendgrid.mail import MAX_PERSONALIZATIONS, OutgoingMessage, build_mail_bodies
from connectors.sendgrid.settings import SendGridSettings

KEY_SETTING = "SENDGRID_API_KEY"
log = logging.getLogger(__name__)
install_redaction(log)
# The official client logs request headers (the bearer key) and payloads at DEBUG.
install_redaction(logging.getLogger("python_http_client.client"))

SendStatus = Literal["accepted", "failed", "unknown"]
MAIL_SEND_CONTENT_TYPE = "application/json; charset=utf-8"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass(frozen=True)
class SendResult:
    """The outcome of one Mail Send request (see the module docstring for the statuses).

    Attributes:
        status: ``accepted``, ``failed`` (nothing sent) or ``unknown`` (maybe sent).
        message_id: SendGrid's ``X-Message-Id`` (the prefix of every event's ``sg_message_id``).
        errors: SendGrid's ``[{message, field, help}]`` for a refused request.
        retry_after: seconds the server asked to wait (429 / 503), when it said.
        retryable: True only when nothing was sent and the same body may be sent again later.
        http_status: the HTTP status, None when no answer came.
        reason: a readable one-line account for logs and the ledger.
    """

    status: SendStatus
    message_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None
    retryable: bool = False
    http_status: int | None = None
    reason: str = ""


class SendGridClient:
    """Calls SendGrid v3 through the official client.

    Args:
        settings: the connector settings.
        api: an official client to use instead of building one (same host and key).
        sleep, now, rng: injectable time and jitter for the Templates API retries.
        max_attempts: attempts per Templates API call (Mail Send always makes one).
        backoff_base: first backoff in seconds when the server gives no hint (doubles, full jitter).
    """

    def __init__(
        self,
        settings: SendGridSettings,
        *,
        api: SendGridAPIClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.settings = settings
        self.api = api or SendGridAPIClient(settings.api_key, host=settings.api_host)
        self.sleep, self.now = sleep, now
        self.rng = rng or random.Random()
        self.max_attempts, self.backoff_base = max_attempts, backoff_base
        self.secrets = (settings.api_key,)
        register_secrets(self.secrets)

    # -- Mail Send ---------------------------------------------------------------------
    def mail_bodies(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        sequence: str,
        template_id: str,
        categories: Sequence[str] = (),
        custom_args_common: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = MAX_PERSONALIZATIONS,
    ) -> list[dict[str, Any]]:
        """:func:`build_mail_bodies` with sender, unsubscribe group and sandbox mode from the settings.

        The sequence's group comes from ``unsubscribe_groups``; every configured group is offered on
        SendGrid's preference page. With no groups configured, bodies carry no ``asm``.

        Raises:
            ValueError: groups are configured but not for ``sequence`` (or a message is invalid).
        """
        groups = self.settings.unsubscribe_groups
        if groups and sequence not in groups:
            raise ValueError(
                f"SENDGRID_UNSUBSCRIBE_GROUPS has no group for sequence {sequence!r} (has {sorted(groups)}); "
                f"add {sequence}=<group id> so its emails carry their unsubscribe group"
            )
        return build_mail_bodies(
            messages,
            from_email=self.settings.from_email,
            from_name=self.settings.from_name,
            template_id=template_id,
            categories=categories,
            asm_group_id=groups.get(sequence),
            groups_to_display=sorted(set(groups.values())),
            custom_args_common=custom_args_common,
            headers=headers,
            unsubscribe_mailto=self.settings.unsubscribe_mailto,
            sandbox_mode=self.settings.sandbox_mode,
            batch_size=batch_size,
        )

    def send(self, body: Mapping[str, Any]) -> SendResult:
        """POST one mail-send body, exactly once, and say what is known about its fate.

        Raises:
            AuthError: SendGrid refused the API key (401/403); nothing was sent.
        """
        url = self._url("mail/send")
        data = _encode(body)  # before the try: a body that cannot be encoded was never sent
        try:
            response = self._mail_send().post(request_body=data, timeout=self.settings.timeout)
        except SendGridHTTPError as exc:
            return self._refused(url, exc)
        except (OSError, http.client.HTTPException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if _never_left(exc):
                return SendResult("failed", retryable=True, reason=f"not sent, could not connect ({reason})")
            return SendResult("unknown", reason=f"no answer, the request may have been sent ({reason})")
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return SendResult("accepted", message_id=message_id, http_status=response.status_code, reason="accepted")

    def _refused(self, url: str, exc: SendGridHTTPError) -> SendResult:
        status, headers, raw = int(exc.status_code), _headers(exc.headers), exc.body or b""
        verdict = self._verdict(status, headers, raw)
        errors = _errors(raw)
        summary = "; ".join(str(e.get("message", "")) for e in errors)[:300]
        if verdict.kind == "auth":
            reason = f"{verdict.reason}: {summary}"
            raise AuthError(url, status, reason, credential=KEY_SETTING, secrets=self.secrets)
        if status == 429:  # rate limited before processing: nothing was sent
            reason = f"HTTP 429 rate limited, not sent: {summary}"
            return SendResult("failed", None, errors, verdict.wait, True, status, reason)
        if verdict.retryable:  # 5xx / 408: SendGrid may have taken the message before failing
            reason = f"HTTP {status}, the request may have been sent: {summary}"
            return SendResult("unknown", None, errors, verdict.wait, False, status, reason)
        return SendResult("failed", None, errors, None, False, status, f"HTTP {status} refused: {summary}")

    # -- any other v3 endpoint (templates) --------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call ``/v3/<path>`` and return the parsed JSON (None for an empty answer).

        429 is retried for every method (nothing was done); 5xx, timeouts and dropped
        connections only for idempotent methods, since a repeated POST could create twice.

        Raises:
            AuthError: the key was refused. ApiError: a 4xx. RetriesExhausted: still failing.
            HttpError: a non-idempotent call whose outcome is unknown.
        """
        method = method.upper()
        url = self._url(path)
        verdict = Verdict("retry", "not attempted")
        for attempt in range(1, self.max_attempts + 1):
            call = getattr(self._endpoint(path), method.lower())
            try:
                response = call(
                    request_body=dict(body) if body is not None else None,
                    query_params=dict(query) if query else None,
                    timeout=self.settings.timeout,
                )
            except SendGridHTTPError as exc:
                status, raw = int(exc.status_code), exc.body or b""
                verdict = self._verdict(status, _headers(exc.headers), raw)
                if verdict.kind == "auth":
                    raise AuthError(url, status, verdict.reason, credential=KEY_SETTING, secrets=self.secrets) from None
                if verdict.kind == "fatal":
                    raise ApiError(url, status, raw.decode("utf-8", "replace")[:500], secrets=self.secrets) from None
                safe = status == 429 or method in _IDEMPOTENT
            except (OSError, http.client.HTTPException) as exc:
                verdict = Verdict("retry", f"{type(exc).__name__}: {exc}")
                safe = method in _IDEMPOTENT or _never_left(exc)
            else:
                raw = response.body or b""
                return json.loads(raw) if raw.strip() else None
            if not safe:
                raise HttpError(
                    f"{method} {url}: {verdict.reason}; the outcome is unknown and a repeat could act twice. "
                    "Check the account's state (e.g. list templates) before rerunning.",
                    url=url,
                    status=verdict.status,
                    secrets=self.secrets,
                )
            if attempt < self.max_attempts:
                wait = verdict.wait if verdict.wait else self.rng.uniform(0, self.backoff_base * 2 ** (attempt - 1))
                log.warning("%s %s: %s; retry %d in %.2fs", method, url, verdict.reason, attempt, wait)
                self.sleep(wait)
        raise RetriesExhausted(url, self.max_attempts, verdict, secrets=self.secrets)

    # -- helpers -------------------------------------------------------------------------------
    def _mail_send(self) -> Any:
        """The official client's ``mail/send`` endpoint, given a body this client has encoded.

        python_http_client ``json.dumps`` every body unless the Content-Type is other than exactly
        ``application/json``; naming JSON's charset makes it send our text as it is. orjson encodes
        a 1,000-recipient body in ~1 ms instead of ~12 ms, and a send waits for that between two
        ledger writes. Its own headers dict: the official client shares one across its endpoints.
        """
        root = self.api.client
        headers = {**root.request_headers, "Content-Type": MAIL_SEND_CONTENT_TYPE}
        return python_http_client.Client(host=root.host, request_headers=headers, version=3)._("mail")._("send")

    def _url(self, path: str) -> str:
        return f"{self.settings.api_host}/v3/{path.strip('/')}"

    def _endpoint(self, path: str) -> Any:
        endpoint = self.api.client
        for segment in path.strip("/").split("/"):
            endpoint = endpoint._(segment)
        return endpoint

    def _verdict(self, status: int, headers: dict[str, str], raw: bytes) -> Verdict:
        """The shared classifier's verdict on an answer the official client turned into an exception."""
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response._content = raw  # the classifier reads requests.Response; this is its body slot
        return classify(response, now=self.now)


def _encode(body: Mapping[str, Any]) -> str:
    """The body as compact JSON text, non-ASCII characters as they are (the request says UTF-8).

    Bodies hold plain JSON values (:func:`build_mail_bodies` builds them so), which orjson writes as
    json would; what orjson cannot encode (an integer past 64 bits) goes through json.
    """
    try:
        return orjson.dumps(dict(body)).decode()
    except TypeError:
        return json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False)


def _never_left(exc: BaseException) -> bool:
    """True when the request provably never reached a server: refused connection or unknown host.

    urllib wraps failures to connect and send in URLError; a timeout or reset while
    waiting for the answer comes bare, and then the server may have acted.
    """
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else None
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


def _headers(headers: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in headers.items()} if headers else {}


def _errors(raw: bytes) -> list[dict[str, Any]]:
    """SendGrid's ``errors`` list, or one entry holding whatever the body was."""
    try:
        errors = json.loads(raw).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and all(isinstance(e, dict) for e in errors):
        return errors
    text = raw.decode("utf-8", "replace")[:500]
    return [{"message": text or "(empty body)", "field": None, "help": None}]
