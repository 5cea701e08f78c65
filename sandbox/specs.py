"""Access to the vendors' contract files in ``shared/specs`` (for tests only).

The specs live outside the repository, beside it: ``<repo>/../shared/specs``
(``HEARTH_SPECS_DIR`` overrides the location). Product code never imports this
module: the sandbox servers carry the few contract facts they need as constants,
and the tests use these helpers to check those constants and every response
against the vendors' own files.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema

AMAZON_ORDERS_SPEC = "amazon-sp-api/orders_2026-01-01.json"


def specs_dir() -> Path:
    """The folder holding the vendor contract files."""
    override = os.environ.get("HEARTH_SPECS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "specs"


@functools.cache
def load_spec(relative_path: str) -> Any:
    """Parse one JSON contract file, e.g. ``"facebook-marketing/AdsInsights.json"``."""
    path = specs_dir() / relative_path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: set HEARTH_SPECS_DIR to the shared/specs folder")
    return json.loads(path.read_text(encoding="utf-8"))


# -- Amazon (Swagger 2.0) ---------------------------------------------------------------


def _close_objects(node: Any) -> Any:
    """Forbid undeclared properties on every object schema that declares properties.

    Swagger 2.0 objects are open by default; a sandbox must not invent fields, so
    the strict validator closes them.
    """
    if isinstance(node, dict):
        closed = {key: _close_objects(value) for key, value in node.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_close_objects(item) for item in node]
    return node


def amazon_validator(definition: str, *, strict: bool = True) -> jsonschema.Draft4Validator:
    """A validator for one definition of the SP-API Orders model, ``$ref``s resolved.

    Args:
        definition: a name under ``definitions``, e.g. ``"SearchOrdersResponse"``.
        strict: also reject properties the model does not declare.
    """
    definitions = copy.deepcopy(load_spec(AMAZON_ORDERS_SPEC)["definitions"])
    if definition not in definitions:
        raise KeyError(f"no definition {definition!r} in {AMAZON_ORDERS_SPEC}")
    if strict:
        definitions = _close_objects(definitions)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def amazon_operation(path: str, method: str = "get") -> dict[str, Any]:
    """The Swagger operation object of one path, e.g. ``"/orders/2026-01-01/orders"``."""
    return load_spec(AMAZON_ORDERS_SPEC)["paths"][path][method]


# -- Meta (facebook-business-sdk-codegen node specs) ------------------------------------


def fb_node(node: str) -> dict[str, Any]:
    """One node spec, e.g. ``fb_node("AdAccount")``."""
    return load_spec(f"facebook-marketing/{node}.json")


def fb_fields(node: str) -> dict[str, str]:
    """Field name → declared type of a node, e.g. ``{"spend": "string", …}``."""
    return {field["name"]: field["type"] for field in fb_node(node)["fields"]}


def fb_edge_params(node: str, method: str, endpoint: str) -> dict[str, str]:
    """Parameter name → declared type of one edge, e.g. ``("AdAccount", "GET", "insights")``."""
    for api in fb_node(node)["apis"]:
        if api["method"] == method and api.get("endpoint") == endpoint:
            return {param["name"]: param["type"] for param in api["params"]}
    raise KeyError(f"{node} has no {method} /{endpoint} edge")


def fb_enum(name: str) -> list[str]:
    """Values of one enum by name (the insights enums are filed under node AdReportRun)."""
    for entry in load_spec("facebook-marketing/enum_types.json"):
        if entry["name"] == name:
            return list(entry["values"])
    raise KeyError(f"no enum {name!r} in enum_types.json")
