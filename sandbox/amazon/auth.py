"""Login with Amazon (the refresh-token grant) and the per-token rate limit of the Amazon sandbox.

``POST /auth/o2/token`` takes a form ``grant_type=refresh_token, refresh_token,
client_id, client_secret`` and answers ``{access_token, token_type: "bearer",
expires_in, refresh_token}``. Errors are ``{"error", "error_description"}``:
``invalid_request`` (400) for a malformed form, ``unsupported_grant_type`` (400),
``invalid_client`` (401) for a wrong client id or secret, ``invalid_grant`` (400) for
a wrong refresh token.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta

from sandbox._server import Request, Response

SANDBOX_CLIENT_ID = "amzn1.application-oa2-client.hearth-sandbox"
SANDBOX_CLIENT_SECRET = "amzn1.oa2-cs.v1.hearth-sandbox-secret"
SANDBOX_REFRESH_TOKEN = "Atzr|hearth-sandbox-refresh-token"
TOKEN_PATH = "/auth/o2/token"


def lwa_error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status, {"Cache-Control": "no-store"})


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second (real time)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class LoginWithAmazon:
    """Issues access tokens for the sandbox's one client and checks them later."""

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self.issued = 0
        self._expiry: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def grant(self, request: Request, now: datetime) -> Response:
        """Answer one token request."""
        form = {key: values[0] for key, values in request.form().items() if values}
        if request.method != "POST" or not form:
            return lwa_error(400, "invalid_request", "POST a form-encoded body (application/x-www-form-urlencoded).")
        for field in ("grant_type", "client_id", "client_secret"):
            if not form.get(field):
                return lwa_error(400, "invalid_request", f"The request is missing a required parameter : {field}")
        if form["grant_type"] != "refresh_token":
            return lwa_error(400, "unsupported_grant_type", f"Unsupported grant_type {form['grant_type']!r}.")
        if not form.get("refresh_token"):
            return lwa_error(400, "invalid_request", "The request is missing a required parameter : refresh_token")
        if form["client_id"] != SANDBOX_CLIENT_ID or form["client_secret"] != SANDBOX_CLIENT_SECRET:
            return lwa_error(401, "invalid_client", "Client authentication failed")
        if form["refresh_token"] != SANDBOX_REFRESH_TOKEN:
            return lwa_error(400, "invalid_grant", "The request has an invalid grant parameter : refresh_token")
        access_token = "Atza|" + secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[access_token] = now + self.ttl
            self.issued += 1
        body = {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": int(self.ttl.total_seconds()),
            "refresh_token": SANDBOX_REFRESH_TOKEN,
        }
        return Response.json(body, headers={"Cache-Control": "no-store"})

    def problem(self, token: str, now: datetime) -> str:
        """Why ``token`` is refused ("" when it is valid at ``now``)."""
        with self._lock:
            expiry = self._expiry.get(token)
        if not token:
            return "The request has no x-amz-access-token header."
        if expiry is None:
            return "The access token you provided is not valid."
        if now >= expiry:
            return "The access token you provided has expired."
        return ""
