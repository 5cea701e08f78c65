"""The ledger export: new and changed rows land once, the cursor moves only after the file."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hearth import ledger_export
from hearth.ledger import Ledger, SendKey, key_of
from hearth.ledger_export import OVERLAP, SOURCE, STREAM, export_ledger
from hearth.rawzone import RawZone
from hearth.state import StateStore
from tests.unit.ledger_fixtures import T0, Clock


def keys(n: int, start: int = 0) -> list[SendKey]:
    return [SendKey(f"c{i}", f"c{i}@example.com", "winback", 1, f"t{i}") for i in range(start, start + n)]


def landed(zone: RawZone) -> list[list[dict]]:
    """Per landed file (oldest first), its rows as dicts with the record parsed."""
    files = []
    for path in zone.files(SOURCE, STREAM):
        rows = pq.read_table(path).to_pylist()
        files.append([{**row, "record": json.loads(row["record"])} for row in rows])
    return files


def cursor(data_dir: Path) -> str | None:
    with StateStore(data_dir / "state.sqlite") as state:
        return state.get_cursor(SOURCE, STREAM)


@pytest.fixture
def zone(tmp_path: Path, clock: Clock) -> RawZone:
    return RawZone(tmp_path / "raw", now=clock)


def test_first_export_lands_every_row_with_its_key_and_stamp(tmp_path: Path, clock: Clock, zone: RawZone) -> None:
    with Ledger(tmp_path / "state.sqlite", clock=clock) as ledger:
        reserved = ledger.reserve("run-1", keys(3))
        clock.advance(seconds=1)
        ledger.record_skips("run-1", [(k, "holdout") for k in keys(2, start=3)])
    clock.advance(seconds=1)

    assert export_ledger(tmp_path, zone=zone) == 5

    (rows,) = landed(zone)
    assert sorted(r["id"] for r in rows) == sorted([r.send_key for r in reserved] + [key_of(k) for k in keys(2, 3)])
    by_key = {r["id"]: r for r in rows}
    skipped = by_key[key_of(keys(1, start=3)[0])]
    assert skipped["record"]["status"] == "skipped" and skipped["record"]["reason"] == "holdout"
    assert skipped["updated_at"] == T0 + timedelta(seconds=1)
    assert cursor(tmp_path) == (T0 + timedelta(seconds=1)).isoformat(timespec="microseconds")


def test_second_export_lands_nothing_then_only_changed_rows(tmp_path: Path, clock: Clock, zone: RawZone) -> None:
    with Ledger(tmp_path / "state.sqlite", clock=clock) as ledger:
        reserved = ledger.reserve("run-1", keys(4))
        clock.advance(seconds=1)
        assert export_ledger(tmp_path, zone=zone) == 4
        clock.advance(seconds=1)
        assert export_ledger(tmp_path, zone=zone) == 0
        assert len(zone.files(SOURCE, STREAM)) == 1

        clock.advance(seconds=1)
        sent = [r.send_key for r in reserved[:2]]
        ledger.mark_sending("batch-1", sent)
        ledger.mark_accepted("batch-1", "msg-1")
        ledger.reserve("run-2", keys(1, start=10))
        clock.advance(seconds=1)

        assert export_ledger(tmp_path, zone=zone) == 3
        assert export_ledger(tmp_path, zone=zone) == 0

    first, second = landed(zone)
    assert len(first) == 4
    changed = {r["id"]: r["record"] for r in second}
    assert set(changed) == {*sent, key_of(keys(1, start=10)[0])}
    assert {changed[k]["status"] for k in sent} == {"accepted"}
    assert {changed[k]["message_id"] for k in sent} == {"msg-1"}


def test_a_row_committed_late_with_an_older_stamp_still_lands(tmp_path: Path, clock: Clock, zone: RawZone) -> None:
    with Ledger(tmp_path / "state.sqlite", clock=clock) as ledger:
        ledger.reserve("run-1", keys(2))
        clock.advance(seconds=30)
        assert export_ledger(tmp_path, zone=zone) == 2
        # A writer that read its clock before the export but committed after it.
        clock.now -= OVERLAP / 2
        ledger.reserve("run-2", keys(1, start=5))
        # one second on, so the second file's name (stamped with this clock) sorts after the first
        clock.now += OVERLAP / 2 + timedelta(seconds=1)

        assert export_ledger(tmp_path, zone=zone) == 1
        assert export_ledger(tmp_path, zone=zone) == 0

    assert [r["id"] for r in landed(zone)[1]] == [key_of(keys(1, start=5)[0])]


def test_empty_ledger_lands_no_file_and_sets_no_cursor(tmp_path: Path, zone: RawZone) -> None:
    assert export_ledger(tmp_path, zone=zone) == 0
    assert zone.files(SOURCE, STREAM) == []
    assert cursor(tmp_path) is None


def test_cursor_moves_only_after_the_file_is_landed(
    tmp_path: Path, clock: Clock, zone: RawZone, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger(tmp_path / "state.sqlite", clock=clock) as ledger:
        ledger.reserve("run-1", keys(3))
    clock.advance(seconds=1)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    # The rename that publishes the file fails: no file, so no cursor either.
    monkeypatch.setattr("hearth.rawzone.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        export_ledger(tmp_path, zone=zone)
    assert zone.files(SOURCE, STREAM) == []
    assert cursor(tmp_path) is None
    monkeypatch.undo()

    seen: list[int] = []
    set_cursor = StateStore.set_cursor

    def watching(self: StateStore, source: str, stream: str, value: str) -> str:
        seen.append(len(zone.files(SOURCE, STREAM)))
        return set_cursor(self, source, stream, value)

    monkeypatch.setattr(ledger_export.StateStore, "set_cursor", watching)
    assert export_ledger(tmp_path, zone=zone) == 3
    assert seen == [1]  # the landed file existed when the cursor moved


def test_settings_point_at_the_data_dir(tmp_path: Path) -> None:
    from hearth.config import Settings

    settings = Settings.from_env({"HEARTH_DATA_DIR": str(tmp_path)}, dotenv=False)
    with Ledger(settings.state_path) as ledger:
        ledger.record_skips("run-1", [(k, "holdout") for k in keys(2)])

    assert export_ledger(settings) == 2
    assert len(RawZone(settings.raw_dir).files(SOURCE, STREAM)) == 1
    assert export_ledger(settings) == 0
