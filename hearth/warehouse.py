"""The DuckDB warehouse dbt builds, and where its dbt project lives.

The warehouse (``$HEARTH_DATA_DIR/warehouse.duckdb``) is disposable: ``dbt build
--full-refresh`` over the raw zone rebuilds it. Readers (the quality gate, the
sequences) open it read-only; DuckDB allows one read-write process per file and
no readers beside it, so a reader that collides with a running build gets a
:class:`WarehouseError` that says so instead of a bare lock error.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import duckdb

# The dbt project ships beside the Python packages in the repository (an editable
# install); a deployment that keeps it elsewhere points this variable at it.
DBT_PROJECT_ENV = "HEARTH_DBT_PROJECT_DIR"
_REPO_DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
_PROJECT_SOURCES = frozenset({"models", "macros", "seeds", "snapshots", "tests"})


# dbt threads per build (DECISIONLOG.md, "Incremental builds run two dbt threads"). An
# hourly build is mostly small queries and dbt's own Python around each of ~300 nodes: with
# two threads one node's Python runs beside another's query. A build from scratch is a few
# huge staging queries that each need DuckDB's whole memory cap: at 10M orders two at once
# ran out of it. dbt_project/profiles.yml keeps 1, the safe choice for builds by hand.
INCREMENTAL_BUILD_THREADS = 2
FULL_BUILD_THREADS = 1


class WarehouseError(RuntimeError):
    """The warehouse or the dbt project cannot be used; the message says what to do."""


def dbt_project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The dbt project (and profiles) directory: ``$HEARTH_DBT_PROJECT_DIR`` or the repository's ``dbt_project/``.

    Raises:
        WarehouseError: the directory has no ``dbt_project.yml``.
    """
    env = os.environ if env is None else env
    configured = (env.get(DBT_PROJECT_ENV) or "").strip()
    path = Path(configured).expanduser().resolve() if configured else _REPO_DBT_PROJECT
    if not (path / "dbt_project.yml").is_file():
        raise WarehouseError(f"no dbt_project.yml in {path}: set {DBT_PROJECT_ENV} to the Hearth dbt project directory")
    return path


def project_fingerprint(project_dir: Path) -> str:
    """A digest of what a build's result depends on in the dbt project (SQL, YAML, seeds, vars).

    Files under ``models``, ``macros``, ``seeds``, ``snapshots`` and ``tests``, and
    ``dbt_project.yml``: not ``target``, ``logs`` or the profile.
    """
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        parts = path.relative_to(project_dir).parts
        if path.is_file() and (parts[0] in _PROJECT_SOURCES or parts == ("dbt_project.yml",)):
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def open_warehouse(path: Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, read-only by default, with timestamps in UTC.

    Raises:
        WarehouseError: the file does not exist (nothing was built yet) or another
            process holds it (a dbt build is running).
    """
    path = Path(path)
    if read_only and not path.is_file():
        raise WarehouseError(f"warehouse {path} does not exist: build it with `hearth transform`")
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise WarehouseError(
            f"warehouse {path} is locked by another process (a dbt build?); retry when it has finished: {exc}"
        ) from exc
    except duckdb.ConnectionException as exc:
        raise WarehouseError(
            f"warehouse {path} is already open in this process with other settings "
            f"(dbt-duckdb keeps its connection until released): {exc}"
        ) from exc
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def build_threads(full_refresh: bool, path: Path) -> int:
    """How many dbt threads a build of the warehouse at ``path`` uses: 1 to build it from scratch, else 2.

    From scratch means a full refresh, or a warehouse with no table yet (a first build,
    where every incremental model reads the whole raw zone).
    """
    if full_refresh or not path.is_file():
        return FULL_BUILD_THREADS
    try:
        with open_warehouse(path) as conn:
            built = bool(table_names(conn))
    except (WarehouseError, duckdb.Error):  # unreadable: the build will say why
        built = False
    return INCREMENTAL_BUILD_THREADS if built else FULL_BUILD_THREADS


def table_names(conn: duckdb.DuckDBPyConnection, schema: str = "main") -> set[str]:
    """Names of the tables and views in ``schema`` of the open warehouse."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = ? AND table_catalog = current_database()",
        [schema],
    ).fetchall()
    return {row[0] for row in rows}


def column_names(conn: duckdb.DuckDBPyConnection, table: str, schema: str = "main") -> set[str]:
    """Column names of ``schema.table`` in the open warehouse (empty when it does not exist)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database()",
        [schema, table],
    ).fetchall()
    return {row[0] for row in rows}
