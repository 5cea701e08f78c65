"""Shopify's official Admin GraphQL schema, loaded once per process.

The sandbox executes queries against the vendor's own introspection result
(vendored in ``spec/admin_<version>.json.gz``), so a query that works here is
valid against real Shopify and vice versa. Parsing and validating one query text
against this ~10 MB schema is the expensive part of a request, so results are
cached per query text (connectors page with the same text and new variables).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import threading
from pathlib import Path

from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_client_schema, parse, validate

API_VERSION = "2026-04"
SUPPORTED_VERSIONS = (API_VERSION,)
SCHEMA_NAME = f"admin_{API_VERSION}.json.gz"

_lock = threading.Lock()


def schema_path() -> Path:
    """The schema file: the vendored copy, or ``$HEARTH_SPECS_DIR/shopify/…`` when set."""
    override = os.environ.get("HEARTH_SPECS_DIR")
    if override:
        return Path(override) / "shopify" / SCHEMA_NAME
    return Path(__file__).resolve().parent / "spec" / SCHEMA_NAME


@functools.cache
def _load(path: Path) -> GraphQLSchema:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: set HEARTH_SPECS_DIR to the folder holding shopify/{path.name}")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        introspection = json.load(handle)
    # assume_valid: graphql-core's strict schema check rejects Shopify's deprecations.
    return build_client_schema(introspection["data"], assume_valid=True)


def admin_schema() -> GraphQLSchema:
    """The 2026-04 Admin schema (cached; the first call takes ~0.4 s)."""
    with _lock:
        return _load(schema_path())


@functools.lru_cache(maxsize=256)
def parse_and_validate(query: str) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """Parse ``query`` and validate it against the schema; errors as graphql-core reports them."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, (error,)
    return document, tuple(validate(admin_schema(), document))
