"""Pushing Hearth's email templates to SendGrid as dynamic templates, idempotently by name.

``push_templates(client, payloads)`` makes SendGrid hold exactly the given
templates: a name SendGrid does not know is created (``POST /v3/templates``,
``generation=dynamic``) with an active version; a known name whose active version
differs gets a new active version (older ones stay as history); an identical one
is left alone. Pushing twice therefore changes nothing the second time. The
returned ``{name: template_id}`` is what mail sends need, and can be persisted as
JSON for the sequence flow (:func:`load_template_ids`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from connectors._http import install_redaction
from connectors.sendgrid.client import SendGridClient

log = logging.getLogger(__name__)
install_redaction(log)

PAGE_SIZE = 200  # the largest page the Templates API serves
MAX_NAME = 100


class TemplatePayload(NamedTuple):
    """One template as SendGrid stores it (``hearth.templates.sendgrid_template_payload`` returns these)."""

    name: str
    subject: str
    html_content: str
    plain_content: str


def list_dynamic_templates(client: SendGridClient) -> list[dict[str, Any]]:
    """Every dynamic template of the account, oldest first, following ``_metadata.next``."""
    templates: list[dict[str, Any]] = []
    query: dict[str, Any] = {"generations": "dynamic", "page_size": PAGE_SIZE}
    while True:
        page = client.request("GET", "templates", query=query) or {}
        templates.extend(page.get("result") or [])
        next_url = (page.get("_metadata") or {}).get("next")
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(next_url).query).get("page_token") if next_url else None
        if not token:
            return templates
        query = {**query, "page_token": token[0]}


def push_templates(
    client: SendGridClient,
    manifest: Iterable[Sequence[str]],
    ids_path: Path | None = None,
) -> dict[str, str]:
    """Create or update one dynamic template per payload; returns ``{template name: template id}``.

    Args:
        client: a SendGrid client (its key needs Template Engine access).
        manifest: ``(name, subject, html_content, plain_content)`` per template, e.g. :class:`TemplatePayload`.
        ids_path: when given, the mapping is merged into this JSON file (written atomically).

    Raises:
        ValueError: two payloads share a name, or a name is empty or over 100 characters.
        connectors._http.HttpError: SendGrid refused a call (AuthError names ``SENDGRID_API_KEY``).
    """
    payloads = [TemplatePayload(*item) for item in manifest]
    names = [p.name for p in payloads]
    if len(set(names)) != len(names):
        raise ValueError(f"template names must be unique, got {sorted(n for n in names if names.count(n) > 1)}")
    if bad := [n for n in names if not n or len(n) > MAX_NAME]:
        raise ValueError(f"template names must be 1–{MAX_NAME} characters: {bad}")

    existing: dict[str, str] = {}
    for template in list_dynamic_templates(client):
        name = template["name"]
        if name in existing:
            log.warning("several SendGrid templates are named %r; using the oldest, %s", name, existing[name])
            continue
        existing[name] = template["id"]

    ids: dict[str, str] = {}
    for payload in payloads:
        template_id = existing.get(payload.name)
        if template_id is None:
            created = client.request("POST", "templates", body={"name": payload.name, "generation": "dynamic"})
            template_id = str(created["id"])
            _add_version(client, template_id, payload)
            log.info("created SendGrid template %s (%s)", payload.name, template_id)
        elif _active_matches(client, template_id, payload):
            log.info("SendGrid template %s (%s) is up to date", payload.name, template_id)
        else:
            _add_version(client, template_id, payload)
            log.info("updated SendGrid template %s (%s) with a new active version", payload.name, template_id)
        ids[payload.name] = template_id
    if ids_path is not None:
        _write_ids(Path(ids_path), {**load_template_ids(Path(ids_path)), **ids})
    return ids


def load_template_ids(path: Path) -> dict[str, str]:
    """The ``{name: template id}`` a push persisted, or ``{}`` when the file does not exist."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path} is not a JSON object of template name → id; delete it and push again")
    return data


def content_digest(payload: TemplatePayload) -> str:
    """A short hash of what a version holds (names versions so people can tell them apart)."""
    joined = "\x1f".join((payload.subject, payload.html_content, payload.plain_content))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def _add_version(client: SendGridClient, template_id: str, payload: TemplatePayload) -> None:
    version = {
        "name": f"hearth {content_digest(payload)}",
        "subject": payload.subject,
        "html_content": payload.html_content,
        "plain_content": payload.plain_content,
        "generate_plain_content": False,  # ours is written by hand
        "editor": "code",
        "active": 1,
    }
    client.request("POST", f"templates/{template_id}/versions", body=version)


def _active_matches(client: SendGridClient, template_id: str, payload: TemplatePayload) -> bool:
    """Whether the template's active version already holds exactly this payload.

    Compares the content itself rather than a digest in the version name, so an edit
    made in SendGrid's UI is noticed and overwritten by the repository's version.
    """
    template = client.request("GET", f"templates/{template_id}") or {}
    active = next((v for v in template.get("versions") or [] if v.get("active") == 1), None)
    if active is None:
        return False
    return (active.get("subject"), active.get("html_content"), active.get("plain_content") or "") == (
        payload.subject,
        payload.html_content,
        payload.plain_content,
    )


def _write_ids(path: Path, ids: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temp, path)
