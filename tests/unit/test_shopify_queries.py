"""The Shopify connector's GraphQL documents against the official 2026-04 schema, and its pure helpers."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_client_schema,
    get_named_type,
    parse,
    validate,
    visit,
)

from connectors._http import MalformedResponse
from connectors.base import Window
from connectors.shopify import SPECS, ShopifySettings, all_documents, assemble, page_envelope
from connectors.shopify.queries import (
    MAX_QUERY_COST,
    bulk_query,
    estimate_cost,
    fitting_page_size,
    node_selection,
    page_query,
    search_filter,
)
from connectors.shopify.streams import fills_a_connection, split

SPECS_DIR = Path(os.environ.get("HEARTH_SPECS_DIR") or Path(__file__).resolve().parents[3] / "shared" / "specs")
DOCUMENTS = all_documents()


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    with gzip.open(SPECS_DIR / "shopify" / "admin_2026-04.json.gz", "rt", encoding="utf-8") as handle:
        introspection = json.load(handle)
    return build_client_schema(introspection["data"], assume_valid=True)


def deprecated_uses(schema: GraphQLSchema, document: str) -> list[str]:
    """Fields, arguments and enum values of ``document`` that the schema marks deprecated."""
    type_info = TypeInfo(schema)
    found: list[str] = []

    class Finder(Visitor):
        def enter_field(self, node: Any, *_: Any) -> None:
            definition = type_info.get_field_def()
            if definition is not None and definition.deprecation_reason:
                found.append(f"{type_info.get_parent_type()}.{node.name.value}: {definition.deprecation_reason}")

        def enter_argument(self, node: Any, *_: Any) -> None:
            argument = type_info.get_argument()
            if argument is not None and argument.deprecation_reason:
                found.append(f"argument {node.name.value}: {argument.deprecation_reason}")

        def enter_enum_value(self, node: Any, *_: Any) -> None:
            value = type_info.get_enum_value()
            if value is not None and value.deprecation_reason:
                found.append(f"enum value {node.value}: {value.deprecation_reason}")

    visit(parse(document), TypeInfoVisitor(type_info, Finder()))
    return found


def selected_paths(schema: GraphQLSchema, document: str) -> set[str]:
    """Dotted paths of every selected field, connections' ``nodes`` left out (``lineItems.sku``)."""
    paths: set[str] = set()

    def walk(selection_set: Any, prefix: str) -> None:
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                name = node.name.value
                path = prefix if name == "nodes" else f"{prefix}.{name}".lstrip(".")
                paths.add(path)
                walk(node.selection_set, path)

    walk(parse(document).definitions[0].selection_set, "")  # type: ignore[attr-defined]
    return paths


def _all_fields(document: Any) -> list[FieldNode]:
    found: list[FieldNode] = []

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            found.append(node)

    visit(document, Collect())
    return found


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_is_valid_against_the_official_schema(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(DOCUMENTS[name]))
    assert [e.message for e in errors] == []


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_no_document_selects_anything_deprecated(schema: GraphQLSchema, name: str) -> None:
    assert deprecated_uses(schema, DOCUMENTS[name]) == []


def test_the_deprecation_check_finds_deprecated_fields(schema: GraphQLSchema) -> None:
    old = "{ customers(first: 1) { nodes { email emailMarketingConsent { marketingState } } } "
    old += "currentBulkOperation { id } }"
    found = deprecated_uses(schema, old)
    assert [f.split(":")[0] for f in found] == [
        "Customer.email",
        "Customer.emailMarketingConsent",
        "QueryRoot.currentBulkOperation",
    ]


def test_customers_read_email_and_consent_from_the_default_email_address(schema: GraphQLSchema) -> None:
    paths = selected_paths(schema, DOCUMENTS["customers_page"])
    for field in ("emailAddress", "marketingState", "marketingOptInLevel", "marketingUpdatedAt"):
        assert f"customers.defaultEmailAddress.{field}" in paths
    assert "customers.email" not in paths and "customers.emailMarketingConsent" not in paths


def test_orders_select_what_the_models_need(schema: GraphQLSchema) -> None:
    paths = selected_paths(schema, DOCUMENTS["orders_page"])
    wanted = [
        "lineItems.id",
        "lineItems.quantity",
        "lineItems.variant.id",
        "lineItems.product.id",
        "lineItems.discountedTotalSet.shopMoney.amount",
        "refunds.refundLineItems.lineItem.id",
        "refunds.refundLineItems.quantity",
        "refunds.totalRefundedSet.presentmentMoney.currencyCode",
        "totalPriceSet.shopMoney.amount",
        "totalPriceSet.presentmentMoney.amount",
        "discountCodes",
        "cancelledAt",
        "cancelReason",
        "displayFinancialStatus",
        "customer.id",
        "customerJourneySummary.firstVisit.utmParameters.campaign",
        "sourceName",
        "updatedAt",
    ]
    assert [p for p in wanted if f"orders.{p}" not in paths] == []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_page_queries_filter_sort_and_page_as_agreed(schema: GraphQLSchema, name: str) -> None:
    spec = SPECS[name]
    document = parse(page_query(spec, 10))
    root = document.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    arguments = {a.name.value: a.value for a in root.arguments}
    assert {"first", "after", "query", "sortKey"} <= set(arguments)
    assert arguments["sortKey"].value == spec.sort_key  # type: ignore[attr-defined]
    assert schema.query_type is not None
    sort_keys = get_named_type(schema.query_type.fields[spec.root].args["sortKey"].type)
    assert spec.sort_key in sort_keys.values  # type: ignore[attr-defined]
    text = page_query(spec, 10)
    assert "edges" not in text and "pageInfo { hasNextPage endCursor }" in text
    assert text.count("(first: 10)") == text.count("nodes {") - 1  # every nested connection is paged


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bulk_queries_carry_the_same_selection_without_page_sizes(name: str) -> None:
    spec = SPECS[name]
    text = bulk_query(spec, "updated_at:>='2026-01-01T00:00:00Z'")
    arguments = {a.name.value for f in _all_fields(parse(text)) for a in f.arguments or ()}
    assert arguments == {"query", "sortKey"}
    assert node_selection(spec, None) in text
    assert node_selection(spec, 7).replace("(first: 7)", "") == node_selection(spec, None)
    assert "\"updated_at:>='2026-01-01T00:00:00Z'\"" in text


def test_nested_connections_come_last_so_bulk_records_keep_the_key_order() -> None:
    for spec in SPECS.values():
        top = parse(bulk_query(spec, "")).definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
        node_fields = [f.name.value for f in top.selection_set.selections[0].selection_set.selections]
        nested = [n.field for n in spec.nested]
        assert node_fields[len(node_fields) - len(nested) :] == nested
        assert all("id" in n.selection.split() for n in spec.nested)


def test_search_filter_is_the_half_open_window() -> None:
    window = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert search_filter(window) == "updated_at:>='2026-03-01T00:00:00Z' AND updated_at:<'2026-03-02T12:00:00Z'"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_cost_estimate_matches_the_sandbox_and_pages_fit_the_single_query_limit(name: str) -> None:
    from sandbox.shopify.cost import analyse
    from sandbox.shopify.root import SUPPORTED_ROOTS
    from sandbox.shopify.schema import admin_schema

    text = page_query(SPECS[name], 10)
    for first in (1, 3, 50):
        variables = {"first": first, "query": None}
        analysis = analyse(admin_schema(), parse(text), variables, supported_roots=SUPPORTED_ROOTS)
        assert estimate_cost(text, variables) == analysis.requested_cost
    size = fitting_page_size(text, 250)
    assert estimate_cost(text, {"first": size}) <= MAX_QUERY_COST < estimate_cost(text, {"first": size + 1})


def test_fitting_page_size_respects_the_wanted_size() -> None:
    text = page_query(SPECS["customers"], 10)
    assert fitting_page_size(text, 7) == 7
    assert fitting_page_size(page_query(SPECS["orders"], 250), 250) == 1  # never 0, even when one node is too dear


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(ValueError, match="SHOPIFY_ACCESS_TOKEN"):
        ShopifySettings.from_env({"SHOPIFY_API_URL": "http://127.0.0.1:1"})
    with pytest.raises(ValueError, match="SHOPIFY_API_URL"):
        ShopifySettings.from_env({"SHOPIFY_ACCESS_TOKEN": "shpat_x"})
    settings = ShopifySettings.from_env({"SHOPIFY_API_URL": "https://shop.example", "SHOPIFY_ACCESS_TOKEN": "shpat_x"})
    assert settings.graphql_path == "admin/api/2026-04/graphql.json"
    assert "shpat_x" not in repr(settings)
    with pytest.raises(ValueError, match="page_size"):
        settings.with_(page_size=251)


def test_page_envelope_accepts_pages_and_error_bodies_only() -> None:
    envelope = page_envelope("orders")
    page = {"data": {"orders": {"nodes": [{"id": "x"}], "pageInfo": {"hasNextPage": True, "endCursor": "c"}}}}
    assert isinstance(page, envelope)
    assert isinstance({"errors": [{"message": "boom"}]}, envelope)
    bad = [
        [],
        {"data": None},
        {"data": {"customers": page["data"]["orders"]}},
        {"data": {"orders": {"nodes": "x", "pageInfo": {"hasNextPage": False}}}},
        {"data": {"orders": {"nodes": [1], "pageInfo": {"hasNextPage": False}}}},
        {"data": {"orders": {"nodes": [], "pageInfo": {"hasNextPage": "no"}}}},
        {"data": {"orders": {"nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}}},
    ]
    assert [isinstance(body, envelope) for body in bad] == [False] * len(bad)


def test_split_rejects_records_without_id_or_updated_at() -> None:
    nodes: list[dict[str, Any]] = [
        {"id": "gid://shopify/Order/1", "updatedAt": "2026-01-01T00:00:00Z"},
        {"id": None, "updatedAt": "2026-01-01T00:00:00Z"},
        {"id": "gid://shopify/Order/3"},
    ]
    records, rejects = split(nodes)
    assert records == nodes[:1]
    assert rejects[0] == (nodes[1], "record has no id: it cannot be keyed or de-duplicated")
    assert rejects[1][0] is nodes[2] and rejects[1][1].startswith("record gid://shopify/Order/3 has no updatedAt")


def test_fills_a_connection_looks_into_nested_lists() -> None:
    order = {"id": "o", "refunds": [{"refundLineItems": {"nodes": [{}, {}]}}], "lineItems": {"nodes": [{}]}}
    assert fills_a_connection(order, 2) and not fills_a_connection(order, 3)


def _line(kind: str, n: int, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"id": f"gid://shopify/{kind}/{n}", **fields}
    if parent:
        line["__parentId"] = parent
    return line


def test_assemble_puts_children_under_their_parent_in_selection_order() -> None:
    o1, o2, o3 = (f"gid://shopify/Order/{n}" for n in (1, 2, 3))
    lines = [
        _line("Order", 1, name="#1", updatedAt="t1"),
        _line("LineItem", 11, o1, sku="A"),
        _line("LineItem", 12, o1, sku="B"),
        _line("Order", 2, name="#2", updatedAt="t2"),  # no lines at all
        _line("Order", 3, name="#3", updatedAt="t3"),
        _line("LineItem", 31, o3, sku="C"),
    ]
    pages = list(assemble(lines, {"LineItem": "lineItems"}, page_records=2))
    assert [[r["id"] for r in page] for page in pages] == [[o1, o2], [o3]]
    first = pages[0][0]
    assert list(first) == ["id", "name", "updatedAt", "lineItems"]
    assert first["lineItems"] == {
        "nodes": [{"id": "gid://shopify/LineItem/11", "sku": "A"}, _line("LineItem", 12, sku="B")]
    }
    assert pages[0][1]["lineItems"] == {"nodes": []}
    assert pages[1][0]["lineItems"]["nodes"] == [{"id": "gid://shopify/LineItem/31", "sku": "C"}]


def test_assemble_refuses_children_it_cannot_place() -> None:
    late = [_line("Order", 1), _line("Order", 2), _line("LineItem", 11, "gid://shopify/Order/1")]
    with pytest.raises(MalformedResponse, match="not read just before it"):
        list(assemble(late, {"LineItem": "lineItems"}, page_records=1))
    unknown = [_line("Order", 1), _line("Fulfillment", 5, "gid://shopify/Order/1")]
    with pytest.raises(MalformedResponse, match="unknown type"):
        list(assemble(unknown, {"LineItem": "lineItems"}, page_records=10))
