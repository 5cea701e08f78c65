"""Redaction of secrets and the typed errors of the HTTP layer (see ``_http``)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

SAMPLE_CHARS = 500


if TYPE_CHECKING:
    from connectors._classify import Verdict

# -- redaction -------------------------------------------------------------------

# Credentials that travel in query strings or form bodies (Facebook's access_token,
# LWA's refresh_token/client_secret) are masked whatever their value.
_SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|refresh_token|client_secret|api_key|appsecret_proof|password|token)=([^&\s\"']+)"
)
_SECRET_KEY = re.compile(r'(?i)("(?:access_token|refresh_token|client_secret)"\s*:\s*)"[^"]*"')  # LWA answers
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_MASK = "***"
_global_secrets: set[str] = set()
_global_lock = threading.Lock()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value, ``…token=…`` parameter and bearer token masked."""
    for secret in sorted({str(s) for s in secrets if s and len(str(s)) >= 4}, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={_MASK}", text)
    text = _SECRET_KEY.sub(lambda m: f'{m.group(1)}"{_MASK}"', text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {_MASK}", text)


def register_secrets(secrets: Iterable[str]) -> None:
    """Add values that the :class:`RedactingFilter` masks in every log record from now on."""
    with _global_lock:
        _global_secrets.update(str(s) for s in secrets if s and len(str(s)) >= 4)


def _registered() -> tuple[str, ...]:
    with _global_lock:
        return tuple(_global_secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in a record's final message.

    Filters act only on records of the logger they are attached to: connectors
    call :func:`install_redaction` on their own loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, _registered())
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction(logger: logging.Logger) -> None:
    """Attach the shared :class:`RedactingFilter` to ``logger`` (idempotent)."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


# Our own logger, and urllib3's, which logs full request lines (query strings included).
install_redaction(logging.getLogger("connectors"))
install_redaction(logging.getLogger("urllib3.connectionpool"))


# -- errors ----------------------------------------------------------------------


class HttpError(Exception):
    """Base of the errors this layer raises; the message is already redacted (given and registered secrets)."""

    def __init__(self, message: str, *, url: str, status: int | None = None, secrets: Iterable[str] = ()) -> None:
        secrets = (*secrets, *_registered())
        self.url = redact(url, secrets)
        self.status = status
        super().__init__(redact(message, secrets))


class AuthError(HttpError):
    """The credentials were refused (401/403, Facebook code 190, LWA invalid_grant …)."""

    def __init__(
        self, url: str, status: int | None, reason: str, *, credential: str = "", secrets: Iterable[str] = ()
    ) -> None:
        self.credential = credential
        setting = credential or "the credential setting of this source"
        super().__init__(
            f"{url} refused the credentials (HTTP {status}: {reason}). Check {setting}: set a valid, "
            "unexpired value with the required scopes/permissions in the environment or .env, then rerun.",
            url=url,
            status=status,
            secrets=secrets,
        )


class ApiError(HttpError):
    """The server rejected the request itself (a 4xx that retrying cannot fix)."""

    def __init__(self, url: str, status: int | None, sample: str, *, secrets: Iterable[str] = ()) -> None:
        secrets = tuple(secrets)
        self.sample = redact(sample, (*secrets, *_registered()))
        super().__init__(
            f"{url} rejected the request with HTTP {status}: {sample!r}. Retrying will not help: fix the "
            "request or the settings it was built from (ids, dates, API version).",
            url=url,
            status=status,
            secrets=secrets,
        )


class MalformedResponse(HttpError):
    """The body was not valid JSON of the expected type, even after retries."""

    def __init__(self, url: str, status: int | None, sample: str, *, secrets: Iterable[str] = ()) -> None:
        secrets = tuple(secrets)
        self.sample = redact(sample, (*secrets, *_registered()))
        super().__init__(
            f"{url} answered HTTP {status} with a body that is not the expected JSON, also after retries; "
            f"body sample: {sample!r}. Check that the base URL points at the API (not a proxy or login page).",
            url=url,
            status=status,
            secrets=secrets,
        )


class RetriesExhausted(HttpError):
    """Every attempt failed with a retryable verdict; ``verdict`` is the last one."""

    def __init__(self, url: str, attempts: int, verdict: Verdict, *, secrets: Iterable[str] = ()) -> None:
        self.attempts = attempts
        self.verdict = verdict
        super().__init__(
            f"{url} still failing after {attempts} attempt(s): {verdict.reason}. The service is down or "
            "throttling this client; rerun later (cursors make the rerun resume) or lower the request rate.",
            url=url,
            status=verdict.status,
            secrets=secrets,
        )
