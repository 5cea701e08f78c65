"""Query cost, the checks Shopify makes before running a query, and the leaky bucket.

Shopify's documented cost model (shopify.dev/docs/api/usage/limits): scalars and
enums cost 0, an object 1, a connection 2 plus ``first`` (or ``last``) times the
cost of one node, a mutation 10. The *requested* cost sizes every connection by
its page size and is what the bucket must hold before the query runs; the
*actual* cost counts the nodes that came back and is what stays charged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values
from graphql.utilities import get_operation_ast

from sandbox.shopify.connections import MAX_PAGE_SIZE

MAX_QUERY_COST = 1000
MUTATION_COST = 10
DOCS_RATE_LIMITS = "https://shopify.dev/api/usage/rate-limits"


@dataclass
class Analysis:
    """What the server knows about a query before running it."""

    operation: OperationDefinitionNode | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    requested_cost: int = 0
    errors: list[GraphQLError] = field(default_factory=list)


def is_connection(type_: Any) -> bool:
    """A Relay connection type (``…Connection`` with ``edges``), the unit Shopify prices by page size."""
    named = get_named_type(type_)
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection") and "edges" in named.fields


class Walker:
    """Walks a query's selections with their schema definitions (fragments, @skip/@include applied).

    Shared by the cost calculator, the pre-execution checks and the bulk runner.
    """

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def fields(
        self, parent: Any, selection_set: SelectionSetNode | None, *, runtime: str | None = None, meta: bool = False
    ) -> Iterator[tuple[FieldNode, Any]]:
        """``(field node, field definition)`` of a selection set, fragments expanded.

        Args:
            runtime: the concrete type of the value, to skip fragments on other object types
                (None: expand every fragment, as pricing a query must).
            meta: also yield ``__typename`` (with a None definition).
        """
        for selection in selection_set.selections if selection_set else ():
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if meta and name == "__typename":
                    yield selection, None
                elif not name.startswith("__") and name in getattr(parent, "fields", {}):
                    yield selection, parent.fields[name]
            elif isinstance(selection, InlineFragmentNode | FragmentSpreadNode):
                fragment = (
                    selection if isinstance(selection, InlineFragmentNode) else self.fragments[selection.name.value]
                )
                condition = fragment.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                if runtime and isinstance(inner, GraphQLObjectType) and inner.name != runtime:
                    continue
                yield from self.fields(inner, fragment.selection_set, runtime=runtime, meta=meta)

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (skip and skip["if"]) and not (include and not include["if"])

    def args(self, definition: Any, node: FieldNode) -> dict[str, Any]:
        return get_argument_values(definition, node, self.variables)

    def cost(self, parent: Any, selection_set: SelectionSetNode | None, data: Any = None, *, bulk: bool = False) -> int:
        """Cost of a selection set: requested when ``data`` is None, else actual over ``data``."""
        total = 0
        for node, definition in self.fields(parent, selection_set):
            child = get_named_type(definition.type)
            if is_leaf_type(child):
                continue
            key = node.alias.value if node.alias else node.name.value
            value = None if data is None else data.get(key)
            if data is not None and value is None:
                continue
            args = self.args(definition, node)
            if is_connection(definition.type):
                size = 0 if bulk else args.get("first") or args.get("last") or 0
                total += 2 + self._connection(child, node.selection_set, value, size)
            elif is_list_type(get_nullable_type(definition.type)):
                if value is None:
                    total += (args.get("first") or 1) * (1 + self.cost(child, node.selection_set))
                else:
                    items = [item for item in value if item is not None]
                    total += sum(1 + self.cost(child, node.selection_set, item) for item in items)
            else:
                total += 1 + self.cost(child, node.selection_set, value)
        return total

    def _connection(
        self, type_: GraphQLObjectType, selection_set: SelectionSetNode | None, data: Any, size: int
    ) -> int:
        """Node costs of a connection: ``size`` × one node when requested, the real nodes when actual."""
        total = 0
        for node, definition in self.fields(type_, selection_set):
            key = node.alias.value if node.alias else node.name.value
            if node.name.value == "nodes":
                node_type, node_selection = get_named_type(definition.type), node.selection_set
                items = None if data is None else data.get(key) or []
            elif node.name.value == "edges":
                edge_type = get_named_type(definition.type)
                for edge_node, edge_definition in self.fields(edge_type, node.selection_set):
                    if edge_node.name.value != "node":
                        continue
                    edge_key = edge_node.alias.value if edge_node.alias else "node"
                    node_type, node_selection = get_named_type(edge_definition.type), edge_node.selection_set
                    items = None if data is None else [edge.get(edge_key) for edge in data.get(key) or []]
                    total += self._nodes(node_type, node_selection, items, size)
                continue
            else:
                continue  # pageInfo is part of the connection's own 2 points
            total += self._nodes(node_type, node_selection, items, size)
        return total

    def _nodes(self, type_: Any, selection_set: SelectionSetNode | None, items: list | None, size: int) -> int:
        if items is None:
            return size * (1 + self.cost(type_, selection_set))
        return sum(1 + self.cost(type_, selection_set, item) for item in items if item is not None)


def _page_size_errors(walker: Walker, parent: Any, selection_set: SelectionSetNode | None, path: list) -> list:
    """Shopify refuses a connection without ``first``/``last`` or with more than 250 before running."""
    errors = []
    for node, definition in walker.fields(parent, selection_set):
        key = node.alias.value if node.alias else node.name.value
        child = get_named_type(definition.type)
        if is_connection(definition.type):
            args = walker.args(definition, node)
            for name in ("first", "last"):
                if args.get(name) is not None and not 0 <= args[name] <= MAX_PAGE_SIZE:
                    errors.append(
                        GraphQLError(
                            f"Argument '{name}' on Field '{node.name.value}' has an invalid value ({args[name]}). "
                            f"Expected a page size from 0 to {MAX_PAGE_SIZE}.",
                            node,
                            path=[*path, key],
                            extensions={"code": "BAD_REQUEST"},
                        )
                    )
            if args.get("first") is None and args.get("last") is None:
                errors.append(
                    GraphQLError(
                        "you must provide one of first or last",
                        node,
                        path=[*path, key],
                        extensions={"code": "BAD_REQUEST"},
                    )
                )
        if not is_leaf_type(child):
            errors.extend(_page_size_errors(walker, child, node.selection_set, [*path, key]))
    return errors


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None = None,
    *,
    supported_roots: dict[OperationType, frozenset[str]],
    bulk: bool = False,
) -> Analysis:
    """Pick the operation, coerce variables, check roots and page sizes, price the query.

    Args:
        supported_roots: root fields the sandbox serves, per operation type; others are refused.
        bulk: a bulk operation's query: connections need no page size and cost nothing here.
    """
    analysis = Analysis()
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "An operation name is required when the document has several operations."
        )
        analysis.errors.append(GraphQLError(message))
        return analysis
    analysis.operation = operation
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        analysis.errors.extend(coerced)
        return analysis
    analysis.variables = coerced
    walker = Walker(schema, document, coerced)
    root = schema.get_root_type(operation.operation)
    allowed = supported_roots.get(operation.operation, frozenset())
    for node, _definition in walker.fields(root, operation.selection_set):  # type: ignore[arg-type]
        if node.name.value not in allowed:
            kind = operation.operation.value
            analysis.errors.append(
                GraphQLError(
                    f"{kind} field '{node.name.value}' is not supported by the Hearth sandbox; "
                    f"supported: {', '.join(sorted(allowed))}",
                    node,
                    extensions={"code": "NOT_SUPPORTED_BY_SANDBOX"},
                )
            )
    if analysis.errors:
        return analysis
    if operation.operation == OperationType.MUTATION:
        analysis.requested_cost = MUTATION_COST * sum(1 for _ in walker.fields(root, operation.selection_set))
        return analysis
    if not bulk:
        analysis.errors.extend(_page_size_errors(walker, root, operation.selection_set, []))
    analysis.requested_cost = walker.cost(root, operation.selection_set, bulk=bulk)
    return analysis


def actual_cost(schema: GraphQLSchema, document: DocumentNode, analysis: Analysis, data: dict[str, Any] | None) -> int:
    """The cost of what a query returned: connections priced by the nodes they hold."""
    if analysis.operation is None or data is None:
        return 0
    if analysis.operation.operation == OperationType.MUTATION:
        return analysis.requested_cost
    walker = Walker(schema, document, analysis.variables)
    root = schema.get_root_type(analysis.operation.operation)
    return walker.cost(root, analysis.operation.selection_set, data)


def max_cost_error(cost: int) -> dict[str, Any]:
    """Shopify's answer to a query over the single-query limit."""
    return {
        "message": (
            f"Query cost is {cost}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n"
            "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
            "cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
            "See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
        ),
        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": MAX_QUERY_COST},
    }


THROTTLED_ERROR = {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": DOCS_RATE_LIMITS}}


class LeakyBucket:
    """Shopify's cost bucket: holds ``size`` points, refills ``restore_rate`` points a second."""

    def __init__(self, size: float, restore_rate: float, *, enabled: bool = True) -> None:
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self.enabled = enabled
        self._available = float(size)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._updated) * self.restore_rate)
        self._updated = now

    def take(self, points: int) -> bool:
        """Charge ``points`` when the bucket holds them; False (nothing charged) when it does not."""
        if not self.enabled:
            return True
        with self._lock:
            self._refill()
            if self._available < points:
                return False
            self._available -= points
            return True

    def give_back(self, points: int) -> None:
        """Return the part of a charge the query did not use (requested minus actual)."""
        if not self.enabled or points <= 0:
            return
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + points)

    def status(self) -> dict[str, Any]:
        """The ``throttleStatus`` object of ``extensions.cost``."""
        with self._lock:
            self._refill()
            available = self._available if self.enabled else self.size
        return {"maximumAvailable": self.size, "currentlyAvailable": int(available), "restoreRate": self.restore_rate}
