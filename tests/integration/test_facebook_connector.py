"""The Facebook connector against the Graph API sandbox over a small generated shop.

Every request is recorded on the wire and checked against Meta's node specs
(AdAccount.json, AdsInsights.json, AdReportRun.json, enum_types.json); rows are
checked against the shop's tables. The sandbox serves the last 7 days as still
settling (lower numbers, growing with each pull), older days as final.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors._http import AuthError, MalformedResponse
from connectors.base import Window
from connectors.facebook import (
    FacebookClient,
    FacebookSettings,
    InsightsStream,
    MetadataStream,
    ReportRunFailed,
    metadata_streams,
)
from sandbox._server import Faults, Request, Response, SandboxServer
from sandbox.facebook.server import FacebookSandbox
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table
from sandbox.specs import fb_edge_params, fb_enum, fb_fields
from tests.integration.recording import RecordingSession

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TODAY = date(2026, 5, 31)  # the shop's last insights day
OLD = Window(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 15, tzinfo=UTC))  # long settled
UNIVERSAL = {"access_token", "appsecret_proof", "after", "before", "fields", "limit"}  # Graph-wide parameters


class FakeSleep:
    """Records waits instead of sleeping (throttled answers ask for minutes)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shop_dir = tmp_path_factory.mktemp("facebook-connector-shop")
    generate_shop(shop_dir, seed=11, customers=300, now=NOW)
    return shop_dir


@pytest.fixture(scope="module")
def shared(shop: Path) -> Iterator[FacebookSandbox]:
    with FacebookSandbox(shop, async_polls_to_complete=3) as server:
        yield server


def client(
    server: FacebookSandbox | SandboxServer, session: requests.Session | None = None, **overrides: Any
) -> FacebookClient:
    env = server.env() if isinstance(server, FacebookSandbox) else {}
    values = {"page_size": 40, "poll_interval": 0.5, "backoff_base": 0.01, **overrides}
    settings = FacebookSettings.from_env(env, **values) if env else FacebookSettings(**values)
    return FacebookClient(settings, session=session, sleep=FakeSleep())


def rows(stream: InsightsStream | MetadataStream, window: Window = OLD) -> list[dict[str, Any]]:
    return [record for page in stream.pages(window) for record in page.records]


def shop_insights(shop: Path, since: date, until: date) -> dict[str, dict[str, Any]]:
    return {
        f"{r['ad_id']}:{r['date'].isoformat()}": r
        for r in read_table(shop, "fb_insights").to_pylist()
        if since <= r["date"] <= until
    }


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def test_date_range_maps_the_half_open_window_and_widens_to_the_lookback() -> None:
    stream = InsightsStream(client(_Dummy(), graph_url="http://127.0.0.1:1", access_token="t", ad_account_id="1"))
    day = datetime(2026, 5, 30, tzinfo=UTC)
    assert stream.date_range(Window(day, day + timedelta(days=2))) == (date(2026, 5, 25), date(2026, 5, 31))
    assert stream.date_range(Window(day, day + timedelta(days=2, microseconds=1)))[1] == date(2026, 6, 1)
    assert stream.date_range(OLD) == (date(2026, 4, 1), date(2026, 4, 14))
    assert list(stream.pages(Window(day, day))) == []


def test_window_returns_every_ad_day_row_with_the_lookback(shared: FacebookSandbox, shop: Path) -> None:
    session = RecordingSession()
    stream = InsightsStream(client(shared, session))
    window = Window(datetime(2026, 5, 30, tzinfo=UTC), NOW)  # two days asked, seven pulled
    got = rows(stream, window)

    want = shop_insights(shop, TODAY - timedelta(days=6), TODAY)
    ids = [stream.record_id(r) for r in got]
    assert len(ids) == len(set(ids)) and set(ids) == set(want)
    assert len(session.calls) == -(-len(want) // 40) > 1  # paged to the end, once
    for record in got:
        final = want[stream.record_id(record)]
        assert record["date_start"] == record["date_stop"]  # daily rows
        assert stream.record_updated_at(record) is None
        assert 0 <= float(record["spend"]) <= final["spend_cents"] / 100  # still settling: never above final
        assert int(record["impressions"]) <= final["impressions"]


def test_settled_days_equal_the_shops_numbers(shared: FacebookSandbox, shop: Path) -> None:
    stream = InsightsStream(client(shared))
    got = rows(stream)
    want = shop_insights(shop, date(2026, 4, 1), date(2026, 4, 14))
    assert {stream.record_id(r) for r in got} == set(want) and len(got) == len(want)
    insight_fields, stat_fields = fb_fields("AdsInsights"), set(fb_fields("AdsActionStats"))
    for record in got:
        final = want[stream.record_id(record)]
        assert set(record) <= set(insight_fields)
        assert (record["spend"], record["impressions"], record["clicks"]) == (
            money(final["spend_cents"]),
            str(final["impressions"]),
            str(final["clicks"]),
        )
        actions = {a["action_type"]: a["value"] for a in record.get("actions", [])}
        assert actions.get("offsite_conversion.fb_pixel_purchase", "0") == str(final["purchases"])
        for stat in record.get("actions", []) + record.get("action_values", []):
            assert set(stat) <= stat_fields and isinstance(stat["value"], str)
        assert record["campaign_name"] and record["adset_name"] and record["ad_name"]


def test_async_report_run_equals_the_synchronous_path(shared: FacebookSandbox) -> None:
    sync_session, async_session = RecordingSession(), RecordingSession()
    sync_stream = InsightsStream(client(shared, sync_session, async_threshold_days=90))
    async_client = client(shared, async_session, async_threshold_days=7)
    async_stream = InsightsStream(async_client)
    assert not sync_stream.uses_async(OLD) and async_stream.uses_async(OLD)

    assert rows(async_stream) == rows(sync_stream)
    assert not any(call.method == "POST" for call in sync_session.calls)
    posts = [call for call in async_session.calls if call.method == "POST"]
    assert len(posts) == 1 and posts[0].path.endswith("/insights")
    polls = [call for call in async_session.calls if call.method == "GET" and call.path.count("/") == 2]
    assert len(polls) == 3  # "Job Not Started", "Job Running", "Job Completed"
    assert async_client.sleep.waits == [0.5, 1.0]  # type: ignore[attr-defined]  # doubling poll interval


def test_failed_report_run_is_a_clear_error(shared: FacebookSandbox) -> None:
    shared.fail_next_report_runs(1)
    with pytest.raises(ReportRunFailed, match="Job Failed") as caught:
        rows(InsightsStream(client(shared, async_threshold_days=7)))
    assert "2026-04-01..2026-04-14" in str(caught.value) and "rerun" in str(caught.value)


class _Dummy(SandboxServer):
    """A Graph stand-in whose report runs are always skipped (the Facebook sandbox never skips)."""

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/insights"):
            return Response.json({"report_run_id": "777"})
        if request.path.endswith("/777"):
            return Response.json({"id": "777", "async_status": "Job Skipped", "async_percent_completion": 0})
        return Response.json({"error": {"message": "no", "type": "GraphMethodException", "code": 100}}, 400)


def test_skipped_report_run_is_a_clear_error() -> None:
    with _Dummy() as server:
        dummy = client(
            server, graph_url=server.url, access_token="EAAdummy", ad_account_id="act_42", async_threshold_days=1
        )
        with pytest.raises(ReportRunFailed, match="Job Skipped") as caught:
            rows(InsightsStream(dummy))
    assert caught.value.url.endswith("/v25.0/777")


def test_metadata_streams_return_every_campaign_adset_and_ad(shared: FacebookSandbox, shop: Path) -> None:
    for stream in metadata_streams(client(shared, page_size=10)):
        got = rows(stream)
        table = read_table(shop, f"fb_{stream.name}").to_pylist()
        assert sorted(stream.record_id(r) for r in got) == sorted(r["id"] for r in table)
        for record in got:
            updated = stream.record_updated_at(record)
            assert updated is not None and datetime.fromisoformat(updated).tzinfo is not None
            assert record["status"] in fb_enum(f"adaccount{stream.name}_status_enum_param")
        if stream.name != "campaigns":
            assert all(record["campaign_id"] for record in got)
    with pytest.raises(ValueError, match="campaigns, adsets, ads"):
        MetadataStream(client(shared), "creatives")


def test_every_request_follows_the_node_specs(shared: FacebookSandbox) -> None:
    session = RecordingSession()
    rows(InsightsStream(client(shared, session)))
    rows(InsightsStream(client(shared, session, async_threshold_days=7)))
    for stream in metadata_streams(client(shared, session)):
        rows(stream)

    insights_params = fb_edge_params("AdAccount", "GET", "insights")
    assert insights_params == fb_edge_params("AdAccount", "POST", "insights")
    insight_fields, run_fields = set(fb_fields("AdsInsights")), set(fb_fields("AdReportRun"))
    levels = fb_enum("adaccountinsights_level_enum_param")
    statuses = set(fb_enum("adaccountcampaigns_effective_status_enum_param"))
    kinds: set[str] = set()
    for call in session.calls:
        assert all(len(values) == 1 for values in call.params.values())
        params = {name: values[0] for name, values in call.params.items()}
        assert "access_token" not in params and call.headers["Authorization"].startswith("Bearer ")
        node, _, edge = call.path.removeprefix("/v25.0/").partition("/")
        if node.startswith("act_") and edge == "insights":
            kinds.add(f"{call.method} insights")
            assert set(params) <= set(insights_params) | UNIVERSAL
            assert params["level"] in levels and params["level"] == "ad"
            assert params["time_increment"] == "1"
            time_range = json.loads(params["time_range"])
            assert set(time_range) == {"since", "until"}
            assert date.fromisoformat(time_range["since"]) <= date.fromisoformat(time_range["until"])
            assert set(params["fields"].split(",")) <= insight_fields
            assert int(params["limit"]) > 0
        elif node.startswith("act_"):
            kinds.add(edge)
            assert set(params) <= set(fb_edge_params("AdAccount", "GET", edge)) | UNIVERSAL
            assert set(json.loads(params["effective_status"])) <= statuses
        elif edge == "insights":
            kinds.add("run insights")
            assert set(params) <= {"limit", "after"}
        else:
            kinds.add("run status")
            assert set(params) == {"fields"} and set(params["fields"].split(",")) <= run_fields
    assert kinds == {"GET insights", "POST insights", "run status", "run insights", "campaigns", "adsets", "ads"}


def test_faults_still_yield_exactly_the_right_rows(
    shared: FacebookSandbox, shop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean = {edge: rows(MetadataStream(client(shared), edge)) for edge in ("campaigns", "ads")}
    clean["insights"] = rows(InsightsStream(client(shared)))
    # Seed 31 brings every kind of fault within ~20 requests.
    faults = Faults(
        error_rate=0.05, throttle_rate=0.05, timeout_rate=0.02, malformed_rate=0.02, stall_seconds=0.3, seed=31
    )
    caplog.set_level(logging.DEBUG)
    with FacebookSandbox(shop, faults=faults) as server:
        faulty = client(server, timeout=(1.0, 0.2), page_size=20)
        got = {edge: rows(MetadataStream(faulty, edge)) for edge in ("campaigns", "ads")}
        got["insights"] = rows(InsightsStream(faulty))
        injected = dict(server.faults_injected)
        token = server.access_token
    assert got == clean
    assert all(count > 0 for count in injected.values()), injected
    # Throttled answers say "regain access in 5 minutes": the client waits that long (here: a fake sleep).
    assert max(faulty.sleep.waits) >= 300  # type: ignore[attr-defined]
    assert "retry" in caplog.text and token not in caplog.text


def test_invalid_token_fails_fast_naming_the_setting(shared: FacebookSandbox) -> None:
    served = shared.requests_served
    with pytest.raises(AuthError) as caught:
        rows(InsightsStream(client(shared, access_token="EAAWrongTokenValue123")))
    assert shared.requests_served - served == 1
    message = str(caught.value)
    assert "FACEBOOK_ACCESS_TOKEN" in message and "190" in message
    assert "EAAWrongTokenValue123" not in message


def test_persistently_malformed_page_fails_with_url_and_sample(shop: Path) -> None:
    with FacebookSandbox(shop, faults=Faults(malformed_rate=1.0)) as server:
        with pytest.raises(MalformedResponse) as caught:
            rows(InsightsStream(client(server, max_attempts=3)))
        assert caught.value.url.startswith(f"{server.url}/v25.0/act_{server.ad_account_id}/insights")
        token = server.access_token
    message = str(caught.value)
    assert "/insights" in message and '{"data":[' in message and token not in message


def test_settings_refuse_bad_values() -> None:
    env = {
        "FACEBOOK_GRAPH_URL": "http://127.0.0.1:1",
        "FACEBOOK_ACCESS_TOKEN": "EAAx",
        "FACEBOOK_AD_ACCOUNT_ID": "act_9",
    }
    settings = FacebookSettings.from_env(env)
    assert settings.account == "act_9" and "EAAx" not in repr(settings)
    with pytest.raises(ValueError, match="FACEBOOK_ACCESS_TOKEN"):
        FacebookSettings.from_env({**env, "FACEBOOK_ACCESS_TOKEN": " "})
    with pytest.raises(ValueError, match="numeric"):
        FacebookSettings.from_env({**env, "FACEBOOK_AD_ACCOUNT_ID": "my-shop"})
