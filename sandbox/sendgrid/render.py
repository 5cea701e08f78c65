"""Rendering emails as the recipient would see them, and the sandbox's outbox pages.

Dynamic templates are Handlebars (pybars3) rendered with the recipient's
``dynamic_template_data``, plus the helpers SendGrid adds to Handlebars
(``equals``, ``notEquals``, ``greaterThan``, ``lessThan``, ``and``, ``or``,
``length``, ``insert``, ``formatDate``). Content-based mails show their content
with legacy ``substitutions`` applied.
"""

from __future__ import annotations

import functools
import html
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pybars

Record = dict[str, Any]


# -- SendGrid's Handlebars helpers ---------------------------------------------------
def _same(left: Any, right: Any) -> bool:
    return left == right or str(left) == str(right)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _block(condition: bool, this: Any, options: dict[str, Any]) -> Any:
    return options["fn"](this) if condition else options["inverse"](this)


def _greater(this: Any, options: dict[str, Any], left: Any, right: Any) -> Any:
    a, b = _number(left), _number(right)
    return _block(a is not None and b is not None and a > b, this, options)


def _less(this: Any, options: dict[str, Any], left: Any, right: Any) -> Any:
    a, b = _number(left), _number(right)
    return _block(a is not None and b is not None and a < b, this, options)


def _insert(this: Any, value: Any, default: str = "") -> str:
    fallback = default.removeprefix("default=") if isinstance(default, str) else ""
    return fallback if value in (None, "") else str(value)


_DATE_TOKENS = (
    ("YYYY", "%Y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("DD", "%d"),
    ("YY", "%y"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
)


def _format_date(this: Any, value: Any, pattern: str = "YYYY-MM-DD", *_: Any) -> str:
    """SendGrid's formatDate over ISO strings or epoch seconds, for the common tokens."""
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        return "" if value is None else str(value)
    for token, directive in _DATE_TOKENS:
        pattern = pattern.replace(token, directive)
    return moment.strftime(pattern)


HELPERS: dict[str, Any] = {
    "equals": lambda this, options, a, b: _block(_same(a, b), this, options),
    "notEquals": lambda this, options, a, b: _block(not _same(a, b), this, options),
    "greaterThan": _greater,
    "lessThan": _less,
    "and": lambda this, options, *values: _block(all(values), this, options),
    "or": lambda this, options, *values: _block(any(values), this, options),
    "length": lambda this, value: len(value) if hasattr(value, "__len__") else 0,
    "insert": _insert,
    "formatDate": _format_date,
}

_COMPILER = pybars.Compiler()


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    return _COMPILER.compile(source)


def handlebars(source: str, data: dict[str, Any]) -> str:
    """Render a Handlebars template; a template that does not compile renders as its error."""
    try:
        return str(_compiled(source)(data, helpers=HELPERS))
    except Exception as exc:  # pybars raises bare Exceptions on parse errors
        return f"[template error: {exc}]"


# -- rendering one recipient's email -------------------------------------------------
@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str | None
    text: str | None


def substitute(text: str, substitutions: dict[str, str] | None) -> str:
    for tag, value in (substitutions or {}).items():
        text = text.replace(tag, str(value))
    return text


def render_email(record: Record, version: dict[str, Any] | None) -> RenderedEmail:
    """The email of one outbox record, using the template version it was sent with (if any)."""
    if version is not None:
        data = record.get("dynamic_template_data") or {}
        plain = version.get("plain_content") or ""
        return RenderedEmail(
            subject=handlebars(version.get("subject") or "", data),
            html=handlebars(version.get("html_content") or "", data) or None,
            text=handlebars(plain, data) if plain else None,
        )
    subs = record.get("substitutions")
    blocks = {block["type"]: block["value"] for block in record.get("content") or []}
    html_body = blocks.get("text/html")
    text_body = blocks.get("text/plain")
    return RenderedEmail(
        subject=substitute(record.get("subject") or "", subs),
        html=substitute(html_body, subs) if html_body is not None else None,
        text=substitute(text_body, subs) if text_body is not None else None,
    )


# -- the sandbox pages -----------------------------------------------------------------
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f4f4f4; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
iframe { width: 100%; height: 70vh; border: 1px solid #ccc; }
pre { background: #f8f8f8; padding: 1rem; white-space: pre-wrap; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _address(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    name = value.get("name")
    return f"{name} <{value['email']}>" if name else value["email"]


def message_link(record: Record) -> str:
    return "/_sandbox/outbox/" + urllib.parse.quote(record["message_id"], safe="")


def index_page(rows: list[tuple[Record, str]], total_hint: str = "") -> str:
    """The outbox index. ``rows`` are (record, rendered subject), newest first."""
    cells = []
    for record, subject in rows:
        cells.append(
            "<tr>"
            f"<td class=mono>{html.escape(record.get('received_at', ''))}</td>"
            f"<td>{html.escape(_address(record.get('to')))}</td>"
            f'<td><a href="{message_link(record)}">{html.escape(subject) or "(no subject)"}</a></td>'
            f"<td class=mono>{html.escape(record.get('template_id') or 'content')}</td>"
            f"<td>{html.escape(', '.join(record.get('categories') or []))}</td>"
            "</tr>"
        )
    table = (
        "<table><tr><th>received</th><th>to</th><th>subject</th><th>template</th><th>categories</th></tr>"
        + "".join(cells)
        + "</table>"
    )
    empty = "<p>No messages yet. Send one to <code>POST /v3/mail/send</code>.</p>"
    return _page(
        "SendGrid sandbox outbox", f"<h1>Outbox</h1><p>{html.escape(total_hint)}</p>{table if rows else empty}"
    )


def message_page(record: Record, email: RenderedEmail) -> str:
    """One recipient's email: the envelope, the HTML part in a frame, the text part."""
    meta = [
        ("From", _address(record.get("from"))),
        ("To", _address(record.get("to"))),
        ("Subject", email.subject),
        ("Template", record.get("template_id") or "(content)"),
        ("Categories", ", ".join(record.get("categories") or [])),
        ("Custom args", ", ".join(f"{k}={v}" for k, v in (record.get("custom_args") or {}).items())),
        ("Message id", record["message_id"]),
        ("Received", record.get("received_at", "")),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta)
    parts = [
        f'<p><a href="/_sandbox/outbox">&larr; outbox</a></p><h1>{html.escape(email.subject)}</h1>',
        f"<table>{rows}</table>",
    ]
    if email.html is not None:
        # The frame isolates the email's own styles from this page's.
        parts.append(f'<h2>HTML</h2><iframe src="{message_link(record)}/html" title="email"></iframe>')
    if email.text is not None:
        parts.append(f"<h2>Text</h2><pre>{html.escape(email.text)}</pre>")
    return _page(email.subject or record["message_id"], "".join(parts))
