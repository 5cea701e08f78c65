"""A bare ingestion run (no Prefect) for the crash test to kill: python -m tests.integration.ingest_child."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.sources import SOURCES, streams_for
from hearth.config import Settings
from hearth.extract import extract_incremental
from hearth.rawzone import RawZone
from hearth.state import StateStore


def main() -> None:
    settings = Settings.from_env(dotenv=False)
    zone = RawZone(settings.raw_dir)
    now = datetime.now(UTC)
    with StateStore(settings.state_path) as state:
        for source in SOURCES:
            for stream in streams_for(source, settings):
                extract_incremental(stream, zone, state, now=now, initial_start=settings.history_start)


if __name__ == "__main__":
    main()
