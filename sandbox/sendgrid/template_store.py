"""Transactional templates of the SendGrid sandbox, persisted in ``templates.json``.

Mirrors the shapes of SendGrid's Templates API (``/v3/templates`` and its
``versions``): dynamic templates get ids ``d-<32 hex>``, legacy ones a UUID;
versions carry ``active`` as 0/1 and at most one version of a template is active.
The whole store is rewritten atomically (temp file + rename) on every change, so
templates survive restarts and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENERATIONS = ("legacy", "dynamic")
EDITORS = ("code", "design")
MAX_NAME = 100
MAX_SUBJECT = 255
MAX_CONTENT_BYTES = 1_048_576
VERSION_FIELDS = (
    "name",
    "subject",
    "html_content",
    "plain_content",
    "active",
    "editor",
    "test_data",
    "generate_plain_content",
)


class TemplateError(ValueError):
    """A request the Templates API would refuse; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def _now() -> str:
    # SendGrid's Templates API formats timestamps like this, without a zone.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class TemplateStore:
    """Templates and their versions, in memory and in ``path`` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._templates: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._templates = json.loads(path.read_text(encoding="utf-8")).get("templates", {})

    # -- reading -------------------------------------------------------------------
    def get(self, template_id: str) -> dict[str, Any]:
        """The template with every version (as ``GET /v3/templates/{id}`` returns it)."""
        with self._lock:
            template = self._templates.get(template_id)
            if template is None:
                raise TemplateError(f"Template {template_id!r} not found.", "template_id", 404)
            return json.loads(json.dumps(template))

    def list_templates(self, generations: tuple[str, ...]) -> list[dict[str, Any]]:
        """Templates of the given generations, oldest first, versions without their content."""
        with self._lock:
            chosen = [t for t in self._templates.values() if t["generation"] in generations]
            return [
                {**t, "versions": [{k: v for k, v in ver.items() if k not in _HEAVY} for ver in t["versions"]]}
                for t in json.loads(json.dumps(chosen))
            ]

    def active_version(self, template_id: str) -> dict[str, Any] | None:
        with self._lock:
            template = self._templates.get(template_id)
            if template is None:
                return None
            return next((dict(v) for v in template["versions"] if v["active"] == 1), None)

    def version(self, template_id: str, version_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._find_version(template_id, version_id))

    def send_problem(self, template_id: str) -> str | None:
        """Why a mail send with ``template_id`` would be refused, or None when it can be sent."""
        with self._lock:
            template = self._templates.get(template_id)
            if template is None:
                return "The template_id is not a valid template ID."
            if not any(v["active"] == 1 for v in template["versions"]):
                return f"The template {template_id} does not have an active version; activate one first."
            return None

    # -- writing -------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise TemplateError(f"name is required and must be 1–{MAX_NAME} characters.", "name")
        generation = body.get("generation", "legacy")
        if generation not in GENERATIONS:
            raise TemplateError("generation must be one of legacy, dynamic.", "generation")
        template_id = f"d-{uuid.uuid4().hex}" if generation == "dynamic" else str(uuid.uuid4())
        template = {"id": template_id, "name": name, "generation": generation, "updated_at": _now(), "versions": []}
        with self._lock:
            self._templates[template_id] = template
            self._save()
            return json.loads(json.dumps(template))

    def add_version(self, template_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = _version_fields(body, creating=True)
        with self._lock:
            template = self._templates.get(template_id)
            if template is None:
                raise TemplateError(f"Template {template_id!r} not found.", "template_id", 404)
            version = {
                "id": str(uuid.uuid4()),
                "user_id": 1,
                "template_id": template_id,
                "active": 0,
                "name": "",
                "subject": "",
                "html_content": "",
                "plain_content": "",
                "generate_plain_content": True,
                "editor": "code",
                "test_data": None,
                "thumbnail_url": "",
                "updated_at": _now(),
                **fields,
            }
            template["versions"].append(version)
            self._settle(template, version)
            return dict(version)

    def update_version(self, template_id: str, version_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = _version_fields(body, creating=False)
        with self._lock:
            version = self._find_version(template_id, version_id)
            version.update(fields, updated_at=_now())
            self._settle(self._templates[template_id], version)
            return dict(version)

    def activate(self, template_id: str, version_id: str) -> dict[str, Any]:
        return self.update_version(template_id, version_id, {"active": 1})

    def delete(self, template_id: str) -> None:
        with self._lock:
            if self._templates.pop(template_id, None) is None:
                raise TemplateError(f"Template {template_id!r} not found.", "template_id", 404)
            self._save()

    # -- internals (callers hold the lock) -------------------------------------------
    def _find_version(self, template_id: str, version_id: str) -> dict[str, Any]:
        template = self._templates.get(template_id)
        version = next((v for v in (template or {}).get("versions", []) if v["id"] == version_id), None)
        if version is None:
            raise TemplateError(f"Version {version_id!r} of template {template_id!r} not found.", "version_id", 404)
        return version

    def _settle(self, template: dict[str, Any], changed: dict[str, Any]) -> None:
        """Keep a single active version, stamp the template, persist."""
        if changed["active"] == 1:
            for other in template["versions"]:
                if other is not changed:
                    other["active"] = 0
        template["updated_at"] = changed["updated_at"]
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with temp.open("w", encoding="utf-8") as fh:
            json.dump({"templates": self._templates}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, self.path)


_HEAVY = ("html_content", "plain_content", "test_data")


def _version_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Checked version fields of a create or update body (unknown keys are ignored, as SendGrid does)."""
    fields = {k: body[k] for k in VERSION_FIELDS if k in body}
    if creating:
        for required in ("name", "subject"):
            if not fields.get(required):
                raise TemplateError(f"{required} is required.", required)
    if "name" in fields and (not isinstance(fields["name"], str) or len(fields["name"]) > MAX_NAME):
        raise TemplateError(f"name must be a string of at most {MAX_NAME} characters.", "name")
    if "subject" in fields and (not isinstance(fields["subject"], str) or len(fields["subject"]) > MAX_SUBJECT):
        raise TemplateError(f"subject must be a string of at most {MAX_SUBJECT} characters.", "subject")
    for key in ("html_content", "plain_content"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or len(value.encode()) > MAX_CONTENT_BYTES):
            raise TemplateError(f"{key} must be a string of at most {MAX_CONTENT_BYTES} bytes.", key)
    if "active" in fields:
        if fields["active"] not in (0, 1) or isinstance(fields["active"], float):
            raise TemplateError("active must be 0 or 1.", "active")
        fields["active"] = int(fields["active"])  # JSON true/false arrive as bool
    if "editor" in fields and fields["editor"] not in EDITORS:
        raise TemplateError("editor must be one of code, design.", "editor")
    if isinstance(fields.get("test_data"), dict | list):
        # The API stores test_data as a JSON string; accept the object for convenience.
        fields["test_data"] = json.dumps(fields["test_data"])
    return fields
