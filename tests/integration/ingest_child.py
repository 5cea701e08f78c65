"""A bare ingestion run (no Prefect) for the crash test to kill: python -m tests.integration.ingest_child."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.sources import land_every_stream
from hearth.config import Settings


def main() -> None:
    land_every_stream(Settings.from_env(dotenv=False), now=datetime.now(UTC))


if __name__ == "__main__":
    main()
