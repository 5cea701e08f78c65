"""The one HTTP layer every connector builds on: retries, one classifier, pacing, redaction.

A connector makes an :class:`HttpClient` with its base URL, auth headers and the
secrets to keep out of logs, optionally a :class:`Pacer` for its vendor's rate
limit, and calls :meth:`HttpClient.get_json` / :meth:`HttpClient.post_json`.

Every answer (or transport failure) goes through :func:`classify`, the single
place that knows which vendor signals mean "try again" (429, 5xx, Shopify
``THROTTLED`` inside an HTTP 200, Facebook throttling codes inside a 400/403,
Login-with-Amazon ``server_error`` …) and how long the server asked us to wait.
Retries back off exponentially with full jitter unless the server gave a hint.
Everything else raises a typed :class:`HttpError` whose message names the
(redacted) URL and what to do about it.

This module imports nothing of Hearth's (see DESIGN.md): it knows HTTP, not flows.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from connectors._classify import (
    FACEBOOK_RETRYABLE_CODES,
    LWA_AUTH_ERRORS,
    LWA_RETRYABLE_ERRORS,
    Verdict,
    _try_json,
    classify,
    facebook_usage,
    loads_json,
    wait_hint,
)
from connectors._errors import (
    SAMPLE_CHARS,
    ApiError,
    AuthError,
    HttpError,
    MalformedResponse,
    RedactingFilter,
    RetriesExhausted,
    install_redaction,
    redact,
    register_secrets,
)
from connectors._pacing import CostBucketPacer, Pacer, TokenBucketPacer, UsagePacer

log = logging.getLogger(__name__)
install_redaction(log)


__all__ = [
    "FACEBOOK_RETRYABLE_CODES",
    "LWA_AUTH_ERRORS",
    "LWA_RETRYABLE_ERRORS",
    "ApiError",
    "AuthError",
    "CostBucketPacer",
    "HttpClient",
    "HttpError",
    "MalformedResponse",
    "Pacer",
    "RedactingFilter",
    "RetriesExhausted",
    "TokenBucketPacer",
    "UsagePacer",
    "Verdict",
    "classify",
    "facebook_usage",
    "install_redaction",
    "loads_json",
    "redact",
    "register_secrets",
    "wait_hint",
]

# -- the client ------------------------------------------------------------------


class HttpClient:
    """A ``requests`` session with one base URL, retries by :func:`classify`, pacing and redaction.

    Args:
        base_url: prefix of relative paths; absolute URLs (e.g. Facebook's ``paging.next``) pass as is.
        headers: sent with every request (auth headers go here; list their values in ``secrets``).
        secrets: values masked in every log line and exception message.
        timeout: (connect, read) seconds per attempt.
        max_attempts: attempts per call, the first included.
        pacer: keeps the call rate under the vendor's limit.
        sleep, clock, now: injectable for tests (monotonic clock for timing, wall clock for date hints).
        rng: source of backoff jitter (seed it for reproducible waits).
        backoff_base, backoff_cap: full-jitter backoff draws from [0, min(cap, base * 2**(n-1))].
        max_wait: a server hint longer than this fails the call instead of sleeping through it.
        credential: default name of the setting holding the credential, for :class:`AuthError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeout: float | tuple[float, float] = (5, 60),
        max_attempts: int = 8,
        pacer: Pacer | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        max_wait: float = 900.0,
        credential: str = "",
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update(headers or {})
        # With trust_env, requests re-reads the proxy variables and ~/.netrc on every request
        # (a quarter of a request's cost). Read the environment once per client instead:
        # proxies per host (see proxies_for), the CA bundle here; .netrc is never consulted,
        # as every connector authenticates by header.
        self.trust_env: bool = getattr(self.session, "trust_env", False)
        if self.trust_env:
            self.session.trust_env = False
        self.verify: str | None = None  # None: the session's own setting
        if self.trust_env:
            self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        self._proxies: dict[str, dict[str, str]] = {}
        self.secrets: set[str] = set()
        self.add_secrets(secrets)
        self.timeout, self.max_attempts, self.pacer = timeout, max_attempts, pacer
        self.sleep, self.clock, self.now = sleep, clock, now
        self.rng = rng or random.Random()
        self.backoff_base, self.backoff_cap, self.max_wait = backoff_base, backoff_cap, max_wait
        self.credential = credential

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Mask more values from now on (e.g. a freshly minted access token)."""
        fresh = {str(s) for s in secrets if s}
        self.secrets |= fresh
        register_secrets(fresh)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url`` (HTTP(S)_PROXY, NO_PROXY), read once per scheme and host."""
        if not self.trust_env:
            return {}
        scheme, _, rest = url.partition("://")
        key = f"{scheme}://{rest.split('/', 1)[0]}"
        proxies = self._proxies.get(key)
        if proxies is None:
            proxies = self._proxies[key] = requests.utils.get_environ_proxies(url)
        return proxies

    def url_for(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credential: str = "",
        cost: float | None = None,
    ) -> requests.Response:
        """One call with retries; returns the response once :func:`classify` calls it ok.

        Args:
            method, path_or_url: the call; a relative path is joined to ``base_url``.
            params, json, data, headers: as in ``requests`` (``data`` for form bodies).
            credential: the setting named by :class:`AuthError` if the call is refused.
            cost: what the call costs the pacer (Shopify: the expected query cost).

        Raises:
            AuthError, ApiError, RetriesExhausted (and HttpError for a request that cannot be sent).
        """
        return self._call(
            method,
            path_or_url,
            expect=None,
            params=params,
            json=json,
            data=data,
            headers=headers,
            credential=credential,
            cost=cost,
        )[0]

    def get_json(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        credential: str = "",
        cost: float | None = None,
        expect: type | tuple[type, ...] = dict,
    ) -> Any:
        """GET and parse; a body that is not JSON of type ``expect`` is retried, then :class:`MalformedResponse`."""
        return self._call(
            "GET", path_or_url, expect=expect, params=params, headers=headers, credential=credential, cost=cost
        )[1]

    def post_json(
        self,
        path_or_url: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        credential: str = "",
        cost: float | None = None,
        expect: type | tuple[type, ...] = dict,
    ) -> Any:
        """POST a JSON (``json=``) or form (``data=``) body and parse the answer, like :meth:`get_json`."""
        return self._call(
            "POST",
            path_or_url,
            expect=expect,
            params=params,
            json=json,
            data=data,
            headers=headers,
            credential=credential,
            cost=cost,
        )[1]

    def backoff(self, failures: int, hint: float | None) -> float:
        """Seconds to wait after ``failures`` failed attempts: the server's hint, else full jitter."""
        if hint is not None and hint > 0:
            return hint
        return self.rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2 ** (failures - 1)))

    def _call(
        self,
        method: str,
        path_or_url: str,
        *,
        expect: type | tuple[type, ...] | None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credential: str = "",
        cost: float | None = None,
    ) -> tuple[requests.Response, Any]:
        url = self.url_for(path_or_url)
        shown = redact(url, self.secrets)
        verdict = Verdict("retry", "not attempted")
        malformed: str | None = None
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            if self.pacer is not None:
                if cost is None:
                    self.pacer.acquire()
                else:
                    self.pacer.acquire(cost)
            started = self.clock()
            malformed = None
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    proxies=self.proxies_for(url),
                    verify=self.verify,
                )
            except requests.RequestException as exc:
                verdict = classify(None, exc)
                if verdict.fatal:
                    raise HttpError(f"{method} {url} failed: {verdict.reason}", url=url, secrets=self.secrets) from exc
            else:
                body, problem = _parse(response, expect)
                verdict = classify(response, body=body, now=self.now)
                if self.pacer is not None:
                    self.pacer.observe(response, body)
                log.debug("%s %s -> %s in %.3fs", method, shown, response.status_code, self.clock() - started)
                if verdict.ok and problem is None:
                    return response, body
                sample = response.text[:SAMPLE_CHARS]
                if verdict.ok:  # a 200 whose body is garbage: transient more often than not
                    verdict = Verdict("retry", f"malformed body: {problem}", None, response.status_code)
                    malformed = sample
                if verdict.kind == "auth":
                    reason = f"{verdict.reason}; body: {sample[:200]}"
                    setting = credential or self.credential
                    raise AuthError(url, response.status_code, reason, credential=setting, secrets=self.secrets)
                if verdict.kind == "fatal":
                    raise ApiError(url, response.status_code, sample, secrets=self.secrets)
            if attempt == self.max_attempts:
                break
            wait = self.backoff(attempt, verdict.wait)
            if wait > self.max_wait:
                verdict = Verdict("retry", f"{verdict.reason}; server asks to wait {wait:.0f}s", wait, verdict.status)
                break
            reason = redact(verdict.reason, self.secrets)
            log.warning(
                "%s %s: %s; retry %d of %d in %.2fs", method, shown, reason, attempt, self.max_attempts - 1, wait
            )
            self.sleep(wait)
        if malformed is not None:
            raise MalformedResponse(url, verdict.status, malformed, secrets=self.secrets)
        raise RetriesExhausted(url, attempt, verdict, secrets=self.secrets)


def _parse(response: requests.Response, expect: type | tuple[type, ...] | None) -> tuple[Any, str | None]:
    """(parsed body or None, why it is malformed or None). Only ``expect`` makes a bad body an error."""
    if expect is None:
        return _try_json(response), None
    try:
        body = loads_json(response.content, response.json)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(body, expect):
        return body, f"expected {getattr(expect, '__name__', expect)}, got {type(body).__name__}"
    return body, None
