"""Signed one-click unsubscribe links (RFC 8058): no database lookup, no guessable URL.

A link carries the address and an HMAC of it under ``HEARTH_SECRET_KEY``; the
webhooks app verifies it and suppresses the address at once.
"""

from __future__ import annotations

import base64
import hmac

from hearth.suppressions import normalize_email


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(address: bytes, secret: str) -> bytes:
    return hmac.digest(secret.encode("utf-8"), address, "sha256")[:16]  # one C call: made per recipient of a send


def make_token(email: str, secret: str) -> str:
    address = normalize_email(email).encode("utf-8")
    return f"{_b64(address)}.{_b64(_signature(address, secret))}"


def read_token(token: str, secret: str) -> str | None:
    """The address a token was made for, or None when it was not made with ``secret``."""
    try:
        encoded, signature = token.split(".", 1)
        address = _unb64(encoded)
        expected = _signature(address, secret)
        if hmac.compare_digest(expected, _unb64(signature)):
            return address.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def unsubscribe_url(public_url: str, email: str, secret: str) -> str:
    # A token is URL-safe base64 and a dot, characters a query never escapes: no encoding call
    # per recipient (it was a tenth of a send's template data).
    return f"{public_url.rstrip('/')}/unsubscribe?token={make_token(email, secret)}"
