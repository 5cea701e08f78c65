"""Settings of the SendGrid connector (v3 Mail Send and dynamic templates)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ENV_NAMES = {
    "api_host": "SENDGRID_API_HOST",
    "api_key": "SENDGRID_API_KEY",
    "from_email": "SENDGRID_FROM_EMAIL",
    "from_name": "SENDGRID_FROM_NAME",
    "sandbox_mode": "SENDGRID_SANDBOX_MODE",
    "unsubscribe_groups": "SENDGRID_UNSUBSCRIBE_GROUPS",
    "unsubscribe_mailto": "SENDGRID_UNSUBSCRIBE_MAILTO",
    "timeout": "SENDGRID_TIMEOUT",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class SendGridSettings:
    """Everything the SendGrid connector needs.

    Attributes:
        api_host: ``https://api.sendgrid.com`` for the live API, or a sandbox's URL (no ``/v3``:
            the official client adds it).
        api_key: an API key with Mail Send and Template Engine access.
        from_email, from_name: the sender of every email (a verified sender or authenticated domain).
        sandbox_mode: set ``mail_settings.sandbox_mode``: SendGrid validates and answers 200, sends nothing.
        unsubscribe_groups: sequence name → unsubscribe (ASM) group id; a sequence's emails carry its group.
        timeout: seconds a Mail Send call may take before its outcome is treated as unknown.
        unsubscribe_mailto: address of the ``mailto:`` half of ``List-Unsubscribe`` (empty: https only).
    """

    api_host: str
    api_key: str = field(repr=False)
    from_email: str
    from_name: str = ""
    sandbox_mode: bool = False
    unsubscribe_groups: Mapping[str, int] = field(default_factory=dict)
    timeout: float = 30.0
    unsubscribe_mailto: str = ""

    def __post_init__(self) -> None:
        for name in ("api_host", "api_key", "from_email"):
            if not getattr(self, name):
                raise ValueError(f"{ENV_NAMES[name]} is not set: the SendGrid connector needs it.")
        host = self.api_host.rstrip("/")
        if host.endswith("/v3"):
            raise ValueError(f"SENDGRID_API_HOST must not end in /v3 (the client adds it), got {self.api_host!r}")
        object.__setattr__(self, "api_host", host)
        if "@" not in self.from_email:
            raise ValueError(f"SENDGRID_FROM_EMAIL must be an email address, got {self.from_email!r}")
        for sequence, group in self.unsubscribe_groups.items():
            if isinstance(group, bool) or not isinstance(group, int) or group <= 0:
                raise ValueError(f"unsubscribe group of {sequence!r} must be a positive integer id, got {group!r}")
        object.__setattr__(self, "unsubscribe_groups", dict(self.unsubscribe_groups))
        if self.timeout <= 0:
            raise ValueError(f"SENDGRID_TIMEOUT must be positive seconds, got {self.timeout}")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> SendGridSettings:
        """Settings from ``SENDGRID_*`` variables (e.g. a sandbox's ``env()``), plus keyword overrides.

        ``SENDGRID_UNSUBSCRIBE_GROUPS`` reads ``abandoned_cart=101,winback=103``.
        """

        def get(key: str) -> str:
            return (env.get(ENV_NAMES[key]) or "").strip()

        values: dict[str, Any] = {k: get(k) for k in ("api_host", "api_key", "from_email", "from_name")}
        values["unsubscribe_mailto"] = get("unsubscribe_mailto")
        mode = get("sandbox_mode").lower()
        if mode not in _TRUE | _FALSE:
            raise ValueError(f"SENDGRID_SANDBOX_MODE must be true or false, got {mode!r}")
        values["sandbox_mode"] = mode in _TRUE
        values["unsubscribe_groups"] = parse_groups(get("unsubscribe_groups"))
        if timeout := get("timeout"):
            try:
                values["timeout"] = float(timeout)
            except ValueError:
                raise ValueError(f"SENDGRID_TIMEOUT must be a number of seconds, got {timeout!r}") from None
        return cls(**{**values, **overrides})

    def with_(self, **changes: Any) -> SendGridSettings:
        """A copy with some values changed."""
        return replace(self, **changes)


def parse_groups(spec: str) -> dict[str, int]:
    """``"abandoned_cart=101, winback=103"`` → ``{"abandoned_cart": 101, "winback": 103}``."""
    groups: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        sequence, _, group = part.partition("=")
        if not sequence.strip() or not group.strip().isdigit():
            raise ValueError(f"SENDGRID_UNSUBSCRIBE_GROUPS: {part!r} is not sequence=group_id (e.g. winback=103)")
        groups[sequence.strip()] = int(group)
    return groups
