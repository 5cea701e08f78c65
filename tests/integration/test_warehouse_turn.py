"""A run waiting for the warehouse says so in the Prefect UI, then runs on and completes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from flows.warehouse_turn import WAITING, warehouse_turn
from hearth.warehouse_lock import warehouse_lock

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow
def uses_the_warehouse(data_dir: Path) -> str:
    with warehouse_turn(data_dir):
        return "built"


def _state_names(flow_run_id: object) -> list[str]:
    with get_client(sync_client=True) as client:
        history = client.read_flow_run_states(flow_run_id)  # type: ignore[arg-type]
    return [state.name for state in sorted(history, key=lambda s: s.timestamp)]


def _release_once_waiting_shows(release: threading.Event) -> None:
    """Let go when the UI would show a waiting run (or after a minute, so the test cannot hang)."""
    with get_client(sync_client=True) as client:
        for _poll in range(300):
            if any(run.state and run.state.name == WAITING for run in client.read_flow_runs()):
                break
            time.sleep(0.2)
    release.set()


def test_a_run_behind_another_shows_waiting_then_running_then_completes(tmp_path: Path) -> None:
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:  # another thread opens its own lock file handle: it blocks us like a process
        with warehouse_lock(tmp_path):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=other_run)
    holder.start()
    assert holding.wait(10)
    threading.Thread(target=_release_once_waiting_shows, args=(release,)).start()
    state = uses_the_warehouse(tmp_path, return_state=True)
    holder.join(10)

    assert state.is_completed() and state.result() == "built"
    names = _state_names(state.state_details.flow_run_id)
    assert names[-3:] == [WAITING, "Running", "Completed"], names


def test_a_run_with_the_warehouse_free_never_shows_waiting(tmp_path: Path) -> None:
    state = uses_the_warehouse(tmp_path, return_state=True)
    assert state.is_completed()
    assert WAITING not in _state_names(state.state_details.flow_run_id)
