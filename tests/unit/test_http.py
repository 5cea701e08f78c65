"""The shared HTTP layer: classifier, wait hints, retries, errors, redaction and pacers.

Everything runs on a fake clock and a scripted session, except one loopback test
that goes through real ``requests`` against a SandboxServer.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
from collections import deque
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from connectors._http import (
    ApiError,
    AuthError,
    CostBucketPacer,
    HttpClient,
    HttpError,
    MalformedResponse,
    RetriesExhausted,
    TokenBucketPacer,
    UsagePacer,
    classify,
    redact,
    wait_hint,
)
from sandbox._server import Request, Response, SandboxServer

NOW = 1_780_000_000.0  # the fake wall clock
SECRET = "shpat_0123456789abcdef"


def make_response(
    status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None, text: str | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if text is None:
        text = "" if body is None else json.dumps(body)
    response._content = text.encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    response.encoding = "utf-8"
    response.url = "https://api.example.test/x"
    return response


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += max(0.0, seconds)


class ScriptedSession:
    """A stand-in for requests.Session answering from a script (responses or exceptions)."""

    def __init__(self, *script: requests.Response | BaseException) -> None:
        self.script = deque(script)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.headers: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        item = self.script.popleft()
        if isinstance(item, BaseException):
            raise item
        return item


def client_for(session: Any, fake: FakeTime, **kwargs: Any) -> HttpClient:
    kwargs.setdefault("rng", random.Random(7))
    return HttpClient(
        "https://api.example.test/v1/", session=session, sleep=fake.sleep, clock=fake.clock, now=lambda: NOW, **kwargs
    )


def shopify_cost(requested: float, available: float, restore: float = 100.0, maximum: float = 2000.0) -> dict:
    status = {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": restore}
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": status}}


def fb_error(code: int, message: str = "x", type_: str = "OAuthException") -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "fbtrace_id": "A1"}}


THROTTLED = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}

CLASSIFY_CASES = [
    # (case, response, exception, expected kind)
    ("connection refused", None, requests.ConnectionError("refused"), "retry"),
    ("read timeout", None, requests.ReadTimeout("slow"), "retry"),
    ("connect timeout", None, requests.ConnectTimeout("slow"), "retry"),
    ("cut body", None, requests.exceptions.ChunkedEncodingError("cut"), "retry"),
    ("bad url", None, requests.exceptions.InvalidURL("nope"), "fatal"),
    ("bad certificate", None, requests.exceptions.SSLError("certificate verify failed"), "fatal"),
    ("200", make_response(200, {"data": {}}), None, "ok"),
    ("202 sendgrid", make_response(202, text=""), None, "ok"),
    ("429", make_response(429, {"errors": [{"message": "slow down"}]}), None, "retry"),
    ("500", make_response(500, text="oops"), None, "retry"),
    ("502 html", make_response(502, text="<html>bad gateway</html>"), None, "retry"),
    ("503", make_response(503), None, "retry"),
    ("shopify THROTTLED in 200", make_response(200, {**THROTTLED, "extensions": shopify_cost(500, 10)}), None, "retry"),
    ("shopify THROTTLED in a 429", make_response(429, THROTTLED), None, "retry"),
    (
        "shopify ACCESS_DENIED",
        make_response(200, {"data": None, "errors": [{"extensions": {"code": "ACCESS_DENIED"}}]}),
        None,
        "auth",
    ),
    (
        "shopify invalid query",
        make_response(200, {"errors": [{"message": "Field 'nope' doesn't exist"}]}),
        None,
        "fatal",
    ),
    ("shopify partial data", make_response(200, {"data": {"x": 1}, "errors": [{"message": "one field"}]}), None, "ok"),
    *[
        (f"facebook code {c}", make_response(400, fb_error(c)), None, "retry")
        for c in (1, 2, 4, 17, 32, 613, 80000, 80004, 80014)
    ],
    ("facebook code 4 as 403", make_response(403, fb_error(4)), None, "retry"),
    ("facebook code 80015 is not throttling", make_response(400, fb_error(80015)), None, "fatal"),
    ("facebook token expired", make_response(400, fb_error(190)), None, "auth"),
    ("facebook permission", make_response(403, fb_error(200)), None, "auth"),
    ("facebook bad parameter", make_response(400, fb_error(100, type_="GraphMethodException")), None, "fatal"),
    ("lwa server_error", make_response(500, {"error": "server_error"}), None, "retry"),
    ("lwa temporarily_unavailable", make_response(400, {"error": "temporarily_unavailable"}), None, "retry"),
    ("lwa invalid_grant", make_response(400, {"error": "invalid_grant", "error_description": "bad"}), None, "auth"),
    ("lwa invalid_request", make_response(400, {"error": "invalid_request"}), None, "fatal"),
    ("amazon 403", make_response(403, {"errors": [{"code": "Unauthorized", "message": "denied"}]}), None, "auth"),
    ("amazon 429", make_response(429, {"errors": [{"code": "QuotaExceeded"}]}), None, "retry"),
    ("401", make_response(401, text="unauthorized"), None, "auth"),
    ("404", make_response(404, {"errors": [{"code": "NotFound"}]}), None, "fatal"),
    ("sendgrid 400", make_response(400, {"errors": [{"message": "bad", "field": "from"}]}), None, "fatal"),
]


@pytest.mark.parametrize(("case", "response", "exc", "kind"), CLASSIFY_CASES, ids=[c[0] for c in CLASSIFY_CASES])
def test_classify_vendor_patterns(case: str, response: Any, exc: Any, kind: str) -> None:
    verdict = classify(response, exc, now=lambda: NOW)
    assert verdict.kind == kind, verdict.reason
    assert verdict.retryable is (kind == "retry")
    assert verdict.fatal is (kind in ("auth", "fatal"))


HINT_CASES = [
    ("retry-after seconds", make_response(429, headers={"Retry-After": "7"}), 7.0),
    ("retry-after http date", make_response(503, headers={"Retry-After": email.utils.formatdate(NOW + 30)}), 30.0),
    ("sendgrid reset epoch", make_response(429, headers={"X-RateLimit-Reset": str(int(NOW) + 12)}), 12.0),
    ("amazon rate limit", make_response(429, headers={"x-amzn-RateLimit-Limit": "0.5"}), 2.0),
    ("shopify throttle status", make_response(200, {**THROTTLED, "extensions": shopify_cost(502, 102)}), 4.0),
    (
        "facebook business use case",
        make_response(
            400,
            fb_error(80004),
            headers={
                "X-Business-Use-Case-Usage": json.dumps(
                    {"123": [{"type": "ads_insights", "call_count": 100, "estimated_time_to_regain_access": 3}]}
                )
            },
        ),
        180.0,
    ),
    (
        "facebook ad account usage",
        make_response(
            400,
            fb_error(17),
            headers={"X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 45})},
        ),
        45.0,
    ),
]


@pytest.mark.parametrize(("case", "response", "seconds"), HINT_CASES, ids=[c[0] for c in HINT_CASES])
def test_wait_hints(case: str, response: requests.Response, seconds: float) -> None:
    assert wait_hint(response, response.json() if response.content else None, now=lambda: NOW) == pytest.approx(
        seconds, abs=0.01
    )
    assert classify(response, now=lambda: NOW).wait == pytest.approx(seconds, abs=0.01)


@pytest.mark.parametrize(("case", "response", "seconds"), HINT_CASES, ids=[c[0] for c in HINT_CASES])
def test_client_waits_as_the_server_says(case: str, response: requests.Response, seconds: float) -> None:
    fake = FakeTime()
    session = ScriptedSession(response, make_response(200, {"ok": True}))
    assert client_for(session, fake).get_json("things") == {"ok": True}
    assert fake.waits == [pytest.approx(seconds, abs=0.01)]
    assert len(session.calls) == 2


def test_without_hints_backoff_is_capped_full_jitter_and_seeded() -> None:
    def run(seed: int) -> list[float]:
        fake = FakeTime()
        session = ScriptedSession(*[make_response(503)] * 7, make_response(200, {}))
        client = client_for(session, fake, rng=random.Random(seed), backoff_base=1.0, backoff_cap=10.0)
        client.get_json("things")
        return fake.waits

    waits = run(3)
    assert len(waits) == 7
    for failures, wait in enumerate(waits, start=1):
        assert 0.0 <= wait <= min(10.0, 2 ** (failures - 1))
    assert run(3) == waits  # the same seed draws the same waits
    assert run(4) != waits


def test_transport_errors_are_retried_then_succeed() -> None:
    fake = FakeTime()
    session = ScriptedSession(
        requests.ConnectionError("refused"), requests.ReadTimeout("slow"), make_response(200, {"n": 1})
    )
    client = client_for(session, fake)
    assert client.get_json("/things", params={"a": 1}) == {"n": 1}
    assert len(fake.waits) == 2
    method, url, kwargs = session.calls[0]
    assert (method, url, kwargs["params"], kwargs["timeout"]) == (
        "GET",
        "https://api.example.test/v1/things",
        {"a": 1},
        (5, 60),
    )


def test_absolute_urls_pass_through_and_post_sends_the_body() -> None:
    session = ScriptedSession(make_response(200, {"ok": 1}))
    client = client_for(session, FakeTime())
    client.post_json("https://graph.example.test/next?after=abc", json={"x": 1})
    assert session.calls[0][0:2] == ("POST", "https://graph.example.test/next?after=abc")
    assert session.calls[0][2]["json"] == {"x": 1}


def test_retries_exhausted_carries_the_last_verdict() -> None:
    fake = FakeTime()
    session = ScriptedSession(*[make_response(503)] * 3)
    with pytest.raises(RetriesExhausted) as info:
        client_for(session, fake, max_attempts=3).get_json("things")
    assert info.value.attempts == 3
    assert info.value.verdict.status == 503 and info.value.verdict.retryable
    assert len(fake.waits) == 2
    assert "https://api.example.test/v1/things" in str(info.value) and "rerun later" in str(info.value)


def test_a_hint_longer_than_max_wait_fails_instead_of_sleeping() -> None:
    fake = FakeTime()
    session = ScriptedSession(make_response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RetriesExhausted, match="3600s"):
        client_for(session, fake, max_wait=900).get_json("things")
    assert fake.waits == []


def test_malformed_json_is_retried_then_fails_with_url_and_sample() -> None:
    fake = FakeTime()
    garbage = '{"data": {"orders": [' + "x" * 2000
    session = ScriptedSession(*[make_response(200, text=garbage)] * 3)
    with pytest.raises(MalformedResponse) as info:
        client_for(session, fake, max_attempts=3).get_json("orders")
    assert len(session.calls) == 3 and len(fake.waits) == 2
    assert info.value.status == 200
    assert info.value.url == "https://api.example.test/v1/orders"
    assert info.value.sample == garbage[:500]
    assert "https://api.example.test/v1/orders" in str(info.value) and '{"data": {"orders": [xxx' in str(info.value)


def test_malformed_then_good_body_succeeds() -> None:
    session = ScriptedSession(make_response(200, text='{"a": '), make_response(200, {"a": 1}))
    assert client_for(session, FakeTime()).get_json("a") == {"a": 1}


def test_json_of_the_wrong_type_is_malformed() -> None:
    session = ScriptedSession(make_response(200, [1, 2]), make_response(200, [1, 2]))
    with pytest.raises(MalformedResponse, match="not the expected JSON"):
        client_for(session, FakeTime(), max_attempts=2).get_json("a")
    session = ScriptedSession(make_response(200, [1, 2]))
    assert client_for(session, FakeTime()).get_json("a", expect=list) == [1, 2]


def test_request_returns_the_raw_response_without_parsing() -> None:
    session = ScriptedSession(make_response(202, text="", headers={"X-Message-Id": "m1"}))
    response = client_for(session, FakeTime()).request("POST", "/v3/mail/send", json={"a": 1})
    assert response.status_code == 202 and response.headers["X-Message-Id"] == "m1"


@pytest.mark.parametrize(
    ("response", "credential"),
    [
        (make_response(401, text="Invalid API key or access token"), "SHOPIFY_ACCESS_TOKEN"),
        (make_response(400, fb_error(190, "Error validating access token")), "FACEBOOK_ACCESS_TOKEN"),
        (make_response(400, {"error": "invalid_grant"}), "AMAZON_REFRESH_TOKEN"),
    ],
)
def test_auth_errors_name_the_credential_and_are_not_retried(response: requests.Response, credential: str) -> None:
    session = ScriptedSession(response)
    with pytest.raises(AuthError) as info:
        client_for(session, FakeTime()).get_json("things", credential=credential)
    assert len(session.calls) == 1
    assert info.value.credential == credential
    assert credential in str(info.value) and "https://api.example.test/v1/things" in str(info.value)
    assert "environment or .env" in str(info.value)


def test_client_default_credential_is_used() -> None:
    session = ScriptedSession(make_response(403, text="forbidden"))
    with pytest.raises(AuthError, match="SENDGRID_API_KEY"):
        client_for(session, FakeTime(), credential="SENDGRID_API_KEY").request("GET", "x")


def test_other_4xx_raise_api_error_with_status_and_sample() -> None:
    body = {"errors": [{"message": "The from object must be provided", "field": "from"}]}
    session = ScriptedSession(make_response(400, body))
    with pytest.raises(ApiError) as info:
        client_for(session, FakeTime()).post_json("/v3/mail/send", json={})
    assert len(session.calls) == 1 and info.value.status == 400
    assert "The from object must be provided" in info.value.sample
    assert "HTTP 400" in str(info.value) and "/v3/mail/send" in str(info.value)


def test_unsendable_request_raises_http_error_without_retry() -> None:
    session = ScriptedSession(requests.exceptions.InvalidURL("no host"))
    with pytest.raises(HttpError, match="no host"):
        client_for(session, FakeTime()).get_json("x")
    assert len(session.calls) == 1


def test_redact_masks_secrets_tokens_in_urls_and_bearer_headers() -> None:
    text = f"GET /v25.0/act_1/insights?fields=spend&access_token=EAAB123xyz&after=c2 Bearer abc.def token {SECRET}"
    cleaned = redact(text, [SECRET])
    assert "EAAB123xyz" not in cleaned and "abc.def" not in cleaned and SECRET not in cleaned
    assert "access_token=***" in cleaned and "after=c2" in cleaned and "fields=spend" in cleaned
    lwa = redact('{"access_token": "Atza|IwEBIA", "refresh_token":"Atzr|IwEB", "expires_in": 3600}')
    assert lwa == '{"access_token": "***", "refresh_token":"***", "expires_in": 3600}'
    assert redact("paginationToken=abc&nextToken=def") == "paginationToken=abc&nextToken=def"


def test_secrets_never_reach_exception_text_or_log_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fb_token = "EAAGfacebooktoken42"
    url = f"https://graph.example.test/v25.0/act_1/insights?access_token={fb_token}"
    session = ScriptedSession(
        make_response(400, fb_error(4, f"limit reached for token {SECRET}")),
        make_response(401, text=f"token {SECRET} is invalid; you sent access_token={fb_token}"),
    )
    client = client_for(session, FakeTime(), secrets=[SECRET], headers={"X-Shopify-Access-Token": SECRET})
    with pytest.raises(AuthError) as info:
        client.get_json(url, credential="FACEBOOK_ACCESS_TOKEN")
    assert caplog.records, "the retry should have been logged"
    logging.getLogger("connectors._http").warning("leaking %s on purpose", SECRET)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (SECRET, fb_token):
        assert secret not in str(info.value) and secret not in info.value.url
        assert secret not in logged
    assert "access_token=***" in str(info.value)


class ScriptedServer(SandboxServer):
    """A loopback server answering from a script of Responses (then 200 {"done": true})."""

    name = "scripted"

    def __init__(self, *script: Response) -> None:
        super().__init__()
        self.script = deque(script)
        self.seen: list[Request] = []

    def handle(self, request: Request) -> Response:
        self.seen.append(request)
        return self.script.popleft() if self.script else Response.json({"done": True})


def test_real_requests_over_loopback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fb_token = "EAAGloopbacktoken77"
    server = ScriptedServer(
        Response.json({"error": "unavailable"}, 503),
        Response(200, b'{"data": [', {"Content-Type": "application/json"}),
        Response.json({"error": "rate"}, 429, {"Retry-After": "0"}),
    )
    with server:
        fake = FakeTime()
        client = HttpClient(server.url, sleep=fake.sleep, rng=random.Random(1), timeout=(2, 5), secrets=[fb_token])
        assert client.get_json("/v25.0/me", params={"access_token": fb_token}) == {"done": True}
        assert len(server.seen) == 4 and len(fake.waits) == 3
        assert server.seen[-1].arg("access_token") == fb_token
    assert fb_token not in caplog.text  # urllib3 logs the request line with its query string


def test_token_bucket_keeps_amazon_under_its_rate_over_a_simulated_minute() -> None:
    fake = FakeTime()
    pacer = TokenBucketPacer(2.0, 5, sleep=fake.sleep, clock=fake.clock)
    stamps = []
    while fake.t < 60.0:
        pacer.acquire()
        stamps.append(fake.t)
    # Any window of W seconds holds at most burst + rate * W calls.
    for i, start in enumerate(stamps):
        in_window = sum(1 for t in stamps[i:] if t < start + 10.0)
        assert in_window <= 5 + 2.0 * 10.0
    assert 5 + 2 * 59 <= len(stamps) <= 5 + 2 * 60 + 1


def test_token_bucket_adopts_the_servers_stated_rate_and_drains_on_429() -> None:
    fake = FakeTime()
    pacer = TokenBucketPacer(10.0, 1, sleep=fake.sleep, clock=fake.clock)
    pacer.acquire()
    pacer.observe(make_response(429, headers={"x-amzn-RateLimit-Limit": "0.5"}))
    assert pacer.rate == 0.5
    pacer.acquire()
    pacer.acquire()
    assert fake.waits == [pytest.approx(2.0), pytest.approx(2.0)]


class ShopifyBucketSession:
    """Shopify's leaky bucket on a fake clock: THROTTLED when a query costs more than is left."""

    def __init__(self, fake: FakeTime, maximum: float = 1000.0, restore: float = 50.0, cost: float = 200.0) -> None:
        self.fake, self.maximum, self.restore, self.cost = fake, maximum, restore, cost
        self.available, self.stamp = maximum, 0.0
        self.headers: dict[str, str] = {}
        self.answered = self.throttled = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.available = min(self.maximum, self.available + (self.fake.t - self.stamp) * self.restore)
        self.stamp = self.fake.t
        throttled = self.available < self.cost
        if not throttled:
            self.available -= self.cost
        self.answered += not throttled
        self.throttled += throttled
        extensions = shopify_cost(self.cost, self.available, self.restore, self.maximum)
        body = {**THROTTLED, "extensions": extensions} if throttled else {"data": {}, "extensions": extensions}
        return make_response(200, body)


@pytest.mark.parametrize("paced", [True, False])
def test_cost_bucket_pacer_avoids_shopify_throttling_over_a_simulated_minute(paced: bool) -> None:
    fake = FakeTime()
    session = ShopifyBucketSession(fake)
    pacer = CostBucketPacer(sleep=fake.sleep, clock=fake.clock) if paced else None
    client = client_for(session, fake, pacer=pacer)
    while fake.t < 60.0:
        client.post_json("graphql.json", json={"query": "{ shop { id } }"})
    # The bucket allows (1000 + 50 * 60) / 200 = 20 queries in a minute.
    assert session.answered in (19, 20, 21)
    assert (session.throttled == 0) is paced


def test_cost_bucket_pacer_waits_for_an_explicit_cost() -> None:
    fake = FakeTime()
    pacer = CostBucketPacer(sleep=fake.sleep, clock=fake.clock)
    pacer.observe(make_response(200), {"data": {}, "extensions": shopify_cost(10, 100, restore=50)})
    pacer.acquire(cost=300)
    assert fake.waits == [pytest.approx(4.0)]


class FacebookUsageSession:
    """Facebook's rolling one-hour-like usage on a fake clock: 100 calls per 60 s, code 17 beyond."""

    def __init__(self, fake: FakeTime, limit: int = 100) -> None:
        self.fake, self.limit = fake, limit
        self.headers: dict[str, str] = {}
        self.stamps: list[float] = []
        self.throttled = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        recent = [t for t in self.stamps if t > self.fake.t - 60.0]
        usage = {"acc_id_util_pct": 100.0 * len(recent) / self.limit, "reset_time_duration": 0}
        if len(recent) >= self.limit:
            self.throttled += 1
            return make_response(400, fb_error(17), headers={"X-Ad-Account-Usage": json.dumps(usage)})
        self.stamps.append(self.fake.t)
        usage["acc_id_util_pct"] = 100.0 * (len(recent) + 1) / self.limit
        return make_response(200, {"data": []}, headers={"X-Ad-Account-Usage": json.dumps(usage)})


def test_usage_pacer_slows_facebook_down_before_the_limit() -> None:
    fake = FakeTime()
    session = FacebookUsageSession(fake)
    client = client_for(session, fake, pacer=UsagePacer(sleep=fake.sleep, clock=fake.clock))
    while fake.t < 300.0:
        client.get_json("act_1/insights")
    assert session.throttled == 0
    stamps = session.stamps
    busiest = max(sum(1 for t in stamps[i:] if t < start + 60.0) for i, start in enumerate(stamps))
    assert busiest < 100
    assert len(stamps) > 250  # it slows down, it does not stall


def test_usage_pacer_honours_time_to_regain_access() -> None:
    fake = FakeTime()
    pacer = UsagePacer(sleep=fake.sleep, clock=fake.clock)
    buc = {"1": [{"type": "ads_management", "call_count": 20, "estimated_time_to_regain_access": 2}]}
    pacer.observe(make_response(400, headers={"X-Business-Use-Case-Usage": json.dumps(buc)}))
    assert pacer.usage == 20
    pacer.acquire()
    assert fake.waits == [pytest.approx(120.0)]
