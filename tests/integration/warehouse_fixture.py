"""A small demo warehouse, built once and copied into each test that needs a fresh ledger.

:func:`build_warehouse` generates a demo shop, ingests it through the four sandboxes
(plain connectors, no Prefect), runs ``dbt build`` once as of a fixed instant and
records a quality gate. The result is cached in the directory given (a completed build
leaves a marker naming its parameters), so a module- or session-scoped fixture pays for
it once; :func:`fresh_data_dir` copies the warehouse and ``state.sqlite`` into a test's
own data dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from flows.sources import land_every_stream
from hearth.config import Settings
from hearth.quality import run_gate
from sandbox.generator import generate_shop
from sandbox.run import DEMO_SHOP_ENV, start_sandboxes

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
MARKER = "warehouse_built.json"
# The shared demo warehouse's instant (tests/integration/conftest.py): 18:00 UTC, daytime in
# most of the shop's time zones, so sequence send windows are open.
DEMO_NOW = datetime(2026, 11, 20, 18, tzinfo=UTC)


def _settings(data_dir: Path, extra: dict[str, str]) -> Settings:
    return Settings.from_env({**extra, "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)


def _ingest(data_dir: Path) -> None:
    """Land the whole demo shop in the raw zone through the real connectors."""
    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=1000.0)
    try:
        # The wall clock, not the shop's NOW: the extraction window must cover every record.
        land_every_stream(_settings(data_dir, sandboxes.env()), now=datetime.now(UTC))
    finally:
        sandboxes.stop()


def dbt(
    data_dir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` on the repository's project against ``data_dir``; raises with its output on failure.

    Target and log paths are the data dir's, where the transform flow keeps them
    (``Settings.dbt_target_dir``): tests building side by side never share ``dbt_project/target``.
    """
    env = {**os.environ, **(env or {}), "HEARTH_DATA_DIR": str(data_dir), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.pop("HEARTH_DBT_PROJECT_DIR", None)
    settings = _settings(data_dir, {})
    command = [str(DBT), *args, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
               "--target-path", str(settings.dbt_target_dir), "--log-path", str(settings.dbt_log_dir)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"dbt {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
        )
    return done


def dbt_build(data_dir: Path, as_of: datetime) -> None:
    dbt(data_dir, "build", "--vars", json.dumps({"as_of": as_of.isoformat()}))


def build_warehouse(cache_dir: Path, *, now: datetime, seed: int = 7, customers: int = 300) -> Path:
    """Build (or reuse) a demo data dir in ``cache_dir``: shop, raw zone, warehouse and a passed gate.

    Args:
        cache_dir: where the data dir lives; a finished build with the same parameters is reused.
        now: the shop's "now" and the dbt ``as_of`` (a fixed instant keeps the build deterministic).
        seed, customers: the demo-shop generator's parameters.

    Returns:
        The data dir (``HEARTH_DATA_DIR``) holding ``warehouse.duckdb`` and ``state.sqlite``.

    Raises:
        RuntimeError: dbt failed, or the quality gate did not pass on the fresh build.
    """
    params = {"now": now.isoformat(), "seed": seed, "customers": customers}
    marker = cache_dir / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return cache_dir
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True)
    generate_shop(cache_dir / "sandbox" / "shop", seed=seed, customers=customers, now=now)
    _ingest(cache_dir)
    dbt_build(cache_dir, now)
    gate = run_gate(_settings(cache_dir, dict(DEMO_SHOP_ENV)), now=now)
    if not gate.passed:
        raise RuntimeError(f"the quality gate failed on the demo warehouse: {gate.failures[:5]}")
    marker.write_text(json.dumps(params))
    return cache_dir


def fresh_data_dir(built: Path, target: Path) -> Path:
    """Copy the warehouse and ``state.sqlite`` (cursors, gate; no sends yet) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("warehouse.duckdb", "state.sqlite"):
        shutil.copy2(built / name, target / name)
    return target
