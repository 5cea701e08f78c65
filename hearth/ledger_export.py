"""Export the send ledger to the raw zone, so dbt can rebuild sequence results without ``state.sqlite``.

The warehouse is disposable (DESIGN.md): ``sequence_performance`` must come from the raw
zone alone. :func:`export_ledger` lands the ``sends`` rows changed since the last export
as one file in ``raw/hearth/sends/`` — ``id`` = ``send_key``, ``updated_at`` = the row's
``updated_at``, ``record`` = the whole row — and then moves the cursor
``("hearth", "sends")`` in ``state.sqlite`` to the latest ``updated_at`` it landed.

Same protocol as ingestion (:mod:`hearth.state`): the file is durable before the cursor
moves, so a crash in between lands the rows again next time, which staging removes
(latest version per ``send_key``).

Why an overlap: the ledger takes a write's timestamp before it waits for SQLite's write
lock, so a row stamped just before the cursor can commit just after an export read past
it. Each export therefore re-reads :data:`OVERLAP` before the cursor and leaves out the
row versions already landed in that stretch (read back from the stream's recent files),
so nothing is lost and an export with no changes lands nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from hearth.config import Settings
from hearth.ledger import Ledger
from hearth.rawzone import RawZone, parse_timestamp
from hearth.state import BUSY_TIMEOUT_MS, StateStore

SOURCE, STREAM = "hearth", "sends"
# Longer than the longest a ledger write can wait for the lock (the busy timeout), with margin.
OVERLAP = timedelta(milliseconds=BUSY_TIMEOUT_MS) * 4


def export_ledger(target: Settings | Path, *, zone: RawZone | None = None) -> int:
    """Land the ledger rows changed since the last export in ``raw/hearth/sends``; returns rows landed.

    Idempotent: a second call with no ledger change in between lands no file and returns 0.

    Args:
        target: the settings, or the data dir (``HEARTH_DATA_DIR``) holding ``state.sqlite``
            and ``raw/``.
        zone: the raw zone to write to (default: the data dir's); tests pass one with a clock.
    """
    data_dir = target.data_dir if isinstance(target, Settings) else Path(target)
    state_path = data_dir / "state.sqlite"
    zone = zone or RawZone(data_dir / "raw")
    with StateStore(state_path) as state, Ledger(state_path) as ledger:
        cursor = parse_timestamp(state.get_cursor(SOURCE, STREAM))
        since = None if cursor is None else cursor - OVERLAP
        rows = ledger.export_rows(since)
        if since is not None and rows:
            landed = _landed_versions(zone, since)
            rows = [r for r in rows if (r["send_key"], parse_timestamp(r["updated_at"])) not in landed]
        if not rows:
            return 0
        with zone.open_load(SOURCE, STREAM) as load:
            load.write(rows, id_of=lambda r: r["send_key"], updated_at_of=lambda r: r["updated_at"])
        result = load.result
        if result.quarantined:
            # A ledger row always has a key and an ISO stamp: this is a bug, not bad data to skip.
            raise RuntimeError(
                f"{result.quarantined} ledger rows could not land in raw/{SOURCE}/{STREAM} "
                f"(see its _quarantine/{result.load_id}.jsonl); the export cursor was not moved"
            )
        # Only now that the file is durable: log the load and move the cursor.
        state.record_load(result)
        state.set_cursor(SOURCE, STREAM, max(rows, key=_stamp)["updated_at"])
        return result.rows


def _stamp(row: dict[str, Any]) -> datetime:
    stamp = parse_timestamp(row["updated_at"])
    assert stamp is not None  # the ledger's updated_at is NOT NULL
    return stamp


def _landed_versions(zone: RawZone, since: datetime) -> set[tuple[str, datetime]]:
    """``(send_key, updated_at)`` of the versions landed by exports run at or after ``since``.

    A version updated at ``u`` was landed by a load opened after it was read, so at or after
    ``u``; file names start with the load's UTC time to the second, hence the name filter
    (only the few files of the overlap are opened).
    """
    first_name = since.strftime("%Y%m%dT%H%M%SZ")
    versions: set[tuple[str, datetime]] = set()
    for path in zone.files(SOURCE, STREAM):
        if path.name >= first_name:
            table = pq.read_table(path, columns=["id", "updated_at"])
            versions.update(zip(table.column("id").to_pylist(), table.column("updated_at").to_pylist(), strict=True))
    return versions
