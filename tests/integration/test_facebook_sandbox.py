"""The Facebook Marketing API sandbox against Meta's node specs (Graph v25.0)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from sandbox._server import Faults
from sandbox.facebook import SANDBOX_ACCESS_TOKEN, SANDBOX_AD_ACCOUNT_ID, FacebookSandbox, contract
from sandbox.generator import generate_shop
from sandbox.shop.tables import read_table, write_table
from sandbox.specs import fb_edge_params, fb_enum, fb_fields

V = "v25.0"
ACT = f"act_{SANDBOX_AD_ACCOUNT_ID}"
FIRST, TODAY = date(2025, 5, 1), date(2025, 5, 20)
OLD_DAYS = {"since": "2025-05-01", "until": "2025-05-13"}  # settled: older than the 7 settling days
RECENT_DAYS = {"since": "2025-05-14", "until": "2025-05-20"}
INSIGHTS_FIELDS = fb_fields("AdsInsights")
ACTION_STATS_FIELDS = fb_fields("AdsActionStats")
CREATED = datetime(2025, 4, 1, tzinfo=UTC)
# ad id → (adset id, campaign id); the last ad starts delivering on May 5.
ADS = {"601": ("501", "401"), "602": ("501", "401"), "603": ("502", "401"), "604": ("503", "402")}


def final_rows() -> list[dict[str, Any]]:
    rows = []
    for n, ad_id in enumerate(ADS, start=1):
        for offset in range(20):
            day = FIRST + timedelta(days=offset)
            if ad_id == "604" and day < date(2025, 5, 5):
                continue
            purchases = 10 + (offset * n) % 7
            rows.append(
                {
                    "ad_id": ad_id,
                    "date": day,
                    "spend_cents": 10_000 * n + 137 * offset,
                    "impressions": 5_000 + 371 * offset * n,
                    "clicks": 200 + 3 * offset + n,
                    "purchases": purchases,
                    "purchase_value_cents": purchases * 2_599,
                }
            )
    return rows


def build_shop(shop_dir: Path, insights: list[dict[str, Any]] | None = None) -> None:
    campaigns = [
        {"id": "401", "name": "Prospecting", "objective": "OUTCOME_SALES", "status": "ACTIVE", "created_time": CREATED},
        {"id": "402", "name": "Retargeting", "objective": "OUTCOME_SALES", "status": "PAUSED", "created_time": CREATED},
    ]
    adsets = [
        {"id": s, "campaign_id": c, "name": f"Ad set {s}", "status": "ACTIVE", "created_time": CREATED}
        for s, c in (("501", "401"), ("502", "401"), ("503", "402"))
    ]
    ads = [
        {"id": a, "adset_id": s, "campaign_id": c, "name": f"Ad {a}", "status": "ACTIVE", "created_time": CREATED}
        for a, (s, c) in ADS.items()
    ]
    write_table(shop_dir, "fb_campaigns", pa.Table.from_pylist(campaigns))
    write_table(shop_dir, "fb_adsets", pa.Table.from_pylist(adsets))
    write_table(shop_dir, "fb_ads", pa.Table.from_pylist(ads))
    write_table(shop_dir, "fb_insights", pa.Table.from_pylist(insights or final_rows()))


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FacebookSandbox]:
    # One server for tests that do not depend on its counters: stopping one costs ~0.5 s.
    shop_dir = tmp_path_factory.mktemp("facebook-shop")
    build_shop(shop_dir)
    with FacebookSandbox(shop_dir) as server:
        yield server


@pytest.fixture
def fb(shared_server: FacebookSandbox) -> FacebookSandbox:
    return shared_server


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    build_shop(tmp_path)
    return tmp_path


@pytest.fixture
def own_server(shop: Path) -> Iterator[FacebookSandbox]:
    with FacebookSandbox(shop) as server:
        yield server


def get(server: FacebookSandbox, path: str, **params: Any) -> requests.Response:
    params.setdefault("access_token", SANDBOX_ACCESS_TOKEN)
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
    return requests.get(f"{server.url}/{V}/{path}", params=encoded, timeout=5)


def post(server: FacebookSandbox, path: str, method: str = "POST", **params: Any) -> requests.Response:
    params.setdefault("access_token", SANDBOX_ACCESS_TOKEN)
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
    return requests.request(method, f"{server.url}/{V}/{path}", data=encoded, timeout=5)


def page_all(first: requests.Response) -> tuple[list[dict[str, Any]], int]:
    """Follow paging.next (full URLs, as clients do) to the end: every row and the page count."""
    rows, pages, response = [], 0, first
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        pages += 1
        assert pages < 200
        if "next" not in body.get("paging", {}):
            return rows, pages
        response = requests.get(body["paging"]["next"], timeout=5)


def graph_error(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "error_subcode", "fbtrace_id"}
    assert error["code"] == code and error["type"] == "OAuthException" and error["fbtrace_id"]
    return error


def assert_insights_shape(row: dict[str, Any]) -> None:
    """Every field is an AdsInsights field and has the spec's type (numbers are strings)."""
    for name, value in row.items():
        declared = INSIGHTS_FIELDS[name]
        if declared == "string":
            assert isinstance(value, str), (name, value)
        else:
            assert declared == "list<AdsActionStats>", (name, declared)
            for stat in value:
                assert set(stat) <= set(ACTION_STATS_FIELDS) and all(isinstance(v, str) for v in stat.values())


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# -- the contract constants agree with Meta's specs ---------------------------------------------


def test_contract_constants_match_the_specs() -> None:
    assert set(INSIGHTS_FIELDS) == contract.INSIGHTS_FIELDS
    assert set(fb_edge_params("AdAccount", "GET", "insights")) == contract.INSIGHTS_PARAMS
    assert set(fb_edge_params("AdAccount", "POST", "insights")) == contract.INSIGHTS_PARAMS
    assert contract.UNSUPPORTED_INSIGHTS_PARAMS < contract.INSIGHTS_PARAMS
    assert list(contract.LEVELS) == fb_enum("adaccountinsights_level_enum_param")
    assert list(contract.DATE_PRESETS) == fb_enum("adaccountinsights_date_preset_enum_param")
    assert list(contract.ACTION_ATTRIBUTION_WINDOWS) == fb_enum(
        "adaccountinsights_action_attribution_windows_enum_param"
    )
    assert list(contract.ACTION_BREAKDOWNS) == fb_enum("adaccountinsights_action_breakdowns_enum_param")
    assert list(contract.ACTION_REPORT_TIMES) == fb_enum("adaccountinsights_action_report_time_enum_param")
    assert set(fb_fields("AdReportRun")) == contract.REPORT_RUN_FIELDS
    assert set(fb_fields("CustomAudience")) == contract.AUDIENCE_FIELDS
    assert list(contract.AUDIENCE_SUBTYPES) == fb_enum("adaccountcustomaudiences_subtype_enum_param")
    assert list(contract.CUSTOMER_FILE_SOURCES) == fb_enum("adaccountcustomaudiences_customer_file_source_enum_param")
    for method, edge in (("POST", "users"), ("DELETE", "users"), ("POST", "usersreplace")):
        assert set(fb_edge_params("CustomAudience", method, edge)) == contract.USERS_PARAMS
    for edge, params in contract.METADATA_PARAMS.items():
        assert params == set(fb_edge_params("AdAccount", "GET", edge))
    assert list(contract.EFFECTIVE_STATUSES) == fb_enum("adaccountcampaigns_effective_status_enum_param")


# -- insights ---------------------------------------------------------------------------------


def test_ad_level_daily_rows_are_final_for_old_days(fb: FacebookSandbox) -> None:
    fields = (
        "campaign_id,campaign_name,adset_id,adset_name,ad_id,ad_name,spend,impressions,clicks,actions,action_values"
    )
    response = get(fb, f"{ACT}/insights", level="ad", time_increment=1, time_range=OLD_DAYS, fields=fields, limit=7)
    rows, pages = page_all(response)
    expected = {(r["ad_id"], r["date"].isoformat()): r for r in final_rows() if r["date"] <= date(2025, 5, 13)}
    assert len(rows) == len(expected) == 48 and pages == 7
    assert sorted((r["ad_id"], r["date_start"]) for r in rows) == sorted(expected)  # each (ad, day) once
    assert [(r["date_start"], r["ad_id"]) for r in rows] == sorted((r["date_start"], r["ad_id"]) for r in rows)
    for row in rows:
        assert_insights_shape(row)
        final = expected[(row["ad_id"], row["date_start"])]
        assert row["date_stop"] == row["date_start"]
        assert (row["adset_id"], row["campaign_id"]) == ADS[row["ad_id"]]
        assert row["ad_name"] == f"Ad {row['ad_id']}" and row["adset_name"] == f"Ad set {row['adset_id']}"
        assert row["spend"] == money(final["spend_cents"])
        assert (row["impressions"], row["clicks"]) == (str(final["impressions"]), str(final["clicks"]))
        actions = {a["action_type"]: a["value"] for a in row["actions"]}
        assert actions == {
            "link_click": str(final["clicks"]),
            "offsite_conversion.fb_pixel_purchase": str(final["purchases"]),
            "omni_purchase": str(final["purchases"]),
            "purchase": str(final["purchases"]),
        }
        values = {a["action_type"]: a["value"] for a in row["action_values"]}
        assert values["offsite_conversion.fb_pixel_purchase"] == money(final["purchase_value_cents"])


def test_paging_links_and_cursors(fb: FacebookSandbox) -> None:
    first = get(fb, f"{ACT}/insights", level="ad", time_increment=1, time_range=OLD_DAYS, limit=20).json()
    assert len(first["data"]) == 20 and set(first["paging"]["cursors"]) == {"before", "after"}
    assert first["paging"]["next"].startswith(f"{fb.url}/{V}/{ACT}/insights?") and "previous" not in first["paging"]
    second = get(
        fb,
        f"{ACT}/insights",
        level="ad",
        time_increment=1,
        time_range=OLD_DAYS,
        limit=20,
        after=first["paging"]["cursors"]["after"],
    ).json()
    assert second["data"] == requests.get(first["paging"]["next"], timeout=5).json()["data"]
    back = requests.get(second["paging"]["previous"], timeout=5).json()
    assert back["data"] == first["data"]
    last = get(
        fb,
        f"{ACT}/insights",
        level="ad",
        time_increment=1,
        time_range=OLD_DAYS,
        limit=20,
        after=second["paging"]["cursors"]["after"],
    ).json()
    assert len(last["data"]) == 8 and "next" not in last["paging"]


def test_paging_a_query_is_one_pull(own_server: FacebookSandbox) -> None:
    rows, pages = page_all(
        get(
            own_server,
            f"{ACT}/insights",
            level="ad",
            time_increment=1,
            time_range=RECENT_DAYS,
            fields="ad_id,spend,actions",
            limit=5,
        )
    )
    assert pages == 6 and len(rows) == 28 and own_server.pulls == 1


def test_aggregate_levels_and_increments(fb: FacebookSandbox) -> None:
    finals = [r for r in final_rows() if r["date"] <= date(2025, 5, 13)]
    campaigns = get(
        fb,
        f"{ACT}/insights",
        level="campaign",
        time_range=OLD_DAYS,
        fields="campaign_id,campaign_name,objective,ad_id,spend,impressions",
    ).json()["data"]
    assert [r["campaign_id"] for r in campaigns] == ["401", "402"]
    prospecting = [r for r in finals if ADS[r["ad_id"]][1] == "401"]
    assert campaigns[0] == {
        "campaign_id": "401",
        "campaign_name": "Prospecting",
        "objective": "OUTCOME_SALES",  # no ad_id at campaign level
        "spend": money(sum(r["spend_cents"] for r in prospecting)),
        "impressions": str(sum(r["impressions"] for r in prospecting)),
        "date_start": "2025-05-01",
        "date_stop": "2025-05-13",
    }
    weekly = get(
        fb, f"{ACT}/insights", level="account", time_increment=7, time_range=OLD_DAYS, fields="account_id,clicks"
    ).json()["data"]
    assert [(r["date_start"], r["date_stop"]) for r in weekly] == [
        ("2025-05-01", "2025-05-07"),
        ("2025-05-08", "2025-05-13"),
    ]
    assert weekly[1]["clicks"] == str(sum(r["clicks"] for r in finals if r["date"] >= date(2025, 5, 8)))
    assert weekly[0]["account_id"] == SANDBOX_AD_ACCOUNT_ID
    monthly = get(
        fb,
        f"{ACT}/insights",
        level="adset",
        time_increment="monthly",
        time_range={"since": "2025-04-20", "until": "2025-05-10"},
        fields="adset_id",
    ).json()["data"]
    assert [(r["adset_id"], r["date_start"], r["date_stop"]) for r in monthly] == [
        ("501", "2025-05-01", "2025-05-10"),
        ("502", "2025-05-01", "2025-05-10"),
        ("503", "2025-05-01", "2025-05-10"),
    ]  # April had no delivery: no April rows


def test_default_query_is_last_30_days_of_impressions_and_spend(fb: FacebookSandbox) -> None:
    (row,) = get(fb, f"{ACT}/insights").json()["data"]
    assert set(row) == {"impressions", "spend", "date_start", "date_stop"}
    assert (row["date_start"], row["date_stop"]) == ("2025-04-20", "2025-05-19")


@pytest.mark.parametrize(
    ("preset", "since", "until"),
    [
        ("today", "2025-05-20", "2025-05-20"),
        ("yesterday", "2025-05-19", "2025-05-19"),
        ("last_7d", "2025-05-13", "2025-05-19"),
        ("this_month", "2025-05-01", "2025-05-20"),
        ("last_month", "2025-04-01", "2025-04-30"),
        ("this_quarter", "2025-04-01", "2025-05-20"),
        ("this_week_mon_today", "2025-05-19", "2025-05-20"),  # 2025-05-20 is a Tuesday
        ("last_week_sun_sat", "2025-05-11", "2025-05-17"),
        ("maximum", "2025-05-01", "2025-05-20"),
    ],
)
def test_date_presets_are_relative_to_the_shops_today(fb: FacebookSandbox, preset: str, since: str, until: str) -> None:
    rows = get(fb, f"{ACT}/insights", date_preset=preset, fields="spend").json()["data"]
    assert [(r["date_start"], r["date_stop"]) for r in rows] == ([(since, until)] if until >= "2025-05-01" else [])


@pytest.mark.parametrize(
    "params",
    [
        {"fields": "spend,made_up_metric"},
        {"level": "creative"},
        {"date_preset": "last_2d"},
        {"time_increment": "0"},
        {"time_increment": "91"},
        {"time_increment": "weekly"},
        {"time_range": "2025-05-01..2025-05-10"},
        {"time_range": {"since": "2025-05-10", "until": "2025-05-01"}},
        {"time_range": {"since": "May 1"}},
        {"breakdowns": "age"},
        {"action_breakdowns": "action_device"},
        {"action_attribution_windows": "3d_click"},
        {"limit": "-1"},
        {"after": "not-a-cursor!"},
        {"colour": "blue"},
    ],
)
def test_bad_insights_parameters_are_code_100(fb: FacebookSandbox, params: dict[str, Any]) -> None:
    assert graph_error(get(fb, f"{ACT}/insights", **params), 400, 100)["message"].startswith("(#100)")


# -- attribution settling -------------------------------------------------------------------------


def test_recent_days_settle_towards_final_and_old_days_never_change(own_server: FacebookSandbox) -> None:
    def pull(time_range: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
        rows, _ = page_all(
            get(
                own_server,
                f"{ACT}/insights",
                level="ad",
                time_increment=1,
                time_range=time_range,
                fields="ad_id,spend,impressions,actions",
                limit=500,
            )
        )
        return {(r["ad_id"], r["date_start"]): r for r in rows}

    def purchases(row: dict[str, Any]) -> int:
        return int(next(a["value"] for a in row["actions"] if a["action_type"] == "purchase"))

    finals = {(r["ad_id"], r["date"].isoformat()): r for r in final_rows()}
    old_before, first, second, old_after = pull(OLD_DAYS), pull(RECENT_DAYS), pull(RECENT_DAYS), pull(OLD_DAYS)
    assert old_before == old_after
    assert first.keys() == second.keys() and first != second
    for key, row in first.items():
        final = finals[key]
        assert purchases(row) <= purchases(second[key]) <= final["purchases"]
        assert float(row["spend"]) <= float(second[key]["spend"]) <= final["spend_cents"] / 100
    # today (k = 7) on pull 2 of the recent range (the server's pull 2): conversions at 1 - 7/28
    today = first[("601", "2025-05-20")]
    assert purchases(today) == finals[("601", "2025-05-20")]["purchases"] * 21 // 28
    oldest_settling = second[("601", "2025-05-14")]  # k = 1, pull 3: 1 - 1/42
    assert purchases(oldest_settling) == finals[("601", "2025-05-14")]["purchases"] * 41 // 42


def test_a_day_is_final_once_it_ages_out(own_server: FacebookSandbox, shop: Path) -> None:
    day = {"since": "2025-05-14", "until": "2025-05-14"}
    settling = get(own_server, f"{ACT}/insights", level="ad", time_increment=1, time_range=day, fields="spend").json()
    later = final_rows() + [{**r, "date": r["date"] + timedelta(days=1)} for r in final_rows() if r["date"] == TODAY]
    build_shop(shop, later)
    own_server.reload()
    settled = get(own_server, f"{ACT}/insights", level="ad", time_increment=1, time_range=day, fields="spend").json()
    finals = [money(r["spend_cents"]) for r in final_rows() if r["date"] == date(2025, 5, 14)]
    assert [r["spend"] for r in settled["data"]] == finals != [r["spend"] for r in settling["data"]]


# -- async report runs ----------------------------------------------------------------------------


def test_report_run_lifecycle(shop: Path) -> None:
    with FacebookSandbox(shop, async_polls_to_complete=3) as server:
        created = post(
            server, f"{ACT}/insights", level="ad", time_increment=1, time_range=OLD_DAYS, fields="ad_id,spend,clicks"
        )
        run_id = created.json()["report_run_id"]
        early = get(server, f"{run_id}/insights")
        assert "Job Not Started" in graph_error(early, 400, 100)["message"]
        polls = [get(server, run_id).json() for _ in range(3)]
        assert [(p["async_status"], p["async_percent_completion"]) for p in polls] == [
            ("Job Not Started", 0),
            ("Job Running", 33),
            ("Job Completed", 100),
        ]
        assert set(polls[-1]) <= set(fb_fields("AdReportRun"))
        assert (polls[-1]["id"], polls[-1]["date_start"], polls[-1]["date_stop"]) == (run_id, *OLD_DAYS.values())
        rows, pages = page_all(get(server, f"{run_id}/insights", limit=10))
        synchronous, _ = page_all(
            get(
                server,
                f"{ACT}/insights",
                level="ad",
                time_increment=1,
                time_range=OLD_DAYS,
                fields="ad_id,spend,clicks",
                limit=100,
            )
        )
        assert rows == synchronous and pages == 5
        assert get(server, run_id, fields="id,async_status,made_up").status_code == 400


def test_failed_report_run(fb: FacebookSandbox) -> None:
    fb.fail_next_report_runs()
    run_id = post(fb, f"{ACT}/insights", time_range=OLD_DAYS).json()["report_run_id"]
    statuses = [get(fb, run_id, fields="async_status").json() for _ in range(fb.async_polls_to_complete)]
    assert statuses[-1]["async_status"] == "Job Failed" and statuses[-1]["error_message"]
    assert graph_error(get(fb, f"{run_id}/insights"), 400, 100)
    healthy = post(fb, f"{ACT}/insights", time_range=OLD_DAYS).json()["report_run_id"]
    assert [get(fb, healthy).json()["async_status"] for _ in range(2)][-1] == "Job Completed"


def test_report_run_validates_parameters_up_front(fb: FacebookSandbox) -> None:
    graph_error(post(fb, f"{ACT}/insights", level="everything"), 400, 100)


# -- metadata ---------------------------------------------------------------------------------------


def test_campaigns_adsets_ads(fb: FacebookSandbox) -> None:
    campaigns = get(fb, f"{ACT}/campaigns", fields="name,status,objective,created_time").json()["data"]
    assert campaigns[0] == {
        "id": "401",
        "name": "Prospecting",
        "status": "ACTIVE",
        "objective": "OUTCOME_SALES",
        "created_time": "2025-04-01T00:00:00+0000",
    }
    paused = get(fb, f"{ACT}/campaigns", effective_status=["PAUSED"]).json()["data"]
    assert paused == [{"id": "402"}]
    adsets = get(fb, f"{ACT}/adsets", fields="campaign_id").json()["data"]
    assert [(a["id"], a["campaign_id"]) for a in adsets] == [("501", "401"), ("502", "401"), ("503", "402")]
    ads, pages = page_all(get(fb, f"{ACT}/ads", fields="adset_id,campaign_id,name", limit=3))
    assert pages == 2 and {a["id"]: (a["adset_id"], a["campaign_id"]) for a in ads} == ADS
    graph_error(get(fb, f"{ACT}/ads", fields="id,daily_budget_typo"), 400, 100)
    graph_error(get(fb, f"{ACT}/campaigns", effective_status=["SLEEPING"]), 400, 100)


# -- custom audiences -------------------------------------------------------------------------------


def sha(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def new_audience(server: FacebookSandbox) -> str:
    response = post(
        server,
        f"{ACT}/customaudiences",
        name="Win-back",
        subtype="CUSTOM",
        customer_file_source="USER_PROVIDED_ONLY",
        description="lapsed buyers",
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def count(server: FacebookSandbox, audience_id: str) -> int:
    body = get(server, audience_id, fields="id,name,approximate_count_lower_bound,approximate_count_upper_bound").json()
    assert body["name"] == "Win-back" and body["approximate_count_lower_bound"] == body["approximate_count_upper_bound"]
    return body["approximate_count_lower_bound"]


def test_audience_upload_accepts_hashes(fb: FacebookSandbox) -> None:
    audience = new_audience(fb)
    hashes = [sha(f"person{i}@example.com") for i in range(5)]
    added = post(fb, f"{audience}/users", payload={"schema": "EMAIL_SHA256", "data": hashes})
    body = added.json()
    assert body["audience_id"] == audience and body["num_received"] == 5 and body["num_invalid_entries"] == 0
    assert set(body) == {"audience_id", "session_id", "num_received", "num_invalid_entries", "invalid_entry_samples"}
    assert count(fb, audience) == 5
    # a JSON body works too, and removing members shrinks the audience
    removed = requests.delete(
        f"{fb.url}/{V}/{audience}/users",
        timeout=5,
        json={"access_token": SANDBOX_ACCESS_TOKEN, "payload": {"schema": "EMAIL_SHA256", "data": hashes[:2]}},
    )
    assert removed.status_code == 200 and count(fb, audience) == 3


@pytest.mark.parametrize(
    "data",
    [
        ["person@example.com"],
        [sha("a@example.com"), " Person@Example.com "],
        [sha("a@example.com").upper()],
        [sha("a@example.com")[:40]],
        [],
        [sha(f"{i}@x.io") for i in range(10_001)],
    ],
    ids=["raw-email", "one-raw-among-hashes", "uppercase-hex", "short", "empty", "over-10000"],
)
def test_audience_upload_refuses_anything_but_hashes(fb: FacebookSandbox, data: list[str]) -> None:
    audience = new_audience(fb)
    response = post(fb, f"{audience}/users", payload={"schema": "EMAIL_SHA256", "data": data})
    error = graph_error(response, 400, 100)
    assert "example.com" not in error["message"].lower()  # the raw value is never echoed
    assert count(fb, audience) == 0  # nothing of the request was stored


def test_audience_schema_and_creation_rules(fb: FacebookSandbox) -> None:
    audience = new_audience(fb)
    graph_error(post(fb, f"{audience}/users", payload={"schema": "PHONE_SHA256", "data": [sha("1")]}), 400, 100)
    graph_error(post(fb, f"{ACT}/customaudiences", name="x", subtype="CUSTOM"), 400, 100)  # no file source
    graph_error(
        post(fb, f"{ACT}/customaudiences", name="x", subtype="NOPE", customer_file_source="USER_PROVIDED_ONLY"),
        400,
        100,
    )
    graph_error(get(fb, audience, fields="id,approximate_size"), 400, 100)
    assert post(fb, audience, method="DELETE").json() == {"success": True}
    graph_error(get(fb, audience), 400, 100)


def test_usersreplace_session_swaps_members_on_the_last_batch(fb: FacebookSandbox) -> None:
    audience = new_audience(fb)
    post(fb, f"{audience}/users", payload={"schema": "EMAIL_SHA256", "data": [sha("old@example.com")]})
    batches = [[sha("a@example.com"), sha("b@example.com")], [sha("c@example.com")]]
    for seq, batch in enumerate(batches, start=1):
        session = {"session_id": 777, "batch_seq": seq, "last_batch_flag": seq == len(batches)}
        body = post(
            fb, f"{audience}/usersreplace", payload={"schema": "EMAIL_SHA256", "data": batch}, session=session
        ).json()
        assert body["session_id"] == 777
        assert count(fb, audience) == (1 if seq == 1 else 3)  # old members stay until the last batch
    assert body["num_received"] == 3
    graph_error(
        post(fb, f"{audience}/usersreplace", payload={"schema": "EMAIL_SHA256", "data": batches[0]}), 400, 100
    )  # a replace needs a session


# -- auth, versions, headers, faults -----------------------------------------------------------------


def test_auth_errors(fb: FacebookSandbox) -> None:
    missing = requests.get(f"{fb.url}/{V}/{ACT}/insights", timeout=5)
    assert graph_error(missing, 400, 104)
    wrong = get(fb, f"{ACT}/insights", access_token="EAAwrong")
    assert graph_error(wrong, 400, 190)["message"].startswith("Invalid OAuth access token")
    bearer = requests.get(
        f"{fb.url}/{V}/{ACT}/campaigns", headers={"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}, timeout=5
    )
    assert bearer.status_code == 200


def test_versions_and_unknown_objects(fb: FacebookSandbox) -> None:
    old = requests.get(f"{fb.url}/v19.0/{ACT}/insights", params={"access_token": SANDBOX_ACCESS_TOKEN}, timeout=5)
    assert graph_error(old, 400, 2635)
    assert graph_error(get(fb, "act_999/insights"), 400, 100)["error_subcode"] == 33
    assert graph_error(get(fb, "123456/insights"), 400, 100)["error_subcode"] == 33


def test_usage_headers_on_every_response(fb: FacebookSandbox) -> None:
    for response in (get(fb, f"{ACT}/insights"), get(fb, f"{ACT}/ads"), get(fb, f"{ACT}/insights", level="x")):
        business = json.loads(response.headers["X-Business-Use-Case-Usage"])
        (usage,) = business[SANDBOX_AD_ACCOUNT_ID]
        assert {"type", "call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"} <= set(usage)
        assert 0 <= usage["call_count"] < 100
        account = json.loads(response.headers["X-Ad-Account-Usage"])
        assert 0 <= account["acc_id_util_pct"] < 100 and "reset_time_duration" in account
    assert (
        json.loads(get(fb, f"{ACT}/insights").headers["X-Business-Use-Case-Usage"])[SANDBOX_AD_ACCOUNT_ID][0]["type"]
        == "ads_insights"
    )


def _fault_run(shop: Path) -> list[tuple[int, int]]:
    seen = []
    with FacebookSandbox(shop, faults=Faults(error_rate=0.3, throttle_rate=0.3, seed=4)) as server:
        for path in [f"{ACT}/insights", f"{ACT}/campaigns"] * 8:
            response = get(server, path)
            if response.status_code == 200:
                seen.append((200, 0))
                continue
            error = graph_error(response, response.status_code, response.json()["error"]["code"])
            if error["code"] in (17, 80004):
                assert response.status_code == 400
                assert error["code"] == (17 if path.endswith("insights") else 80004)
                usage = json.loads(response.headers["X-Business-Use-Case-Usage"])[SANDBOX_AD_ACCOUNT_ID][0]
                assert usage["call_count"] == 100 and usage["estimated_time_to_regain_access"] > 0
            else:
                assert response.status_code == 500 and error["code"] in (1, 2) and error["is_transient"]
            seen.append((response.status_code, error["code"]))
    return seen


def test_faults_are_deterministic_and_graph_shaped(shop: Path) -> None:
    run = _fault_run(shop)
    assert run == _fault_run(shop)
    assert {code for _, code in run} >= {0, 17, 80004, 1, 2}


def test_env(fb: FacebookSandbox) -> None:
    assert fb.env() == {
        "FACEBOOK_GRAPH_URL": fb.url,
        "FACEBOOK_ACCESS_TOKEN": SANDBOX_ACCESS_TOKEN,
        "FACEBOOK_AD_ACCOUNT_ID": SANDBOX_AD_ACCOUNT_ID,
    }
    with pytest.raises(ValueError, match="digits only"):
        FacebookSandbox(Path("."), ad_account_id="act_1")


def test_generated_shop_pages_to_the_end(tmp_path: Path) -> None:
    generate_shop(tmp_path, seed=3, customers=300, now=datetime(2026, 6, 1, tzinfo=UTC))
    table = read_table(tmp_path, "fb_insights")
    with FacebookSandbox(tmp_path) as server:
        response = get(
            server,
            f"{ACT}/insights",
            level="ad",
            time_increment=1,
            date_preset="maximum",
            fields="ad_id,adset_id,campaign_id,spend,impressions,clicks,actions,action_values",
            limit=1000,
        )
        rows, pages = page_all(response)
        ads, _ = page_all(get(server, f"{ACT}/ads", fields="adset_id,campaign_id", limit=100))
    finals = {(r["ad_id"], r["date"].isoformat()): r for r in table.to_pylist()}
    keys = [(r["ad_id"], r["date_start"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(finals) and set(keys) == set(finals)
    assert pages == -(-len(finals) // 1000)
    parents = {a["id"]: (a["adset_id"], a["campaign_id"]) for a in ads}
    today = max(r["date"] for r in table.to_pylist())
    for row in rows:
        assert_insights_shape(row)
        assert (row["adset_id"], row["campaign_id"]) == parents[row["ad_id"]]
        if (today - date.fromisoformat(row["date_start"])).days >= 7:  # past the settling week: final
            assert row["spend"] == money(finals[(row["ad_id"], row["date_start"])]["spend_cents"])
