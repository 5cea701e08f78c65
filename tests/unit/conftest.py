"""Unit-test fixtures: a send ledger in a temporary state.sqlite on a clock moved by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.ledger import Ledger
from tests.unit.ledger_fixtures import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state.sqlite", clock=clock) as opened:
        yield opened
