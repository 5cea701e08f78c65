"""The sandbox's compiled mail-send check gives jsonschema's verdict on every body, valid or not.

The sandbox answers "valid?" with closures compiled from the vendored spec and asks
jsonschema for the errors only when the answer is no. Its one risk is accepting a body
jsonschema would refuse, so these tests compare the two verdicts on a rich valid body
and on thousands of mutations of it (wrong types, missing keys, extra keys, bad
addresses, too long, too many …), and on a small schema made of the keywords the
compiled check leaves to jsonschema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.sendgrid.compiled import compile_check
from sandbox.sendgrid.validation import _is_valid, _validator, schema_errors, validate_mail

RICH_BODY: dict[str, Any] = {
    "personalizations": [
        {
            "to": [{"email": "ann@example.com", "name": "Ann"}],
            "cc": [{"email": "cc@example.com"}],
            "bcc": [{"email": "bcc@example.com", "name": "B"}],
            "from": {"email": "shop@example.com", "name": "Shop"},
            "subject": "Hello",
            "headers": {"List-Unsubscribe": "<https://u.example/x>"},
            "substitutions": {"-name-": "Ann"},
            "dynamic_template_data": {"first_name": "Ann", "items": [{"title": "Mug", "quantity": 2}]},
            "custom_args": {"hearth_send_key": "abc"},
            "send_at": 1_800_000_000,
        },
        {"to": [{"email": "bob@example.com"}]},
    ],
    "from": {"email": "shop@example.com", "name": "Shop"},
    "reply_to": {"email": "help@example.com"},
    "reply_to_list": [{"email": "r1@example.com"}, {"email": "r2@example.com", "name": "R"}],
    "subject": "Hi",
    "content": [{"type": "text/plain", "value": "Hello"}],
    "attachments": [{"content": "aGk=", "filename": "a.txt", "type": "text/plain", "disposition": "inline"}],
    "template_id": "d-0123",
    "headers": {"X-Shop": "1"},
    "categories": ["hearth:winback", "hearth:winback:offer"],
    "custom_args": {"run": "r1"},
    "send_at": 1_800_000_000,
    "batch_id": "b1",
    "asm": {"group_id": 7, "groups_to_display": [7, 8]},
    "ip_pool_name": "pool",
    "mail_settings": {"sandbox_mode": {"enable": True}, "footer": {"enable": False, "text": "t"}},
    "tracking_settings": {"click_tracking": {"enable": True}, "ganalytics": {"enable": True, "utm_source": "x"}},
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, 1.5, 2**70])
    | st.sampled_from(["", "x", "a@b.example", "not-an-address", "inline", "attachment", "d-1", "x" * 300]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["email", "name", "k", "enable"]), inner, max_size=3)
    ),
    max_leaves=6,
)


EDGES: dict[type, list[Any]] = {
    str: ["", "x", "x" * 65, "x" * 256, "not-an-address", "a@b", "sideways", 1],
    int: [True, 1.0, 1.5, "1", None, -1],
    bool: [1, 0, "true", None],
    list: [[], [1], [{}], [{"email": "not-an-address"}], {}],
    dict: [{}, [], {"extra": 1}, {"email": 1}, "x"],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


PATHS = _paths(RICH_BODY)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    body: Any = copy.deepcopy(RICH_BODY)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        kind = draw(st.sampled_from(["edge", "edge", "replace", "delete", "add", "grow"]))
        if not path:
            continue
        try:
            parent = body
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            target = parent[last]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        if kind == "edge":  # just past a limit of the value's own kind
            parent[last] = draw(st.sampled_from(EDGES.get(type(target), [None, "x"])))
        elif kind == "replace":
            parent[last] = draw(JSON)
        elif kind == "delete":
            del parent[last]
        elif kind == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(["extra", "email", "name", "enable", "group_id"]))] = draw(JSON)
        elif kind == "grow" and isinstance(target, list | str) and target:
            parent[last] = target * draw(st.sampled_from([2, 13]))  # past maxItems 10 and 25
    return body


def _single_mutations() -> Iterator[Any]:
    """Every path of the rich body changed one way at a time: each edge value, deleted, grown, extended."""
    for path in PATHS[1:]:
        target = _at(RICH_BODY, path)
        changes: list[tuple[str, Any]] = [("set", value) for value in EDGES.get(type(target), [])]
        changes.append(("delete", None))
        if isinstance(target, list) and target:
            changes.append(("set", target * 13))
        if isinstance(target, dict):
            changes.append(("set", {**target, "extra": 1}))
        for how, value in changes:
            body = copy.deepcopy(RICH_BODY)
            parent = _at(body, path[:-1])
            if how == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)
            yield body


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def test_every_single_mutation_gets_jsonschemas_verdict() -> None:
    verdicts = [(_is_valid()(body), _validator().is_valid(body)) for body in _single_mutations()]
    assert len(verdicts) > 500
    assert [ours for ours, _ in verdicts] == [theirs for _, theirs in verdicts]
    assert {theirs for _, theirs in verdicts} == {True, False}


def test_the_rich_body_is_valid_and_the_check_agrees() -> None:
    assert _validator().is_valid(RICH_BODY) and _is_valid()(RICH_BODY)
    assert schema_errors(RICH_BODY) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bodies())
def test_the_compiled_check_agrees_with_jsonschema_on_mutated_bodies(body: Any) -> None:
    expected = _validator().is_valid(body)
    assert _is_valid()(body) == expected
    assert (schema_errors(body) == []) == expected


def test_item_limits_are_the_specs() -> None:
    body = copy.deepcopy(RICH_BODY)
    body["personalizations"] = [{"to": [{"email": f"p{i}@example.com"}]} for i in range(1000)]
    assert _is_valid()(body) and _validator().is_valid(body)
    body["personalizations"].append({"to": [{"email": "one-more@example.com"}]})
    assert not _is_valid()(body) and not _validator().is_valid(body)
    body = copy.deepcopy(RICH_BODY)
    body["personalizations"][0]["custom_args"] = {f"k{i}": "v" for i in range(10_001)}  # maxProperties 10000
    assert not _is_valid()(body) and not _validator().is_valid(body)


def test_known_bad_bodies_are_still_refused_with_jsonschema_errors() -> None:
    bad = copy.deepcopy(RICH_BODY)
    bad["personalizations"][1]["to"][0]["email"] = "not-an-address"
    bad["attachments"][0]["disposition"] = "sideways"  # outside the enum
    bad["categories"] = ["same", "same"]  # uniqueItems, left to jsonschema
    assert not _is_valid()(bad)
    fields = {e["field"] for e in validate_mail(bad, template_status=lambda _: None, now=0)}
    assert fields == {"personalizations.1.to.0.email", "attachments.0.disposition", "categories"}


# -- keywords the closures leave to jsonschema ----------------------------------------------------

OTHER_URI = "https://example.test/other.json"
OTHER: dict[str, Any] = {
    "components": {
        "body": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z]+$"},
                "either": {"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]},
                "tags": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/components/tag"}},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
                "level": {"enum": [1, 2, "3"]},
                "amount": {"type": ["number", "null"], "minimum": 0},
                "nested": {"$ref": "#/components/body"},
            },
            "additionalProperties": {"type": "boolean"},
        },
        "tag": {"type": "string", "minLength": 1, "format": "email"},
    }
}
OTHER_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 4)
    | st.sampled_from([1.0, 2.5, -0.5])
    | st.sampled_from(["", "ab", "AB", "abc", "a@b.example", "3"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["code", "either", "tags", "pair", "level", "amount", "nested", "x"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)


def _other_validator() -> Draft202012Validator:
    registry: Registry = Registry().with_resource(
        OTHER_URI, Resource.from_contents(OTHER, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": OTHER_URI + "#/components/body"}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@settings(max_examples=300, deadline=None)
@given(OTHER_VALUES)
def test_subschemas_outside_the_compiled_keywords_get_jsonschemas_verdict(value: Any) -> None:
    validator = _other_validator()
    check = compile_check(validator, OTHER, OTHER_URI, "#/components/body")
    assert check(value) == validator.is_valid(value)
