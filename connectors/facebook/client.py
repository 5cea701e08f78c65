"""The Graph API client: bearer token, usage-header pacing, retries and paging.

The access token travels in ``Authorization: Bearer`` — never in a URL — so it
cannot leak through ``paging.next`` links, logs or error messages (the shared
layer masks it as well). Throttling codes (4, 17, 613, 80000–80014) and server
errors are retried by the shared classifier; code 190 (invalid or expired token)
and permission errors raise :class:`~connectors._http.AuthError` naming
``FACEBOOK_ACCESS_TOKEN``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from connectors._http import HttpClient, MalformedResponse, UsagePacer, redact
from connectors.facebook.settings import FacebookSettings

TOKEN_SETTING = "FACEBOOK_ACCESS_TOKEN"


class FacebookClient:
    """Calls the Graph API for one ad account.

    Args:
        settings: the connector settings.
        session: a ``requests.Session`` (tests pass a recording one).
        sleep, clock, rng: injectable time and jitter, shared by retries, pacing and report polling.
    """

    def __init__(
        self,
        settings: FacebookSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sleep, self.clock = sleep, clock
        self.pacer = UsagePacer(settings.slow_above, settings.max_delay, sleep=sleep, clock=clock)
        self.http = HttpClient(
            f"{settings.graph_url.rstrip('/')}/{settings.api_version}",
            headers={"Authorization": f"Bearer {settings.access_token}"},
            secrets=(settings.access_token,),
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            pacer=self.pacer,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
            backoff_base=settings.backoff_base,
            credential=f"{TOKEN_SETTING} (a token with ads_read on {settings.account})",
        )

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a node or edge (relative to the versioned base URL) and return the JSON object."""
        body: dict[str, Any] = self.http.get_json(path, params=params)
        return body

    def post_json(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """POST parameters as a form body (how the Graph API takes them) and return the JSON object."""
        body: dict[str, Any] = self.http.post_json(path, data=dict(params))
        return body

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[tuple[list[Any], str]]:
        """Every page of a list edge as ``(data, url)``, following ``paging.cursors.after``.

        The next page is asked with the same parameters plus ``after``; ``paging.next``
        (absent on the last page) only says whether there is one. A ``next`` link
        without a cursor is followed as is.
        """
        url: str = self.http.url_for(path)
        query: dict[str, Any] | None = dict(params)
        seen: set[str] = set()
        while True:
            body = self.http.get_json(url, params=query)
            data = body.get("data")
            if not isinstance(data, list):
                sample = redact(json.dumps(body)[:500], self.http.secrets)
                raise MalformedResponse(url, 200, f"no 'data' list in a list answer: {sample}")
            yield data, redact(url, self.http.secrets)
            paging = _object(body.get("paging"))
            next_url = paging.get("next")
            if not next_url:
                return
            after = _object(paging.get("cursors")).get("after")
            marker = str(after or next_url)
            if marker in seen:  # a server bug must not become an endless loop
                raise MalformedResponse(url, 200, f"paging repeated the cursor {marker[:80]}")
            seen.add(marker)
            if after:
                url, query = self.http.url_for(path), {**params, "after": after}
            else:
                url, query = str(next_url), None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
