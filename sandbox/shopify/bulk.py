"""Bulk operations: run a query over a whole collection in the background, write JSONL.

``bulkOperationRunQuery`` validates the query and starts a thread that executes it
over the root connection in chunks of :data:`CHUNK_SIZE` nodes (so a million
customers never exist as one Python structure) and appends Shopify's JSONL: one
line per node; nodes of nested connections get their own lines with
``__parentId`` (the parent's ``id``), right after their parent.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from graphql.utilities import get_operation_ast

from sandbox.shopify.cost import Walker, analyse, is_connection
from sandbox.shopify.schema import parse_and_validate
from sandbox.shopify.wire import resolve_field

CHUNK_SIZE = 1000
MAX_CONNECTIONS, MAX_DEPTH = 5, 2  # bulkOperationRunQuery's documented limits
BULK_ROOTS = frozenset({"customers", "orders", "abandonedCheckouts", "products"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class BulkOperation:
    """One bulk query and its progress (the fields of Shopify's ``BulkOperation``)."""

    id: int
    query: str
    status: str = "CREATED"
    error_code: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    created_at: str = field(default_factory=_now)
    completed_at: str | None = None
    url: str | None = None
    partial_data_url: str | None = None
    failure: str | None = None  # why it FAILED; Shopify shows only errorCode, this helps whoever debugs

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.id}"

    def node(self) -> dict[str, Any]:
        """The BulkOperation object (UnsignedInt64 counts are strings, as Shopify sends them)."""
        return {
            "id": self.gid,
            "status": self.status,
            "errorCode": self.error_code,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": None if self.file_size is None else str(self.file_size),
            "url": self.url,
            "partialDataUrl": self.partial_data_url,
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "query": self.query,
            "type": "QUERY",
        }


@dataclass(frozen=True)
class _Plan:
    """How one node splits into lines: its nested connections, and whether it selects ``id``."""

    children: dict[str, tuple[str, str | None, _Plan]]  # key → (edges/nodes key, node key or None, child plan)
    has_id: bool

    def missing_ids(self) -> list[str]:
        """Keys of nested connections whose parent lacks ``id`` (their lines could not name a parent)."""
        missing = []
        for key, (_, _, child) in self.children.items():
            if child.children and not child.has_id:
                missing.append(key)
            missing.extend(child.missing_ids())
        return missing


def _plan(walker: Walker, type_: Any, selection_set: SelectionSetNode | None) -> _Plan:
    children: dict[str, tuple[str, str | None, _Plan]] = {}
    has_id = False
    for node, definition in walker.fields(type_, selection_set):
        key = node.alias.value if node.alias else node.name.value
        has_id = has_id or (key == "id" and node.name.value == "id")
        if not is_connection(definition.type):
            continue
        connection_type = get_named_type(definition.type)
        for inner, inner_definition in walker.fields(connection_type, node.selection_set):
            inner_key = inner.alias.value if inner.alias else inner.name.value
            if inner.name.value == "nodes":
                child_type = get_named_type(inner_definition.type)
                children[key] = (inner_key, None, _plan(walker, child_type, inner.selection_set))
            elif inner.name.value == "edges":
                edge_type = get_named_type(inner_definition.type)
                for edge_field, edge_definition in walker.fields(edge_type, inner.selection_set):
                    if edge_field.name.value == "node":
                        node_key = edge_field.alias.value if edge_field.alias else "node"
                        child = _plan(walker, get_named_type(edge_definition.type), edge_field.selection_set)
                        children[key] = (inner_key, node_key, child)
    return _Plan(children, has_id)


def _connections(walker: Walker, type_: Any, selection_set: SelectionSetNode | None, depth: int = 0) -> list[int]:
    """The nesting depth of every connection in a selection (1 = a top-level connection)."""
    depths = []
    for node, definition in walker.fields(type_, selection_set):
        inner = depth + 1 if is_connection(definition.type) else depth
        if inner > depth:
            depths.append(inner)
        depths.extend(_connections(walker, get_named_type(definition.type), node.selection_set, inner))
    return depths


def _lines(node: dict[str, Any], plan: _Plan, parent_id: str | None) -> Iterator[dict[str, Any]]:
    """The JSONL objects of one node: itself (nested connections removed), then its children."""
    own = {key: value for key, value in node.items() if key not in plan.children}
    if parent_id is not None:
        own["__parentId"] = parent_id
    yield own
    for key, (list_key, node_key, child_plan) in plan.children.items():
        connection = node.get(key) or {}
        for item in connection.get(list_key) or []:
            child = item.get(node_key) if node_key else item
            if child is not None:
                yield from _lines(child, child_plan, node.get("id"))


class _Info:
    """The part of graphql-core's ResolveInfo the sandbox's resolvers read."""

    __slots__ = ("context", "field_name", "parent_type")

    def __init__(self, field_name: str, parent_type: Any, context: dict[str, Any]) -> None:
        self.field_name, self.parent_type, self.context = field_name, parent_type, context


class _Projector:
    """Runs a validated bulk query over the sandbox's dicts.

    graphql-core spends ~15 µs per field on checks a validated query does not need;
    a bulk run touches millions of fields, so it compiles each selection set once
    (per concrete type) and walks it with the same resolvers. Values are already
    in wire form, so leaves are copied as they are.
    """

    def __init__(self, walker: Walker, context: dict[str, Any]) -> None:
        self.walker = walker
        self.context = context  # one dict for the run: the root resolver reads the chunk window from it
        self._compiled: dict[tuple[int, str], list[tuple]] = {}

    def _compile(self, concrete: Any, selection_set: SelectionSetNode | None) -> list[tuple]:
        """``(key, info, arguments, list depth, leaf?, type, selection)`` per selected field."""
        fields: list[tuple] = []
        for node, definition in self.walker.fields(concrete, selection_set, runtime=concrete.name, meta=True):
            key = node.alias.value if node.alias else node.name.value
            if definition is None:  # __typename
                fields.append((key, None, None, 0, True, concrete.name, None))
                continue
            type_, depth = get_nullable_type(definition.type), 0
            while is_list_type(type_):
                type_, depth = get_nullable_type(type_.of_type), depth + 1
            info = _Info(node.name.value, concrete, self.context)
            arguments = self.walker.args(definition, node)
            fields.append((key, info, arguments, depth, is_leaf_type(type_), type_, node.selection_set))
        return fields

    def object(self, value: dict[str, Any], type_: Any, selection_set: SelectionSetNode | None) -> dict[str, Any]:
        runtime = value.get("__typename")
        concrete: Any = self.walker.schema.get_type(runtime) if runtime else type_
        cache_key = (id(selection_set), concrete.name)
        fields = self._compiled.get(cache_key)
        if fields is None:
            fields = self._compiled[cache_key] = self._compile(concrete, selection_set)
        out: dict[str, Any] = {}
        for key, info, arguments, depth, leaf, field_type, selection in fields:
            if info is None:
                out[key] = field_type
                continue
            raw = resolve_field(value, info, **arguments)
            out[key] = raw if leaf or raw is None else self._complete(raw, depth, field_type, selection)
        return out

    def _complete(self, value: Any, depth: int, type_: Any, selection_set: SelectionSetNode | None) -> Any:
        if value is None:
            return None
        if depth:
            return [self._complete(item, depth - 1, type_, selection_set) for item in value]
        return self.object(value, type_, selection_set)


class BulkOperations:
    """The shop's bulk operations; one query may run at a time, as on Shopify."""

    def __init__(self, schema: GraphQLSchema, out_dir: Path, base_url: Callable[[], str]) -> None:
        self.schema = schema
        self.out_dir = Path(out_dir)
        self.base_url = base_url
        self._operations: dict[int, BulkOperation] = {}
        self._ids = itertools.count(4_000_000_001)
        self._lock = threading.Lock()

    def get(self, gid: str) -> BulkOperation | None:
        number = gid.rsplit("/", 1)[-1]
        return self._operations.get(int(number)) if number.isdigit() else None

    def current(self) -> BulkOperation | None:
        with self._lock:
            return self._operations[max(self._operations)] if self._operations else None

    def file(self, name: str) -> Path | None:
        """A result file by its name in a URL (``<id>.jsonl`` or ``<id>.partial.jsonl``)."""
        path = self.out_dir / name
        return path if path.parent == self.out_dir and path.is_file() else None

    def start(self, query: str, make_root: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The ``bulkOperationRunQuery`` payload: the new operation, or userErrors."""
        planned = self._plan_of(query)
        if isinstance(planned, str):
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": planned, "code": "INVALID"}]}
        with self._lock:
            running = [op for op in self._operations.values() if op.status in ("CREATED", "RUNNING")]
            if running:
                message = f"A bulk query operation for this app and shop is already in progress: {running[0].gid}."
                return {
                    "bulkOperation": None,
                    "userErrors": [{"field": None, "message": message, "code": "OPERATION_IN_PROGRESS"}],
                }
            operation = BulkOperation(next(self._ids), query)
            self._operations[operation.id] = operation
        root = make_root()  # bound to the shop data of this moment: a reload does not disturb the run
        args = (operation, *planned, root, self.base_url())
        created = operation.node()  # as Shopify answers: CREATED, whatever the thread does next
        threading.Thread(target=self._run, args=args, name=f"bulk-{operation.id}", daemon=True).start()
        return {"bulkOperation": created, "userErrors": []}

    def _plan_of(self, query: str) -> tuple[DocumentNode, _Plan] | str:
        """The parsed bulk query and its line plan, or why Shopify would refuse it."""
        document, errors = parse_and_validate(query)
        if errors or document is None:
            return "Invalid bulk query: " + "; ".join(error.message for error in errors)
        analysis = analyse(self.schema, document, None, supported_roots={OperationType.QUERY: BULK_ROOTS}, bulk=True)
        if analysis.errors or analysis.operation is None:
            return "Invalid bulk query: " + "; ".join(error.message for error in analysis.errors)
        roots = analysis.operation.selection_set.selections
        if len(roots) != 1 or not isinstance(roots[0], FieldNode):
            return "Invalid bulk query: select exactly one top-level connection field"
        walker = Walker(self.schema, document, {})
        plan = _plan(walker, self.schema.query_type, analysis.operation.selection_set)
        if not plan.children:
            return "Invalid bulk query: bulk queries must contain at least one connection"
        depths = _connections(walker, self.schema.query_type, analysis.operation.selection_set)
        if len(depths) > MAX_CONNECTIONS or max(depths) > MAX_DEPTH:
            return (
                f"Invalid bulk query: it has {len(depths)} connections nested {max(depths)} deep; "
                f"bulk queries allow up to {MAX_CONNECTIONS} connections nested at most {MAX_DEPTH} deep"
            )
        missing = plan.missing_ids()
        if missing:
            return f"Invalid bulk query: select `id` on the parents of nested connections ({', '.join(missing)})"
        return document, plan

    def lines(
        self, query: str, root: dict[str, Any], projector: type[_Projector] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The objects a bulk run of ``query`` over ``root`` writes as JSONL lines, in order.

        In-process and without JSON text (``bench/rawzone_direct.py`` lands big shops this
        way, with a faster ``projector`` subclass that must give the same objects).

        Raises:
            ValueError: Shopify would refuse the query; the message says why.
        """
        planned = self._plan_of(query)
        if isinstance(planned, str):
            raise ValueError(planned)
        return self._lines_of(*planned, root, projector or _Projector)

    def _lines_of(
        self, document: DocumentNode, plan: _Plan, root: dict[str, Any], projector_type: type[_Projector] = _Projector
    ) -> Iterator[dict[str, Any]]:
        """The run's lines, chunk by chunk: a million nodes never exist as one Python structure."""
        walker = Walker(self.schema, document, {})
        operation_node = get_operation_ast(document).selection_set  # type: ignore[union-attr]
        context: dict[str, Any] = {}
        projector = projector_type(walker, context)
        start, total = 0, 1
        while start < total:
            context.update(bulk=(start, start + CHUNK_SIZE), total=0)
            data = projector.object(root, self.schema.query_type, operation_node)
            lines = _lines(data, plan, None)
            next(lines)  # the query root itself is not a line
            yield from lines
            start, total = start + CHUNK_SIZE, context["total"]

    def _run(
        self, operation: BulkOperation, document: DocumentNode, plan: _Plan, root: dict[str, Any], base_url: str
    ) -> None:
        partial = self.out_dir / f"{operation.id}.partial.jsonl"
        operation.status = "RUNNING"
        try:
            with partial.open("w", encoding="utf-8") as out:
                for line in self._lines_of(document, plan, root):
                    out.write(json.dumps(line, separators=(",", ":")) + "\n")
                    operation.object_count += 1
                    operation.root_object_count += "__parentId" not in line
        except Exception as error:  # any failure ends the operation, as on Shopify: FAILED + errorCode
            operation.failure = f"{type(error).__name__}: {error}"
            operation.error_code = "INTERNAL_SERVER_ERROR"
            operation.completed_at = _now()
            if operation.object_count:
                operation.partial_data_url = f"{base_url}/_sandbox/bulk/{partial.name}"
            operation.status = "FAILED"  # last: a poller that sees the final status sees every other field
            return
        final = self.out_dir / f"{operation.id}.jsonl"
        partial.replace(final)
        operation.file_size = final.stat().st_size
        # Shopify leaves url null when the query matched nothing.
        operation.url = f"{base_url}/_sandbox/bulk/{final.name}" if operation.object_count else None
        operation.completed_at = _now()
        operation.status = "COMPLETED"
