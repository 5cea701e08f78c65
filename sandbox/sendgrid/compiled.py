"""A fast yes/no check of a JSON document against a schema, with jsonschema's exact verdict.

``jsonschema`` walks the schema anew for every value, which costs ~0.1 ms per
personalization: a 1,000-recipient mail-send body spent ~0.1 s in validation alone.
:func:`compile_check` turns a schema into nested closures once, so the common case,
a valid body, is answered in a few milliseconds. It only ever answers *whether* a
document is valid; the caller asks jsonschema for the errors when it is not, so the
error messages stay jsonschema's (see ``validation.schema_errors``).

The closures implement the keywords the vendored SendGrid spec uses, with
jsonschema's semantics (a keyword applies only to instances of its type). Any other
validation keyword of Draft 2020-12 (``pattern``, ``oneOf``, ``prefixItems`` …)
hands that whole subschema to jsonschema itself, so the verdict is jsonschema's
wherever the closures do not cover it. Keywords jsonschema does not know
(``description``, OpenAPI's ``nullable`` …) are ignored, as jsonschema ignores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import UnknownType

Check = Callable[[Any], bool]

_VALIDATION_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)
# The keywords implemented below; ``enum`` only with string members, ``uniqueItems`` only false.
_COMPILED = frozenset(
    {
        "$ref",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "format",
        "enum",
        "uniqueItems",
    }
)
# jsonschema's own is_array / is_object / is_string are exactly these isinstance checks.
_FAST_TYPES: dict[str, type] = {"string": str, "object": dict, "array": list}


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class _Compiler:
    def __init__(self, validator: Draft202012Validator, document: Mapping[str, Any], base_uri: str) -> None:
        self.validator = validator
        self.document = document
        self.base_uri = base_uri
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any, pointer: str) -> Check:
        """The check of ``schema``, which sits at JSON pointer ``pointer`` (``/…``) of the document."""
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            return self.fallback(pointer)
        keywords = _VALIDATION_KEYWORDS.intersection(schema)
        # An $id would move the base of the $refs below it: jsonschema resolves those.
        if "$id" in schema or not keywords <= _COMPILED or not self._values_ok(schema) or not self._types_ok(schema):
            return self.fallback(pointer)
        checks = [self._keyword(name, schema, pointer) for name in sorted(keywords)]
        checks = [c for c in checks if c is not _always]
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        return _every(checks)

    def fallback(self, pointer: str) -> Check:
        """jsonschema's own verdict on the subschema at ``pointer``, resolved where it sits in the document."""
        return self.validator.evolve(schema={"$ref": f"{self.base_uri}#{pointer}"}).is_valid

    @staticmethod
    def _values_ok(schema: dict[str, Any]) -> bool:
        """Whether ``enum`` and ``uniqueItems`` take the values the closures implement."""
        members = schema.get("enum", [])
        return isinstance(members, list) and all(isinstance(m, str) for m in members) and not schema.get("uniqueItems")

    def _types_ok(self, schema: dict[str, Any]) -> bool:
        names = schema.get("type", [])
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return False
        try:
            for name in names:
                self.validator.TYPE_CHECKER.is_type(None, name)
        except UnknownType:  # jsonschema raises on it while validating: leave that to jsonschema
            return False
        return True

    def _keyword(self, name: str, schema: dict[str, Any], pointer: str) -> Check:
        value = schema[name]
        if name == "$ref":
            return self._ref(value, pointer)
        if name == "type":
            return self._type([value] if isinstance(value, str) else list(value))
        if name == "properties":
            return _properties(
                {key: self.compile(sub, f"{pointer}/properties/{_escape(key)}") for key, sub in value.items()}
            )
        if name == "required":
            required = frozenset(value)
            return lambda v: not isinstance(v, dict) or v.keys() >= required
        if name == "additionalProperties":
            return self._additional(value, schema, pointer)
        if name == "items":
            return _items(self.compile(value, f"{pointer}/items"))
        if name == "enum":
            members = frozenset(value)
            return lambda v: isinstance(v, str) and v in members  # a non-string never equals a string
        if name == "uniqueItems":  # false (true falls back): asks nothing
            return _always
        if name == "format":
            return self._format(value)
        return _bound(name, value)

    def _format(self, fmt: Any) -> Check:
        checker = self.validator.format_checker
        if checker is None or fmt not in checker.checkers:  # jsonschema ignores formats it has no check for
            return _always
        func, raises = checker.checkers[fmt]

        def conforms(value: Any) -> bool:  # FormatChecker.conforms, without its two calls per value
            try:
                return bool(func(value))
            except raises:
                return False

        return conforms

    def _ref(self, ref: Any, pointer: str) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#/") or "%" in ref:  # percent-escapes: jsonschema's
            return self.fallback(pointer)
        if ref not in self.refs:
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            compiled: list[Check] = []
            # Registered before compiling, so a schema that refers to itself terminates.
            self.refs[ref] = lambda v: compiled[0](v)
            compiled.append(self.compile(target, ref[1:]))
            self.refs[ref] = compiled[0]
        return self.refs[ref]

    def _type(self, names: list[str]) -> Check:
        if len(names) == 1 and names[0] in _FAST_TYPES:
            kind = _FAST_TYPES[names[0]]
            return lambda v: isinstance(v, kind)
        is_type = self.validator.TYPE_CHECKER.is_type
        return lambda v: any(is_type(v, n) for n in names)

    def _additional(self, value: Any, schema: dict[str, Any], pointer: str) -> Check:
        known = frozenset(schema.get("properties", {}))  # patternProperties never gets here: it falls back
        if isinstance(value, dict):
            check = self.compile(value, f"{pointer}/additionalProperties")
            if check is _always:
                return _always
            return _additional_values(known, check)
        if value:  # true (or any truthy non-object): every extra property is allowed
            return _always
        return lambda v: not isinstance(v, dict) or v.keys() <= known


# The closures below run per value of every body (tens of thousands of calls a request): plain
# loops, since a generator inside all() costs about twice as much in CPython 3.11.


def _every(checks: list[Check]) -> Check:
    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a loop, not all(): see above
            if not check(value):
                return False
        return True

    return every


def _properties(checks: dict[str, Check]) -> Check:
    pairs = tuple((key, check) for key, check in checks.items() if check is not _always)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, sub in pairs:  # noqa: SIM110 - a loop, not all(): see above
            if key in value and not sub(value[key]):
                return False
        return True

    return check


def _additional_values(known: frozenset[str], check: Check) -> Check:
    def additional(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():  # noqa: SIM110 - a loop, not all(): see above
            if key not in known and not check(item):
                return False
        return True

    return additional


def _items(check: Check) -> Check:
    if check is _always:
        return _always

    def items(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        for item in value:  # noqa: SIM110 - a loop, not all(): see above
            if not check(item):
                return False
        return True

    return items


def _bound(name: str, limit: Any) -> Check:
    kind = {"Items": list, "Length": str, "Properties": dict}[name[3:]]
    if name.startswith("min"):
        return lambda v: not isinstance(v, kind) or len(v) >= limit
    return lambda v: not isinstance(v, kind) or len(v) <= limit


def compile_check(validator: Draft202012Validator, document: Mapping[str, Any], base_uri: str, pointer: str) -> Check:
    """``is_valid`` of the schema at ``pointer`` (``#/…``) of ``document``, compiled.

    Args:
        validator: a validator whose registry holds ``document`` under ``base_uri``; its format and
            type checkers are used, and it judges the subschemas the closures do not cover.
        document: the whole schema document, which ``$ref``s of the form ``#/…`` point into.
        base_uri: the URI ``document`` is registered under.
        pointer: where the schema to check against sits in ``document``.
    """
    if not pointer.startswith("#/"):
        raise ValueError(f"pointer must look like '#/…', got {pointer!r}")
    return _Compiler(validator, document, base_uri)._ref(pointer, pointer[1:])
