"""Facebook Marketing API (Graph) stand-in: insights, async report runs, ad metadata, custom audiences.

Paths are versioned (``/v25.0/…``; another version answers error 2635). Endpoints:

- ``GET /{v}/act_{id}/insights`` — synchronous insights (see :mod:`sandbox.facebook.insights`);
- ``POST /{v}/act_{id}/insights`` → ``{"report_run_id"}``; ``GET /{v}/{run}`` reports
  ``async_status`` / ``async_percent_completion``, advancing one step per poll ("Job Not
  Started" on the first, "Job Completed" on poll ``async_polls_to_complete``);
  ``GET /{v}/{run}/insights`` pages the result once completed;
- ``GET /{v}/act_{id}/campaigns|adsets|ads`` with ``fields`` and ``effective_status``;
- ``GET|POST /{v}/act_{id}/customaudiences``; ``GET|DELETE /{v}/{audience}``;
  ``POST|DELETE /{v}/{audience}/users``; ``POST /{v}/{audience}/usersreplace``
  (see :mod:`sandbox.facebook.audiences`).

Lists page as :mod:`sandbox.facebook.graph` describes.

Each synchronous insights query (a first page, without a cursor) and each report run
is one *pull*: the pull counter drives attribution settling (:mod:`sandbox.facebook.data`);
the cursors carry the pull, so the pages of one query agree with each other.

Errors are ``{"error": {message, type, code, error_subcode, is_transient, fbtrace_id}}``:
missing token → 104, bad token → 190 (both HTTP 400, OAuthException); bad parameter → 100;
fault-injected throttling → HTTP 400 with code 17 (insights, report runs) or 80004 (others);
fault-injected server errors → HTTP 500 with code 1 and 2 alternately. Every response
carries ``X-Business-Use-Case-Usage`` and ``X-Ad-Account-Usage`` (insights also
``x-fb-ads-insights-throttle``); utilisation grows with the calls of the last five minutes.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.facebook.audiences import AudienceStore
from sandbox.facebook.contract import (
    EFFECTIVE_STATUSES,
    GRAPH_PARAMS,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_NOT_STARTED,
    JOB_RUNNING,
    METADATA_PARAMS,
    REPORT_RUN_FIELDS,
    USERS_PARAMS,
    GraphError,
    invalid_param,
)
from sandbox.facebook.data import EDGE_FIELDS, EDGE_NODE, AdsData
from sandbox.facebook.graph import UsageMeter, check_names, cursor_of, error_response, page, request_params
from sandbox.facebook.insights import InsightsQuery, as_list, parse_insights, run_query
from sandbox.shop.tables import SHOP_CURRENCY, SHOP_NAME

SANDBOX_ACCESS_TOKEN = "EAAHearthSandboxAccessToken"
SANDBOX_AD_ACCOUNT_ID = "1000000000000001"
VERSION = re.compile(r"v\d+\.\d+")
REPORT_RUN_DEFAULT_FIELDS = (
    "id",
    "account_id",
    "time_ref",
    "async_status",
    "async_percent_completion",
    "date_start",
    "date_stop",
    "is_running",
)


@dataclass
class ReportRun:
    id: str
    query: InsightsQuery
    pull: int
    created: int
    fails: bool = False
    polls: int = 0


def _no_object(node: str, method: str) -> GraphError:
    return invalid_param(
        f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation.",
        subcode=33,
    )


class FacebookSandbox(SandboxServer):
    """The Graph API stand-in over a demo shop directory."""

    name = "facebook"

    def __init__(
        self,
        shop_dir: Path,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        ad_account_id: str = SANDBOX_AD_ACCOUNT_ID,
        api_version: str = "v25.0",
        settle_days: int = 7,
        async_polls_to_complete: int = 2,
    ) -> None:
        super().__init__(faults=faults, host=host, port=port)
        if not ad_account_id.isdigit():
            raise ValueError(f"ad_account_id must be digits only (paths use act_<id>), got {ad_account_id!r}")
        self.shop_dir = Path(shop_dir)
        self.access_token, self.ad_account_id, self.api_version = access_token, ad_account_id, api_version
        self.settle_days, self.async_polls_to_complete = settle_days, async_polls_to_complete
        self.pulls = 0
        self.data = AdsData(self.shop_dir)
        self.audiences = AudienceStore(f"act_{ad_account_id}")
        self.report_runs: dict[str, ReportRun] = {}
        self._failing_runs = 0
        self._run_ids = itertools.count(1200000000000001)
        self._rows_cache: OrderedDict[tuple[InsightsQuery, int], list[dict[str, Any]]] = OrderedDict()
        self.usage = UsageMeter(ad_account_id)
        self._errors_served = itertools.count()
        self._lock = threading.RLock()

    def __enter__(self) -> FacebookSandbox:
        self.start()
        return self

    @property
    def account(self) -> dict[str, str]:
        return {"account_id": self.ad_account_id, "account_name": SHOP_NAME, "account_currency": SHOP_CURRENCY}

    def env(self) -> dict[str, str]:
        """The settings that point Hearth's Facebook connector at this server."""
        return {
            "FACEBOOK_GRAPH_URL": self.url,
            "FACEBOOK_ACCESS_TOKEN": self.access_token,
            "FACEBOOK_AD_ACCOUNT_ID": self.ad_account_id,
        }

    def reload(self) -> None:
        """Re-read the shop tables (after the generator rewrote them)."""
        data = AdsData(self.shop_dir)
        with self._lock:
            self.data = data
            self._rows_cache.clear()

    def fail_next_report_runs(self, count: int = 1) -> None:
        """Make the next ``count`` report runs end in "Job Failed" (to exercise clients' handling)."""
        with self._lock:
            self._failing_runs += count

    # -- serving -------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if "X-Ad-Account-Usage" not in response.headers:  # a throttled answer already has its own
            response.headers.update(self.usage.headers(self._usage_type(request)))
        return response

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except GraphError as error:
            return error_response(error)

    def throttled(self, request: Request) -> Response:
        kind = self._usage_type(request)
        if kind == "ads_insights":
            error = GraphError(17, "(#17) User request limit reached", subcode=2446079, transient=True)
        else:
            message = "(#80004) There have been too many calls to this ad-account. Wait a bit and try again."
            error = GraphError(80004, message, subcode=2446079, transient=True)
        response = error_response(error)
        response.headers.update(self.usage.headers(kind, throttled=True))
        return response

    def server_error(self, request: Request) -> Response:
        # Codes 1 and 2 alternate in a fixed order, so a seeded fault run is reproducible.
        if next(self._errors_served) % 2:
            message = "An unexpected error has occurred. Please retry your request later."
            return error_response(GraphError(2, message, status=500, transient=True))
        return error_response(GraphError(1, "An unknown error occurred", status=500, subcode=99, transient=True))

    def _usage_type(self, request: Request) -> str:
        parts = [p for p in request.path.split("/") if p]
        node = parts[1] if len(parts) > 1 else ""
        if "insights" in parts or node in self.report_runs:
            return "ads_insights"
        if "customaudiences" in parts or node in self.audiences.audiences:
            return "custom_audience"
        return "ads_management"

    # -- routing -------------------------------------------------------------------------------
    def _route(self, request: Request) -> Response:
        params = request_params(request)
        self._authenticate(request, params)
        parts = [p for p in request.path.split("/") if p]
        if not parts or not VERSION.fullmatch(parts[0]) or len(parts) > 3:
            raise GraphError(2500, f"Unknown path components: {request.path}")
        if parts[0] != self.api_version:
            raise GraphError(
                2635,
                f"(#2635) You are calling a deprecated version of the Ads API. Please update to "
                f"the latest version: {self.api_version}.",
            )
        node, edge, method = parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "", request.method
        if node == f"act_{self.ad_account_id}":
            return self._account(request, params, edge)
        with self._lock:
            run = self.report_runs.get(node)
            audience = self.audiences.audiences.get(node)
        if run is not None and method == "GET" and edge in ("", "insights"):
            return self._report_run(request, params, run, edge)
        if audience is not None:
            if edge == "" and method == "GET":
                return Response.json(audience.render(as_list("fields", params.get("fields", "id"))))
            if edge == "" and method == "DELETE":
                self.audiences.delete(audience.id)
                return Response.json({"success": True})
            modes = {("users", "POST"): "add", ("users", "DELETE"): "remove", ("usersreplace", "POST"): "replace"}
            if (edge, method) in modes:
                check_names(params, USERS_PARAMS)
                return Response.json(self.audiences.upload(audience, params, mode=modes[(edge, method)]))
        raise _no_object(node, method)

    def _authenticate(self, request: Request, params: dict[str, Any]) -> None:
        token = params.get("access_token")
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if not token and scheme.lower() in ("bearer", "oauth"):
            token = value.strip()
        if not token:
            raise GraphError(104, "An access token is required to request this resource.")
        if token != self.access_token:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")

    def _account(self, request: Request, params: dict[str, Any], edge: str) -> Response:
        method = request.method
        if edge == "" and method == "GET":
            return Response.json(
                {
                    "id": f"act_{self.ad_account_id}",
                    "account_id": self.ad_account_id,
                    "name": SHOP_NAME,
                    "currency": SHOP_CURRENCY,
                }
            )
        if edge == "insights" and method == "GET":
            query = parse_insights(params, self.data)
            cursor = cursor_of(params)
            pull = cursor[1] if cursor else self._next_pull()
            return page(self.url, request, params, self._rows(query, pull), pull)
        if edge == "insights" and method == "POST":
            return Response.json({"report_run_id": self._start_report_run(params)})
        if edge in EDGE_FIELDS and method == "GET":
            check_names(params, METADATA_PARAMS[edge] | {"fields", "limit"})
            fields = as_list("fields", params.get("fields", "id"))
            for field in fields:
                if field not in EDGE_FIELDS[edge]:
                    raise invalid_param(f"Tried accessing nonexisting field ({field}) on node type ({EDGE_NODE[edge]})")
            statuses = None
            if "effective_status" in params:
                statuses = frozenset(as_list("effective_status", params["effective_status"]))
                wrong = sorted(statuses - set(EFFECTIVE_STATUSES))
                if wrong:
                    raise invalid_param(
                        f"effective_status[0] must be one of the following values: {', '.join(EFFECTIVE_STATUSES)}"
                    )
            rows = self.data.entities(edge, self.ad_account_id, statuses)
            return page(self.url, request, params, [{k: r[k] for k in ("id", *fields) if k in r} for r in rows])
        if edge == "customaudiences" and method == "POST":
            return Response.json(
                {"id": self.audiences.create({k: v for k, v in params.items() if k not in GRAPH_PARAMS}).id}
            )
        if edge == "customaudiences" and method == "GET":
            check_names(params, {"business_id", "fetch_primary_audience", "fields", "filtering", "pixel_id", "limit"})
            fields = as_list("fields", params.get("fields", "id"))
            with self._lock:
                audiences = list(self.audiences.audiences.values())
            return page(self.url, request, params, [audience.render(fields) for audience in audiences])
        if edge in ("insights", "campaigns", "adsets", "ads", "customaudiences", ""):
            raise _no_object(f"act_{self.ad_account_id}", method)
        raise GraphError(2500, f"Unknown path components: /{edge}")

    # -- insights --------------------------------------------------------------------------------
    def _next_pull(self) -> int:
        with self._lock:
            self.pulls += 1
            return self.pulls

    def _rows(self, query: InsightsQuery, pull: int) -> list[dict[str, Any]]:
        """The query's rows on pull ``pull``, cached so paging a large result stays cheap."""
        key = (query, pull)
        with self._lock:
            if key in self._rows_cache:
                self._rows_cache.move_to_end(key)
                return self._rows_cache[key]
            data = self.data
        rows = run_query(query, data, pull=pull, settle_days=self.settle_days, account=self.account)
        with self._lock:
            self._rows_cache[key] = rows
            while len(self._rows_cache) > 16:
                self._rows_cache.popitem(last=False)
        return rows

    def _start_report_run(self, params: dict[str, Any]) -> str:
        query = parse_insights(params, self.data)
        pull = self._next_pull()
        with self._lock:
            run = ReportRun(str(next(self._run_ids)), query, pull, int(time.time()), fails=self._failing_runs > 0)
            self._failing_runs = max(0, self._failing_runs - 1)
            self.report_runs[run.id] = run
        return run.id

    def _status(self, run: ReportRun) -> tuple[str, int]:
        done = max(1, self.async_polls_to_complete)
        if run.polls >= done:
            return (JOB_FAILED, 0) if run.fails else (JOB_COMPLETED, 100)
        if run.polls <= 1:
            return JOB_NOT_STARTED, 0
        return JOB_RUNNING, 100 * (run.polls - 1) // done

    def _report_run(self, request: Request, params: dict[str, Any], run: ReportRun, edge: str) -> Response:
        if edge == "insights":
            check_names(params, {"limit"})
            status, _ = self._status(run)
            if status != JOB_COMPLETED:
                raise invalid_param(
                    f"Report run {run.id} has async_status {status!r}: poll GET /{run.id} until it is 'Job Completed'"
                )
            return page(self.url, request, params, self._rows(run.query, run.pull), run.pull)
        check_names(params, {"fields"})
        fields = as_list("fields", params["fields"]) if "fields" in params else list(REPORT_RUN_DEFAULT_FIELDS)
        for field in fields:
            if field not in REPORT_RUN_FIELDS:
                raise invalid_param(f"Tried accessing nonexisting field ({field}) on node type (AdReportRun)")
        with self._lock:
            run.polls += 1
            status, percent = self._status(run)
        values: dict[str, Any] = {
            "id": run.id,
            "account_id": self.ad_account_id,
            "time_ref": run.created,
            "async_status": status,
            "async_percent_completion": percent,
            "date_start": run.query.since.isoformat(),
            "date_stop": run.query.until.isoformat(),
            "is_running": status in (JOB_NOT_STARTED, JOB_RUNNING),
        }
        if status == JOB_COMPLETED:
            values["time_completed"] = run.created
        if status == JOB_FAILED:
            values.update(error_code=2601, error_message="The report run failed. Start a new report run.")
        if status == JOB_FAILED and "error_code" not in fields:
            fields += ["error_code", "error_message"]  # a failure always says why
        return Response.json({key: values[key] for key in ("id", *fields) if key in values})
