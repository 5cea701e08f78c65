"""Mail Send bodies are encoded by the connector (orjson), not by the official client: what arrives is what was sent.

The connector hands python_http_client ready JSON text under ``application/json;
charset=utf-8``. These checks go through the official client to a real sandbox: the
recipient's data comes out of the outbox character for character (accents, emoji,
quotes, a schedule), and the Templates API, which shares the official client's
headers, still gets its dict bodies encoded as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sendgrid import SendGridClient, SendGridSettings
from connectors.sendgrid.client import MAIL_SEND_CONTENT_TYPE, _encode
from sandbox.sendgrid import SendGridSandbox

BODY = {
    "personalizations": [
        {
            "to": [{"email": "zoe@example.com", "name": "Zoë “Z” 🌟"}],
            "custom_args": {"hearth_send_key": "k-é", "quote": 'say "hi"\\now'},
            "dynamic_template_data": {"first_name": "Zoë", "items": [{"title": "Crème brûlée", "quantity": 2}]},
        }
    ],
    "from": {"email": "shop@example.com", "name": "Hearth & Home"},
    "subject": "Ça va? ✓",
    "content": [{"type": "text/plain", "value": "Bonjour — {{first_name}}"}],
}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SendGridSandbox]:
    with SendGridSandbox(tmp_path / "sendgrid") as server:
        yield server


@pytest.fixture
def client(sandbox: SendGridSandbox) -> SendGridClient:
    return SendGridClient(SendGridSettings.from_env({**sandbox.env(), "SENDGRID_FROM_EMAIL": "shop@example.com"}))


def test_a_body_arrives_exactly_as_built(sandbox: SendGridSandbox, client: SendGridClient) -> None:
    result = client.send(BODY)

    assert result.status == "accepted" and result.message_id
    (record,) = sandbox.outbox()
    personalization = BODY["personalizations"][0]  # type: ignore[index]
    assert record["to"] == {"email": "zoe@example.com", "name": "Zoë “Z” 🌟"}
    assert record["subject"] == "Ça va? ✓"
    assert record["custom_args"] == personalization["custom_args"]
    assert record["dynamic_template_data"] == personalization["dynamic_template_data"]


def test_the_templates_api_still_sends_json_after_a_mail_send(client: SendGridClient) -> None:
    assert client.send(BODY).status == "accepted"
    created = client.request("POST", "templates", body={"name": "après", "generation": "dynamic"})
    assert created["name"] == "après" and created["generation"] == "dynamic"
    assert client.api.client.request_headers.get("Content-Type") != MAIL_SEND_CONTENT_TYPE


def test_encoding_is_compact_utf8_and_falls_back_to_json_for_huge_integers() -> None:
    assert _encode({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'
    assert _encode({"n": 2**70}) == '{"n":1180591620717411303424}'
