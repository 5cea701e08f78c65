"""Amazon Selling Partner API stand-in: Login with Amazon tokens and Orders v2026-01-01.

Endpoints (one server plays both hosts, so ``AMAZON_LWA_URL == AMAZON_SP_API_URL``):

- ``POST /auth/o2/token`` — Login with Amazon refresh-token grant (:mod:`sandbox.amazon.auth`).
- ``GET /orders/2026-01-01/orders`` — ``searchOrders`` with ``x-amz-access-token``.
- ``GET /orders/2026-01-01/orders/{orderId}`` — ``getOrder``.

Rules the real API has and the sandbox enforces:

- exactly one of ``createdAfter`` / ``lastUpdatedAfter``; the ``…Before`` bound of the
  other family is refused; bounds must be at least two minutes before "now"; without
  an explicit ``…Before`` the search ends two minutes before now, and the response
  echoes the bound it used (``createdBefore`` / ``lastUpdatedBefore``);
- ``marketplaceIds`` is required and must be marketplaces the seller sells in;
- unknown query parameters are refused (a typo must not silently widen a search);
- ``paginationToken`` is opaque, signed, valid 24 h, and only valid with the same
  filter parameters (``maxResultsPerPage`` and ``includedData`` may change);
- a token bucket (``rate_per_second``, ``burst``) per access token; over it → 429.

"Now" is the wall clock, but never earlier than three minutes after the shop's last
order update: a demo shop generated for a future date still serves all of its orders.
``clock`` can be replaced to move time (e.g. to expire tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.amazon.auth import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    TOKEN_PATH,
    LoginWithAmazon,
    TokenBucket,
    lwa_error,
)
from sandbox.amazon.orders import (
    FULFILLED_BY,
    FULFILLMENT_STATUSES,
    INCLUDED_DATA,
    MARKETPLACE_NAMES,
    OrderBook,
    Search,
    iso,
    render_order,
)

ORDERS_PATH = "/orders/2026-01-01/orders"
DOCUMENTED_RATE = 0.0056  # requests per second, the searchOrders usage plan
UNLIMITED_RATE_HEADER = "1000"  # what x-amzn-RateLimit-Limit says when the limit is off
PAGINATION_TOKEN_TTL = timedelta(hours=24)
MIN_AGE = timedelta(minutes=2)
MAX_MARKETPLACES = 50
SEARCH_PARAMS = frozenset(
    {
        "createdAfter",
        "createdBefore",
        "lastUpdatedAfter",
        "lastUpdatedBefore",
        "fulfillmentStatuses",
        "marketplaceIds",
        "fulfilledBy",
        "maxResultsPerPage",
        "paginationToken",
        "includedData",
    }
)


class SpApiError(Exception):
    """An SP-API error answer: ``{"errors": [{"code", "message", "details"}]}``."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> Response:
        return Response.json(
            {"errors": [{"code": self.code, "message": self.message, "details": self.details}]}, self.status
        )


def _invalid(message: str) -> SpApiError:
    return SpApiError(400, "InvalidInput", message)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AmazonSandbox(SandboxServer):
    """The SP-API Orders and LWA stand-in over a demo shop directory."""

    name = "amazon"

    def __init__(
        self,
        shop_dir: Path,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_second: float | None = DOCUMENTED_RATE,
        burst: int = 20,
        token_ttl_seconds: int = 3600,
    ) -> None:
        super().__init__(faults=faults, host=host, port=port)
        self.shop_dir = Path(shop_dir)
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.clock: Callable[[], datetime] = _utcnow
        self._lock = threading.Lock()
        self.lwa = LoginWithAmazon(timedelta(seconds=token_ttl_seconds))
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._errors_served = itertools.count()
        self._signing_key = secrets.token_bytes(32)
        self.book = OrderBook(self.shop_dir)

    def __enter__(self) -> AmazonSandbox:
        self.start()
        return self

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the LWA endpoint has issued."""
        return self.lwa.issued

    def reload(self) -> None:
        """Re-read the shop tables (after the generator rewrote them)."""
        self.book = OrderBook(self.shop_dir)

    def env(self) -> dict[str, str]:
        """The settings that point Hearth's Amazon connector at this server."""
        return {
            "AMAZON_SP_API_URL": self.url,
            "AMAZON_LWA_URL": self.url,
            "AMAZON_CLIENT_ID": SANDBOX_CLIENT_ID,
            "AMAZON_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "AMAZON_REFRESH_TOKEN": SANDBOX_REFRESH_TOKEN,
            "AMAZON_MARKETPLACE_IDS": ",".join(sorted(self.book.marketplace_ids)),
        }

    def now(self) -> datetime:
        """The sandbox's "now": the clock, but never before the shop's own data (+3 min)."""
        now = self.clock()
        latest = self.book.latest
        return max(now, latest + MIN_AGE + timedelta(minutes=1)) if latest else now

    # -- serving -----------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        rate = UNLIMITED_RATE_HEADER if self.rate_per_second is None else f"{self.rate_per_second:g}"
        response.headers.setdefault("x-amzn-RateLimit-Limit", rate)
        response.headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        return response

    def handle(self, request: Request) -> Response:
        if request.path == TOKEN_PATH:
            return self.lwa.grant(request, self.now())
        try:
            if request.method == "GET" and request.path == ORDERS_PATH:
                self._authorize(request, "searchOrders")
                return Response.json(self._search(request))
            if request.method == "GET" and request.path.startswith(ORDERS_PATH + "/"):
                self._authorize(request, "getOrder")
                return Response.json(self._get_order(request, request.path.removeprefix(ORDERS_PATH + "/")))
            raise SpApiError(404, "NotFound", f"No resource at {request.method} {request.path}.")
        except SpApiError as error:
            return error.response()

    def throttled(self, request: Request) -> Response:
        if request.path == TOKEN_PATH:
            return lwa_error(429, "temporarily_unavailable", "Too many requests. Retry later.")
        return SpApiError(429, "QuotaExceeded", "You exceeded your quota for the requested resource.").response()

    def server_error(self, request: Request) -> Response:
        # Alternate 500 and 503 so clients meet both; the order is fixed, hence deterministic.
        unavailable = next(self._errors_served) % 2 == 1
        if request.path == TOKEN_PATH:
            if unavailable:
                return lwa_error(503, "temporarily_unavailable", "The service is temporarily unavailable.")
            return lwa_error(500, "server_error", "The server encountered an unexpected error.")
        if unavailable:
            return SpApiError(503, "ServiceUnavailable", "Service temporarily unavailable. Retry later.").response()
        return SpApiError(500, "InternalFailure", "We encountered an internal error. Please try again.").response()

    def _authorize(self, request: Request, operation: str) -> None:
        """Refuse a missing, unknown or expired access token (403) and calls over its rate (429)."""
        token = request.headers.get("x-amz-access-token", "")
        details = self.lwa.problem(token, self.now())
        if details:
            raise SpApiError(403, "Unauthorized", "Access to requested resource is denied.", details)
        if self.rate_per_second is not None:
            with self._lock:
                bucket = self._buckets.setdefault((token, operation), TokenBucket(self.rate_per_second, self.burst))
                allowed = bucket.take()
            if not allowed:
                raise SpApiError(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")

    # -- Orders ---------------------------------------------------------------------------------
    def _search(self, request: Request) -> dict[str, Any]:
        unknown = sorted(set(request.query) - SEARCH_PARAMS)
        if unknown:
            raise _invalid(
                f"Unknown query parameter(s) {', '.join(unknown)}; searchOrders accepts "
                f"{', '.join(sorted(SEARCH_PARAMS))}."
            )
        created_after, updated_after = _time(request, "createdAfter"), _time(request, "lastUpdatedAfter")
        created_before, updated_before = _time(request, "createdBefore"), _time(request, "lastUpdatedBefore")
        if (created_after is None) == (updated_after is None):
            raise _invalid("Exactly one of createdAfter and lastUpdatedAfter is required.")
        if created_after is not None and updated_before is not None:
            raise _invalid("lastUpdatedBefore cannot be combined with createdAfter; use createdBefore.")
        if updated_after is not None and created_before is not None:
            raise _invalid("createdBefore cannot be combined with lastUpdatedAfter; use lastUpdatedBefore.")
        field, prefix = ("created", "created") if created_after is not None else ("updated", "lastUpdated")
        after = created_after or updated_after
        given_before = created_before or updated_before
        assert after is not None
        latest_allowed = self.now() - MIN_AGE
        if after > latest_allowed:
            raise _invalid(f"{prefix}After must be at least two minutes before the time of the request.")
        if given_before is not None and given_before < after:
            raise _invalid(f"{prefix}Before must be equal to or after {prefix}After.")
        if given_before is not None and given_before > latest_allowed:
            raise _invalid(f"{prefix}Before must be at least two minutes before the time of the request.")

        marketplaces = self._marketplaces(request)
        statuses = _enum(request, "fulfillmentStatuses", FULFILLMENT_STATUSES)
        fulfilled_by = _enum(request, "fulfilledBy", FULFILLED_BY)
        included = _enum(request, "includedData", INCLUDED_DATA) or frozenset()
        page_size = _page_size(request)
        filters = {
            "field": field,
            "after": iso(after),
            "before": iso(given_before) if given_before else None,
            "marketplaceIds": sorted(marketplaces),
            "fulfillmentStatuses": sorted(statuses) if statuses is not None else None,
            "fulfilledBy": sorted(fulfilled_by) if fulfilled_by is not None else None,
        }
        pagination_token = _single(request, "paginationToken")
        if pagination_token is not None:
            before, resume_after = self._open_pagination_token(pagination_token, filters)
        else:
            before, resume_after = given_before or latest_allowed, None
        search = Search(field, after, before, marketplaces, statuses, fulfilled_by, resume_after)
        orders, more = self.book.search(search, page_size)
        body: dict[str, Any] = {"orders": [render_order(order, included) for order in orders]}
        if more:
            last = orders[-1]
            body["pagination"] = {
                "nextToken": self._issue_pagination_token(filters, before, (last.timestamp(field), last.order_id))
            }
        body[f"{prefix}Before"] = iso(before)
        return body

    def _get_order(self, request: Request, order_id: str) -> dict[str, Any]:
        unknown = sorted(set(request.query) - {"includedData"})
        if unknown:
            raise _invalid(f"Unknown query parameter(s) {', '.join(unknown)}; getOrder accepts includedData.")
        included = _enum(request, "includedData", INCLUDED_DATA) or frozenset()
        order = self.book.by_id.get(order_id)
        if order is None:
            raise SpApiError(404, "NotFound", f"Order {order_id!r} was not found.")
        return {"order": render_order(order, included)}

    def _marketplaces(self, request: Request) -> frozenset[str]:
        ids = _values(request, "marketplaceIds")
        if not ids:
            raise _invalid("marketplaceIds is required (comma-separated marketplace ids, e.g. ATVPDKIKX0DER).")
        if len(ids) > MAX_MARKETPLACES:
            raise _invalid(f"marketplaceIds accepts at most {MAX_MARKETPLACES} values, got {len(ids)}.")
        unknown = sorted(set(ids) - set(MARKETPLACE_NAMES))
        if unknown:
            raise _invalid(f"Invalid marketplaceIds {', '.join(unknown)}: not Amazon marketplace ids.")
        foreign = sorted(set(ids) - self.book.marketplace_ids)
        if foreign:
            raise _invalid(
                f"The seller is not registered in marketplace(s) {', '.join(foreign)}; "
                f"registered: {', '.join(sorted(self.book.marketplace_ids))}."
            )
        return frozenset(ids)

    # -- pagination tokens: signed, self-contained, so paging survives reload() ------------------
    def _issue_pagination_token(self, filters: dict[str, Any], before: datetime, last: tuple[datetime, str]) -> str:
        state = {"filters": filters, "before": iso(before), "last": [iso(last[0]), last[1]], "issued": iso(self.now())}
        raw = json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")
        signature = hmac.new(self._signing_key, raw, hashlib.sha256).digest()[:16]
        return f"{_b64(raw)}.{_b64(signature)}"

    def _open_pagination_token(self, token: str, filters: dict[str, Any]) -> tuple[datetime, tuple[datetime, str]]:
        try:
            raw_text, signature_text = token.split(".")
            raw, signature = _unb64(raw_text), _unb64(signature_text)
            valid = hmac.compare_digest(signature, hmac.new(self._signing_key, raw, hashlib.sha256).digest()[:16])
            state = json.loads(raw) if valid else None
        except (ValueError, UnicodeDecodeError):
            state = None
        if not state:
            raise _invalid("Invalid paginationToken: pass pagination.nextToken exactly as received.")
        if self.now() - datetime.fromisoformat(state["issued"]) > PAGINATION_TOKEN_TTL:
            raise _invalid("The paginationToken has expired (tokens are valid for 24 hours); start the search again.")
        if state["filters"] != filters:
            raise _invalid(
                "The paginationToken was issued for other parameters: repeat the original request's "
                "parameters (only maxResultsPerPage and includedData may change)."
            )
        last_time, last_id = state["last"]
        return datetime.fromisoformat(state["before"]), (datetime.fromisoformat(last_time), last_id)


# -- query parameters ------------------------------------------------------------------------


def _single(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(f"{name} was given {len(values)} times; pass it once.")
    return values[0]


def _values(request: Request, name: str) -> list[str]:
    """An array parameter: comma-separated (Swagger's default), repeated keys also accepted."""
    return [part.strip() for value in request.query.get(name, []) for part in value.split(",") if part.strip()]


def _enum(request: Request, name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    values = _values(request, name)
    if not values:
        return None
    wrong = sorted(set(values) - set(allowed))
    if wrong:
        raise _invalid(f"Invalid {name} value(s) {', '.join(wrong)}; allowed: {', '.join(allowed)}.")
    return frozenset(values)


def _time(request: Request, name: str) -> datetime | None:
    value = _single(request, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{name} {value!r} is not an ISO 8601 date-time, e.g. 2025-01-01T00:00:00Z.") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _page_size(request: Request) -> int:
    value = _single(request, "maxResultsPerPage")
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise _invalid(f"maxResultsPerPage must be an integer between 1 and 100, got {value!r}.")
    return int(value)
