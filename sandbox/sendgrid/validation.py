"""Validation of ``POST /v3/mail/send`` bodies against SendGrid's own OpenAPI contract.

The request schema comes from the vendored ``spec/tsg_mail_v3.json``. The whole
document is registered (its ``$ref``s point into ``#/components/…``) and validated
with Draft 2020-12: a check compiled from it once (``compiled.py``) says whether a
body is valid, and jsonschema lists the errors of one that is not. The file is
looser than the live API in a few places; those gaps are patched in memory in
:func:`_patch_spec_gaps` so the list of deviations lives in one place. Rules
that no JSON schema can say (recipient totals, the 72-hour schedule window,
template or content, unknown templates) follow in :func:`semantic_errors`.

Errors come back in SendGrid's shape, ``{"message", "field", "help"}``, with the
field as a dotted path such as ``personalizations.0.to.0.email``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.sendgrid.compiled import Check, compile_check

SPEC_PATH = Path(__file__).with_name("spec") / "tsg_mail_v3.json"
SPEC_URI = "https://raw.githubusercontent.com/twilio/sendgrid-oai/main/spec/json/tsg_mail_v3.json"
BODY_POINTER = "#/components/requestBodies/PostMailSend/content/application~1json/schema"

MAX_RECIPIENTS = 1000
MAX_SCHEDULE_AHEAD_SECONDS = 72 * 3600
MAX_CUSTOM_ARGS_BYTES = 10_000
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

# Deliberately stricter than jsonschema's "email" format (which only wants an "@"):
# SendGrid rejects addresses without a dotted domain or with spaces and brackets.
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


Error = dict[str, Any]


def error(message: str, field: str | None = None, help: str | None = None) -> Error:
    """One entry of SendGrid's ``errors`` array."""
    return {"message": message, "field": field, "help": help}


def _patch_spec_gaps(document: dict[str, Any]) -> None:
    """Make the spec say what the live API enforces (see specs/README.md, "Known quirks")."""
    body = document["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    props = body["properties"]
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    # The file types the message-level custom_args as a string; the API and the
    # official library send an object, and the API wants string values at both levels.
    props["custom_args"] = dict(string_map)
    personalization = props["personalizations"]["items"]
    personalization["properties"]["custom_args"] = {**personalization["properties"]["custom_args"], **string_map}
    # The API requires at least one personalization, one "to" in each, one content block.
    props["personalizations"]["minItems"] = 1
    personalization["properties"]["to"]["minItems"] = 1
    props["content"]["minItems"] = 1


@functools.cache
def _document() -> dict[str, Any]:
    document = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    _patch_spec_gaps(document)
    return document


@functools.cache
def _validator() -> Draft202012Validator:
    registry: Registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(_document(), default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": SPEC_URI + BODY_POINTER}, registry=registry, format_checker=_FORMATS)


@functools.cache
def _is_valid() -> Check:
    """The same verdict as ``_validator().is_valid``, compiled once (see ``compiled.py``)."""
    return compile_check(_validator(), _document(), SPEC_URI, BODY_POINTER)


def _dotted(path: list[Any]) -> str | None:
    return ".".join(str(part) for part in path) or None


def _help(path: list[Any]) -> str:
    """SendGrid's help anchors name the field without list indexes or the final "email"."""
    names = [part for part in path if isinstance(part, str)]
    return f"{HELP}#message." + ".".join(names[:-1] if names[-1:] == ["email"] else names)


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}

_REQUIRED_MESSAGES = {
    "from": (
        "The from object must be provided for every email send. It is an object that requires the email "
        'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
        '{"email" : "example@example.com", "name" : "Example Recipient"}.'
    ),
    "personalizations": ("The personalizations field is required and must have at least one personalization."),
    "to": (
        "The to array is required for all personalization objects, and must have at least one email object "
        "with a valid email address."
    ),
    "email": "The email parameter is required for every email address.",
}


def _schema_error(err: ValidationError) -> Error:
    path = list(err.absolute_path)
    kind = err.validator
    if kind == "required":
        missing = next((name for name in err.validator_value if name not in err.instance), "")
        if missing == "from":  # SendGrid names the address, not the object
            return error(_REQUIRED_MESSAGES["from"], "from.email", f"{HELP}#message.from")
        message = _REQUIRED_MESSAGES.get(missing, f"The {missing} parameter is required.")
        return error(message, _dotted([*path, missing]), _help([*path, missing]))
    field = _dotted(path)
    if kind == "format" and err.validator_value == "email":
        return error("Does not contain a valid address.", field, _help(path))
    if kind == "type":
        given = _JSON_TYPES.get(type(err.instance), "null")
        return error(f"Invalid type. Expected: {err.validator_value}, given: {given}.", field, None)
    if kind == "minItems" and path and path[-1] in _REQUIRED_MESSAGES:
        return error(_REQUIRED_MESSAGES[str(path[-1])], field, _help(path))
    if kind == "minItems" and path == ["content"]:
        return error(_CONTENT_REQUIRED, "content", f"{HELP}#message.content")
    if kind == "maxItems" and path == ["personalizations"]:
        return error(f"The personalizations field may not contain more than {MAX_RECIPIENTS} items.", field, None)
    if kind in ("maxItems", "uniqueItems") and path == ["categories"]:
        return error(
            "You may not have more than 10 categories per request, and categories must be unique.",
            field,
            f"{HELP}#message.categories",
        )
    return error(err.message, field, None)


_CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at least one "
    "defined content block. We typically suggest both text/plain and text/html blocks are included, but only "
    "one block is required."
)


def _path_key(err: ValidationError) -> list[tuple[int, int, str]]:
    return [(0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in err.absolute_path]


def schema_errors(body: Any) -> list[Error]:
    """Every violation of the (patched) spec schema, ordered by field path."""
    if _is_valid()(body):  # the common case, answered fast; jsonschema itself words the errors
        return []
    return [_schema_error(err) for err in sorted(_validator().iter_errors(body), key=_path_key)]


def semantic_errors(body: dict[str, Any], *, template_status: Callable[[str], str | None], now: float) -> list[Error]:
    """The rules the schema cannot express. Only call it on a schema-valid body.

    Args:
        body: the request body, already valid against the schema.
        template_status: ``template_id -> None`` when the template can be sent, or a
            message saying why not (unknown, no active version).
        now: the current time in epoch seconds (the ``send_at`` window).
    """
    errors: list[Error] = []
    personalizations: list[dict[str, Any]] = body["personalizations"]
    recipients = 0
    for index, personalization in enumerate(personalizations):
        addresses = [a["email"].lower() for kind in ("to", "cc", "bcc") for a in personalization.get(kind, [])]
        recipients += len(addresses)
        if len(set(addresses)) != len(addresses):
            errors.append(
                error(
                    "Each email address in the personalization block should be unique between to, cc, and bcc. "
                    "We found the first duplicate instance of an address in the to, cc, or bcc array.",
                    f"personalizations.{index}",
                    f"{HELP}#message.recipient.duplicate",
                )
            )
        merged = {**body.get("custom_args", {}), **personalization.get("custom_args", {})}
        if _may_exceed(merged) and len(json.dumps(merged, separators=(",", ":")).encode()) > MAX_CUSTOM_ARGS_BYTES:
            errors.append(
                error("The total size of custom arguments may not exceed 10,000 bytes.", f"personalizations.{index}")
            )
        send_at = personalization.get("send_at")
        if send_at is not None and send_at > now + MAX_SCHEDULE_AHEAD_SECONDS:
            errors.append(_send_at_error(f"personalizations.{index}.send_at"))
    if recipients > MAX_RECIPIENTS:
        errors.append(
            error(
                f"The total number of recipients must be no more than {MAX_RECIPIENTS}. This includes all recipients "
                "defined within the to, cc, and bcc parameters, across each object that you include in the "
                "personalizations array.",
                "personalizations",
                f"{HELP}#message.personalizations",
            )
        )
    if body.get("send_at") is not None and body["send_at"] > now + MAX_SCHEDULE_AHEAD_SECONDS:
        errors.append(_send_at_error("send_at"))

    template_id = body.get("template_id")
    if template_id is not None:
        problem = template_status(template_id)
        if problem:
            errors.append(error(problem, "template_id", f"{HELP}#message.template_id"))
    elif not body.get("content"):
        errors.append(error(_CONTENT_REQUIRED, "content", f"{HELP}#message.content"))
    elif not body.get("subject") and not all(p.get("subject") for p in personalizations):
        errors.append(
            error(
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.",
                "subject",
                f"{HELP}#message.subject",
            )
        )
    return errors


def _may_exceed(args: dict[str, str]) -> bool:
    """False when ``args`` surely encode within the limit: a character takes at most 12 bytes (a
    ``\\uXXXX`` surrogate pair), an entry 6 more (quotes, colon, comma). Skips most encodings."""
    return 2 + sum(12 * (len(k) + len(v)) + 6 for k, v in args.items()) > MAX_CUSTOM_ARGS_BYTES


def _send_at_error(field: str) -> Error:
    return error(
        "The send_at parameter must be a Unix timestamp no more than 72 hours in the future.",
        field,
        f"{HELP}#message.send_at",
    )


def validate_mail(body: Any, *, template_status: Callable[[str], str | None], now: float) -> list[Error]:
    """All errors of a mail-send body; an empty list means SendGrid would accept it."""
    if not isinstance(body, dict):
        return [error("Invalid type. Expected: object, given: " + _JSON_TYPES.get(type(body), "null") + ".")]
    return schema_errors(body) or semantic_errors(body, template_status=template_status, now=now)
