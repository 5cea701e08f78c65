"""Hearth's email templates: load, compose, check and render them exactly as SendGrid would.

``templates/email/manifest.yml`` maps each ``<sequence>/<step>`` to its HTML and
text files, subject, preheader, default categories and the
``dynamic_template_data`` keys it uses (its docstring-like header explains the
format). SendGrid dynamic templates have no partials, so :func:`load_manifest`
composes every step into one document (layout + partials + step), inlines the CSS
with ``css_inline`` and checks that the result keeps to the Handlebars subset
SendGrid documents and to the declared data keys. That composed source is what
:func:`sendgrid_template_payload` hands to the push, and what :func:`render`
renders with pybars3 and the same helpers: a preview is the email SendGrid sends.

UTM tags are added to the data, not by a helper (SendGrid takes no custom helpers):
:func:`dynamic_template_data` checks a person's data against the template's
contract, tags every link and returns what goes into the personalization. A
person whose data misses a required key raises :class:`TemplateError` naming the
template and the key, so the sequence flow can skip and record just that person.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

import css_inline
import pybars
import yaml  # type: ignore[import-untyped]  # a dependency of prefect and dbt-core

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates" / "email"
NAME_PREFIX = "hearth:"  # SendGrid template name = NAME_PREFIX + "<sequence>/<step>"
UTM_SOURCE, UTM_MEDIUM = "hearth", "email"
LINK_KEYS = ("shop_url", "checkout_url", "reorder_url")  # top-level links that get UTM tags
ITEM_LINK_KEYS = ("product_url",)
BUILTIN_BLOCKS = frozenset({"if", "unless", "each", "with"})
_PARTIAL = re.compile(r"\{\{>\s*([\w-]+)\s*\}\}")
_MUSTACHE = re.compile(r"\{\{\{?\s*(.*?)\s*\}?\}\}", re.S)
_WORD = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


class TemplateError(ValueError):
    """A template or a person's data for it is unusable; names the template and, when known, the key."""

    def __init__(self, message: str, *, template: str | None = None, key: str | None = None) -> None:
        self.template, self.key = template, key
        super().__init__(f"template {template}: {message}" if template else message)


class RenderedEmail(NamedTuple):
    subject: str
    html: str
    text: str


class TemplatePayload(NamedTuple):
    """What SendGrid stores for one template (``connectors.sendgrid.push_templates`` takes these)."""

    name: str
    subject: str
    html_content: str
    plain_content: str


# -- SendGrid's Handlebars helpers that the templates use ---------------------------------------
def _insert(this: Any, value: Any, default: str = "") -> str:
    """``{{insert first_name "default=there"}}``: the value, or the default when it is missing or empty."""
    fallback = default.removeprefix("default=") if isinstance(default, str) else ""
    return fallback if value in (None, "") else str(value)


# Add a helper here only if SendGrid documents it, with SendGrid's semantics.
HELPERS: dict[str, Any] = {"insert": _insert}


@dataclass(frozen=True)
class EmailTemplate:
    """One sequence step's template, composed and inlined (the exact source SendGrid gets)."""

    sequence: str
    step: str
    subject: str
    html: str
    text: str
    categories: tuple[str, ...]
    required: tuple[str, ...]  # dynamic_template_data keys, base keys included
    optional: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.sequence}/{self.step}"

    @property
    def name(self) -> str:
        """The SendGrid template name (unique per step; pushes are idempotent by it)."""
        return NAME_PREFIX + self.key

    @functools.cached_property
    def declared(self) -> tuple[str, ...]:
        """Every data key the template uses, required first (computed once: read per recipient)."""
        return (*self.required, *self.optional)


@dataclass(frozen=True)
class Manifest:
    directory: Path
    templates: Mapping[str, EmailTemplate]  # by "<sequence>/<step>"
    item_required: tuple[str, ...]
    item_optional: tuple[str, ...]
    discount_required: tuple[str, ...]

    @functools.cached_property
    def item_declared(self) -> frozenset[str]:
        """The keys an item may carry (computed once: read per item of every recipient)."""
        return frozenset((*self.item_required, *self.item_optional))

    def get(self, sequence: str, step: str) -> EmailTemplate:
        template = self.templates.get(f"{sequence}/{step}")
        if template is None:
            raise TemplateError(
                f"no template for step {step!r} of sequence {sequence!r} in {self.directory / 'manifest.yml'}; "
                f"known: {sorted(self.templates)}",
                template=f"{sequence}/{step}",
            )
        return template


# -- loading ---------------------------------------------------------------------------------
def load_manifest(directory: Path = TEMPLATES_DIR) -> Manifest:
    """Read, compose, inline and check every template under ``directory`` (cached per directory).

    Raises:
        TemplateError: a file is missing, a partial unknown, a helper outside SendGrid's
            subset, or a template uses a key its manifest entry does not declare.
    """
    # TEMPLATES_DIR is resolved already: skip the per-call realpath (syscalls) on the hot path.
    same = directory is TEMPLATES_DIR or directory == TEMPLATES_DIR  # `is`: the default, read per recipient
    return _load(TEMPLATES_DIR if same else Path(directory).resolve())


@functools.cache
def _load(directory: Path) -> Manifest:
    raw = yaml.safe_load(_read(directory, "manifest.yml"))
    if not isinstance(raw, dict) or not isinstance(raw.get("templates"), dict):
        raise TemplateError(f"{directory / 'manifest.yml'} must be a mapping with a 'templates' mapping")
    base, items, discount = (raw.get(k) or {} for k in ("base_data", "item_data", "discount_data"))
    layout = raw.get("layout") or {}
    layouts = {
        kind: _read(directory, layout.get(kind, f"layout.{ext}")) for kind, ext in (("html", "html"), ("text", "txt"))
    }
    partials = {
        ext: {p.stem: p.read_text(encoding="utf-8") for p in sorted((directory / "partials").glob(f"*.{ext}"))}
        for ext in ("html", "txt")
    }
    manifest_items = (tuple(items.get("required") or ()), tuple(items.get("optional") or ()))
    templates: dict[str, EmailTemplate] = {}
    for key, entry in raw["templates"].items():
        sequence, _, step = str(key).partition("/")
        if not sequence or not step or not isinstance(entry, dict):
            raise TemplateError("manifest entries are '<sequence>/<step>: {html, text, subject, …}'", template=key)
        data = entry.get("data") or {}
        required = (*(base.get("required") or ()), *(data.get("required") or ()))
        optional = (*(base.get("optional") or ()), *(data.get("optional") or ()))
        parts = {"content": _read(directory, entry.get("html", f"{key}.html")), "preheader": entry.get("preheader", "")}
        html = _compose(layouts["html"], {**partials["html"], **parts}, key)
        text_parts = {**partials["txt"], "content": _read(directory, entry.get("text", f"{key}.txt"))}
        template = EmailTemplate(
            sequence=sequence,
            step=step,
            subject=str(entry.get("subject") or ""),
            html=_inline(html, key),
            text=_compose(layouts["text"], text_parts, key),
            categories=tuple(entry.get("categories") or ("hearth", sequence, key)),
            required=tuple(dict.fromkeys(required)),
            optional=tuple(dict.fromkeys(k for k in optional if k not in required)),
        )
        if not template.subject:
            raise TemplateError("the manifest entry has no subject", template=key)
        allowed = {*template.required, *template.optional}
        if "items" in allowed:
            allowed |= {*manifest_items[0], *manifest_items[1]}
        for part in ("subject", "html", "text"):
            _check_source(getattr(template, part), allowed, f"{key} ({part})")
        templates[key] = template
    return Manifest(directory, templates, *manifest_items, tuple(discount.get("required") or ()))


def _read(directory: Path, name: str) -> str:
    path = directory / name
    if not path.is_file():
        raise TemplateError(f"{path} does not exist (named in {directory / 'manifest.yml'})")
    return path.read_text(encoding="utf-8")


def _compose(source: str, partials: Mapping[str, str], key: str, depth: int = 0) -> str:
    """Resolve ``{{> name}}`` recursively: SendGrid gets a single document."""
    if depth > 8:
        raise TemplateError("partials include each other in a cycle", template=key)

    def include(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in partials:
            raise TemplateError(f"unknown partial {{{{> {name}}}}}; known: {sorted(partials)}", template=key)
        return _compose(partials[name], partials, key, depth + 1).strip("\n")

    return _PARTIAL.sub(include, source)


def _inline(html: str, key: str) -> str:
    """Inline the CSS, and prove the HTML parser left every Handlebars tag where it was."""
    stray = _TableText()
    stray.feed(html)
    stray.close()
    if stray.found:
        raise TemplateError(
            f"text {stray.found!r} sits directly inside <{stray.where}>, where HTML parsers move it out of the "
            "table: put it (and block tags like {{#each}}) inside a <td>",
            template=key,
        )
    inlined = _INLINER.inline(html)
    before, after = _MUSTACHE.findall(html), _MUSTACHE.findall(inlined)
    if before != after:
        changed = next((b for b, a in zip(before, after, strict=False) if a != b), before[len(after) :][:1])
        raise TemplateError(
            f"HTML parsing changed the Handlebars tag {{{{{changed}}}}}: avoid quotes in attribute expressions",
            template=key,
        )
    return inlined


class _TableText(HTMLParser):
    """Finds text directly inside table structure (table, tbody, tr …), which parsers foster out."""

    TABLE = frozenset({"table", "thead", "tbody", "tfoot", "tr", "colgroup"})
    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.found, self.where = "", ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if data.strip() and not self.found and self.stack and self.stack[-1] in self.TABLE:
            self.found, self.where = data.strip()[:60], self.stack[-1]


def _check_source(source: str, allowed: set[str], where: str) -> None:
    """Only SendGrid's helpers, only declared keys (so the manifest's data contract is complete)."""
    for expression in _MUSTACHE.findall(source):
        if not expression or expression[0] in "!/" or expression == "else":
            continue
        if expression.startswith(">"):
            raise TemplateError(f"unresolved partial {{{{{expression}}}}}", template=where)
        block = expression[0] in "#^"
        words = _WORD.findall(expression.lstrip("#^ "))
        head, args = words[0], words[1:]
        if block or args:
            if head not in BUILTIN_BLOCKS and head not in HELPERS:
                raise TemplateError(
                    f"helper {head!r} is not in the SendGrid subset supported here "
                    f"({sorted(BUILTIN_BLOCKS | set(HELPERS))})",
                    template=where,
                )
            names = [a for a in args if a[0] not in "\"'" and "=" not in a and not a[0].isdigit()]
        else:
            names = [head]
        for name in names:
            root = name.removeprefix("this.").split(".")[0]
            if root in ("this", "") or root.startswith("@"):
                continue
            if root not in allowed:
                raise TemplateError(
                    f"uses {root!r}, which its manifest entry does not declare; add it to 'data' or fix the name",
                    template=where,
                    key=root,
                )


# -- data -----------------------------------------------------------------------------------
# An http(s) URL with a plain host and path and no query, fragment, spaces or controls: urlsplit
# and urlunsplit give it back unchanged, so the tags are simply appended (most links are like this).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")


def with_utm(url: str, sequence: str, step: str) -> str:
    """``url`` with Hearth's UTM tags, replacing any ``utm_*`` already there; the rest stays byte for byte."""
    if _PLAIN_URL.fullmatch(url):
        return f"{url}?{_utm_query(sequence, step)}"
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and not p.split("=", 1)[0].startswith("utm_")]
    return urlunsplit(parts._replace(query="&".join([*kept, _utm_query(sequence, step)])))


@functools.lru_cache(maxsize=256)
def _utm_query(sequence: str, step: str) -> str:
    """The encoded UTM tags of a step: the same for every link of every person, so encoded once."""
    utm = {"utm_source": UTM_SOURCE, "utm_medium": UTM_MEDIUM, "utm_campaign": sequence, "utm_content": step}
    return urlencode(utm)


def dynamic_template_data(
    sequence: str, step: str, data: Mapping[str, Any], *, manifest: Manifest | None = None
) -> dict[str, Any]:
    """A person's ``dynamic_template_data``: checked against the template's contract, links UTM-tagged.

    Keys the template does not declare are dropped; numbers are made JSON- and display-friendly
    (``Decimal`` prices become strings, a whole ``percent`` loses its ``.0``).

    Raises:
        TemplateError: a required key is missing or empty (``error.key`` names it, e.g. ``items[0].price``).
    """
    manifest = manifest or load_manifest()
    template = manifest.get(sequence, step)

    def missing(key: str, what: str = "is missing") -> TemplateError:
        return TemplateError(
            f"dynamic_template_data {what}: {key!r} (required: {', '.join(template.required)})",
            template=template.key,
            key=key,
        )

    for key in template.required:
        value = data.get(key)
        if value is None or (not value and _empty(value)):  # a filled value skips the call (per recipient)
            raise missing(key, "is empty" if key in data else "is missing")
    result: dict[str, Any] = {}
    declared = template.declared
    for key in declared:
        if (value := data.get(key)) is not None:
            result[key] = value if type(value) in _PLAIN else _jsonable(value)
    if "items" in declared:
        # Absent optional items render as an empty list: falsy in {{#if items}}, as in SendGrid.
        items = result.get("items", [])
        if not isinstance(items, list):
            raise missing("items", "is not a list")
        result["items"] = [_item(item, i, sequence, step, manifest, missing) for i, item in enumerate(items)]
    if "discount" in result:
        discount = result["discount"]
        if not isinstance(discount, dict):
            raise missing("discount", "is not a mapping {code, percent}")
        for field in manifest.discount_required:
            if _empty(discount.get(field)):
                raise missing(f"discount.{field}")
        result["discount"] = {k: _whole(v) for k, v in discount.items()}
    for key in LINK_KEYS:
        if isinstance(result.get(key), str):
            result[key] = with_utm(result[key], sequence, step)
    return result


def _item(item: Any, index: int, sequence: str, step: str, manifest: Manifest, missing: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise missing(f"items[{index}]", "is not a mapping")
    for field in manifest.item_required:
        value = item.get(field)
        if value is None or (not value and _empty(value)):  # a filled value skips the call
            raise missing(f"items[{index}].{field}")
    declared = manifest.item_declared
    cleaned = {k: v if type(v) is str else _whole(v) for k, v in item.items() if k in declared and v is not None}
    for key in ITEM_LINK_KEYS:
        if isinstance(cleaned.get(key), str):
            cleaned[key] = with_utm(cleaned[key], sequence, step)
    return cleaned


_PLAIN = frozenset({str, int, float, bool, type(None)})  # what _jsonable returns as it is


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _jsonable(value: Any) -> Any:
    """What SendGrid's JSON can carry: Decimal → string with its digits, dates → ISO, tuples → lists."""
    if value is None or isinstance(value, str | int | float):  # most values: skip the ABC checks below
        return value
    if type(value) is dict:  # the usual mapping (an item): no ABC check, no call per plain value
        return {str(k): v if type(v) in _PLAIN else _jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# -- rendering and push ----------------------------------------------------------------------
_COMPILER = pybars.Compiler()


class _Data(dict[str, Any]):
    """A missing key is None, as in SendGrid: pybars would otherwise fall back to attributes
    (``{{items}}`` on a dict without the key would find ``dict.items``)."""

    def __missing__(self, key: str) -> None:
        return None


def _scoped(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _Data({k: _scoped(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_scoped(v) for v in value]
    return value


@functools.lru_cache(maxsize=128)
def _compiled(source: str) -> Any:
    return _COMPILER.compile(source)


def render(sequence: str, step: str, data: Mapping[str, Any], *, manifest: Manifest | None = None) -> RenderedEmail:
    """Render one person's email locally, as SendGrid renders the pushed template.

    Raises:
        TemplateError: the data misses a required key, or the template does not render.
    """
    manifest = manifest or load_manifest()
    template = manifest.get(sequence, step)
    prepared = _scoped(dynamic_template_data(sequence, step, data, manifest=manifest))
    rendered = []
    for part in ("subject", "html", "text"):
        try:
            rendered.append(str(_compiled(getattr(template, part))(prepared, helpers=HELPERS)))
        except Exception as exc:  # pybars raises bare Exceptions for template errors
            raise TemplateError(f"{part} does not render: {exc}", template=template.key) from exc
    return RenderedEmail(*rendered)


def sendgrid_template_payload(sequence: str, step: str, *, manifest: Manifest | None = None) -> TemplatePayload:
    """(name, subject, html_content, plain_content) of one step, for ``push_templates``."""
    template = (manifest or load_manifest()).get(sequence, step)
    return TemplatePayload(template.name, template.subject, template.html, template.text)


def template_payloads(manifest: Manifest | None = None) -> list[TemplatePayload]:
    """The payload of every template in the manifest, in manifest order."""
    manifest = manifest or load_manifest()
    return [sendgrid_template_payload(t.sequence, t.step, manifest=manifest) for t in manifest.templates.values()]
