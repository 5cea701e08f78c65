"""SIGKILL at random moments, then rerun: nothing lost, nothing staging cannot de-duplicate."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from sandbox.generator import generate_shop
from sandbox.run import start_sandboxes
from tests.integration.ingest_helpers import expected_ids, landed

ROOT = Path(__file__).resolve().parents[2]


def run_child(env: dict[str, str], kill_after: float | None) -> int:
    child = subprocess.Popen([sys.executable, "-m", "tests.integration.ingest_child"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    if kill_after is None:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err.decode()[-2000:]
        return child.returncode
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return child.returncode


def test_killed_ingest_reruns_to_exactly_the_shop(tmp_path: Path) -> None:
    shop_root = tmp_path / "world"
    generate_shop(shop_root / "sandbox" / "shop", seed=23, customers=250, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
    data_dir = tmp_path / "data"
    sandboxes = start_sandboxes(shop_root, port_base=0, amazon_rate=50.0)
    env = {**os.environ, **sandboxes.env(), "HEARTH_DATA_DIR": str(data_dir)}
    rng = random.Random(7)
    kills = 0
    try:
        for _ in range(3):
            if run_child(env, kill_after=rng.uniform(1.5, 4.0)) == -signal.SIGKILL:
                kills += 1
        run_child(env, kill_after=None)
    finally:
        sandboxes.stop()
    assert kills >= 2, "the child should have been killed mid-run"

    raw = data_dir / "raw"
    for path in raw.rglob("*.parquet"):
        pq.read_metadata(path)  # every visible file is complete
    for (source, stream), ids in expected_ids(shop_root / "sandbox" / "shop").items():
        found, versions, _ = landed(raw, source, stream)
        assert found == ids, f"{source}/{stream}: {len(ids - found)} missing, {len(found - ids)} extra"
        assert versions == len(ids)
