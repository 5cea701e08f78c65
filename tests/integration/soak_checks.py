"""What the soak reads back after its hour: Prefect's flow runs and artifacts, the sends, the warehouse.

Plain readers; the assertions stay in ``test_soak.py``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterStartTime,
)

from hearth.ledger import SEND_ID_ARG, Ledger
from hearth.warehouse import open_warehouse
from sandbox.shop.tables import read_table


@dataclass(frozen=True)
class FlowRunView:
    """One flow run as the Prefect UI lists it: flow, state, and the run that started it (subflows)."""

    id: UUID
    flow: str
    state: str  # StateType name: COMPLETED, RUNNING, FAILED, CRASHED …
    message: str
    parent: UUID | None  # the flow run whose task started this one as a subflow
    start_time: datetime


def flow_runs_since(since: datetime) -> list[FlowRunView]:
    """Every flow run the API saw start at or after ``since``, oldest first."""
    with get_client(sync_client=True) as client:
        after: Any = since  # the filter is typed for Prefect's own DateTime; a datetime is what it holds
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=after)))
        flows = {flow.id: flow.name for flow in client.read_flows()}
        views = []
        for run in runs:
            parent = client.read_task_run(run.parent_task_run_id).flow_run_id if run.parent_task_run_id else None
            assert run.state is not None and run.start_time is not None
            state = run.state.type.name
            views.append(
                FlowRunView(run.id, flows[run.flow_id], state, run.state.message or "", parent, run.start_time)
            )
    return sorted(views, key=lambda v: v.start_time)


def children(runs: Iterable[FlowRunView], parent: UUID, flow: str | None = None) -> list[FlowRunView]:
    """The subflow runs ``parent`` started (of ``flow`` only, when given), oldest first."""
    return [run for run in runs if run.parent == parent and flow in (None, run.flow)]


def table_artifact(flow_run_id: UUID, key: str) -> list[dict[str, Any]]:
    """The rows of the table artifact ``key`` a flow run created (the ingest summary, …)."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert len(found) == 1, f"flow run {flow_run_id} has {len(found)} {key!r} artifacts"
    data: Any = found[0].data  # a table artifact's rows, as JSON text
    return list(json.loads(data) if isinstance(data, str) else data or [])


# -- sends ---------------------------------------------------------------------------------------


def ledger_rows(data_dir: Path) -> dict[str, dict[str, Any]]:
    with Ledger(data_dir / "state.sqlite") as ledger:
        return {row["send_key"]: row for row in ledger.export_rows()}


def outbox_keys(outbox: Iterable[dict[str, Any]]) -> list[str]:
    """The send key of every outbox line (one line per recipient SendGrid accepted)."""
    return [record["custom_args"][SEND_ID_ARG] for record in outbox]


def exported_versions(raw_dir: Path) -> set[tuple[str, datetime]]:
    """``(send_key, updated_at)`` of every ledger row version exported to ``raw/hearth/sends``."""
    pattern = os.fspath(raw_dir / "hearth" / "sends" / "*.parquet")
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        return set(db.execute(f"select distinct id, updated_at from read_parquet('{pattern}')").fetchall())


# -- the warehouse against the shop ----------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """One entity: the keys the shop holds with their latest version, and every row the warehouse holds."""

    entity: str
    shop: dict[Any, datetime | None]
    rows: list[tuple[Any, datetime | None]]  # (key, version) of every warehouse row

    @property
    def duplicates(self) -> list[Any]:
        return sorted(key for key, n in Counter(key for key, _ in self.rows).items() if n > 1)

    @property
    def matches(self) -> bool:
        """One row per key the shop holds, at the shop's version, and nothing else."""
        return not self.duplicates and dict(self.rows) == self.shop

    def problems(self) -> str:
        built = dict(self.rows)
        missing, extra = self.shop.keys() - built.keys(), built.keys() - self.shop.keys()
        stale = sorted(k for k in self.shop.keys() & built.keys() if self.shop[k] != built[k])
        return (
            f"{self.entity}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(extra)} extra "
            f"(e.g. {sorted(extra)[:3]}), {len(stale)} at an old version (e.g. {stale[:3]}), "
            f"{len(self.duplicates)} duplicated (e.g. {self.duplicates[:3]})"
        )


def _second(stamp: datetime) -> datetime:
    """Whole seconds in UTC: the APIs send timestamps to the second, the shop keeps microseconds."""
    return stamp.astimezone(UTC).replace(microsecond=0)


def _pairs(table: Any, key: str, stamp: str, prefix: str = "") -> dict[Any, datetime | None]:
    keys, stamps = table.column(key).to_pylist(), table.column(stamp).to_pylist()
    return {f"{prefix}{k}" if prefix else k: _second(t) for k, t in zip(keys, stamps, strict=True)}


def warehouse_against_shop(warehouse: Path, shop_dir: Path) -> list[Compared]:
    """Orders, Shopify customers and abandoned checkouts as built, against the shop; customers against people.

    The sandbox serves no test orders (the only rows the models filter on purpose), so the
    models must hold exactly the shop's rows, each once, at its latest version.
    """
    orders = {
        **_pairs(read_table(shop_dir, "orders"), "id", "updated_at", "shopify:"),
        **_pairs(read_table(shop_dir, "amazon_orders"), "amazon_order_id", "last_update_date", "amazon:"),
    }
    with open_warehouse(warehouse) as conn:

        def rows(sql: str) -> list[tuple[Any, datetime | None]]:
            return [(key, _second(stamp) if stamp else None) for key, stamp in conn.execute(sql).fetchall()]

        built = {
            "orders": rows("select order_key, updated_at from orders"),
            "customers": rows(
                "select shopify_customer_id, updated_at from int_customer_identities"
                " where record_type = 'shopify_customer'"
            ),
            "checkouts": rows("select checkout_id, updated_at from int_abandoned_checkouts_identified"),
            "people": rows("select distinct customer_key, null from int_customer_identities"),
            "mart": rows("select customer_key, null from customers"),
        }
    return [
        Compared("orders", orders, built["orders"]),
        Compared(
            "shopify customers", _pairs(read_table(shop_dir, "customers"), "id", "updated_at"), built["customers"]
        ),
        Compared(
            "abandoned checkouts", _pairs(read_table(shop_dir, "checkouts"), "id", "updated_at"), built["checkouts"]
        ),
        # Every person the identities resolve is one row of the customers mart, and nobody else.
        Compared("customers mart", dict(built["people"]), built["mart"]),
    ]
