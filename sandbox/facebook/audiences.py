"""Custom audiences of the Facebook sandbox: creation, hashed member uploads, replace sessions.

Members are only ever SHA-256 hex digests (64 lowercase hex characters) of normalised
emails. A request with any other entry — a raw email above all — is refused whole
with error code 100 and nothing from it is stored; the error never echoes the entry.

- ``POST /{audience}/users`` adds members, ``DELETE /{audience}/users`` removes them;
  an optional ``session {session_id, batch_seq, last_batch_flag}`` only tracks batches.
- ``POST /{audience}/usersreplace`` (session required) stages batches; when the batch
  with ``last_batch_flag: true`` arrives the staged members replace the audience's.

Approximate counts are exact here: ``approximate_count_lower_bound`` and
``…_upper_bound`` are both the number of members.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.facebook.contract import (
    AUDIENCE_FIELDS,
    AUDIENCE_SUBTYPES,
    CUSTOMER_FILE_SOURCES,
    MAX_USERS_PER_REQUEST,
    invalid_param,
)
from sandbox.facebook.insights import as_map

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
EMAIL_SCHEMAS = ("EMAIL_SHA256", "EMAIL")  # Meta accepts both names for hashed emails
CREATE_PARAMS = frozenset({"name", "subtype", "customer_file_source", "description"})
DEFAULT_FIELDS = ("id",)


@dataclass
class Audience:
    id: str
    account_id: str
    name: str
    description: str
    subtype: str
    customer_file_source: str
    created: int
    updated: int
    members: set[str] = field(default_factory=set)
    staged: dict[int, set[str]] = field(default_factory=dict)  # replace session id → members so far
    received: dict[int, int] = field(default_factory=dict)  # session id → entries received

    def render(self, fields: list[str]) -> dict[str, Any]:
        count = len(self.members)
        values: dict[str, Any] = {
            "id": self.id,
            "account_id": self.account_id,
            "name": self.name,
            "description": self.description,
            "subtype": self.subtype,
            "customer_file_source": self.customer_file_source,
            "approximate_count_lower_bound": count,
            "approximate_count_upper_bound": count,
            "time_created": self.created,
            "time_updated": self.updated,
            "time_content_updated": self.updated,
            "operation_status": {"code": 200, "description": "Normal"},
            "delivery_status": {"code": 200, "description": "This audience is ready for use."},
        }
        for name in fields:
            if name not in AUDIENCE_FIELDS:
                raise invalid_param(f"Tried accessing nonexisting field ({name}) on node type (CustomAudience)")
        return {name: values[name] for name in ("id", *fields) if name in values}


class AudienceStore:
    """Thread-safe in-memory custom audiences of one ad account."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.audiences: dict[str, Audience] = {}
        self._ids = itertools.count(23850000000000001)
        self._sessions = itertools.count(1)
        self._lock = threading.Lock()

    def create(self, params: dict[str, Any]) -> Audience:
        unknown = sorted(set(params) - CREATE_PARAMS)
        if unknown:
            raise invalid_param(
                f"{unknown[0]} is not supported by the Hearth sandbox; it takes {', '.join(sorted(CREATE_PARAMS))}"
            )
        name = str(params.get("name") or "").strip()
        if not name:
            raise invalid_param("The parameter name is required")
        subtype = params.get("subtype", "CUSTOM")
        if subtype not in AUDIENCE_SUBTYPES:
            raise invalid_param(f"subtype must be one of the following values: {', '.join(AUDIENCE_SUBTYPES)}")
        if subtype != "CUSTOM":
            raise invalid_param(f"subtype {subtype} is not supported by the Hearth sandbox: use CUSTOM")
        source = params.get("customer_file_source")
        if source not in CUSTOMER_FILE_SOURCES:
            raise invalid_param(f"customer_file_source is required, one of: {', '.join(CUSTOMER_FILE_SOURCES)}")
        now = int(time.time())
        with self._lock:
            audience = Audience(
                str(next(self._ids)),
                self.account_id,
                name,
                str(params.get("description") or ""),
                subtype,
                source,
                now,
                now,
            )
            self.audiences[audience.id] = audience
        return audience

    def delete(self, audience_id: str) -> None:
        with self._lock:
            del self.audiences[audience_id]

    def upload(self, audience: Audience, params: dict[str, Any], *, mode: str) -> dict[str, Any]:
        """Apply one ``users`` request; ``mode`` is ``add``, ``remove`` or ``replace``."""
        hashes = _hashes(params.get("payload"))
        session = _session(params.get("session"), required=mode == "replace")
        with self._lock:
            session_id = session["session_id"] if session else next(self._sessions)
            received = audience.received.get(session_id, 0) + len(hashes)
            audience.received[session_id] = received
            if mode == "add":
                audience.members |= hashes
            elif mode == "remove":
                audience.members -= hashes
            else:
                if session and session["batch_seq"] == 1:
                    audience.staged[session_id] = set()
                audience.staged.setdefault(session_id, set()).update(hashes)
                if session and session["last_batch_flag"]:
                    audience.members = audience.staged.pop(session_id)
            audience.updated = int(time.time())
        return {
            "audience_id": audience.id,
            "session_id": session_id,
            "num_received": received,
            "num_invalid_entries": 0,
            "invalid_entry_samples": {},
        }


def _hashes(payload: Any) -> set[str]:
    """The member hashes of a ``payload``; any entry that is not a SHA-256 hex digest refuses the request."""
    if payload is None:
        raise invalid_param('payload is required: {"schema":"EMAIL_SHA256","data":["<sha256 hex>", …]}')
    payload = as_map("payload", payload)
    schema = payload.get("schema")
    multi_key = isinstance(schema, list)
    if (schema[0] if multi_key and len(schema) == 1 else schema) not in EMAIL_SCHEMAS:
        raise invalid_param(
            f"payload.schema must be EMAIL_SHA256 (the Hearth sandbox takes hashed emails only), got {schema!r}"
        )
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise invalid_param("payload.data must be a non-empty list of SHA-256 hex digests")
    if len(data) > MAX_USERS_PER_REQUEST:
        raise invalid_param(f"payload.data has {len(data)} entries; send at most {MAX_USERS_PER_REQUEST} per request")
    entries = [row[0] if multi_key and isinstance(row, list) and len(row) == 1 else row for row in data]
    bad = [i for i, entry in enumerate(entries) if not (isinstance(entry, str) and SHA256_HEX.fullmatch(entry))]
    if bad:
        # Never echo the entry: it may be the raw personal data that must not be uploaded.
        raise invalid_param(
            f"{len(bad)} of {len(entries)} payload.data entries (first at index {bad[0]}) are not SHA-256 hex "
            "digests: normalise each email (trim, lower-case), hash it with SHA-256 and send the lowercase hex"
        )
    return set(entries)


def _session(value: Any, *, required: bool) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise invalid_param("session {session_id, batch_seq, last_batch_flag} is required for usersreplace")
        return None
    session = as_map("session", value)
    session_id, batch_seq = session.get("session_id"), session.get("batch_seq")
    if not isinstance(session_id, int) or isinstance(session_id, bool) or session_id <= 0:
        raise invalid_param("session.session_id must be a positive integer")
    if not isinstance(batch_seq, int) or isinstance(batch_seq, bool) or batch_seq <= 0:
        raise invalid_param("session.batch_seq must be a positive integer (1 for the first batch)")
    last = session.get("last_batch_flag", False)
    if not isinstance(last, bool):
        raise invalid_param("session.last_batch_flag must be true or false")
    return {"session_id": session_id, "batch_seq": batch_seq, "last_batch_flag": last}
