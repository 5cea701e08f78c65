"""Login with Amazon: trade the seller's refresh token for short-lived access tokens, and cache them.

``POST {lwa_url}/auth/o2/token`` with the form ``grant_type=refresh_token,
refresh_token, client_id, client_secret`` answers ``{access_token, expires_in, …}``
(an hour). The token is fetched once and reused until shortly before it expires;
the SP-API client asks for a fresh one when a call is refused as expired.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import requests

from connectors._http import AuthError, HttpClient, MalformedResponse
from connectors.amazon.settings import AmazonSettings

TOKEN_PATH = "/auth/o2/token"
# LWA error → the settings to check. invalid_client means the app credentials are wrong;
# the others mean the seller's authorisation (refresh token) is wrong, revoked or expired.
CLIENT_SETTINGS = "AMAZON_CLIENT_ID and AMAZON_CLIENT_SECRET"
GRANT_SETTING = "AMAZON_REFRESH_TOKEN"
MAX_EARLY_REFRESH = 60.0  # seconds before expiry at which a token counts as expired


class LwaAuth:
    """A cached LWA access token for one seller.

    Args:
        settings: the connector settings (LWA URL and credentials, timeouts, retries).
        session, sleep, clock, rng: passed to the :class:`HttpClient` (``clock`` also times expiry).
    """

    def __init__(
        self,
        settings: AmazonSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.http = HttpClient(
            settings.lwa_url,
            secrets=(settings.client_secret, settings.refresh_token),
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
            backoff_base=settings.backoff_base,
            credential=f"{GRANT_SETTING}, {CLIENT_SETTINGS}",
        )
        self.settings = settings
        self.clock = clock
        self.tokens_fetched = 0
        self._token: str | None = None
        self._expires_at = float("-inf")
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid access token: the cached one, or a fresh one when it is (nearly) expired."""
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given: another caller may have renewed it)."""
        with self._lock:
            if token is None or token == self._token:
                self._token, self._expires_at = None, float("-inf")

    def _fetch(self) -> None:
        started = self.clock()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.settings.refresh_token,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
        }
        try:
            body = self.http.post_json(TOKEN_PATH, data=form)
        except AuthError as exc:
            raise _refined(exc) from exc
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float) or expires_in <= 0:
            keys = ", ".join(sorted(body)) or "none"
            raise MalformedResponse(
                self.http.url_for(TOKEN_PATH), 200, f"token answer without access_token/expires_in; keys: {keys}"
            )
        self.http.add_secrets([token])
        self.tokens_fetched += 1
        # Renew a little early (a tenth of the lifetime, at most a minute): a token must not
        # expire between our check and Amazon's.
        self._token = token
        self._expires_at = started + expires_in - min(MAX_EARLY_REFRESH, expires_in / 10)


def _refined(exc: AuthError) -> AuthError:
    """The same refusal, naming exactly the settings that LWA's error code points at."""
    message = str(exc)
    setting = CLIENT_SETTINGS if "invalid_client" in message else GRANT_SETTING
    reason = message.partition(f"(HTTP {exc.status}: ")[2].rpartition("). Check ")[0] or "refused"
    return AuthError(exc.url, exc.status, reason, credential=setting)
