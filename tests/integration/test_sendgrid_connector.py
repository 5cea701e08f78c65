"""The SendGrid connector against the sandbox, through the official client (urllib: no HTTP mocking).

Covers batching (≤ 1000 personalizations per request, one send id per recipient),
the bodies' conformance to SendGrid's own OpenAPI file, the mapping of every
failure onto accepted / failed / unknown, and the idempotent template push whose
result the sandbox renders exactly like the local preview.
"""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from connectors._http import AuthError
from connectors.sendgrid import (
    ONE_CLICK,
    OutgoingMessage,
    SendGridClient,
    SendGridSettings,
    TemplatePayload,
    build_mail_bodies,
    load_template_ids,
    push_templates,
)
from connectors.sendgrid import templates as sg_templates
from hearth.ledger import SEND_ID_ARG
from hearth.templates import dynamic_template_data, load_manifest, render, template_payloads
from sandbox._server import Faults
from sandbox.sendgrid import SendGridSandbox

SPEC = Path(__file__).resolve().parents[2] / "sandbox" / "sendgrid" / "spec" / "tsg_mail_v3.json"
SPEC_URI = "https://raw.githubusercontent.com/twilio/sendgrid-oai/main/spec/json/tsg_mail_v3.json"
BODY = "#/components/requestBodies/PostMailSend/content/application~1json/schema"
STEP = ("abandoned_cart", "reminder")
TEMPLATE = "hearth:abandoned_cart/reminder"
GROUPS = {"abandoned_cart": 101, "replenishment": 102, "winback": 103}
Pushed = tuple[SendGridSandbox, SendGridClient, dict[str, str]]


@functools.cache
def spec_validator() -> Draft202012Validator:
    """SendGrid's whole OpenAPI document registered, Draft 2020-12, validating the mail-send body.

    The file types the message-level ``custom_args`` as a string, yet the API and the
    official library send an object (specs/README.md, known quirks): allow that object.
    """
    document = json.loads(SPEC.read_text(encoding="utf-8"))
    body = document["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    body["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    registry: Registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": SPEC_URI + BODY}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def assert_valid(body: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in spec_validator().iter_errors(body)]
    assert not errors, errors[:5]


def person(i: int) -> dict[str, Any]:
    return {
        "first_name": f"Person{i}",
        "shop_name": "Hearth & Home",
        "shop_url": "https://shop.example/",
        "shop_address": "12 Kiln Lane, Portland, OR 97201",
        "unsubscribe_url": f"https://hearth.example/u/{i}",
        "checkout_url": f"https://shop.example/checkouts/{i}/recover?key=k{i}",
        "items": [
            {
                "title": "Smoked Tea",
                "quantity": 1 + i % 3,
                "price": "$24.00",
                "product_url": "https://shop.example/products/smoked-tea",
                "image_url": "https://cdn.shop.example/tea.jpg",
            }
        ],
    }


def messages(count: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            to_email=f"person{i}@example.com",
            to_name=f"Person {i}" if i % 2 else None,
            dynamic_template_data=dynamic_template_data(*STEP, person(i)),
            custom_args={SEND_ID_ARG: f"send-{i:05d}"},
        )
        for i in range(count)
    ]


# -- fixtures --------------------------------------------------------------------------------
def start(tmp_path: Path, faults: Faults | None = None) -> SendGridSandbox:
    server = SendGridSandbox(tmp_path / "sendgrid", faults=faults)
    server.start()
    return server


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SendGridSandbox]:
    server = start(tmp_path)
    yield server
    server.stop()


def settings_for(server: SendGridSandbox | str, **changes: Any) -> SendGridSettings:
    env = (
        server.env() if isinstance(server, SendGridSandbox) else {"SENDGRID_API_HOST": server, "SENDGRID_API_KEY": "k"}
    )
    env = {**env, "SENDGRID_FROM_EMAIL": "hello@shop.example", "SENDGRID_FROM_NAME": "Hearth & Home"}
    return SendGridSettings.from_env(env, unsubscribe_groups=GROUPS, unsubscribe_mailto="unsub@shop.example", **changes)


def client_for(server: SendGridSandbox | str, **changes: Any) -> SendGridClient:
    return SendGridClient(settings_for(server, **changes), sleep=lambda _: None)


@pytest.fixture
def client(sandbox: SendGridSandbox) -> SendGridClient:
    return client_for(sandbox)


@pytest.fixture
def template_ids(client: SendGridClient, tmp_path: Path) -> dict[str, str]:
    return push_templates(client, template_payloads(), tmp_path / "template_ids.json")


def one_body(client: SendGridClient, template_id: str = "d-" + "0" * 32, count: int = 1) -> dict[str, Any]:
    return client.mail_bodies(messages(count), sequence=STEP[0], template_id=template_id)[0]


# -- sending -----------------------------------------------------------------------------------
def test_2500_messages_go_out_as_three_requests_each_recipient_with_its_send_id(
    sandbox: SendGridSandbox, client: SendGridClient, template_ids: dict[str, str]
) -> None:
    categories = load_manifest().get(*STEP).categories
    bodies = client.mail_bodies(
        messages(2500), sequence=STEP[0], template_id=template_ids[TEMPLATE], categories=categories
    )
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 500]
    for body in bodies:
        assert_valid(body)
    results = [client.send(body) for body in bodies]
    assert [r.status for r in results] == ["accepted"] * 3 and all(r.http_status == 202 for r in results)
    assert len({r.message_id for r in results}) == 3

    outbox = sandbox.outbox()
    assert len(outbox) == 2500
    assert [r["custom_args"][SEND_ID_ARG] for r in outbox] == [f"send-{i:05d}" for i in range(2500)]
    assert {r["x_message_id"] for r in outbox} == {r.message_id for r in results}
    for i, record in enumerate(outbox):
        assert record["to"] == {"email": f"person{i}@example.com", "name": f"Person {i}" if i % 2 else None}
        assert record["categories"] == ["hearth", "abandoned_cart", "abandoned_cart/reminder"]
        assert record["headers"] == {
            "List-Unsubscribe": f"<https://hearth.example/u/{i}>, <mailto:unsub@shop.example?subject=unsubscribe>",
            "List-Unsubscribe-Post": ONE_CLICK,
        }
    first = outbox[0]
    assert first["asm"] == {"group_id": 101, "groups_to_display": [101, 102, 103]}
    assert first["template_id"] == template_ids[TEMPLATE]
    assert first["from"] == {"email": "hello@shop.example", "name": "Hearth & Home"}
    assert first["subject"] == "Your cart at Hearth & Home is waiting"
    assert first["dynamic_template_data"]["checkout_url"].endswith("utm_campaign=abandoned_cart&utm_content=reminder")


def test_bodies_with_schedule_sandbox_mode_and_shared_args_follow_the_spec() -> None:
    bodies = build_mail_bodies(
        [
            *messages(3),
            OutgoingMessage("late@example.com", "Late", {}, {SEND_ID_ARG: "s"}, 1_900_000_000, "https://u/"),
        ],
        from_email="hello@shop.example",
        template_id="d-" + "a" * 32,
        categories=["hearth", "winback", "hearth"],
        asm_group_id=103,
        custom_args_common={"run_id": 7},
        headers={"X-Hearth-Run": "7"},
        sandbox_mode=True,
        batch_size=2,
    )
    assert [len(b["personalizations"]) for b in bodies] == [2, 2]
    for body in bodies:
        assert_valid(body)
        assert body["categories"] == ["hearth", "winback"] and body["custom_args"] == {"run_id": "7"}
        assert body["mail_settings"] == {"sandbox_mode": {"enable": True}} and body["asm"] == {"group_id": 103}
        assert body["headers"] == {"X-Hearth-Run": "7", "List-Unsubscribe-Post": ONE_CLICK}
    assert bodies[1]["personalizations"][1]["send_at"] == 1_900_000_000
    assert bodies[1]["personalizations"][1]["headers"] == {"List-Unsubscribe": "<https://u/>"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"categories": [f"c{i}" for i in range(11)]}, "10 categories"),
        ({"headers": {"Subject": "x"}}, "reserved by SendGrid"),
        ({"template_id": "legacy-1"}, "dynamic template id"),
        ({"batch_size": 1001}, "batch_size"),
    ],
)
def test_bodies_sendgrid_would_refuse_are_not_built(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_mail_bodies(messages(1), **{"from_email": "a@b.example", "template_id": "d-1", **change})


def test_every_message_needs_an_unsubscribe_url_and_every_sequence_its_group(client: SendGridClient) -> None:
    bare = OutgoingMessage("x@example.com", None, {"first_name": "X"}, {SEND_ID_ARG: "k"})
    with pytest.raises(ValueError, match="List-Unsubscribe"):
        client.mail_bodies([bare], sequence="winback", template_id="d-1")
    with pytest.raises(ValueError, match="SENDGRID_UNSUBSCRIBE_GROUPS has no group for sequence 'birthday'"):
        client.mail_bodies(messages(1), sequence="birthday", template_id="d-1")


def test_sandbox_mode_is_validated_but_not_sent(sandbox: SendGridSandbox, template_ids: dict[str, str]) -> None:
    client = client_for(sandbox, sandbox_mode=True)
    result = client.send(one_body(client, template_ids[TEMPLATE]))
    assert (result.status, result.http_status, result.message_id) == ("accepted", 200, None)
    assert sandbox.outbox() == []


def test_400_is_a_definitive_failure_with_sendgrids_errors(sandbox: SendGridSandbox, client: SendGridClient) -> None:
    body = one_body(client)  # the template id does not exist
    body["personalizations"][0]["to"][0]["email"] = "not-an-address"
    result = client.send(body)
    assert (result.status, result.retryable, result.http_status) == ("failed", False, 400)
    assert [e["field"] for e in result.errors] == ["personalizations.0.to.0.email"]
    assert "Does not contain a valid address" in result.reason
    fixed = dict(body, personalizations=[{**body["personalizations"][0], "to": [{"email": "ok@example.com"}]}])
    assert client.send(fixed).errors[0]["field"] == "template_id"
    assert sandbox.outbox() == []


def test_429_is_retryable_with_the_servers_wait(tmp_path: Path) -> None:
    server = start(tmp_path, Faults(throttle_rate=1.0))
    try:
        client = client_for(server)
        result = client.send(one_body(client))
        assert (result.status, result.retryable, result.http_status) == ("failed", True, 429)
        assert result.retry_after is not None and 0 < result.retry_after <= 2  # from X-RateLimit-Reset
        assert server.outbox() == []
    finally:
        server.stop()


def test_5xx_is_an_unknown_outcome(tmp_path: Path) -> None:
    server = start(tmp_path, Faults(error_rate=1.0))
    try:
        client = client_for(server)
        result = client.send(one_body(client))
        assert (result.status, result.retryable) == ("unknown", False) and result.http_status in (500, 503)
        assert result.errors and "may have been sent" in result.reason
    finally:
        server.stop()


@pytest.mark.parametrize(("timeout", "stall"), [(5.0, 0.2), (0.2, 1.0)], ids=["connection-dropped", "read-timeout"])
def test_a_timeout_fault_is_an_unknown_outcome(tmp_path: Path, timeout: float, stall: float) -> None:
    server = start(tmp_path, Faults(timeout_rate=1.0, stall_seconds=stall))
    try:
        client = client_for(server, timeout=timeout)
        result = client.send(one_body(client))
        assert (result.status, result.retryable, result.http_status) == ("unknown", False, None)
        assert "may have been sent" in result.reason
    finally:
        server.stop()


def test_a_refused_connection_is_a_retryable_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}")
    result = client.send(one_body(client))
    assert (result.status, result.retryable) == ("failed", True) and "could not connect" in result.reason


def test_a_refused_key_raises_auth_error_naming_the_setting(sandbox: SendGridSandbox) -> None:
    client = client_for(sandbox, api_key="SG.wrong-key-for-this-account")
    with pytest.raises(AuthError) as caught:
        client.send(one_body(client))
    assert "SENDGRID_API_KEY" in str(caught.value) and caught.value.status == 401
    assert "SG.wrong-key-for-this-account" not in str(caught.value)
    with pytest.raises(AuthError, match="SENDGRID_API_KEY"):
        push_templates(client, template_payloads())
    assert sandbox.outbox() == []


# -- templates ---------------------------------------------------------------------------------
def versions(client: SendGridClient, template_id: str) -> list[dict[str, Any]]:
    return list(client.request("GET", f"templates/{template_id}")["versions"])


def test_push_creates_then_updates_idempotently(
    sandbox: SendGridSandbox, client: SendGridClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sg_templates, "PAGE_SIZE", 3)  # 8 templates: the listing follows its pages
    payloads = template_payloads()
    ids_path = tmp_path / "state" / "template_ids.json"
    ids = push_templates(client, payloads, ids_path)
    assert sorted(ids) == sorted(p.name for p in payloads) and len(set(ids.values())) == 8
    assert load_template_ids(ids_path) == ids
    assert push_templates(client, payloads, ids_path) == ids  # nothing changed, nothing created
    assert all(len(versions(client, i)) == 1 for i in ids.values())
    listed = client.request("GET", "templates", query={"generations": "dynamic", "page_size": 200})["result"]
    assert len(listed) == 8

    changed = [p._replace(subject="New: " + p.subject) if p.name == TEMPLATE else p for p in payloads]
    assert push_templates(client, changed, ids_path) == ids
    history = versions(client, ids[TEMPLATE])
    assert [v["active"] for v in history] == [0, 1] and history[1]["subject"].startswith("New: ")
    assert history[1]["html_content"] == payloads[0].html_content
    assert all(len(versions(client, i)) == 1 for n, i in ids.items() if n != TEMPLATE)
    extra = TemplatePayload("hearth:probe/one", "Hi", "<p>{{shop_name}}</p>", "{{{shop_name}}}")
    more = push_templates(client, [extra], ids_path)
    assert load_template_ids(ids_path) == {**ids, **more} and len(load_template_ids(ids_path)) == 9


def test_push_retries_throttled_template_calls(tmp_path: Path) -> None:
    server = start(tmp_path, Faults(throttle_rate=0.4, seed=3))
    try:
        ids = push_templates(client_for(server), template_payloads())
        assert len(ids) == 8 and server.faults_injected["throttle"] > 0
        assert len(server.templates.list_templates(("dynamic",))) == 8
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SendGridSandbox, SendGridClient, dict[str, str]]]:
    """One sandbox holding every template, for the rendering tests (each finds its own message)."""
    server = start(tmp_path_factory.mktemp("rendering"))
    client = client_for(server)
    yield server, client, push_templates(client, template_payloads())
    server.stop()


@pytest.mark.parametrize("key", sorted(load_manifest().templates))
def test_the_sandbox_renders_each_pushed_template_like_the_local_preview(pushed: Pushed, key: str) -> None:
    sandbox, client, template_ids = pushed
    sequence, step = key.split("/")
    data = {**person(7), "reorder_url": "https://shop.example/cart/7:1", "discount": {"code": "HI15", "percent": 15}}
    if sequence == "winback":
        data.pop("items")  # optional there: the email must render without it
    message = OutgoingMessage("ann@example.com", "Ann", dynamic_template_data(sequence, step, data), {SEND_ID_ARG: "k"})
    body = client.mail_bodies([message], sequence=sequence, template_id=template_ids[f"hearth:{key}"])[0]
    result = client.send(body)
    assert result.status == "accepted"
    (record,) = [r for r in sandbox.outbox() if r["x_message_id"] == result.message_id]
    page = requests.get(f"{sandbox.url}/_sandbox/outbox/{record['message_id']}", timeout=10).text
    html = requests.get(f"{sandbox.url}/_sandbox/outbox/{record['message_id']}/html", timeout=10).text
    preview = render(sequence, step, data)
    assert html == preview.html
    assert "Hi Person7," in html and "https://hearth.example/u/7" in html
    assert escape(preview.subject) in page and escape(preview.text) in page
