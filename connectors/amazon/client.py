"""The SP-API client: LWA access token in ``x-amz-access-token``, paced, retried by the shared layer.

No SigV4 signing: since 2023 SP-API needs only the LWA token. Retries, 429/5xx
handling and redaction come from :mod:`connectors._http`; this module adds the
token (renewed once when Amazon says it expired) and the token-bucket pacer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from connectors._http import AuthError, HttpClient, TokenBucketPacer
from connectors.amazon.auth import GRANT_SETTING, LwaAuth
from connectors.amazon.settings import AmazonSettings

TOKEN_HEADER = "x-amz-access-token"


class AmazonClient:
    """Calls SP-API operations on behalf of one seller.

    Args:
        settings: the connector settings.
        session: a ``requests.Session`` shared by the LWA and SP-API calls (tests pass a recording one).
        sleep, clock, rng: injectable time and jitter, shared by retries, pacing and token expiry.
        auth: an existing :class:`LwaAuth` (default: one built from ``settings``).
    """

    def __init__(
        self,
        settings: AmazonSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        auth: LwaAuth | None = None,
    ) -> None:
        self.settings = settings
        self.pacer = TokenBucketPacer(settings.rate_per_second, settings.burst, sleep=sleep, clock=clock)
        self.http = HttpClient(
            settings.sp_api_url,
            secrets=(settings.client_secret, settings.refresh_token),
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            pacer=self.pacer,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
            backoff_base=settings.backoff_base,
            credential=f"{GRANT_SETTING} (and the app's SP-API roles)",
        )
        self.auth = auth or LwaAuth(settings, session=session, sleep=sleep, clock=clock, rng=rng)

    def get_json(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET an SP-API path with a valid access token; a token refused as expired is renewed once.

        Raises:
            AuthError: the credentials were refused (the message names the setting).
            ApiError, MalformedResponse, RetriesExhausted: see :mod:`connectors._http`.
        """
        for attempt in (1, 2):
            token = self.auth.token()
            self.http.add_secrets([token])
            try:
                body: dict[str, Any] = self.http.get_json(
                    path,
                    params=params,
                    headers={TOKEN_HEADER: token},
                    # A call costs a bit more than one token: see AmazonSettings.pacing_margin.
                    cost=1.0 + self.settings.pacing_margin,
                )
                return body
            except AuthError as exc:
                # Tokens can expire early (clock skew, revocation): renew once, then give up.
                if attempt == 1 and exc.status == 403 and "expired" in str(exc).lower():
                    self.auth.invalidate(token)
                    continue
                raise
        raise AssertionError("unreachable")  # the loop returns or raises
