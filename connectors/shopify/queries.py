"""Every GraphQL document the Shopify connector sends, built from one small spec per stream.

A :class:`StreamSpec` names the root connection, its sort key, the node's own
fields and its nested connections. From it come the paged query (``first``/``after``
over ``nodes``) and the bulk query (the same selection without page sizes), so the
two paths cannot drift apart. Nested connections always come last in a node's
selection: a bulk result, whose children arrive on separate lines, is reassembled
into records with the very same key order as a paged answer.

:func:`all_documents` lists every document, so a test validates each one against
the official schema of the pinned version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import FieldNode, InlineFragmentNode, OperationDefinitionNode, OperationType, SelectionSetNode, parse
from graphql.language import IntValueNode, VariableNode

from connectors.base import Window, iso

MAX_QUERY_COST = 1000  # Shopify's single-query limit on requested cost
MUTATION_COST = 10
_FIRST = "@@first@@"  # replaced by "(first: N)" in paged queries, by nothing in bulk queries

MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
EMAIL = "defaultEmailAddress { emailAddress marketingState marketingOptInLevel marketingUpdatedAt }"
VISIT = "id occurredAt source sourceType landingPage referrerUrl utmParameters { source medium campaign content term }"


def _money(*names: str) -> str:
    return " ".join(f"{name} {{ {MONEY} }}" for name in names)


def _connection(name: str, selection: str) -> str:
    return f"{name}{_FIRST} {{ nodes {{ {selection} }} }}"


@dataclass(frozen=True)
class Nested:
    """A nested connection of a stream's node: its field, the gid type of its nodes, their selection.

    The selection must include ``id``: bulk results name a child's field by its gid type.
    """

    field: str
    node_type: str
    selection: str


@dataclass(frozen=True)
class StreamSpec:
    """What one stream reads: ``root`` connection sorted by ``sort_key``, each node's fields."""

    name: str
    root: str
    sort_key: str
    fields: str
    nested: tuple[Nested, ...] = ()

    @property
    def child_fields(self) -> dict[str, str]:
        """gid type of nested nodes → the field they belong under (for bulk reassembly)."""
        return {nested.node_type: nested.field for nested in self.nested}

    @property
    def operation(self) -> str:
        """GraphQL operation name, e.g. ``HearthAbandonedCheckoutsPage``."""
        return "Hearth" + self.root[0].upper() + self.root[1:]


CUSTOMERS = StreamSpec(
    name="customers",
    root="customers",
    sort_key="UPDATED_AT",
    fields=(
        f"id legacyResourceId firstName lastName displayName {EMAIL} "
        "defaultPhoneNumber { phoneNumber marketingState marketingOptInLevel } "
        "defaultAddress { city provinceCode countryCodeV2 } "
        "tags numberOfOrders amountSpent { amount currencyCode } verifiedEmail createdAt updatedAt"
    ),
)

ORDERS = StreamSpec(
    name="orders",
    root="orders",
    sort_key="UPDATED_AT",
    fields=(
        "id legacyResourceId name email createdAt processedAt updatedAt cancelledAt cancelReason "
        "displayFinancialStatus currencyCode presentmentCurrencyCode sourceName test tags discountCodes "
        "customer { id } "
        + _money(
            "subtotalPriceSet",
            "totalDiscountsSet",
            "totalShippingPriceSet",
            "totalTaxSet",
            "totalPriceSet",
            "totalRefundedSet",
            "currentTotalPriceSet",
        )
        + f" customerJourneySummary {{ ready firstVisit {{ {VISIT} }} lastVisit {{ {VISIT} }} }}"
        # Refunds are a list (not a connection); their lines are a connection inside it.
        + " refunds { id createdAt updatedAt note "
        + _money("totalRefundedSet")
        + " "
        + _connection("refundLineItems", f"lineItem {{ id }} quantity {_money('subtotalSet')}")
        + " }"
    ),
    nested=(
        Nested(
            "lineItems",
            "LineItem",
            "id title name sku quantity vendor variant { id } product { id } "
            + _money("originalUnitPriceSet", "totalDiscountSet", "discountedTotalSet"),
        ),
    ),
)

# AbandonedCheckoutSortKeys has no UPDATED_AT: the window still filters on updated_at.
# The checkout has no email of its own in 2026-04: it is the customer's default address.
ABANDONED_CHECKOUTS = StreamSpec(
    name="abandoned_checkouts",
    root="abandonedCheckouts",
    sort_key="CREATED_AT",
    fields=(
        "id name abandonedCheckoutUrl completedAt createdAt updatedAt discountCodes taxesIncluded note "
        f"customer {{ id {EMAIL} }} "
        + _money("subtotalPriceSet", "totalLineItemsPriceSet", "totalDiscountSet", "totalPriceSet")
    ),
    nested=(
        Nested(
            "lineItems",
            "AbandonedCheckoutLineItem",
            "id title sku quantity variant { id } product { id } "
            + _money("originalUnitPriceSet", "discountedTotalPriceSet"),
        ),
    ),
)

PRODUCTS = StreamSpec(
    name="products",
    root="products",
    sort_key="UPDATED_AT",
    fields=(
        "id legacyResourceId title handle productType vendor status tags createdAt updatedAt publishedAt "
        "onlineStoreUrl featuredMedia { id mediaContentType preview { image { url altText } } }"
    ),
    nested=(Nested("variants", "ProductVariant", "id legacyResourceId title sku price compareAtPrice"),),
)

SPECS: dict[str, StreamSpec] = {spec.name: spec for spec in (CUSTOMERS, ORDERS, ABANDONED_CHECKOUTS, PRODUCTS)}

BULK_RUN = """
mutation HearthBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
""".strip()

# bulkOperation(id:) rather than currentBulkOperation, deprecated since 2026-01 (several
# bulk operations may now run at once, so "the current one" is ambiguous).
BULK_POLL = """
query HearthBulkPoll($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount url partialDataUrl query }
}
""".strip()


def node_selection(spec: StreamSpec, nested_first: int | None) -> str:
    """The node's selection; nested connections get ``first: nested_first`` (none in bulk)."""
    nested = " ".join(_connection(n.field, n.selection) for n in spec.nested)
    text = f"{spec.fields} {nested}".strip()
    return text.replace(_FIRST, f"(first: {nested_first})" if nested_first is not None else "")


def page_query(spec: StreamSpec, nested_first: int) -> str:
    """The paged query of a stream: variables ``$first``, ``$after``, ``$query``."""
    return (
        f"query {spec.operation}Page($first: Int!, $after: String, $query: String) {{\n"
        f"  {spec.root}(first: $first, after: $after, query: $query, sortKey: {spec.sort_key}) {{\n"
        f"    nodes {{ {node_selection(spec, nested_first)} }}\n"
        "    pageInfo { hasNextPage endCursor }\n"
        "  }\n"
        "}"
    )


def bulk_query(spec: StreamSpec, search: str) -> str:
    """The query a bulk operation runs: the same selection, the search inlined, no page sizes."""
    return (
        f"query {spec.operation}Bulk {{\n"
        f"  {spec.root}(query: {json.dumps(search)}, sortKey: {spec.sort_key}) {{\n"
        f"    nodes {{ {node_selection(spec, None)} }}\n"
        "  }\n"
        "}"
    )


def search_filter(window: Window) -> str:
    """Shopify search syntax for the half-open window ``[start, end)`` on ``updated_at``."""
    return f"updated_at:>='{iso(window.start)}' AND updated_at:<'{iso(window.end)}'"


def estimate_cost(document: str, variables: Mapping[str, Any] | None = None) -> int:
    """The requested cost Shopify computes for ``document`` (its documented model).

    Scalars cost 0, an object or a list of objects 1 plus its fields, a connection
    2 plus ``first`` times one node, a mutation 10. Only the shapes this connector
    writes are covered: a field with a ``first`` argument is taken for a connection.
    """
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    if operation.operation == OperationType.MUTATION:
        return MUTATION_COST * len(operation.selection_set.selections)
    return _cost(operation.selection_set, variables or {})


def _fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
    out: list[FieldNode] = []
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            out.extend(_fields(selection.selection_set))
    return out


def _first(node: FieldNode, variables: Mapping[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value in ("first", "last"):
            value = argument.value
            if isinstance(value, VariableNode):
                return int(variables.get(value.name.value) or 0)
            if isinstance(value, IntValueNode):
                return int(value.value)
    return None


def _cost(selection_set: SelectionSetNode | None, variables: Mapping[str, Any]) -> int:
    total = 0
    for node in _fields(selection_set):
        if node.selection_set is None:
            continue
        size = _first(node, variables)
        if size is None:
            total += 1 + _cost(node.selection_set, variables)
            continue
        total += 2
        for inner in _fields(node.selection_set):
            if inner.name.value == "nodes":
                total += size * (1 + _cost(inner.selection_set, variables))
            elif inner.name.value == "edges":
                for edge in _fields(inner.selection_set):
                    if edge.name.value == "node":
                        total += size * (1 + _cost(edge.selection_set, variables))
    return total


def connection_paths(spec: StreamSpec) -> tuple[tuple[str, ...], ...]:
    """Where a node of ``spec`` holds nested connections, e.g. ``("refunds", "refundLineItems")``.

    A path is a chain of fields from the node down to a connection (lists fan out on
    the way); :func:`connectors.shopify.streams.fills_a_connection` follows these
    instead of walking every value of every record.
    """
    document = parse(f"{{ node {{ {node_selection(spec, 1)} }} }}")
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    paths: list[tuple[str, ...]] = []

    def visit(selection_set: SelectionSetNode | None, path: tuple[str, ...]) -> None:
        for node in _fields(selection_set):
            name = (node.alias or node.name).value
            if _first(node, {}) is not None:
                paths.append((*path, name))
            elif node.selection_set is not None:
                visit(node.selection_set, (*path, name))

    visit(_fields(operation.selection_set)[0].selection_set, ())
    return tuple(paths)


def fitting_page_size(document: str, wanted: int) -> int:
    """The largest ``$first`` up to ``wanted`` that keeps ``document`` under :data:`MAX_QUERY_COST`."""
    fixed = estimate_cost(document, {"first": 0})
    per_node = max(1, estimate_cost(document, {"first": 1}) - fixed)
    return max(1, min(wanted, (MAX_QUERY_COST - fixed) // per_node))


def all_documents(nested_first: int = 10) -> dict[str, str]:
    """Every document the connector can send, by a descriptive name (bulk queries included)."""
    sample = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    documents = {"bulk_run": BULK_RUN, "bulk_poll": BULK_POLL}
    for spec in SPECS.values():
        documents[f"{spec.name}_page"] = page_query(spec, nested_first)
        documents[f"{spec.name}_bulk"] = bulk_query(spec, search_filter(sample))
    return documents
