"""Signed delivery of Event Webhook batches, the way SendGrid posts them.

SendGrid signs each POST with ECDSA P-256 over ``timestamp + raw body`` (SHA-256)
and sends the base64 DER signature and the timestamp in
``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``. The receiver verifies
with the public key from the console: base64 of the DER SubjectPublicKeyInfo.
This uses ``cryptography``, the library the official ``sendgrid`` package's
``EventWebhook`` verifier is built on, so what we sign is what it checks.

Batches go out from a background thread and are retried with backoff until the
receiver answers 2xx (SendGrid retries for 24 h); ``flush`` delivers synchronously.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# The receiver is Hearth's own webhook server next to the sandbox: never go through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class WebhookDeliveryError(RuntimeError):
    """The receiver did not accept a batch; the events stay queued."""


def load_or_create_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 signing key in ``path`` (PEM, PKCS#8), created on first use.

    Creation writes a private temp file and hard-links it into place, which fails if
    another process got there first; then that process's key is used instead, so
    two servers sharing a directory agree on one public key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise ValueError(f"{path} does not hold a P-256 private key; delete it to generate a new one")
    return loaded


def public_key_base64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's console shows it (base64 DER SubjectPublicKeyInfo)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, payload: bytes) -> str:
    """Base64 DER ECDSA signature of ``timestamp + payload``."""
    return base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")


class WebhookDispatcher:
    """Queue of events to POST to one URL, in signed JSON-array batches.

    Args:
        url: the receiver.
        key: the signing key.
        batch_size: events per POST at most.
        retry_delays: seconds to wait after each consecutive failure; the last value repeats.
        timeout: seconds per HTTP attempt.
    """

    def __init__(
        self,
        url: str,
        key: ec.EllipticCurvePrivateKey,
        *,
        batch_size: int = 500,
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.key = key
        self.batch_size = batch_size
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.delivered = 0
        self.failures = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition()
        self._sending = threading.Lock()  # one POST at a time keeps batches in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, events: list[dict[str, Any]]) -> None:
        with self._wake:
            self._pending.extend(events)
            self._wake.notify()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sendgrid-webhook", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread; events still queued stay queued (``flush`` can send them)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self, attempts: int = 3) -> list[dict[str, Any]]:
        """Deliver everything queued now, retrying each batch up to ``attempts`` times.

        Returns:
            The events delivered by this call, in order.

        Raises:
            WebhookDeliveryError: a batch kept failing; it and the rest stay queued.
        """
        delivered: list[dict[str, Any]] = []
        with self._sending:
            while batch := self._take():
                for attempt in range(attempts):
                    problem = self._post(batch)
                    if problem is None:
                        delivered.extend(batch)
                        break
                    if attempt + 1 < attempts:
                        time.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
                else:
                    self._put_back(batch)
                    raise WebhookDeliveryError(f"event webhook {self.url} refused a batch: {problem}")
        return delivered

    # -- internals ---------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._wake:
                while not self._pending and not self._stop.is_set():
                    self._wake.wait()
            if self._stop.is_set():
                return
            with self._sending:
                batch = self._take()
                problem = self._post(batch) if batch else None
                if problem is not None:
                    self._put_back(batch)
            if problem is None:
                failures = 0
                continue
            self.failures += 1
            self._stop.wait(self.retry_delays[min(failures, len(self.retry_delays) - 1)])
            failures += 1

    def _take(self) -> list[dict[str, Any]]:
        with self._wake:
            count = min(self.batch_size, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _put_back(self, batch: list[dict[str, Any]]) -> None:
        with self._wake:
            self._pending.extendleft(reversed(batch))

    def _post(self, batch: list[dict[str, Any]]) -> str | None:
        """POST one signed batch; None on success, else what went wrong."""
        payload = json.dumps(batch, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            self.url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "SendGrid Event API",
                SIGNATURE_HEADER: sign(self.key, timestamp, payload),
                TIMESTAMP_HEADER: timestamp,
            },
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
            return f"{type(exc).__name__}: {exc}"
        with self._wake:
            self.delivered += len(batch)
        return None
