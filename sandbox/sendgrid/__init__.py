"""Offline stand-in of SendGrid's v3 API (Mail Send, dynamic templates, Event Webhook).

``SendGridSandbox(outbox_dir).start()`` serves it on loopback; ``.env()`` gives the
settings that point Hearth at it. See ``server.py``.
"""

from sandbox.sendgrid.server import SANDBOX_API_KEY, SendGridSandbox

__all__ = ["SANDBOX_API_KEY", "SendGridSandbox"]
