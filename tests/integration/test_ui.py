"""`hearth ui` end to end: a real Prefect server, Hearth's deployments, a worker run, and the real UI in Chromium.

The stack is the one `hearth ui` starts (on free ports, in tmp dirs, scheduler off so only
the test's run exists). One `ingest/hourly` run against the sandbox goes through the
worker; then headless Chromium renders the UI's deployments and runs pages and the test
reads the rendered DOM. Chromium comes from Debian (`.ci/run` installs it when missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flows.ui import WORK_POOL, UiStack

pytestmark = pytest.mark.slow

DEPLOYMENTS = {"ingest/hourly", "transform/hourly", "send/abandoned-cart", "send/replenishment", "send/winback",
               "daily-pipeline/daily", "backfill/manual"}  # fmt: skip
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    root = tmp_path_factory.mktemp("ui")
    ui = UiStack(root / "data", ui_port=0, sandbox_port_base=0, customers=40, seed=5, schedules=False,
                 worker_poll_seconds=1, log_dir=root / "logs", say=lambda _: None)  # fmt: skip
    ui.start()
    try:
        yield ui
    finally:
        ui.stop()


def _log_tail(stack: UiStack, name: str) -> str:
    path = (stack.log_dir or Path()) / f"{name}.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _run_deployment(stack: UiStack, name: str, timeout: float = 150) -> dict:
    api = stack.api_url
    deployment = requests.get(f"{api}/deployments/name/{name}", timeout=10).json()
    created = requests.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=10)
    created.raise_for_status()
    run_id = created.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = requests.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if run["state"]["type"] in TERMINAL:
            return run
        time.sleep(1)
    raise AssertionError(f"{name} did not finish in {timeout}s; worker log:\n{_log_tail(stack, 'worker')}")


def _render(url: str, profile: Path) -> str:
    """The DOM of ``url`` after the single-page app has rendered (virtual time lets its API calls finish)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: `.ci/run` installs it (apt-get install -y chromium)"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _text(dom: str) -> str:
    """The visible words of a rendered page, one space apart."""
    body = dom.split("<body", 1)[-1]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split()) + " "


def test_deployments_are_registered_on_the_local_pool(stack: UiStack) -> None:
    found = requests.post(f"{stack.api_url}/deployments/filter", json={}, timeout=10).json()
    flows = {f["id"]: f["name"] for f in requests.post(f"{stack.api_url}/flows/filter", json={}, timeout=10).json()}
    names = {f"{flows[d['flow_id']]}/{d['name']}" for d in found}
    assert names == DEPLOYMENTS
    assert {d["work_pool_name"] for d in found} == {WORK_POOL}
    env = (stack.data_dir / "sandbox" / "sandbox.env").read_text()
    assert "SHOPIFY_API_URL='http://127.0.0.1:" in env and f"HEARTH_DATA_DIR='{stack.data_dir}'" in env


def test_a_worker_run_shows_in_the_real_ui(stack: UiStack, tmp_path: Path) -> None:
    run = _run_deployment(stack, "ingest/hourly")
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{_log_tail(stack, 'worker')}"
    # The run really landed the sandbox shop in the raw zone the worker was pointed at.
    assert list((stack.data_dir / "raw" / "shopify" / "customers").glob("*.parquet"))

    deployments_page = _render(f"{stack.ui_url}/deployments", tmp_path / "profile-deployments")
    for name in ("hourly", "abandoned-cart", "replenishment", "winback", "daily", "manual"):
        assert f">{name}<" in deployments_page or f"{name}</" in deployments_page, name
    for flow_name in ("ingest", "transform", "send", "daily-pipeline", "backfill"):
        assert flow_name in deployments_page

    # The runs page counts the one run (its rows render lazily, on scroll); the run's own page shows it.
    runs_page = _text(_render(f"{stack.ui_url}/runs", tmp_path / "profile-runs"))
    assert "1 run " in runs_page and "hearth-local" in runs_page
    run_page = _render(f"{stack.ui_url}/runs/flow-run/{run['id']}", tmp_path / "profile-run")
    text = _text(run_page)
    assert f"{run['name']} hearth ingest" in text
    assert "Completed" in text and "Deployment hourly" in text and "Work Pool hearth-local" in text
