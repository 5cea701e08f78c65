"""The SendGrid sandbox against SendGrid's contract, driven by the official client.

The official ``sendgrid`` library sends through urllib, so these tests run a real
loopback server rather than mocking HTTP.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sendgrid.helpers.mail import Asm, Category, CustomArg, From, GroupId, Mail, Personalization, To

from sandbox._server import Faults
from sandbox.sendgrid import SANDBOX_API_KEY, SendGridSandbox
from sandbox.sendgrid.events import generate_events
from sandbox.sendgrid.render import handlebars
from sandbox.sendgrid.validation import SPEC_PATH, validate_mail

SENDER = {"email": "shop@example.com", "name": "Example Shop"}


# -- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SendGridSandbox]:
    server = SendGridSandbox(tmp_path / "sendgrid")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(sandbox: SendGridSandbox) -> SendGridAPIClient:
    env = sandbox.env()
    return SendGridAPIClient(env["SENDGRID_API_KEY"], host=env["SENDGRID_API_HOST"])


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SendGridSandbox]:
    """One server for the tests whose requests are all refused (they leave no state)."""
    server = SendGridSandbox(tmp_path_factory.mktemp("sendgrid"))
    server.start()
    yield server
    server.stop()


def post_mail(client: SendGridAPIClient, body: dict[str, Any]) -> Any:
    return client.client.mail.send.post(request_body=body)


def rejected(client: SendGridAPIClient, body: dict[str, Any]) -> HTTPError:
    with pytest.raises(HTTPError) as caught:
        post_mail(client, body)
    return caught.value


def content_mail(personalizations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "personalizations": personalizations,
        "from": SENDER,
        "subject": "Your cart is waiting",
        "content": [{"type": "text/plain", "value": "Come back"}],
        **extra,
    }


def assert_error_shape(body: bytes) -> list[dict[str, Any]]:
    """SendGrid's documented error body: {"errors": [{message, field, help}]}."""
    errors = json.loads(body)["errors"]
    assert errors
    for err in errors:
        assert set(err) == {"message", "field", "help"}
        assert isinstance(err["message"], str) and err["message"]
        assert err["field"] is None or isinstance(err["field"], str)
    return errors


def create_template(client: SendGridAPIClient, subject: str, html: str, plain: str = "") -> str:
    created = json.loads(client.client.templates.post(request_body={"name": "cart", "generation": "dynamic"}).body)
    version = {"name": "v1", "subject": subject, "html_content": html, "plain_content": plain, "active": 1}
    client.client.templates._(created["id"]).versions.post(request_body=version)
    return created["id"]


class Receiver:
    """A local event-webhook endpoint that records every POST and can fail the first few."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                ok = receiver.attempts > fail_first
                if ok:
                    receiver.posts.append((dict(self.headers.items()), body))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.posts for event in json.loads(body)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- the contract file -----------------------------------------------------------------------
def test_vendored_spec_is_the_unedited_upstream_file() -> None:
    data = SPEC_PATH.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert blob.startswith("16f06fa")  # the blob id listed in specs/README.md


# -- mail send ---------------------------------------------------------------------------------
def test_send_lands_one_outbox_line_per_recipient_with_custom_args_merged(
    sandbox: SendGridSandbox, client: SendGridAPIClient
) -> None:
    template_id = create_template(client, "Hi {{first_name}}", "<p>{{first_name}}</p>")
    mail = Mail(from_email=From(**SENDER))
    mail.template_id = template_id
    for email, name, step in (("ada@example.com", "Ada", "1"), ("bob@example.com", "Bob", "2")):
        personalization = Personalization()
        personalization.add_to(To(email, name))
        personalization.dynamic_template_data = {"first_name": name}
        personalization.add_custom_arg(CustomArg("step", step))
        personalization.add_custom_arg(CustomArg("sequence", "override"))
        mail.add_personalization(personalization)
    mail.custom_arg = [CustomArg("sequence", "abandoned_cart"), CustomArg("send_id", "s-1")]
    mail.category = [Category("abandoned_cart")]
    mail.asm = Asm(GroupId(42))

    response = client.send(mail)

    assert response.status_code == 202
    assert response.body in (b"", "")
    x_message_id = response.headers["X-Message-Id"]
    records = sorted(sandbox.outbox(), key=lambda r: r["to"]["email"])  # the helper prepends personalizations
    assert [r["to"] for r in records] == [
        {"email": "ada@example.com", "name": "Ada"},
        {"email": "bob@example.com", "name": "Bob"},
    ]
    assert [r["custom_args"] for r in records] == [
        {"sequence": "override", "send_id": "s-1", "step": "1"},
        {"sequence": "override", "send_id": "s-1", "step": "2"},
    ]
    first = records[0]
    assert first["template_id"] == template_id
    assert first["dynamic_template_data"] == {"first_name": "Ada"}
    assert first["subject"] == "Hi Ada"
    assert first["categories"] == ["abandoned_cart"]
    assert first["asm"] == {"group_id": 42}
    assert first["from"] == SENDER
    assert {"headers", "send_at", "received_at"} <= set(first)
    assert all(r["message_id"].startswith(x_message_id + ".") for r in records)
    assert len({r["message_id"] for r in records}) == 2
    lines = sandbox.outbox_path.read_text().splitlines()
    assert sorted(json.loads(line)["to"]["email"] for line in lines) == ["ada@example.com", "bob@example.com"]


def test_bodies_built_by_the_official_mail_helper_validate(client: SendGridAPIClient) -> None:
    mail = Mail(
        from_email=From(**SENDER),
        to_emails=[To("a@example.com", "A"), To("b@example.com")],
        subject="Restock time",
        plain_text_content="Your coffee is running low.",
        html_content="<p>Your coffee is running low.</p>",
        is_multiple=True,
    )
    mail.custom_arg = CustomArg("sequence", "replenishment")
    mail.category = [Category("replenishment"), Category("step-1")]

    assert validate_mail(mail.get(), template_status=lambda _: None, now=time.time()) == []
    assert client.send(mail).status_code == 202


def test_a_thousand_personalizations_are_accepted_and_1001_rejected(
    sandbox: SendGridSandbox, client: SendGridAPIClient
) -> None:
    def recipients(n: int) -> list[dict[str, Any]]:
        return [{"to": [{"email": f"c{i}@example.com"}]} for i in range(n)]

    assert post_mail(client, content_mail(recipients(1000))).status_code == 202
    assert len(sandbox.outbox()) == 1000

    too_many = rejected(client, content_mail(recipients(1001)))
    assert too_many.status_code == 400
    assert [e["field"] for e in assert_error_shape(too_many.body)] == ["personalizations"]

    # The 1000 cap counts every to, cc and bcc across personalizations.
    crowded = [{"to": [{"email": f"p{p}-{i}@example.com"} for i in range(501)]} for p in range(2)]
    over_total = rejected(client, content_mail(crowded))
    assert [e["field"] for e in assert_error_shape(over_total.body)] == ["personalizations"]
    assert len(sandbox.outbox()) == 1000


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "missing from": ({"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": None}, "from.email"),
    "bad email": ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, "personalizations.0.to.0.email"),
    "11 categories": ({"categories": [f"c{i}" for i in range(11)]}, "categories"),
    "empty to": ({"personalizations": [{"to": []}]}, "personalizations.0.to"),
    "no to": ({"personalizations": [{"subject": "hi"}]}, "personalizations.0.to"),
    "no personalizations": ({"personalizations": []}, "personalizations"),
    "no content nor template": ({"content": None}, "content"),
    "string custom_args": ({"custom_args": "send_id=1"}, "custom_args"),
    "unknown template": ({"content": None, "template_id": "d-" + "0" * 32}, "template_id"),
    "send_at past 72 h": (
        {"personalizations": [{"to": [{"email": "a@example.com"}], "send_at": int(time.time()) + 73 * 3600}]},
        "personalizations.0.send_at",
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_bodies_are_rejected_naming_the_field(case: str, shared: SendGridSandbox) -> None:
    overrides, field = MALFORMED[case]
    body = content_mail([{"to": [{"email": "a@example.com"}]}])
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}

    error = rejected(SendGridAPIClient(SANDBOX_API_KEY, host=shared.url), body)

    assert error.status_code == 400
    assert field in [e["field"] for e in assert_error_shape(error.body)]
    assert shared.outbox() == []


def test_send_at_within_72_hours_is_accepted(sandbox: SendGridSandbox, client: SendGridAPIClient) -> None:
    send_at = int(time.time()) + 71 * 3600
    assert post_mail(client, content_mail([{"to": [{"email": "a@example.com"}]}], send_at=send_at)).status_code == 202
    assert sandbox.outbox()[0]["send_at"] == send_at


def test_invalid_json_and_gzip_bodies(sandbox: SendGridSandbox) -> None:
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "Content-Type": "application/json"}
    broken = requests.post(f"{sandbox.url}/v3/mail/send", data=b'{"personalizations": [', headers=headers)
    assert broken.status_code == 400
    assert assert_error_shape(broken.content)[0]["message"] == "Bad Request"

    body = gzip.compress(json.dumps(content_mail([{"to": [{"email": "z@example.com"}]}])).encode())
    zipped = requests.post(f"{sandbox.url}/v3/mail/send", data=body, headers={**headers, "Content-Encoding": "gzip"})
    assert zipped.status_code == 202
    assert [r["to"]["email"] for r in sandbox.outbox()] == ["z@example.com"]


def test_wrong_or_missing_key_is_401(shared: SendGridSandbox) -> None:
    wrong = SendGridAPIClient("SG.wrong.key", host=shared.url)
    with pytest.raises(HTTPError) as caught:
        post_mail(wrong, content_mail([{"to": [{"email": "a@example.com"}]}]))
    assert caught.value.status_code == 401
    assert json.loads(caught.value.body) == {
        "errors": [
            {"message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}
        ]
    }
    missing = requests.post(f"{shared.url}/v3/mail/send", json={})
    assert missing.status_code == 401
    assert shared.outbox() == []


def test_rate_limit_answers_429_with_reset(tmp_path: Path) -> None:
    # One request of burst, refilling in 100 s: the second request is over the limit.
    with SendGridSandbox(tmp_path, rate_limit_per_second=0.01) as server:
        client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
        body = content_mail([{"to": [{"email": "a@example.com"}]}])
        assert post_mail(client, body).status_code == 202
        before = time.time()
        error = rejected(client, body)

    assert error.status_code == 429
    assert_error_shape(error.body)
    assert error.headers["X-RateLimit-Limit"] == "1"
    assert error.headers["X-RateLimit-Remaining"] == "0"
    assert int(before) + 90 <= int(error.headers["X-RateLimit-Reset"]) <= int(time.time()) + 101


def test_sandbox_mode_validates_but_delivers_nothing(sandbox: SendGridSandbox, client: SendGridAPIClient) -> None:
    settings = {"mail_settings": {"sandbox_mode": {"enable": True}}}
    response = post_mail(client, content_mail([{"to": [{"email": "a@example.com"}]}], **settings))
    assert response.status_code == 200
    assert "X-Message-Id" not in response.headers
    assert rejected(client, content_mail([{"to": [{"email": "nope"}]}], **settings)).status_code == 400
    assert sandbox.outbox() == []


def test_concurrent_sends_append_whole_lines(sandbox: SendGridSandbox, client: SendGridAPIClient) -> None:
    def send(worker: int) -> None:
        for i in range(5):
            to = [{"email": f"w{worker}-{i}-{k}@example.com"} for k in range(3)]
            post_mail(client, content_mail([{"to": to}]))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    records = sandbox.outbox()
    assert len(records) == 6 * 5 * 3
    assert len({r["message_id"] for r in records}) == 90
    assert len({r["x_message_id"] for r in records}) == 30


# -- dynamic templates and the rendered outbox -------------------------------------------------------
def test_templates_round_trip_persist_and_render(tmp_path: Path) -> None:
    directory = tmp_path / "sendgrid"
    with SendGridSandbox(directory) as server:
        client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
        created = client.client.templates.post(request_body={"name": "winback", "generation": "dynamic"})
        assert created.status_code == 201
        template_id = json.loads(created.body)["id"]
        assert re.fullmatch(r"d-[0-9a-f]{32}", template_id)
        versions = client.client.templates._(template_id).versions
        old = {"name": "v1", "subject": "Old {{first_name}}", "html_content": "<p>old</p>", "active": 1}
        assert versions.post(request_body=old).status_code == 201
        new = {
            "name": "v2",
            "subject": "We miss you, {{first_name}}",
            "html_content": "<p>Hi {{first_name}}, {{#each items}}<li>{{title}}</li>{{/each}}"
            "{{#equals tier 'gold'}}<b>gold perk</b>{{/equals}}</p>",
            "plain_content": "Hi {{first_name}}",
            "active": 1,
            "test_data": {"first_name": "Test"},
        }
        version = json.loads(versions.post(request_body=new).body)

    with SendGridSandbox(directory) as server:  # a restart keeps the templates
        client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
        template = json.loads(client.client.templates._(template_id).get().body)
        assert [(v["name"], v["active"]) for v in template["versions"]] == [("v1", 0), ("v2", 1)]
        listed = json.loads(client.client.templates.get(query_params={"generations": "dynamic", "page_size": 10}).body)
        assert [t["id"] for t in listed["result"]] == [template_id]
        legacy = json.loads(client.client.templates.get(query_params={"page_size": 10}).body)
        assert legacy["result"] == []

        data = {"first_name": "Grace", "items": [{"title": "Dark Roast"}], "tier": "gold"}
        mail = {
            "personalizations": [{"to": [{"email": "grace@example.com"}], "dynamic_template_data": data}],
            "from": SENDER,
            "template_id": template_id,
            "categories": ["winback"],
        }
        assert post_mail(client, mail).status_code == 202
        record = server.outbox()[0]
        assert record["template_version_id"] == version["id"]
        assert record["subject"] == "We miss you, Grace"

        index = requests.get(f"{server.url}/_sandbox/outbox").text
        assert "grace@example.com" in index and "We miss you, Grace" in index and "winback" in index
        page = requests.get(f"{server.url}/_sandbox/outbox/{record['message_id']}")
        assert page.status_code == 200 and "We miss you, Grace" in page.text and "Hi Grace" in page.text
        body = requests.get(f"{server.url}/_sandbox/outbox/{record['message_id']}/html").text
        assert body == "<p>Hi Grace, <li>Dark Roast</li><b>gold perk</b></p>"
        assert requests.get(f"{server.url}/_sandbox/outbox/nope").status_code == 404


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{formatDate when "DD/MM/YYYY"}}', "05/03/2026"),
        ('{{insert name "default=friend"}}', "friend"),
        ("{{#greaterThan n 2}}big{{else}}small{{/greaterThan}}", "big"),
        ("{{#lessThan n 2}}small{{else}}big{{/lessThan}}", "big"),
        ("{{length items}}", "2"),
        ("{{#and a b}}both{{else}}not both{{/and}}", "not both"),
        ("{{#or a b}}any{{/or}}", "any"),
        ("{{#notEquals a 1}}differs{{else}}same{{/notEquals}}", "same"),
        ("{{first_name}} & {{{raw}}}", "&lt;Ada&gt; & <b>x</b>"),
    ],
)
def test_sendgrid_handlebars_helpers(source: str, expected: str) -> None:
    data = {
        "when": "2026-03-05T10:00:00Z",
        "n": 3,
        "items": [1, 2],
        "a": 1,
        "b": 0,
        "first_name": "<Ada>",
        "raw": "<b>x</b>",
    }
    assert handlebars(source, data) == expected


def test_template_listing_requires_page_size(shared: SendGridSandbox) -> None:
    client = SendGridAPIClient(SANDBOX_API_KEY, host=shared.url)
    with pytest.raises(HTTPError) as caught:
        client.client.templates.get(query_params={"generations": "dynamic"})
    assert caught.value.status_code == 400
    assert assert_error_shape(caught.value.body)[0]["field"] == "page_size"


def test_outbox_index_is_newest_first_and_shows_content_mails(
    sandbox: SendGridSandbox, client: SendGridAPIClient
) -> None:
    for name in ("first", "second"):
        body = content_mail([{"to": [{"email": f"{name}@example.com"}], "subject": f"Subject {name}"}])
        body["content"] = [{"type": "text/html", "value": f"<p>Body {name}</p>"}]
        post_mail(client, body)
    index = requests.get(f"{sandbox.url}/_sandbox/outbox").text
    assert index.index("second@example.com") < index.index("first@example.com")
    record = sandbox.outbox()[0]
    assert requests.get(f"{sandbox.url}/_sandbox/outbox/{record['message_id']}/html").text == "<p>Body first</p>"


# -- event webhook ---------------------------------------------------------------------------------
def test_webhook_events_are_signed_and_carry_custom_args(tmp_path: Path, receiver: Receiver) -> None:
    with SendGridSandbox(tmp_path, webhook_url=receiver.url) as server:
        client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
        to = [{"email": "ok@example.com"}, {"email": "gone@example.invalid"}]
        body = content_mail([{"to": to, "custom_args": {"send_id": "s-9"}}], categories=["winback"])
        body["asm"] = {"group_id": 7}
        post_mail(client, body)
        flushed = server.flush_events()
        public_key = server.env()["SENDGRID_WEBHOOK_PUBLIC_KEY"]
        outbox = {r["to"]["email"]: r["message_id"] for r in server.outbox()}

    assert receiver.posts, "no webhook batch arrived"
    verifier = EventWebhook(public_key)
    for headers, payload in receiver.posts:
        signature, timestamp = headers[EventWebhookHeader.SIGNATURE], headers[EventWebhookHeader.TIMESTAMP]
        assert verifier.verify_signature(payload.decode(), signature, timestamp)
        assert not verifier.verify_signature(payload.decode().replace("s-9", "s-8"), signature, timestamp)

    events = receiver.events()  # the background thread may have sent some before the flush
    assert all(event in events for event in flushed)
    assert len({e["sg_event_id"] for e in events}) == len(events)
    by_email = {email: [e["event"] for e in events if e["email"] == email] for email in outbox}
    assert by_email["gone@example.invalid"] == ["processed", "bounce"]
    assert by_email["ok@example.com"][0] == "processed"
    assert set(by_email["ok@example.com"]) & {"delivered", "bounce", "dropped"}
    for event in events:
        assert event["send_id"] == "s-9"
        assert event["sg_message_id"] == outbox[event["email"]]
        assert event["category"] == ["winback"]
        assert event["asm_group_id"] == 7
        assert isinstance(event["timestamp"], int) and event["sg_event_id"]
    bounce = next(e for e in events if e["event"] == "bounce")
    assert bounce["type"] == "bounce" and bounce["reason"]


def test_webhook_delivery_retries_in_the_background(tmp_path: Path) -> None:
    receiver = Receiver(fail_first=2)
    try:
        with SendGridSandbox(tmp_path, webhook_url=receiver.url) as server:
            client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
            post_mail(client, content_mail([{"to": [{"email": "a@example.com"}]}]))
            deadline = time.monotonic() + 10
            while not receiver.posts and time.monotonic() < deadline:
                time.sleep(0.05)
        assert receiver.attempts >= 3
        assert receiver.events()[0]["event"] == "processed"
    finally:
        receiver.close()


def test_events_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    def run(directory: Path, seed: int) -> tuple[str, list[tuple[str, str, Any]]]:
        receiver = Receiver()
        try:
            with SendGridSandbox(directory, webhook_url=receiver.url, event_seed=seed) as server:
                client = SendGridAPIClient(SANDBOX_API_KEY, host=server.url)
                to = [{"email": f"c{i}@example.com"} for i in range(300)]
                links = {"cart_url": "https://shop.example.com/cart/1"}
                body = {**content_mail([{"to": to, "dynamic_template_data": links}])}
                message_id = post_mail(client, body).headers["X-Message-Id"]
                server.flush_events()
        finally:
            receiver.close()
        return message_id, [(e["email"], e["event"], e.get("url")) for e in receiver.events()]

    first_id, first = run(tmp_path / "a", seed=5)
    again_id, again = run(tmp_path / "b", seed=5)
    _, other = run(tmp_path / "c", seed=6)

    assert first_id == again_id
    assert first == again
    assert first != other
    kinds = [kind for _, kind, _ in first]
    assert kinds.count("processed") == 300
    assert 240 <= kinds.count("delivered") <= 300
    assert 60 <= kinds.count("open") <= 180
    assert all(url == "https://shop.example.com/cart/1" for _, kind, url in first if kind == "click")


def test_generate_events_is_a_pure_function_of_seed_message_and_recipient() -> None:
    record = {
        "to": {"email": "a@example.com"},
        "x_message_id": "abc",
        "message_id": "abc.filterdrecv-sandbox.0",
        "received_at": "2026-01-01T00:00:00+00:00",
        "custom_args": {"send_id": "s-1", "event": "must not clobber"},
        "categories": [],
    }
    assert generate_events(record, seed=1) == generate_events(dict(record), seed=1)
    assert all(e["event"] != "must not clobber" and e["send_id"] == "s-1" for e in generate_events(record, seed=1))


def test_signing_key_is_persisted_across_restarts(tmp_path: Path) -> None:
    with SendGridSandbox(tmp_path) as first:
        key = first.env()["SENDGRID_WEBHOOK_PUBLIC_KEY"]
    with SendGridSandbox(tmp_path) as second:
        assert second.env()["SENDGRID_WEBHOOK_PUBLIC_KEY"] == key
    assert (tmp_path / "webhook_signing_key.pem").stat().st_mode & 0o077 == 0
    assert EventWebhook(key).public_key.curve.name == "secp256r1"


# -- faults and routing -------------------------------------------------------------------------------
def test_fault_knobs_are_deterministic_and_spare_sandbox_pages(tmp_path: Path) -> None:
    def statuses(directory: Path) -> list[int]:
        faults = Faults(error_rate=0.3, throttle_rate=0.2, seed=11)
        with SendGridSandbox(directory, faults=faults) as server:
            result = []
            for i in range(30):
                body = content_mail([{"to": [{"email": f"c{i}@example.com"}]}])
                response = requests.post(
                    f"{server.url}/v3/mail/send", json=body, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}
                )
                if response.status_code != 202:
                    assert_error_shape(response.content)
                if response.status_code == 429:
                    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
                result.append(response.status_code)
            assert len(server.outbox()) == result.count(202)
        return result

    first = statuses(tmp_path / "a")
    assert first == statuses(tmp_path / "b")
    assert {202, 429, 500, 503} <= set(first)

    with SendGridSandbox(tmp_path / "c", faults=Faults(error_rate=1.0)) as server:
        assert requests.get(f"{server.url}/_sandbox/outbox").status_code == 200
        assert requests.post(f"{server.url}/v3/mail/send", json={}).status_code in (500, 503)


def test_unknown_paths_and_methods(shared: SendGridSandbox) -> None:
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    assert requests.get(f"{shared.url}/v3/nothing", headers=auth).status_code == 404
    not_allowed = requests.get(f"{shared.url}/v3/mail/send", headers=auth)
    assert not_allowed.status_code == 405
    assert_error_shape(not_allowed.content)
