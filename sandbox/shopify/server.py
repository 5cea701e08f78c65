"""The Shopify Admin GraphQL sandbox: the demo shop behind Shopify's real 2026-04 schema.

``POST /admin/api/2026-04/graphql.json`` with ``X-Shopify-Access-Token`` runs any
query that is valid against the official schema and touches the supported root
fields; every answer carries ``extensions.cost`` and is charged to a leaky
bucket as Shopify does. Bulk results are served at ``/_sandbox/bulk/<file>``
(exempt from faults, like Shopify's signed storage URLs are from its API).
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from graphql import DocumentNode, ExecutionResult, execute_sync

from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.shopify.bulk import BulkOperations
from sandbox.shopify.cost import (
    MAX_QUERY_COST,
    THROTTLED_ERROR,
    LeakyBucket,
    actual_cost,
    analyse,
    max_cost_error,
)
from sandbox.shopify.resolvers import Renderer
from sandbox.shopify.root import SUPPORTED_ROOTS, root_value
from sandbox.shopify.schema import API_VERSION, SUPPORTED_VERSIONS, admin_schema, parse_and_validate
from sandbox.shopify.store import ShopData
from sandbox.shopify.wire import resolve_field

SANDBOX_ACCESS_TOKEN = "shpat_hearth_sandbox_0123456789abcdef"
INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}

_GRAPHQL_PATH = re.compile(r"^/admin/api/(?P<version>[^/]+)/graphql\.json$")
_BULK_PATH = re.compile(r"^/_sandbox/bulk/(?P<name>[\w.]+)$")


class ShopifySandbox(SandboxServer):
    """A local stand-in for one shop's Admin GraphQL API.

    Args:
        shop_dir: the demo-shop directory (``sandbox/shop/tables.py`` layout).
        faults: fault knobs (errors, THROTTLED answers, stalls, cut bodies).
        access_token: the token clients must send in ``X-Shopify-Access-Token``.
        rate_limit: charge query costs to the bucket; False lets every query through.
        bucket_size: points the bucket holds (Shopify's standard plan: 2000).
        restore_rate: points restored per second (standard plan: 100).
    """

    name = "shopify"

    def __init__(
        self,
        shop_dir: Path,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        rate_limit: bool = True,
        bucket_size: float = 2000,
        restore_rate: float = 100.0,
    ) -> None:
        super().__init__(faults=faults, host=host, port=port)
        self.shop_dir = Path(shop_dir)
        self.access_token = access_token
        self.bucket = LeakyBucket(bucket_size, restore_rate, enabled=rate_limit)
        self.schema = admin_schema()
        bulk_dir = Path(tempfile.mkdtemp(prefix="hearth-shopify-bulk-"))
        weakref.finalize(self, shutil.rmtree, bulk_dir, True)
        self.bulk = BulkOperations(self.schema, bulk_dir, lambda: self.url)
        self._request_ids = itertools.count(1)
        self.reload()

    def reload(self) -> None:
        """Re-read the shop tables from disk (tests rewrite Parquet files to simulate changes)."""
        data = ShopData(self.shop_dir)
        self._snapshot = (data, Renderer(data))  # one assignment: requests see old or new, never a mix

    def env(self) -> dict[str, str]:
        """The settings that point Hearth's Shopify connector at this server."""
        return {
            "SHOPIFY_API_URL": self.url,
            "SHOPIFY_ACCESS_TOKEN": self.access_token,
            "SHOPIFY_API_VERSION": API_VERSION,
        }

    # -- HTTP --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        bulk_file = _BULK_PATH.match(request.path)
        if bulk_file and request.method in ("GET", "HEAD"):
            path = self.bulk.file(bulk_file.group("name"))
            if path is None:
                return Response.json({"errors": "Not Found"}, 404)
            return Response(200, path.read_bytes(), {"Content-Type": "application/jsonl"})
        match = _GRAPHQL_PATH.match(request.path)
        if not match:
            return Response.json({"errors": "Not Found"}, 404)
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return Response.json(INVALID_TOKEN_BODY, 401)
        if match.group("version") not in SUPPORTED_VERSIONS:
            message = (
                f"API version {match.group('version')!r} is not available: "
                f"this sandbox serves {', '.join(SUPPORTED_VERSIONS)}"
            )
            return Response.json({"errors": message}, 404)
        if request.method != "POST":
            return Response.json({"errors": "GraphQL requests are POSTed to this endpoint"}, 405, {"Allow": "POST"})
        try:
            query, variables, operation_name = self._read_body(request)
        except ValueError as error:
            return Response.json({"errors": {"query": f"Required parameter missing or invalid: {error}"}}, 400)
        return self._respond(self.graphql(query, variables, operation_name))

    def graphql(self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None) -> dict:
        """Run one GraphQL request as the endpoint does (cost, bucket, execution); returns the body.

        The HTTP handler's core, also handy in-process (benchmarks, debugging): no token check.
        """
        document, errors = parse_and_validate(query)
        if errors or document is None:
            return {"errors": [error.formatted for error in errors], "extensions": self._cost(0, 0)}
        analysis = analyse(self.schema, document, variables, operation_name, supported_roots=SUPPORTED_ROOTS)
        requested = analysis.requested_cost
        if analysis.errors:
            return {"errors": [error.formatted for error in analysis.errors], "extensions": self._cost(requested, 0)}
        if requested > MAX_QUERY_COST:
            return {"errors": [max_cost_error(requested)], "extensions": self._cost(requested, None)}
        if not self.bucket.take(requested):
            return {"errors": [THROTTLED_ERROR], "extensions": self._cost(requested, None)}
        result = self._execute(document, variables, operation_name)
        actual = actual_cost(self.schema, document, analysis, result.data)
        self.bucket.give_back(requested - actual)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        body["data"] = result.data
        body["extensions"] = self._cost(requested, actual)
        return body

    def throttled(self, request: Request) -> Response:
        """Shopify's throttle answer: HTTP 200, a THROTTLED error and the cost extension."""
        requested = 0
        try:
            query, variables, operation_name = self._read_body(request)
            document, errors = parse_and_validate(query)
            if document is not None and not errors:
                requested = analyse(
                    self.schema, document, variables, operation_name, supported_roots=SUPPORTED_ROOTS
                ).requested_cost
        except Exception:  # a fault answer must not fail on a malformed request
            requested = 0
        return self._respond({"errors": [THROTTLED_ERROR], "extensions": self._cost(requested, None)})

    def server_error(self, request: Request) -> Response:
        """A Shopify-like 5xx; the status cycles 500, 502, 503 with the request count (deterministic)."""
        request_id = self._next_request_id()
        status = (500, 502, 503)[self.requests_served % 3]
        body = {
            "errors": [
                {
                    "message": f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id}",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                }
            ]
        }
        return Response.json(body, status, {"X-Request-Id": request_id})

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _read_body(request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
        if request.headers.get("content-type", "").startswith("application/graphql"):
            return request.body.decode("utf-8"), None, None
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise ValueError('send a JSON object {"query": "...", "variables": {...}}')
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise ValueError("variables must be a JSON object")
        return payload["query"], variables, payload.get("operationName")

    def _execute(
        self, document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None
    ) -> ExecutionResult:
        data, renderer = self._snapshot
        # Bulk mutations run through here too: the root value carries the bulk-operation fields.
        result = execute_sync(
            self.schema,
            document,
            root_value=root_value(data, renderer, self.bulk),
            context_value={},
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=resolve_field,
        )
        return result  # type: ignore[return-value]

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self.bucket.status(),
            }
        }

    def _next_request_id(self) -> str:
        return f"hearth-{next(self._request_ids):08d}"

    def _respond(self, body: dict[str, Any]) -> Response:
        headers = {"X-Request-Id": self._next_request_id(), "X-Shopify-API-Version": API_VERSION}
        return Response.json(body, 200, headers)
