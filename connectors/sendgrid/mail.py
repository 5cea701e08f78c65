"""Building ``POST /v3/mail/send`` bodies: one dynamic template, ≤ 1000 personalizations each.

Every recipient is one personalization with its own ``dynamic_template_data``,
``custom_args`` (the caller's send id travels there and comes back on every
webhook event) and ``List-Unsubscribe`` header naming that recipient's one-click
unsubscribe URL. What is common to a batch — sender, template, categories, the
unsubscribe (ASM) group, ``List-Unsubscribe-Post``, sandbox mode — sits once at
the message level. Bodies follow SendGrid's own contract (``tsg_mail_v3.json``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_CUSTOM_ARGS_BYTES = 10_000  # message-level and personalization custom_args together
MAX_GROUPS_TO_DISPLAY = 25
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058: the POST body a mailbox provider sends
# SendGrid refuses to let a request set these (see the spec's description of ``headers``).
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)


@dataclass(frozen=True)
class OutgoingMessage:
    """One recipient of a sequence step.

    Attributes:
        to_email, to_name: the recipient (``to_name`` may be None).
        dynamic_template_data: what the template renders (see ``templates/email/manifest.yml``).
        custom_args: string values carried to SendGrid and back on events, including the send id.
        send_at: schedule (aware datetime or epoch seconds, ≤ 72 h ahead), None to send now.
        unsubscribe_url: the recipient's one-click unsubscribe URL; defaults to
            ``dynamic_template_data["unsubscribe_url"]``.
    """

    to_email: str
    to_name: str | None
    dynamic_template_data: Mapping[str, Any]
    custom_args: Mapping[str, Any] = field(default_factory=dict)
    send_at: datetime | int | None = None
    unsubscribe_url: str | None = None

    @property
    def unsubscribe(self) -> str:
        url = self.unsubscribe_url or self.dynamic_template_data.get("unsubscribe_url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):  # urlsplit's verdict, without it
            return url
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            raise ValueError(
                f"message to {self.to_email} has no http(s) unsubscribe_url ({url!r}): bulk mail must carry "
                "List-Unsubscribe with a one-click URL; pass unsubscribe_url or "
                "dynamic_template_data['unsubscribe_url']"
            )
        return url


def list_unsubscribe(url: str, mailto: str = "") -> str:
    """The ``List-Unsubscribe`` value: the one-click URL, then a ``mailto:`` when an address is given."""
    parts = [f"<{url}>"]
    if mailto:
        parts.append(f"<mailto:{mailto.removeprefix('mailto:')}?subject=unsubscribe>")
    return ", ".join(parts)


def build_mail_bodies(
    messages: Sequence[OutgoingMessage],
    *,
    from_email: str,
    from_name: str = "",
    template_id: str,
    categories: Iterable[str] = (),
    asm_group_id: int | None = None,
    groups_to_display: Iterable[int] = (),
    custom_args_common: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    unsubscribe_mailto: str = "",
    sandbox_mode: bool = False,
    batch_size: int = MAX_PERSONALIZATIONS,
) -> list[dict[str, Any]]:
    """Mail-send bodies for ``messages``, in order, at most ``batch_size`` personalizations each.

    Args:
        messages: the recipients; each becomes one personalization.
        from_email, from_name: the sender.
        template_id: a dynamic template id (``d-…``).
        categories: up to 10 unique names (e.g. the sequence and the step); duplicates are dropped.
        asm_group_id: the unsubscribe group of the sequence (None: no group, e.g. transactional tests).
        groups_to_display: groups offered on SendGrid's preference page (≤ 25).
        custom_args_common: custom args of every recipient (a personalization's own win on a clash).
        headers: extra message-level headers (not SendGrid's reserved ones).
        unsubscribe_mailto: address for the ``mailto:`` half of ``List-Unsubscribe``.
        sandbox_mode: set ``mail_settings.sandbox_mode`` (validated by SendGrid, never delivered).
        batch_size: personalizations per body, 1–1000.

    Raises:
        ValueError: a message or argument SendGrid would refuse; the message names it.
    """
    if not 1 <= batch_size <= MAX_PERSONALIZATIONS:
        raise ValueError(f"batch_size must be within 1–{MAX_PERSONALIZATIONS}, got {batch_size}")
    if not template_id.startswith("d-"):
        raise ValueError(f"template_id must be a dynamic template id (d-…), got {template_id!r}")
    common_args = _string_map(custom_args_common or {}, "custom_args_common")
    extra_headers = dict(headers or {})
    if reserved := sorted(h for h in extra_headers if h.lower() in RESERVED_HEADERS):
        raise ValueError(f"headers {reserved} are reserved by SendGrid and cannot be set")
    envelope: dict[str, Any] = {
        "from": {"email": from_email, **({"name": from_name} if from_name else {})},
        "template_id": template_id,
        # Every body carries one-click unsubscribe; the URL itself is per recipient.
        "headers": {**extra_headers, "List-Unsubscribe-Post": ONE_CLICK},
    }
    if names := _categories(categories):
        envelope["categories"] = names
    if common_args:
        envelope["custom_args"] = common_args
    if asm_group_id is not None:
        envelope["asm"] = _asm(asm_group_id, groups_to_display)
    if sandbox_mode:
        envelope["mail_settings"] = {"sandbox_mode": {"enable": True}}

    personalizations = [_personalization(m, common_args, unsubscribe_mailto) for m in messages]
    return [
        {"personalizations": personalizations[start : start + batch_size], **envelope}
        for start in range(0, len(personalizations), batch_size)
    ]


def _personalization(message: OutgoingMessage, common_args: dict[str, str], mailto: str) -> dict[str, Any]:
    to: dict[str, str] = {"email": message.to_email}
    if message.to_name:
        to["name"] = message.to_name
    own_args = _string_map(message.custom_args, "custom_args of", message.to_email)
    merged = {**common_args, **own_args}
    # A character encodes to at most 12 bytes (an escaped surrogate pair) and an entry adds 6 (quotes,
    # colon, comma): below that bound the exact size need not be computed (it is, once per recipient).
    if 2 + sum(12 * (len(k) + len(v)) + 6 for k, v in merged.items()) > MAX_CUSTOM_ARGS_BYTES:
        size = len(json.dumps(merged, separators=(",", ":")).encode())
        if size > MAX_CUSTOM_ARGS_BYTES:
            raise ValueError(
                f"custom_args of {message.to_email} take {size} bytes; SendGrid allows {MAX_CUSTOM_ARGS_BYTES}"
            )
    personalization: dict[str, Any] = {
        "to": [to],
        "dynamic_template_data": dict(message.dynamic_template_data),
        "headers": {"List-Unsubscribe": list_unsubscribe(message.unsubscribe, mailto)},
    }
    if own_args:
        personalization["custom_args"] = own_args
    if message.send_at is not None:
        personalization["send_at"] = _epoch(message.send_at, message.to_email)
    return personalization


def _string_map(values: Mapping[str, Any], what: str, whom: str = "") -> dict[str, str]:
    """SendGrid wants string keys and values; numbers are turned into strings, None is refused.

    ``what`` and ``whom`` name the map in errors (apart, so that no message is formatted per recipient).
    """
    result: dict[str, str] = {}
    for key, value in values.items():
        if type(value) is str and type(key) is str:  # the usual case: nothing to convert or refuse
            result[key] = value
            continue
        if value is None or isinstance(value, Mapping | list | tuple | set):
            raise ValueError(f"{what}{' ' + whom if whom else ''}: {key!r} must be a string or number, got {value!r}")
        result[str(key)] = str(value)
    return result


def _categories(categories: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(c for c in categories if c))  # unique, in order
    if len(names) > MAX_CATEGORIES:
        raise ValueError(f"SendGrid allows {MAX_CATEGORIES} categories per request, got {len(names)}: {names}")
    if long := [c for c in names if len(c) > MAX_CATEGORY_CHARS]:
        raise ValueError(f"categories longer than {MAX_CATEGORY_CHARS} characters: {long}")
    return names


def _asm(group_id: int, groups_to_display: Iterable[int]) -> dict[str, Any]:
    if isinstance(group_id, bool) or not isinstance(group_id, int) or group_id <= 0:
        raise ValueError(f"asm_group_id must be a positive integer, got {group_id!r}")
    asm: dict[str, Any] = {"group_id": group_id}
    display = list(dict.fromkeys(groups_to_display))
    if display:
        if group_id not in display:
            display.insert(0, group_id)
        if len(display) > MAX_GROUPS_TO_DISPLAY:
            raise ValueError(f"groups_to_display takes at most {MAX_GROUPS_TO_DISPLAY} groups, got {len(display)}")
        asm["groups_to_display"] = display
    return asm


def _epoch(send_at: datetime | int, who: str) -> int:
    if isinstance(send_at, datetime):
        if send_at.tzinfo is None:
            raise ValueError(f"send_at of {who} must be timezone-aware, got {send_at.isoformat()}")
        return int(send_at.timestamp())
    if isinstance(send_at, bool) or not isinstance(send_at, int):
        raise ValueError(f"send_at of {who} must be a datetime or epoch seconds, got {send_at!r}")
    return send_at
