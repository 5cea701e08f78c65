"""Bulk operations: run a query in the background, stream its JSONL, rebuild whole records.

``bulkOperationRunQuery`` starts the query; ``bulkOperation(id:)`` is polled with a
growing interval until it is COMPLETED; the result file is streamed line by line
(never loaded whole). Nodes of nested connections arrive as their own lines with
``__parentId``; :func:`assemble` puts them back under ``<field>.nodes`` of their
parent, so a record looks exactly like the node a paged query returns.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests

from connectors._http import HttpError, MalformedResponse, install_redaction, loads_json
from connectors.shopify.client import ShopifyClient
from connectors.shopify.queries import BULK_POLL, BULK_RUN

log = logging.getLogger(__name__)
install_redaction(log)

FAILED_STATES = frozenset({"FAILED", "CANCELED", "EXPIRED"})
_GID_TYPE = re.compile(r"^gid://shopify/([^/]+)/")
_BULK_GID = re.compile(r"gid://shopify/BulkOperation/\d+")


class BulkOperationError(HttpError):
    """A bulk operation could not start, failed, timed out, or its result could not be read."""


def _without_query(url: str) -> str:
    """A result URL without its query string: storage URLs carry their signature there."""
    return url.split("?", 1)[0]


class BulkRunner:
    """Runs bulk queries through a :class:`ShopifyClient` and streams their results.

    Args:
        client: the GraphQL client (its settings give the poll intervals and timeout).
        session: fetches result files; it never carries the access token, because
            Shopify's result URLs are pre-signed storage URLs outside the shop.
    """

    def __init__(self, client: ShopifyClient, *, session: requests.Session | None = None) -> None:
        self.client = client
        self.session = session or requests.Session()

    def run(self, query: str, *, operation: str) -> str | None:
        """Start ``query`` as a bulk operation, wait for it, return its result URL (None: no records)."""
        data = self.client.graphql(BULK_RUN, {"query": query}, operation=f"{operation} bulk start")
        payload = data.get("bulkOperationRunQuery") or {}
        problems = [p for p in payload.get("userErrors") or [] if isinstance(p, dict)]
        started = payload.get("bulkOperation")
        if not problems and isinstance(started, dict) and started.get("id"):
            return self.wait(started["id"], operation=operation)
        running = _running_operation(problems)
        if running and self._query_of(running, operation) == query:
            # Our own start, whose answer was lost to a timeout or a cut body and then retried.
            log.info("%s: bulk operation %s already runs this query; following it", operation, running)
            return self.wait(running, operation=operation)
        detail = "; ".join(f"{p.get('code')}: {p.get('message')}" for p in problems)
        raise BulkOperationError(
            f"Shopify did not start the {operation} bulk operation at {self.client.url}: "
            f"{detail or 'no operation in the answer'}. OPERATION_IN_PROGRESS clears when the running "
            "operation finishes: rerun then.",
            url=self.client.url,
        )

    def _query_of(self, gid: str, operation: str) -> str | None:
        data = self.client.graphql(BULK_POLL, {"id": gid}, operation=f"{operation} bulk poll")
        state = data.get("bulkOperation")
        return state.get("query") if isinstance(state, dict) else None

    def wait(self, gid: str, *, operation: str) -> str | None:
        """Poll operation ``gid`` until it completes; its result URL, or None when it matched nothing."""
        settings = self.client.settings
        interval = settings.bulk_poll_interval
        deadline = self.client.clock() + settings.bulk_timeout
        while True:
            data = self.client.graphql(BULK_POLL, {"id": gid}, operation=f"{operation} bulk poll")
            state = data.get("bulkOperation")
            if not isinstance(state, dict):
                raise BulkOperationError(f"Shopify does not know bulk operation {gid}", url=self.client.url)
            status = state.get("status")
            if status == "COMPLETED":
                log.info("%s bulk operation %s completed: %s objects", operation, gid, state.get("objectCount"))
                url = state.get("url")
                return url if isinstance(url, str) and url else None
            if status in FAILED_STATES:
                raise BulkOperationError(
                    f"The {operation} bulk operation {gid} ended {status} (errorCode {state.get('errorCode')}, "
                    f"{state.get('objectCount')} objects written). ACCESS_DENIED: grant the app the read scope "
                    "of this resource; TIMEOUT: backfill in shorter windows; otherwise rerun.",
                    url=self.client.url,
                )
            if self.client.clock() >= deadline:
                raise BulkOperationError(
                    f"The {operation} bulk operation {gid} is still {status} after {settings.bulk_timeout:.0f}s; "
                    "raise bulk_timeout or backfill in shorter windows.",
                    url=self.client.url,
                )
            self.client.sleep(interval)
            interval = min(interval * 2, settings.bulk_poll_max_interval)

    def lines(self, url: str) -> Iterator[dict[str, Any]]:
        """The JSON objects of a result file, streamed line by line.

        One attempt only: a download cut halfway cannot resume, and the records read
        so far are already out; the caller reruns the window (its cursor has not moved).
        """
        shown = _without_query(url)
        try:
            with self.session.get(url, stream=True, timeout=self.client.settings.timeout) as response:
                if response.status_code != 200:
                    raise BulkOperationError(
                        f"Downloading the bulk result {shown} answered HTTP {response.status_code}; results "
                        "expire a week after the operation: rerun the window.",
                        url=shown,
                        status=response.status_code,
                    )
                for raw in response.iter_lines():
                    if raw:
                        yield _parse_line(raw, shown)
        except requests.RequestException as exc:
            raise BulkOperationError(f"Downloading the bulk result {shown} failed: {exc}", url=shown) from exc


def _running_operation(problems: list[dict[str, Any]]) -> str | None:
    """The gid named by an OPERATION_IN_PROGRESS user error, if any."""
    for problem in problems:
        if problem.get("code") == "OPERATION_IN_PROGRESS":
            match = _BULK_GID.search(str(problem.get("message")))
            if match:
                return match.group(0)
    return None


def _parse_line(raw: bytes, url: str) -> dict[str, Any]:
    try:
        line = loads_json(raw, lambda: json.loads(raw))
    except ValueError:
        line = None
    if not isinstance(line, dict):
        raise MalformedResponse(url, 200, raw[:500].decode("utf-8", "replace"))
    return line


def gid_type(gid: Any) -> str | None:
    """``LineItem`` for ``gid://shopify/LineItem/1``; None for anything else."""
    match = _GID_TYPE.match(gid) if isinstance(gid, str) else None
    return match.group(1) if match else None


def assemble(
    lines: Iterable[dict[str, Any]], child_fields: Mapping[str, str], page_records: int
) -> Iterator[list[dict[str, Any]]]:
    """Rebuild records from bulk JSONL lines, ``page_records`` at a time.

    Args:
        lines: the parsed lines; grouped output (``groupObjects: true``): children follow their parent.
        child_fields: gid type of a child line → the parent's field it belongs under
            (``{"LineItem": "lineItems"}``); every record gets ``{"nodes": []}`` for each.
        page_records: records per yielded list. A list is yielded only when the next
            record begins, so its last record already holds all its children.

    Raises:
        MalformedResponse: a child whose parent is not among the unyielded records, or of an unknown type.
    """
    page: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for line in lines:
        parent_id = line.pop("__parentId", None)
        if parent_id is None:
            if len(page) >= page_records:
                yield page
                page, by_id = [], {}
            for field in child_fields.values():
                line.setdefault(field, {"nodes": []})
            page.append(line)
            if isinstance(line.get("id"), str):
                by_id[line["id"]] = line
            continue
        parent = by_id.get(parent_id)
        child_field = child_fields.get(gid_type(line.get("id")) or "")
        if parent is None or child_field is None:
            why = "an unknown type" if parent is not None else f"a parent ({parent_id}) not read just before it"
            raise MalformedResponse(
                "bulk result",
                200,
                f"child line {json.dumps(line)[:300]} has {why}; expected grouped output with children of "
                f"types {', '.join(child_fields)} right after their parent",
            )
        parent[child_field]["nodes"].append(line)
    if page:
        yield page
