"""Issue 6, what must hold: scheduled runs overlap safely for an hour of schedule time.

One simulated hour — the busiest hour of prefect.yaml's schedules, plus a daily pipeline
started by hand at :00 — compressed to a minute of starts: every run is its own `hearth`
process (as a process worker starts it) against one Prefect API, over sandboxes that
answer some requests with 429s, 5xx and dropped connections. The daily pipeline is
SIGKILLed in the middle of its build (it holds the warehouse and dbt is writing to it)
and started again at once, as a retry. Builds skip dbt's own tests (see ``DBT_ENV``).

The world: a demo shop whose Shopify customers all live where it is mid-afternoon now
(so the send window is open whatever hour the test runs), and Hearth's state from before
the hour — the warehouse built, but every stream ingested only up to two days ago — so
the hour's runs have two days of orders, checkouts and ad days to catch up on, carts to
email, and builds to overlap with.

Then: no run failed (none on a lock; only sends refused while the killed build's warehouse
was half rebuilt, by design) and runs waited for the warehouse instead; no email
went out twice; the raw zone and the warehouse hold exactly what the shop holds; the
retried pipeline completed without extracting again what had landed before the kill.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prefect.settings
import pytest
from prefect import flow

from connectors.sendgrid import SendGridClient, SendGridSettings
from connectors.sendgrid.templates import list_dynamic_templates
from flows.sequences import _template_ids
from hearth.config import Settings
from hearth.ledger import SENT_STATUSES, STATUSES
from hearth.quality import latest_gate
from hearth.state import StateStore
from hearth.templates import template_payloads
from sandbox._server import Faults, Request, Response
from sandbox.run import DEMO_SHOP_ENV, start_sandboxes
from sandbox.sendgrid import SendGridSandbox
from sandbox.shop.tables import read_table
from tests.integration.ingest_helpers import expected_ids, landed
from tests.integration.soak_checks import (
    FlowRunView,
    children,
    exported_versions,
    flow_runs_since,
    ledger_rows,
    outbox_keys,
    table_artifact,
    warehouse_against_shop,
)
from tests.integration.soak_runs import COLLISION_SIGNS, REPO, Run, holds_warehouse
from tests.integration.soak_schedule import busiest_hour, by_name, load_deployments, runs_in_hour
from tests.integration.soak_world import land_baseline, make_shop

# The hour runs in the first test's set-up; on a busy machine it takes minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("prefect_harness")]

SEED, CUSTOMERS = 3, 300
SECONDS_PER_MINUTE = 1.0  # one minute of schedule time per real second: the hour's starts span 45 s
CATCH_UP = timedelta(days=2)  # the baseline's ingestion stopped this long before the shop's now
HOUR_TIMEOUT = 480.0  # seconds for the whole hour on a busy machine; a hang fails instead of blocking CI
FINAL = set(STATUSES) - {"reserved", "sending"}  # a key in any of these is never claimed again
# Every build runs the project's models, seeds and snapshot, but not dbt's 244 data and unit tests
# (test_dbt_* run those): the soak is about runs overlapping, and on two cores the tests would
# lengthen each of the hour's builds.
DBT_ENV = {"DBT_EXCLUDE_RESOURCE_TYPES": "test unit_test"}


def _faults(seed: int, *, throttle: bool) -> Faults:
    # Mild: enough that retries happen while runs overlap. Facebook's throttle answer says
    # "come back in 5 minutes" and the client honours it, so Facebook only fails otherwise.
    return Faults(error_rate=0.03, throttle_rate=0.03 if throttle else 0.0, timeout_rate=0.01, stall_seconds=0.2,
                  seed=seed)  # fmt: skip


@dataclass
class Kill:
    """The SIGKILL of the daily pipeline and the retry started after it."""

    retry: Run
    held_the_warehouse: bool  # still held by the pipeline the instant before the kill
    cursors: dict[tuple[str, str], str]  # the ingestion cursors then


@dataclass
class Soak:
    data_dir: Path
    shop_dir: Path
    cut: datetime
    started: datetime
    runs: list[Run]
    killed: Run
    kill: Kill
    faults: int
    outbox: list[dict[str, Any]]
    flow_runs: list[FlowRunView]

    def logs(self) -> str:
        return "\n".join(r.tail(1500) for r in self.runs)


def _schedule(logs: Path) -> list[Run]:
    """The daily pipeline by hand at :00, then the busiest hour's scheduled runs."""
    deployments = load_deployments(REPO / "prefect.yaml")
    hour = busiest_hour(deployments, datetime.now(UTC).date())
    runs = [Run("daily-pipeline/daily@0", by_name(deployments, "daily-pipeline/daily").argv, 0, logs / "pipeline.log")]
    for index, s in enumerate(runs_in_hour(deployments, hour)):
        runs.append(Run(f"{s.deployment}@{s.minute:g}", s.argv, s.minute, logs / f"{index:02d}-{s.argv[-1]}.log"))
    return runs


def _cursors(data_dir: Path) -> dict[tuple[str, str], str]:
    with StateStore(data_dir / "state.sqlite") as state, state.transaction() as conn:
        return {(r["source"], r["stream"]): r["value"] for r in conn.execute("select * from cursors").fetchall()}


def _kill_mid_build(pipeline: Run, data_dir: Path, env: dict[str, str], logs: Path, minute: float) -> Kill | None:
    """Kill the pipeline if its build holds the warehouse and dbt is writing (DuckDB's WAL is there)."""
    if not (holds_warehouse(data_dir, pipeline.pid) and (data_dir / "warehouse.duckdb.wal").exists()):
        return None
    cursors = _cursors(data_dir)
    held = holds_warehouse(data_dir, pipeline.pid)
    pipeline.kill()
    retry = Run("daily-pipeline/daily retry", pipeline.argv, minute, logs / "pipeline-retry.log")
    retry.start(env)
    return Kill(retry, held, cursors)


def _run_hour(runs: list[Run], env: dict[str, str], data_dir: Path, logs: Path) -> Kill:
    """Start every run at its minute, kill the pipeline mid-build and retry it, wait for every run."""
    pipeline, pending, kill = runs[0], sorted(runs, key=lambda r: r.minute), None
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        while pending and pending[0].minute * SECONDS_PER_MINUTE <= elapsed:
            pending.pop(0).start(env)
        if kill is None and pipeline.running:
            kill = _kill_mid_build(pipeline, data_dir, env, logs, elapsed / SECONDS_PER_MINUTE)
            if kill:
                runs.append(kill.retry)
        if kill is None and pipeline.returncode is not None:
            raise AssertionError("the daily pipeline ended before it could be killed mid-build\n" + pipeline.tail())
        if kill and not pending and not any(r.running for r in runs):
            return kill
        if elapsed > HOUR_TIMEOUT:  # the fixture kills what is still running
            raise AssertionError(f"the hour did not end in {HOUR_TIMEOUT:.0f}s\n" + "\n".join(r.tail() for r in runs))
        time.sleep(0.05)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    root = tmp_path_factory.mktemp("soak")
    data_dir, logs = root / "data", root / "logs"
    # A few minutes back: every record of the shop is older than any ingestion window's end.
    now = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    shop_dir = data_dir / "sandbox" / "shop"
    make_shop(shop_dir, now=now, seed=SEED, customers=CUSTOMERS)
    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=50.0)
    runs: list[Run] = []
    try:
        land_baseline(data_dir, {**sandboxes.env(), **DBT_ENV}, now - CATCH_UP)
        for index, server in enumerate(sandboxes.servers):
            server.faults = _faults(100 + index, throttle=server is not sandboxes.facebook)
        env = {
            **os.environ,
            **sandboxes.env(),
            "HEARTH_DATA_DIR": str(data_dir),
            "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),  # the session's test server
            # Quiet, but a run's own INFO lines ("warehouse busy … waiting for it") reach its log.
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
            "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
            "COLUMNS": "300",  # one log line per line
            **DBT_ENV,
        }
        env.pop("HEARTH_DBT_PROJECT_DIR", None)
        runs.extend(_schedule(logs))
        started = datetime.now(UTC) - timedelta(seconds=1)
        kill = _run_hour(runs, env, data_dir, logs)
        outbox = list(sandboxes.sendgrid.outbox())
        faults = sum(sum(s.faults_injected.values()) for s in sandboxes.servers)
    finally:
        for run in runs:  # a failed hour leaves no run behind
            if run.running:
                run.kill()
        sandboxes.stop()
    yield Soak(data_dir, shop_dir, now - CATCH_UP, started, runs, runs[0], kill, faults, outbox,
               flow_runs_since(started))  # fmt: skip


# -- 1. no failed run; runs waited for the warehouse instead ------------------------------------------


# hearth.quality.store.record_build_started: a build killed half-way leaves this verdict, and sends
# refuse (a Failed run, like any failed gate) until the retried build passes. That is by design.
HALF_BUILT = "has not finished (still running, or it died half-way)"


def _refused_half_built(run: Run) -> bool:
    return run.argv[0] == "send" and run.returncode != 0 and HALF_BUILT in run.output()


def test_every_run_completes_and_none_fails_on_a_lock(soak: Soak) -> None:
    assert soak.killed.returncode == -9
    failed = [r for r in soak.runs if r is not soak.killed and r.returncode != 0 and not _refused_half_built(r)]
    assert [(r.label, r.returncode) for r in failed] == [], soak.logs()
    refused = [r for r in soak.runs if _refused_half_built(r)]
    for run in soak.runs:
        assert not [sign for sign in COLLISION_SIGNS if sign in run.output()], run.tail()
    assert soak.faults > 0, "the sandboxes' faults must have bitten during the hour"

    # In Prefect: all Completed but the killed process's pipeline and the build it was in (no one
    # is left to report them; a worker would mark them Crashed).
    not_completed = sorted((r.flow, r.state) for r in soak.flow_runs if r.state != "COMPLETED")
    assert not_completed == sorted([("daily-pipeline", "RUNNING"), ("transform", "RUNNING")]
                                   + [("send", "FAILED")] * len(refused))  # fmt: skip
    [killed] = [r for r in soak.flow_runs if r.flow == "daily-pipeline" and r.state == "RUNNING"]
    assert sorted((r.flow, r.state) for r in children(soak.flow_runs, killed.id)) == [
        ("ingest", "COMPLETED"), ("transform", "RUNNING")]  # fmt: skip
    scheduled = Counter(r.argv[0] for r in soak.runs if r.argv[0] != "run")
    assert Counter(r.flow for r in soak.flow_runs) == {
        "daily-pipeline": 2,
        "ingest": scheduled["ingest"] + 2,  # and one in each pipeline
        "transform": scheduled["transform"] + 2,
        "send": scheduled["send"] + 3,  # and the retried pipeline's three sequences
    }


def test_runs_waited_for_the_warehouse_instead_of_failing(soak: Soak) -> None:
    # "warehouse busy (pid N since …); waiting for it": the run that logs it waits for run N.
    waits = {(r.pid, int(line.split("warehouse busy (pid ", 1)[1].split()[0]))
             for r in soak.runs for line in r.output().splitlines() if "warehouse busy (pid " in line}  # fmt: skip
    builders = {r.pid for r in soak.runs if r.argv[0] in ("transform", "run")}
    assert any(waiter != holder and holder in builders for waiter, holder in waits), waits


# -- 2. never twice ------------------------------------------------------------------------------------


def test_no_email_is_sent_twice_and_every_key_ends_final(soak: Soak) -> None:
    rows, sent = ledger_rows(soak.data_dir), Counter(outbox_keys(soak.outbox))
    assert sent, "the hour should have sent emails"
    assert [key for key, n in sent.items() if n > 1] == []
    # One email per person, sequence, step and trigger — even had a rebuild re-keyed the person.
    mailed = Counter((r["email"].lower(), r["sequence"], r["step"], r["trigger_id"])
                     for r in rows.values() if r["status"] in SENT_STATUSES)  # fmt: skip
    assert [m for m, n in mailed.items() if n > 1] == []
    assert {r["status"] for r in rows.values()} <= FINAL
    accepted = {k for k, r in rows.items() if r["status"] == "accepted"}
    assert accepted <= set(sent) <= {k for k, r in rows.items() if r["status"] in SENT_STATUSES}
    # Carts abandoned after the baseline reached the warehouse during the hour and were emailed in it.
    checkouts = read_table(soak.shop_dir, "checkouts")
    created = dict(zip(map(str, checkouts.column("id").to_pylist()), checkouts.column("created_at").to_pylist(),
                       strict=True))  # fmt: skip
    assert any(rows[k]["sequence"] == "abandoned_cart" and created[rows[k]["trigger_id"]] > soak.cut for k in accepted)


# -- 3. no lost rows ---------------------------------------------------------------------------------


def test_the_raw_zone_and_the_warehouse_hold_exactly_the_shop(soak: Soak) -> None:
    for (source, stream), ids in expected_ids(soak.shop_dir).items():
        found, versions, _ = landed(soak.data_dir / "raw", source, stream)
        assert found == ids, f"{source}/{stream}: {len(ids - found)} missing, {len(found - ids)} extra"
        assert versions == len(ids), f"{source}/{stream} landed versions that do not exist"
    for compared in warehouse_against_shop(soak.data_dir / "warehouse.duckdb", soak.shop_dir):
        assert compared.matches, compared.problems()
    # Every version of every ledger row reached the raw zone (sequence results are rebuilt from there).
    exported = exported_versions(soak.data_dir / "raw")
    rows = ledger_rows(soak.data_dir).items()
    assert [k for k, r in rows if (k, datetime.fromisoformat(r["updated_at"])) not in exported] == []
    gate = latest_gate(Settings.from_env({"HEARTH_DATA_DIR": str(soak.data_dir)}, dotenv=False))
    assert gate is not None and gate.passed and gate.checked_at > soak.started


# -- 4. crash and retry --------------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ingest_summary(soak: Soak, pipeline: FlowRunView) -> dict[tuple[str, str], dict[str, Any]]:
    """Per stream, what the pipeline's ingest landed and for which window (its Prefect artifact)."""
    [ingest] = children(soak.flow_runs, pipeline.id, "ingest")
    return {(row["source"], row["stream"]): row for row in table_artifact(ingest.id, "ingest-summary")}


def test_the_killed_pipeline_is_retried_without_redoing_finished_work(soak: Soak) -> None:
    assert soak.kill.held_the_warehouse, "the kill should fall inside the pipeline's build"
    assert soak.kill.retry.returncode == 0, soak.kill.retry.tail()
    pipelines = [r for r in soak.flow_runs if r.flow == "daily-pipeline"]
    killed, retried = (next(r for r in pipelines if r.state == state) for state in ("RUNNING", "COMPLETED"))
    first, again = (_ingest_summary(soak, pipeline) for pipeline in (killed, retried))
    assert first.keys() == again.keys() and first.keys() <= soak.kill.cursors.keys()
    assert {row["status"] for row in [*first.values(), *again.values()]} == {"ok"}
    for stream, row in again.items():
        # Each stream goes on from where the killed run's load moved its cursor (cursors keep whole
        # seconds), never from the start: nothing landed before the kill is extracted again.
        landed_until = _instant(first[stream]["window_end"]).replace(microsecond=0)
        assert _instant(soak.kill.cursors[stream]) >= landed_until
        assert _instant(row["window_start"]) >= landed_until, (stream, first[stream], row)
        # The shop stopped changing before the hour, so the retry finds nothing new — except
        # Facebook, whose last 7 days are pulled again on every run (attribution settles).
        if stream[0] != "facebook":
            assert row["rows"] == 0, (stream, row)


# -- 5. a fault the soak met -------------------------------------------------------------------------


class LostTemplateCreate(SendGridSandbox):
    """SendGrid that creates the first template it is asked for but answers 503: an unknown outcome."""

    lost = False

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if request.method == "POST" and request.path.rstrip("/") == "/v3/templates" and not self.lost:
            self.lost = True
            return self.server_error(request)
        return response


def test_a_template_create_answered_with_a_5xx_is_settled_by_pushing_again(tmp_path: Path) -> None:
    # Every send run pushes the templates first; a lost create used to fail the whole run.
    sandbox = LostTemplateCreate(tmp_path / "sendgrid")
    sandbox.start()
    try:
        env = {**DEMO_SHOP_ENV, **sandbox.env(), "HEARTH_DATA_DIR": str(tmp_path)}
        settings = Settings.from_env(env, dotenv=False)
        client = SendGridClient(SendGridSettings.from_env(env))

        @flow
        def push() -> dict[str, str]:  # inside a flow run, as the send flow calls it
            return _template_ids(client, settings)

        ids = push()
        listed = list_dynamic_templates(client)
        versions = {t["id"]: len(client.request("GET", f"templates/{t['id']}")["versions"]) for t in listed}
    finally:
        sandbox.stop()
    assert sandbox.lost
    # The template the lost call created was adopted, not created twice, and got its one version.
    assert sorted(t["name"] for t in listed) == sorted(p.name for p in template_payloads())
    assert set(ids.values()) == set(versions) and set(versions.values()) == {1}
