"""Waiting for the warehouse, visibly: the run's state says so in the Prefect UI.

:func:`hearth.warehouse_lock.warehouse_lock` makes an overlapping run wait for the one
holding the warehouse. Without help the waiting run shows a plain "Running" in the UI,
which reads like a hang. While it waits, :func:`warehouse_turn` renames the flow run's
state to "Waiting for warehouse" (still a RUNNING state: nothing about orchestration
changes) and back to "Running" once it holds the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Running

from hearth.warehouse_lock import warehouse_lock

WAITING = "Waiting for warehouse"
log = logging.getLogger(__name__)


def _name_state(name: str) -> None:
    """Rename the current flow run's RUNNING state; never fails the run (it is only a label)."""
    run_id = flow_run.id
    if run_id is None:  # called outside a flow run
        return
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Running(name=name), force=True)
    except Exception as exc:  # a label that cannot be set must not stop the work
        log.debug("could not label flow run %s %r: %s", run_id, name, exc)


@contextmanager
def warehouse_turn(data_dir: Path) -> Iterator[None]:
    """Hold the warehouse lock for the block; while waiting, the run shows "Waiting for warehouse"."""
    logger = get_run_logger()
    waited = False

    def on_wait(message: str) -> None:
        nonlocal waited
        waited = True
        logger.info(message)
        _name_state(WAITING)

    with warehouse_lock(data_dir, on_wait=on_wait):
        if waited:
            _name_state("Running")
            logger.info("holding the warehouse now")
        yield
