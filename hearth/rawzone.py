"""The raw zone: append-only, immutable Parquet files, one per load.

Layout under ``$HEARTH_DATA_DIR/raw/``::

    <source>/<stream>/<extracted-at-utc-compact>_<load_id>.parquet   landed loads
    <source>/<stream>/.tmp-<load_id>.parquet.tmp                     a load in progress
    <source>/<stream>/_quarantine/<load_id>.jsonl                    records that could not land

Every file has the columns of :data:`SCHEMA`: the record's ``id``, its
``updated_at`` (UTC), the full original ``record`` as compact JSON, and the
``_load_id`` / ``_extracted_at`` of the load. Staging de-duplicates on
``(id, updated_at)``, so landing a window twice is harmless; losing one is not.

A load streams row groups into a temp file in the same directory and, on success,
fsyncs it, renames it to its final name and fsyncs the directory: a reader's
``*.parquet`` glob sees a whole file or nothing, and the file is durable before
the caller moves any cursor (see :mod:`hearth.state`). A failed load removes its
temp file; one killed outright leaves a ``.tmp-*`` file that readers never match
and :meth:`RawZone.sweep_temp` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("updated_at", TS),
        pa.field("record", pa.string(), nullable=False),
        pa.field("_load_id", pa.string(), nullable=False),
        pa.field("_extracted_at", TS, nullable=False),
    ]
)
ROW_GROUP_ROWS = 64 * 1024
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".parquet.tmp"
QUARANTINE_DIR = "_quarantine"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # one path segment, nothing hidden
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

# The record's JSON: compact, UTF-8 kept as is, no NaN, anything unknown as str().
_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode
# orjson writes the same JSON for JSON's own types (dict with str keys, list, tuple, str,
# int within 64 bits, float, bool, None) about four times faster. Everything else is sent
# to _not_native — datetimes and dataclasses too, which orjson would otherwise write its
# own way — and the record then goes through json, whose default=str decides.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _not_native(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def record_json(record: Any) -> str:
    """The compact JSON text of ``record`` as it goes into the ``record`` column.

    The same JSON as ``json.dumps(record, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False, default=str)``, written by orjson: equal when parsed back, for
    every record parsed from JSON (all a connector lands); only the spelling of some
    floats differs (``1e-7`` for ``1e-07``). Two Python-only values differ: orjson
    writes a non-finite float as ``null`` (json refuses it) and an ``Enum`` member as
    its value (json: ``str(member)``); neither can come out of a JSON parser.

    Raises:
        ValueError, TypeError: ``record`` cannot be written as JSON.
    """
    try:
        return orjson.dumps(record, default=_not_native, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:  # big ints, non-str keys, other types: json decides
        return _JSON_ENCODE(record)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value) or value.endswith(".tmp"):
        raise ValueError(f"{kind} {value!r} must be one path segment of letters, digits, '_', '-' or '.'")
    return value


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 string (``Z``, offset, or none = UTC), date or datetime, as an aware UTC datetime.

    Raises:
        ValueError: the value is not a timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class LoadResult:
    """What one load landed: ``path`` is None when nothing did (empty or failed load)."""

    path: Path | None
    rows: int
    quarantined: int
    load_id: str
    source: str = ""
    stream: str = ""
    extracted_at: datetime | None = None


class RawZone:
    """The raw zone rooted at ``raw_dir`` (normally ``Settings.raw_dir``).

    Args:
        raw_dir: the ``raw/`` directory; created on the first load.
        now: clock for ``_extracted_at`` and file names (injectable for tests).
        row_group_rows: rows buffered before a row group is written.
    """

    def __init__(
        self, raw_dir: Path, *, now: Callable[[], datetime] = _utcnow, row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        self.raw_dir = Path(raw_dir)
        self.now = now
        self.row_group_rows = row_group_rows

    def stream_dir(self, source: str, stream: str) -> Path:
        return self.raw_dir / _check_name("source", source) / _check_name("stream", stream)

    def open_load(self, source: str, stream: str, *, load_id: str | None = None) -> LoadWriter:
        """A writer for one load (use it as a context manager)."""
        load_id = _check_name("load_id", load_id or uuid.uuid4().hex)
        extracted_at = parse_timestamp(self.now())
        assert extracted_at is not None
        return LoadWriter(self.stream_dir(source, stream), source, stream, load_id, extracted_at, self.row_group_rows)

    def files(self, source: str, stream: str) -> list[Path]:
        """The landed files of a stream, oldest first (temp files are never listed)."""
        directory = self.stream_dir(source, stream)
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))

    def sweep_temp(self, older_than_seconds: float) -> list[Path]:
        """Remove temp files older than ``older_than_seconds`` (left by killed loads); returns them.

        Pick an age well above the longest load: a running load's temp file is
        touched on every row group, but a slow page can keep it idle for a while.
        """
        if not self.raw_dir.is_dir():
            return []
        cutoff = time.time() - older_than_seconds
        removed = []
        for path in self.raw_dir.rglob("*"):
            is_temp = path.name.startswith(TEMP_PREFIX) or path.name.endswith(TEMP_SUFFIX)
            if is_temp and path.is_file() and path.stat().st_mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):  # another sweeper got there first
                    path.unlink()
                    removed.append(path)
        return removed


class LoadWriter:
    """Streams one load into a temp file; commits it on :meth:`close`, discards it on :meth:`abort`.

    ``with zone.open_load("shopify", "orders") as load: load.write(page, id_of=…, updated_at_of=…)``;
    afterwards ``load.result`` is the :class:`LoadResult` (also returned by :meth:`close`).
    """

    def __init__(
        self, directory: Path, source: str, stream: str, load_id: str, extracted_at: datetime, row_group_rows: int
    ) -> None:
        self.directory, self.source, self.stream, self.load_id = directory, source, stream, load_id
        self.extracted_at = extracted_at
        self.row_group_rows = row_group_rows
        self.final_path = directory / load_file_name(extracted_at, load_id)
        self.temp_path = directory / f"{TEMP_PREFIX}{load_id}{TEMP_SUFFIX}"
        self.quarantine_path = directory / QUARANTINE_DIR / f"{load_id}.jsonl"
        self.rows = 0
        self.quarantined = 0
        self._result: LoadResult | None = None
        self._ids: list[str] = []
        self._stamps: list[int | None] = []
        self._texts: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._quarantine_file: IO[str] | None = None
        self._extracted_us = (extracted_at - _EPOCH) // _MICRO

    @property
    def result(self) -> LoadResult:
        """What the load landed; available once the load is closed or aborted."""
        if self._result is None:
            raise RuntimeError(f"load {self.load_id} is still open: its result exists after close()")
        return self._result

    def __enter__(self) -> LoadWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(
        self,
        records: Iterable[dict[str, Any]],
        *,
        id_of: Callable[[dict[str, Any]], str],
        updated_at_of: Callable[[dict[str, Any]], str | None],
    ) -> int:
        """Buffer a page of records; returns how many were accepted (the rest are quarantined).

        A record whose id is missing, whose ``updated_at`` does not parse or that is
        not JSON-serialisable goes to the quarantine instead of failing the load.
        """
        if self._result is not None:
            raise RuntimeError(f"load {self.load_id} is already closed")
        dumps = record_json
        accepted = 0
        for record in records:
            try:
                record_id = id_of(record)
                if record_id is None or record_id == "":
                    raise ValueError("empty id")
                stamp = parse_timestamp(updated_at_of(record))
                text = dumps(record)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                self.quarantine(record, f"{type(exc).__name__}: {exc}", "LoadWriter.write")
                continue
            self._ids.append(str(record_id))
            self._stamps.append(None if stamp is None else (stamp - _EPOCH) // _MICRO)
            self._texts.append(text)
            accepted += 1
            if len(self._ids) >= self.row_group_rows:
                self._flush()
        self.rows += accepted
        return accepted

    def quarantine(self, record_or_raw: Any, reason: str, where: str) -> None:
        """Set a record (or raw text/bytes) aside with why and where it failed.

        Lines go to ``_quarantine/<load_id>.jsonl`` and stay there even if the load fails.
        """
        if self._quarantine_file is None:
            self.quarantine_path.parent.mkdir(parents=True, exist_ok=True)
            self._quarantine_file = open(self.quarantine_path, "a", encoding="utf-8")  # noqa: SIM115
        if isinstance(record_or_raw, bytes):
            record_or_raw = record_or_raw.decode("utf-8", errors="replace")
        key = "raw" if isinstance(record_or_raw, str) else "record"
        line = {
            "quarantined_at": _utcnow().isoformat(),
            "source": self.source,
            "stream": self.stream,
            "load_id": self.load_id,
            "where": where,
            "reason": reason,
            key: record_or_raw,
        }
        self._quarantine_file.write(json.dumps(line, ensure_ascii=False, default=repr) + "\n")
        self._quarantine_file.flush()  # a crash right after still leaves the line in the OS
        self.quarantined += 1

    def close(self) -> LoadResult:
        """Commit: write the last row group, fsync, rename to the final name, fsync the directory."""
        if self._result is not None:
            return self._result
        try:
            self._flush()
            path = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                _fsync_path(self.temp_path)
                if self.final_path.exists():  # landed files are immutable: never replace one
                    raise FileExistsError(f"{self.final_path} already exists; use a new load_id")
                os.replace(self.temp_path, self.final_path)
                _fsync_path(self.directory)
                path = self.final_path
        except BaseException:
            self.abort()
            raise
        self._close_quarantine()
        self._result = LoadResult(
            path, self.rows, self.quarantined, self.load_id, self.source, self.stream, self.extracted_at
        )
        return self._result

    def abort(self) -> None:
        """Discard the load: no parquet file remains; quarantined lines are kept (and fsynced)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()
        self._ids, self._stamps, self._texts = [], [], []
        self._close_quarantine()
        self._result = LoadResult(None, 0, self.quarantined, self.load_id, self.source, self.stream, self.extracted_at)

    def _flush(self) -> None:
        n = len(self._ids)
        if not n:
            return
        # Column-wise arrays per batch: far cheaper than building Arrow rows one by one.
        batch = pa.record_batch(
            [
                pa.array(self._ids, pa.string()),
                pa.array(self._stamps, pa.int64()).cast(TS),
                pa.array(self._texts, pa.string()),
                pa.repeat(pa.scalar(self.load_id, pa.string()), n),
                pa.repeat(pa.scalar(self._extracted_us, pa.int64()), n).cast(TS),
            ],
            schema=SCHEMA,
        )
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.temp_path, SCHEMA, compression="zstd")
        self._writer.write_batch(batch)
        self._ids, self._stamps, self._texts = [], [], []

    def _close_quarantine(self) -> None:
        if self._quarantine_file is not None:
            os.fsync(self._quarantine_file.fileno())
            self._quarantine_file.close()
            self._quarantine_file = None
            _fsync_path(self.quarantine_path.parent)


def load_file_name(extracted_at: datetime, load_id: str) -> str:
    """A landed load's file name: ``<extracted-at-utc-compact>_<load_id>.parquet``."""
    return f"{extracted_at.strftime('%Y%m%dT%H%M%SZ')}_{load_id}.parquet"


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
