"""SendGrid v3 connector: mail-send bodies, one-attempt sends, dynamic templates push.

Usage::

    client = SendGridClient(SendGridSettings.from_env(os.environ))
    ids = push_templates(client, payloads, ids_path=Path("data/sendgrid_templates.json"))
    for body in client.mail_bodies(messages, sequence="abandoned_cart", template_id=ids[name],
                                   categories=["abandoned_cart", "abandoned_cart/reminder"]):
        result = client.send(body)   # accepted | failed | unknown: the ledger decides what next
"""

from connectors.sendgrid.client import KEY_SETTING, SendGridClient, SendResult, SendStatus
from connectors.sendgrid.mail import (
    MAX_PERSONALIZATIONS,
    ONE_CLICK,
    OutgoingMessage,
    build_mail_bodies,
    list_unsubscribe,
)
from connectors.sendgrid.settings import SendGridSettings
from connectors.sendgrid.templates import (
    TemplatePayload,
    list_dynamic_templates,
    load_template_ids,
    push_templates,
)

__all__ = [
    "KEY_SETTING",
    "MAX_PERSONALIZATIONS",
    "ONE_CLICK",
    "OutgoingMessage",
    "SendGridClient",
    "SendGridSettings",
    "SendResult",
    "SendStatus",
    "TemplatePayload",
    "build_mail_bodies",
    "list_dynamic_templates",
    "list_unsubscribe",
    "load_template_ids",
    "push_templates",
]
