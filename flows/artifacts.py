"""Artifacts a marketer reads in the Prefect UI after a successful transform.

Two views of the fresh warehouse:

- the **R×F heatmap** of ``customer_rfm``: how many customers hold each recency
  score (rows, 5 = bought most recently) × frequency score (columns, 5 = most
  orders). matplotlib is not a dependency, so the PNG is written by hand (numpy +
  zlib, a few dozen lines) and shipped as a ``data:`` URL in an image artifact; a
  markdown table with the same counts goes beside it, shaded with block characters,
  because markdown renders everywhere (and is what a screen reader reads).
- **segment sizes with entries and exits** since the previous build, from
  ``segment_members`` and the ``segment_history`` model.

The helpers that read the warehouse and draw take a DuckDB connection and return
plain data, so they are tested without Prefect (:func:`transform_artifacts` computes
them all); :func:`publish_transform_artifacts` is the only function that talks to Prefect.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from hearth.warehouse import open_warehouse, table_names

SCORES = 5
# Light (few customers) → dark orange (many): readable on the UI's light and dark themes.
_LOW = np.array([255, 245, 235], dtype=np.float64)
_HIGH = np.array([166, 54, 3], dtype=np.float64)
_GRID_LINE = np.array([255, 255, 255], dtype=np.uint8)
_SHADES = " ░▒▓█"


def rfm_grid(conn: duckdb.DuckDBPyConnection) -> np.ndarray | None:
    """Customer counts by (r_score, f_score): ``grid[r - 1, f - 1]``; ``None`` without ``customer_rfm``."""
    if "customer_rfm" not in table_names(conn):
        return None
    grid = np.zeros((SCORES, SCORES), dtype=np.int64)
    rows = conn.execute(
        "select r_score, f_score, count(*) from customer_rfm"
        " where r_score between 1 and 5 and f_score between 1 and 5 group by all"
    ).fetchall()
    for r_score, f_score, count in rows:
        grid[int(r_score) - 1, int(f_score) - 1] = count
    return grid


def _colours(grid: np.ndarray) -> np.ndarray:
    """One RGB colour per cell, linear in the count from _LOW (0) to _HIGH (the largest cell)."""
    peak = max(int(grid.max()), 1)
    share = (grid.astype(np.float64) / peak)[..., None]
    return np.rint(_LOW + (_HIGH - _LOW) * share).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``(height, width, 3)`` uint8 array as a PNG (8-bit truecolour, no filter)."""
    height, width, _ = rgb.shape
    # Every scanline starts with its filter type byte (0: none).
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def heatmap_png(grid: np.ndarray, cell: int = 48, line: int = 2) -> bytes:
    """The R×F grid as a PNG: recency 5 in the top row, frequency 1 in the left column."""
    colours = _colours(grid)[::-1]  # row 0 of the image is r_score 5
    size = SCORES * cell + (SCORES + 1) * line
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = _GRID_LINE
    for row in range(SCORES):
        for col in range(SCORES):
            top, left = line + row * (cell + line), line + col * (cell + line)
            image[top : top + cell, left : left + cell] = colours[row, col]
    return png_bytes(image)


def heatmap_markdown(grid: np.ndarray) -> str:
    """The same counts as a markdown table, each cell shaded ░▒▓█ by its share of the largest."""
    peak = max(int(grid.max()), 1)

    def cell(count: int) -> str:
        # Any non-zero count gets at least the lightest shade, so a rare cell never looks empty.
        shade = _SHADES[max(1, min(len(_SHADES) - 1, round(count / peak * (len(_SHADES) - 1))))]
        return f"{shade * 3} {count:,}" if count else "0"

    header = "| R \\ F | " + " | ".join(f"F{f}" for f in range(1, SCORES + 1)) + " |"
    rule = "|---|" + "---:|" * SCORES
    rows = [
        f"| **R{r}** | " + " | ".join(cell(int(grid[r - 1, f - 1])) for f in range(1, SCORES + 1)) + " |"
        for r in range(SCORES, 0, -1)
    ]
    return (
        f"## Customers by recency × frequency score ({int(grid.sum()):,} scored)\n\n"
        "R5 = bought most recently, F5 = ordered most often; the top-right corner are the best customers.\n\n"
        + "\n".join([header, rule, *rows])
        + "\n"
    )


def latest_build_instant(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    """The as-of instant the warehouse's segments were last built for (``None`` before any build).

    Read before a build, it is the boundary "since the last run" for :func:`segment_changes`:
    segment history stamps every entry and exit with the as-of instant of the build that saw it.
    """
    names = table_names(conn)
    parts = []
    if "int_segment_members_unioned" in names:
        parts.append("select max(as_of_at) as instant from int_segment_members_unioned")
    if "segment_history" in names:
        parts.append(
            "select max(greatest(entered_at, coalesce(exited_at, entered_at))) as instant from segment_history"
        )
    if not parts:
        return None
    [(instant,)] = conn.execute(f"select max(instant) from ({' union all '.join(parts)})").fetchall()
    return instant


def segment_changes(conn: duckdb.DuckDBPyConnection, since: datetime | None) -> list[dict[str, Any]]:
    """Per segment: members now, and how many entered and exited after ``since`` (all history when ``None``).

    Returns:
        Rows ``{segment, members, entered, exited}`` sorted by segment; empty when the
        warehouse has no ``segment_members`` (a project without segments).
    """
    names = table_names(conn)
    if "segment_members" not in names:
        return []
    moves = "select null::varchar as segment, 0 as entered, 0 as exited where false"
    if "segment_history" in names:
        moves = """
            select segment,
                count(*) filter (where $since is null or entered_at > $since) as entered,
                count(*) filter (where exited_at is not null and ($since is null or exited_at > $since)) as exited
            from segment_history group by segment"""
    sql = f"""
        with sizes as (select segment, count(*) as members from segment_members group by segment),
        moves as ({moves})
        select coalesce(sizes.segment, moves.segment) as segment, coalesce(members, 0),
            coalesce(entered, 0), coalesce(exited, 0)
        from sizes full outer join moves on moves.segment = sizes.segment
        order by 1"""
    params = {"since": since} if "$since" in sql else {}
    rows = conn.execute(sql.replace("$since", "cast($since as timestamptz)"), params).fetchall()
    return [
        {"segment": segment, "members": int(members), "entered": int(entered), "exited": int(exited)}
        for segment, members, entered, exited in rows
    ]


@dataclass
class TransformArtifacts:
    """What the transform's artifacts show, computed from the warehouse (no Prefect involved)."""

    grid: np.ndarray | None  # the R×F counts; None without customer_rfm
    heatmap: bytes | None  # the grid drawn as a PNG
    changes: list[dict[str, Any]]  # segment sizes, entries and exits


def transform_artifacts(warehouse_path: Path, since: datetime | None) -> TransformArtifacts:
    """The heatmap and segment changes of the freshly built warehouse (opened read-only)."""
    with open_warehouse(warehouse_path) as conn:
        grid = rfm_grid(conn)
        changes = segment_changes(conn, since)
    return TransformArtifacts(grid, None if grid is None else heatmap_png(grid), changes)


def publish_transform_artifacts(warehouse_path: Path, since: datetime | None) -> list[str]:
    """Create the heatmap and segment-change artifacts of the current flow run.

    Args:
        warehouse_path: the freshly built warehouse (opened read-only).
        since: the previous build's instant (:func:`latest_build_instant` read before the build).

    Returns:
        The keys of the artifacts created (models missing from the project are skipped).
    """
    from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

    contents = transform_artifacts(warehouse_path, since)
    keys: list[str] = []
    if contents.grid is not None and contents.heatmap is not None:
        url = "data:image/png;base64," + base64.b64encode(contents.heatmap).decode("ascii")
        description = "Customers by R score (rows, R5 on top) × F score (columns, F5 right)"
        create_image_artifact(image_url=url, key="rfm-heatmap", description=description)
        create_markdown_artifact(
            key="rfm-heatmap-counts", markdown=heatmap_markdown(contents.grid), description=description
        )
        keys += ["rfm-heatmap", "rfm-heatmap-counts"]
    if contents.changes:
        boundary = f"since the build as of {since.isoformat()}" if since else "over all recorded history"
        create_table_artifact(key="segment-changes", table=contents.changes,
                              description=f"Segment sizes, entries and exits {boundary}")  # fmt: skip
        keys.append("segment-changes")
    return keys
