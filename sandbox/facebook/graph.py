"""Graph API plumbing shared by the Facebook sandbox's endpoints: parameters, paging, errors, usage headers.

Lists page with ``limit`` (default 25) and opaque cursors: ``paging.cursors.{before,
after}``, ``paging.next`` (a full URL, absent on the last page) and ``paging.previous``.
A cursor carries a row index and the insights pull it belongs to, so every page of
one insights query is served from the same pull.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

from sandbox._server import Request, Response
from sandbox.facebook.contract import GRAPH_PARAMS, GraphError, invalid_param

DEFAULT_LIMIT, MAX_LIMIT = 25, 5000
USAGE_WINDOW_SECONDS = 300
ACCESS_TIER = "standard_access"


def request_params(request: Request) -> dict[str, Any]:
    """Query string, form fields and a JSON object body, merged (Graph takes parameters from all three)."""
    params: dict[str, Any] = {key: values[-1] for key, values in request.query.items()}
    params.update({key: values[-1] for key, values in request.form().items()})
    if "json" in request.headers.get("content-type", "") and request.body:
        try:
            body = request.json()
        except ValueError as exc:
            raise invalid_param(str(exc)) from None
        if not isinstance(body, dict):
            raise invalid_param("a JSON body must be an object of parameters")
        params.update(body)
    return params


def check_names(params: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """Refuse parameters an edge does not take (the universal Graph ones are always allowed)."""
    unknown = sorted(set(params) - set(allowed) - GRAPH_PARAMS)
    if unknown:
        raise invalid_param(f"Param {unknown[0]} is not valid here; allowed: {', '.join(sorted(allowed))}")


def error_response(error: GraphError) -> Response:
    headers = {}
    if error.code in (104, 190):
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
    return Response.json(error.payload("A" + secrets.token_urlsafe(16)), error.status, headers)


# -- paging ----------------------------------------------------------------------------------------


def _encode(index: int, pull: int) -> str:
    return base64.urlsafe_b64encode(f"{index}:{pull}".encode()).decode("ascii").rstrip("=")


def cursor_of(params: dict[str, Any]) -> tuple[int, int] | None:
    """``(row index, pull)`` of the ``after`` or ``before`` cursor, if any."""
    text = str(params.get("after") or params.get("before") or "")
    if not text:
        return None
    try:
        index, pull = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii").split(":")
        return int(index), int(pull)
    except (ValueError, UnicodeDecodeError):
        raise invalid_param("Invalid cursor: pass paging.cursors.after (or before) exactly as received") from None


def _limit(params: dict[str, Any]) -> int:
    value = str(params.get("limit", DEFAULT_LIMIT))
    if not value.isdigit() or int(value) < 1:
        raise invalid_param(f"limit must be a positive integer, got {value!r}")
    return min(int(value), MAX_LIMIT)


def _link(base_url: str, request: Request, direction: str, cursor: str) -> str:
    """The request's own URL with the cursor swapped (it keeps access_token when the caller sent it so)."""
    query = [(k, v) for k, values in request.query.items() if k not in ("after", "before") for v in values]
    query.append((direction, cursor))
    return f"{base_url}{request.path}?{urllib.parse.urlencode(query)}"


def page(
    base_url: str, request: Request, params: dict[str, Any], items: list[dict[str, Any]], pull: int = 0
) -> Response:
    """One page of ``items`` as ``{"data": […], "paging": {…}}``."""
    limit, cursor = _limit(params), cursor_of(params)
    if cursor is None:
        start, end = 0, limit
    elif params.get("after"):
        start, end = cursor[0] + 1, cursor[0] + 1 + limit
    else:
        start, end = max(0, cursor[0] - limit), cursor[0]
    rows = items[start:end]
    body: dict[str, Any] = {"data": rows}
    if rows:
        first, last = _encode(start, pull), _encode(start + len(rows) - 1, pull)
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        if start + len(rows) < len(items):
            paging["next"] = _link(base_url, request, "after", last)
        if start > 0:
            paging["previous"] = _link(base_url, request, "before", first)
        body["paging"] = paging
    return Response.json(body)


# -- usage headers ---------------------------------------------------------------------------------


class UsageMeter:
    """Rate-limit usage headers; utilisation grows with the calls of the last five minutes."""

    def __init__(self, ad_account_id: str) -> None:
        self.ad_account_id = ad_account_id
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def headers(self, kind: str, *, throttled: bool = False) -> dict[str, str]:
        """Count one call and return the headers for it. ``kind``: ads_insights, ads_management, custom_audience."""
        with self._lock:
            now = time.monotonic()
            self._calls.append(now)
            while self._calls[0] < now - USAGE_WINDOW_SECONDS:
                self._calls.popleft()
            pct = 100 if throttled else min(95, 1 + len(self._calls) // 5)
        usage = {
            "type": kind,
            "call_count": pct,
            "total_cputime": pct // 2,
            "total_time": pct,
            "estimated_time_to_regain_access": 5 if throttled else 0,
            "ads_api_access_tier": ACCESS_TIER,
        }
        account = {
            "acc_id_util_pct": float(pct),
            "reset_time_duration": 300 if throttled else 0,
            "ads_api_access_tier": ACCESS_TIER,
        }
        headers = {
            "X-Business-Use-Case-Usage": json.dumps({self.ad_account_id: [usage]}),
            "X-Ad-Account-Usage": json.dumps(account),
        }
        if kind == "ads_insights":
            headers["x-fb-ads-insights-throttle"] = json.dumps(
                {"app_id_util_pct": pct, "acc_id_util_pct": pct, "ads_api_access_tier": ACCESS_TIER}
            )
        return headers
