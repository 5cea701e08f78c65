"""The Shopify Admin GraphQL client: one POST endpoint, the token header, cost-bucket pacing.

Retries, THROTTLED handling (HTTP 200 or 429), 5xx, timeouts and redaction come
from the shared :mod:`connectors._http`; this module adds what is GraphQL-specific:
the endpoint and token, the :class:`CostBucketPacer` fed with each document's
last requested cost (so a query waits until the bucket can pay for it instead of
bouncing off THROTTLED), envelope checks that the shared retry loop applies, and
errors that name the operation that failed.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from graphql import GraphQLSyntaxError

from connectors._http import ApiError, CostBucketPacer, HttpClient, HttpError, Pacer
from connectors.shopify.queries import estimate_cost
from connectors.shopify.settings import TOKEN_SETTING, ShopifySettings

TOKEN_HEADER = "X-Shopify-Access-Token"
_CODE = re.compile(r'"code"\s*:\s*"([A-Z_]+)"')


class ShopifyGraphQLError(HttpError):
    """Shopify answered a query with GraphQL errors that retrying cannot fix.

    Attributes:
        operation: the operation (stream or bulk step) that failed.
        codes: the ``extensions.code`` values Shopify gave (e.g. ``MAX_COST_EXCEEDED``).
    """

    def __init__(self, url: str, operation: str, detail: str, codes: set[str], *, secrets: tuple[str, ...] = ()):
        self.operation, self.codes = operation, codes
        super().__init__(
            f"Shopify rejected the {operation} query at {url}: {detail}. Retrying will not help: the query "
            "or its variables do not fit the shop's API version or the app's access scopes "
            "(check SHOPIFY_API_VERSION and the scopes granted to SHOPIFY_ACCESS_TOKEN).",
            url=url,
            status=200,
            secrets=secrets,
        )


def page_envelope(root: str) -> type:
    """A type whose ``isinstance`` check accepts a well-formed page of connection ``root``.

    The shared client retries a body that is not an instance of ``expect`` and finally
    raises :class:`~connectors._http.MalformedResponse` with the URL and a sample; this
    turns "``data.<root>`` lacks ``nodes``/``pageInfo``" into exactly that. Bodies that
    carry GraphQL ``errors`` pass, so that they are reported as such, not as garbage.
    """

    def check(body: Any) -> bool:
        return envelope_problem(body, root) is None

    return _Meta(f"page of {root} (data.{root}.nodes and pageInfo)", (), {"check": staticmethod(check)})


class _Meta(type):
    def __instancecheck__(cls, instance: Any) -> bool:
        return bool(cls.check(instance))  # type: ignore[attr-defined]


def envelope_problem(body: Any, root: str) -> str | None:
    """Why ``body`` is not a page of connection ``root`` (None when it is, or when it reports errors)."""
    if not isinstance(body, dict):
        return f"body is {type(body).__name__}, not an object"
    if body.get("errors"):
        return None
    data = body.get("data")
    connection = data.get(root) if isinstance(data, dict) else None
    if not isinstance(connection, dict):
        return f"no object at data.{root}"
    nodes, info = connection.get("nodes"), connection.get("pageInfo")
    if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
        return f"data.{root}.nodes is not a list of objects"
    if not isinstance(info, dict) or not isinstance(info.get("hasNextPage"), bool):
        return f"data.{root}.pageInfo.hasNextPage is not a boolean"
    if info["hasNextPage"] and not isinstance(info.get("endCursor"), str):
        return f"data.{root}.pageInfo has a next page but no endCursor"
    return None


class ShopifyClient:
    """Runs GraphQL documents against one shop's Admin API.

    Args:
        settings: the connector settings.
        pacer: keeps queries under the shop's cost bucket (default: a :class:`CostBucketPacer`).
        session: a ``requests.Session`` (tests may pass a recording one).
        sleep, clock, rng: injectable time and jitter, shared by retries, pacing and bulk polling.
    """

    def __init__(
        self,
        settings: ShopifySettings,
        *,
        pacer: Pacer | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sleep, self.clock = sleep, clock
        self.pacer = pacer if pacer is not None else CostBucketPacer(sleep=sleep, clock=clock)
        self.http = HttpClient(
            settings.api_url,
            headers={TOKEN_HEADER: settings.access_token},
            secrets=(settings.access_token,),
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            pacer=self.pacer,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
            backoff_base=settings.backoff_base,
            credential=TOKEN_SETTING,
        )
        self.url = self.http.url_for(settings.graphql_path)
        self._costs: dict[str, float] = {}  # document → its last requestedQueryCost

    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation: str = "",
        expect: type = dict,
        cost: float | None = None,
    ) -> dict[str, Any]:
        """POST one document and return its ``data``.

        Args:
            query, variables: the GraphQL document and its variables.
            operation: what is being fetched (a stream name, "bulk poll" …), for messages.
            expect: the body check the shared client retries on (see :func:`page_envelope`).
            cost: the expected requested cost, for pacing the first call of a document;
                later calls use the cost Shopify reported for the same document.

        Raises:
            AuthError: the token was refused (names SHOPIFY_ACCESS_TOKEN).
            ShopifyGraphQLError: GraphQL errors other than THROTTLED.
            MalformedResponse, RetriesExhausted, ApiError: see :mod:`connectors._http`.
        """
        name = operation or _operation_name(query)
        try:
            body = self.http.post_json(
                self.settings.graphql_path,
                json={"query": query, "variables": dict(variables or {})},
                cost=self._expected_cost(query, variables, cost),
                expect=expect,
            )
        except ApiError as exc:
            if exc.status != 200:
                raise
            # GraphQL errors without data: the shared classifier calls them fatal; say which query.
            raise ShopifyGraphQLError(self.url, name, _detail(exc.sample), set(_CODE.findall(exc.sample))) from exc
        requested = ((body.get("extensions") or {}).get("cost") or {}).get("requestedQueryCost")
        if isinstance(requested, int | float):
            self._costs[query] = float(requested)
        errors = body.get("errors")
        if errors:  # partial data: a record with a hole in it must not reach the raw zone
            codes = {str(e.get("extensions", {}).get("code")) for e in errors if isinstance(e, dict)} - {"None"}
            raise ShopifyGraphQLError(self.url, name, _messages(errors) or repr(errors)[:500], codes)
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def _expected_cost(self, query: str, variables: Mapping[str, Any] | None, given: float | None) -> float:
        """What ``query`` will cost: as Shopify last priced it, else ``given``, else our estimate.

        Never the pacer's own fallback (the previous response's cost): a cheap bulk poll after
        an expensive page would wait for points it does not need.
        """
        if query in self._costs:
            return self._costs[query]
        if given is not None:
            return given
        try:
            return float(estimate_cost(query, variables))
        except GraphQLSyntaxError:
            return 0.0  # Shopify will say what is wrong with it


def _operation_name(query: str) -> str:
    match = re.search(r"\b(?:query|mutation)\s+(\w+)", query)
    return match.group(1) if match else "GraphQL"


def _messages(errors: Any) -> str:
    """The first messages of a GraphQL ``errors`` list (or of a body holding one); "" if none."""
    if isinstance(errors, dict):
        errors = errors.get("errors")
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e.get("message", e))[:300] for e in errors[:3] if isinstance(e, dict))


def _detail(sample: str) -> str:
    """The error messages of a (possibly cut) error body, else the sample itself."""
    try:
        parsed = json.loads(sample)
    except ValueError:
        parsed = None
    return _messages(parsed) or f"body sample {sample!r}"
