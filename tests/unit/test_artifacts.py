"""The transform artifacts on a tiny hand-made DuckDB: R×F heatmap (PNG + markdown) and segment changes."""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from flows.artifacts import (
    heatmap_markdown,
    heatmap_png,
    latest_build_instant,
    publish_transform_artifacts,
    rfm_grid,
    segment_changes,
)

T1 = datetime(2026, 1, 1, 6, tzinfo=UTC)
T2 = datetime(2026, 1, 2, 6, tzinfo=UTC)


def _warehouse(path: Path) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create table customer_rfm (customer_key varchar, r_score integer, f_score integer)")
        # (r, f) → count: 3 customers at R5F1, 1 at R1F5, 2 at R3F3, one unscored (no orders).
        rows = [("a", 5, 1), ("b", 5, 1), ("c", 5, 1), ("d", 1, 5), ("e", 3, 3), ("f", 3, 3), ("g", None, None)]
        conn.executemany("insert into customer_rfm values (?, ?, ?)", rows)
        conn.execute("create table segment_members (segment varchar, customer_key varchar)")
        conn.executemany("insert into segment_members values (?, ?)", [("vip", "a"), ("vip", "b"), ("winback", "d")])
        conn.execute("create table segment_history (segment varchar, customer_key varchar,"
                     " entered_at timestamptz, exited_at timestamptz)")  # fmt: skip
        conn.executemany(
            "insert into segment_history values (?, ?, ?, ?)",
            [
                ("vip", "a", T1, None),  # stayed
                ("vip", "b", T2, None),  # entered in the latest build
                ("vip", "c", T1, T2),  # left in the latest build
                ("winback", "d", T1, None),
                ("lapsed", "e", T1, T2),  # a segment that is empty now
            ],
        )
        conn.execute("create table int_segment_members_unioned (segment varchar, customer_key varchar,"
                     " as_of_at timestamptz)")  # fmt: skip
        conn.execute("insert into int_segment_members_unioned values ('vip', 'a', ?)", [T2])
    return path


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal reader for the writer's own format (truecolour, filter 0), to check pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert not raw[:, 0].any()  # filter type 0 on every line
    return raw[:, 1:].reshape(height, width, 3)


def test_rfm_grid_counts_scored_customers_by_r_and_f(tmp_path: Path) -> None:
    with duckdb.connect(str(_warehouse(tmp_path / "w.duckdb"))) as conn:
        grid = rfm_grid(conn)
    assert grid is not None
    assert grid.shape == (5, 5)
    assert (grid[4, 0], grid[0, 4], grid[2, 2], int(grid.sum())) == (3, 1, 2, 6)


def test_rfm_grid_is_none_without_customer_rfm(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as conn:
        assert rfm_grid(conn) is None
        assert segment_changes(conn, None) == []
        assert latest_build_instant(conn) is None


def test_heatmap_png_is_a_valid_png_coloured_by_count() -> None:
    grid = np.zeros((5, 5), dtype=np.int64)
    grid[4, 0], grid[0, 4] = 10, 5  # R5F1 is the peak, R1F5 half of it
    image = _decode_png(heatmap_png(grid, cell=10, line=1))
    assert image.shape == (5 * 10 + 6, 5 * 10 + 6, 3)

    def centre(row: int, col: int) -> tuple[int, ...]:  # image row 0 is r_score 5
        return tuple(int(v) for v in image[1 + row * 11 + 5, 1 + col * 11 + 5])

    assert centre(0, 0) == (166, 54, 3)  # R5F1: the darkest colour
    assert centre(2, 2) == (255, 245, 235)  # an empty cell: the lightest
    half = centre(4, 4)  # R1F5, half the peak: in between on every channel
    assert all(dark < value < light for dark, value, light in zip((166, 54, 3), half, (255, 245, 235), strict=True))
    assert tuple(int(v) for v in image[0, 0]) == (255, 255, 255)  # grid line


def test_heatmap_markdown_puts_r5_on_top_and_shades_the_peak() -> None:
    grid = np.zeros((5, 5), dtype=np.int64)
    grid[4, 0] = 1200
    grid[0, 4] = 3
    lines = heatmap_markdown(grid).splitlines()
    table = [line for line in lines if line.startswith("| **R")]
    assert [row.split("|")[1].strip() for row in table] == ["**R5**", "**R4**", "**R3**", "**R2**", "**R1**"]
    assert table[0].split("|")[2].strip() == "███ 1,200"
    assert table[4].split("|")[6].strip() == "░░░ 3"  # tiny but not blank
    assert table[2].split("|")[4].strip() == "0"
    assert "(1,203 scored)" in lines[0]


def test_segment_changes_since_the_previous_build(tmp_path: Path) -> None:
    with duckdb.connect(str(_warehouse(tmp_path / "w.duckdb"))) as conn:
        assert latest_build_instant(conn) == T2
        since_t1 = segment_changes(conn, T1)
        everything = segment_changes(conn, None)
    assert since_t1 == [
        {"segment": "lapsed", "members": 0, "entered": 0, "exited": 1},
        {"segment": "vip", "members": 2, "entered": 1, "exited": 1},
        {"segment": "winback", "members": 1, "entered": 0, "exited": 0},
    ]
    assert [(row["segment"], row["entered"], row["exited"]) for row in everything] == [
        ("lapsed", 1, 1),
        ("vip", 3, 1),
        ("winback", 1, 0),
    ]


@pytest.mark.usefixtures("prefect_harness")
def test_publish_creates_the_image_markdown_and_table_artifacts(tmp_path: Path) -> None:
    from prefect import flow
    from prefect.artifacts import Artifact

    warehouse = _warehouse(tmp_path / "w.duckdb")

    @flow
    def publish() -> list[str]:
        return publish_transform_artifacts(warehouse, T1)

    assert publish() == ["rfm-heatmap", "rfm-heatmap-counts", "segment-changes"]
    image = Artifact.get("rfm-heatmap")
    assert image is not None and image.type == "image"
    url = str(image.data)
    assert url.startswith("data:image/png;base64,")
    assert _decode_png(base64.b64decode(url.split(",", 1)[1])).shape[2] == 3
    changes = Artifact.get("segment-changes")
    assert changes is not None and changes.type == "table"
    assert '"segment": "vip"' in str(changes.data) and '"entered": 1' in str(changes.data)
