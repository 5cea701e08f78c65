"""Integration fixtures shared across modules: the demo warehouse is built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.warehouse_fixture import DEMO_NOW, build_warehouse


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-customer demo shop ingested and built as of DEMO_NOW (read-only: copy before writing)."""
    return build_warehouse(tmp_path_factory.mktemp("demo_warehouse"), now=DEMO_NOW, seed=7, customers=600)
