"""The `transform` flow end to end on a tiny dbt project in tmp_path (DuckDB, reading a tiny raw zone).

One dbt invocation per flow run through prefect-dbt; then the quality gate. A model
that fails or a gate that fails must leave the flow Failed, never Completed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.transform import transform
from hearth.config import Settings
from hearth.quality import latest_gate
from hearth.rawzone import RawZone
from hearth.warehouse import DBT_PROJECT_ENV

pytestmark = pytest.mark.usefixtures("prefect_harness")

RAW = "read_parquet('{{ env_var(\"HEARTH_DATA_DIR\") }}/raw/shopify/%s/*.parquet')"
PROJECT = {
    "dbt_project.yml": "name: tiny\nversion: '0.1.0'\nconfig-version: 2\nprofile: hearth\n"
    "vars:\n  as_of: null\nmodels:\n  tiny:\n    +materialized: table\n",
    "profiles.yml": "hearth:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n"
    "      path: \"{{ env_var('HEARTH_DATA_DIR') }}/warehouse.duckdb\"\n      threads: 1\n",
    "models/customers.sql": f"""
        select id as customer_key,
            lower(trim(record->>'$.defaultEmailAddress.emailAddress')) as email,
            record->>'$.defaultEmailAddress.marketingState' as email_consent,
            cast(record->>'$.amountSpent.amount' as decimal(18, 2)) as total_revenue,
            record->>'$.defaultEmailAddress.marketingState' = 'SUBSCRIBED' as is_marketable
        from {RAW % "customers"}""",
    "models/orders.sql": f"""
        select id as order_key, cast(record->>'$.createdAt' as timestamptz) as ordered_at,
            cast(record->>'$.totalPriceSet.shopMoney.amount' as decimal(18, 2)) as net_revenue
        from {RAW % "orders"}""",
    "models/trigger_winback.sql": """
        select customer_key, 'winback:' || customer_key as trigger_id, is_marketable,
            '{{ var("as_of") }}' as as_of
        from {{ ref('customers') }} where total_revenue > 50""",
    "models/schema.yml": "version: 2\nmodels:\n  - name: customers\n    columns:\n"
    "      - name: customer_key\n        data_tests: [unique, not_null]\n",
}


def _customer(i: int) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Customer/{i}",
        "defaultEmailAddress": {
            "emailAddress": f"person{i}@shop.example",
            "marketingState": "SUBSCRIBED" if i % 2 == 0 else "NOT_SUBSCRIBED",
        },
        "amountSpent": {"amount": f"{i * 10}.00"},
        "updatedAt": "2026-01-01T00:00:00Z",
    }


def _order(i: int, amount: str = "25.00") -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Order/{i}",
        "createdAt": "2026-01-02T00:00:00Z",
        "updatedAt": "2026-01-02T00:00:00Z",
        "totalPriceSet": {"shopMoney": {"amount": amount}},
    }


def land(settings: Settings, stream: str, records: list[dict[str, Any]]) -> None:
    earlier = len(list((settings.raw_dir / "shopify" / stream).glob("*.parquet")))
    zone = RawZone(settings.raw_dir, now=lambda: datetime(2026, 1, 3, tzinfo=UTC) + timedelta(seconds=earlier))
    with zone.open_load("shopify", stream) as load:
        load.write(records, id_of=lambda r: r["id"], updated_at_of=lambda r: r["updatedAt"])


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path]:
    """A raw zone of 10 customers and 12 orders, and the tiny dbt project that models it."""
    project = tmp_path / "dbt"
    for name, text in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(DBT_PROJECT_ENV, str(project))
    settings = Settings.from_env(dotenv=False)
    land(settings, "customers", [_customer(i) for i in range(10)])
    land(settings, "orders", [_order(i) for i in range(12)])
    return settings, project


def _task_names(flow_run_id: Any) -> set[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name for run in runs}


def test_a_good_build_and_gate_complete_with_per_node_tasks_and_an_artifact(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    state = transform(as_of="2026-01-31", return_state=True)

    assert state.is_completed(), state.message
    # dbt's artifacts and log belong to the data dir it built; the project stays as checked out.
    assert "trigger_winback" in (settings.dbt_target_dir / "run_results.json").read_text()
    assert (settings.dbt_log_dir / "dbt.log").is_file()
    assert not (project / "target").exists() and not (project / "logs").exists()
    summary = state.result()
    assert summary["dbt"] == {"success": 3, "pass": 2}  # 3 models, 2 data tests
    assert summary["gate"]["passed"] is True
    assert summary["gate"]["row_counts"] == {"customers": 10, "orders": 12, "trigger_winback": 4}
    gate = latest_gate(settings)
    assert gate is not None and gate.passed and gate.run_id == summary["gate"]["run_id"]
    assert gate.docs_path.is_file()
    # --vars reached dbt, and dbt let go of the warehouse file for readers.
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        assert conn.sql("select distinct as_of from trigger_winback").fetchall() == [("2026-01-31",)]
    names = {name.rsplit("-", 1)[0] for name in _task_names(state.state_details.flow_run_id)}
    # A task run per model and the gate; data tests cost a task run each and get none (ModelTaskRunner).
    assert names == {"model customers", "model orders", "model trigger_winback", "quality-gate"}
    artifact = Artifact.get("transform-summary")
    assert artifact is not None
    assert "| success | 3 |" in str(artifact.data)
    assert "Quality gate **passed**" in str(artifact.data)


def test_a_model_with_an_sql_error_fails_the_flow_and_blocks_sends(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    (project / "models" / "broken.sql").write_text("select no_such_column from {{ ref('orders') }}\n")

    state = transform(return_state=True)

    assert state.is_failed(), state.name
    assert state.message.startswith("dbt build failed; quality gate failed: dbt: model broken error:")
    assert "no_such_column" in state.message
    assert "sends are blocked until a build passes" in state.message
    gate = latest_gate(settings)
    assert gate is not None and not gate.passed
    assert gate.failures[0].startswith("dbt: model broken error:")


def test_a_failing_data_test_fails_the_flow_without_a_task_of_its_own(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    (project / "tests").mkdir()
    failing = "select * from {{ ref('orders') }} where net_revenue > 10\n"  # every order is 25.00
    (project / "tests" / "no_order_over_ten.sql").write_text(failing)

    state = transform(return_state=True)

    assert state.is_failed(), state.name
    assert state.message.startswith("dbt build failed; quality gate failed: dbt: test no_order_over_ten fail:")
    gate = latest_gate(settings)
    assert gate is not None and not gate.passed
    names = {name.rsplit("-", 1)[0] for name in _task_names(state.state_details.flow_run_id)}
    assert names == {"model customers", "model orders", "model trigger_winback", "quality-gate"}


def test_a_failing_gate_fails_the_flow_with_the_reason_and_the_docs(shop: tuple[Settings, Path]) -> None:
    settings, _ = shop
    land(settings, "orders", [_order(3, amount="-5.00")])

    state = transform(return_state=True)

    assert state.is_failed(), state.name
    docs = settings.data_dir / "quality" / "docs" / "index.html"
    assert state.message.startswith("quality gate failed: raw.shopify.orders: total_price is never negative")
    assert state.message.endswith(f"sends are blocked until a build passes; see {docs}")
    assert "marts.orders: net_revenue is never negative" in state.message
    gate = latest_gate(settings)
    assert gate is not None and not gate.passed and docs.is_file()


def test_a_build_that_dies_half_way_blocks_sends_until_a_build_passes(
    shop: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.transform

    settings, _ = shop
    assert transform(return_state=True).is_completed() and latest_gate(settings).passed

    def dies(*_args: object) -> None:
        raise MemoryError("the build died half-way")

    build = flows.transform.run_dbt_build
    monkeypatch.setattr(flows.transform, "run_dbt_build", dies)
    assert not transform(return_state=True).is_completed()
    half_built = latest_gate(settings)
    assert not half_built.passed and "has not finished" in half_built.failures[0]

    monkeypatch.setattr(flows.transform, "run_dbt_build", build)
    assert transform(return_state=True).is_completed() and latest_gate(settings).passed


def _built_with_threads(settings: Settings) -> int:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        [(threads,)] = conn.sql("select threads from build_threads").fetchall()
    return threads


def test_builds_from_scratch_take_one_dbt_thread_and_incremental_builds_two(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    (project / "models" / "build_threads.sql").write_text("select {{ target.threads }} as threads\n")

    assert transform(return_state=True).is_completed()
    assert _built_with_threads(settings) == 1  # no warehouse yet: every staging query reads the whole raw zone
    assert transform(return_state=True).is_completed()
    assert _built_with_threads(settings) == 2
    assert transform(full_refresh=True, return_state=True).is_completed()
    assert _built_with_threads(settings) == 1


def test_nodes_out_of_memory_with_two_threads_are_rebuilt_one_at_a_time(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    # Stands in for two big queries that need more than DuckDB's memory cap together, not alone.
    (project / "models" / "build_threads.sql").write_text(
        "{% if target.threads > 1 %}select error('Out of Memory Error: failed to allocate data of size 64.0 MiB')"
        "{% else %}select {{ target.threads }} as threads{% endif %}\n"
    )
    after = "select threads + 1 as next from {{ ref('build_threads') }}\n"
    (project / "models" / "after_threads.sql").write_text(after)
    assert transform(return_state=True).is_completed()

    state = transform(return_state=True)

    assert state.is_completed(), state.message
    # The failed model and the one it held back ran again; the rest of the build kept its results.
    assert state.result()["dbt"] == {"success": 5, "pass": 2}
    assert _built_with_threads(settings) == 1
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        assert conn.sql("select next from after_threads").fetchall() == [(2,)]
    assert latest_gate(settings).passed
    assert "rebuilt one node at a time" in str(Artifact.get("transform-summary").data)


def test_a_model_out_of_memory_even_alone_fails_the_flow_after_one_retry(shop: tuple[Settings, Path]) -> None:
    settings, project = shop
    assert transform(return_state=True).is_completed()
    (project / "models" / "broken.sql").write_text("select error('Out of Memory Error: even alone')\n")

    state = transform(return_state=True)

    assert state.is_failed()
    assert "dbt: model broken error:" in state.message and "even alone" in state.message
    assert not latest_gate(settings).passed


UNIT_TEST = """
unit_tests:
  - name: winback_only_above_fifty
    model: trigger_winback
    given:
      - input: ref('customers')
        rows:
          - {customer_key: a, total_revenue: 60, is_marketable: true}
          - {customer_key: b, total_revenue: 40, is_marketable: true}
    expect:
      rows:
        - {customer_key: a}
"""


def test_unit_tests_run_only_when_the_project_changed_since_the_last_passing_build(shop: tuple[Settings, Path]) -> None:
    _, project = shop
    (project / "models" / "unit_tests.yml").write_text(UNIT_TEST)

    def node_counts() -> dict[str, int]:
        state = transform(return_state=True)
        assert state.is_completed(), state.message
        return state.result()["dbt"]

    assert node_counts() == {"success": 3, "pass": 3}  # 2 data tests and the unit test
    assert node_counts() == {"success": 3, "pass": 2}  # same project: its unit test already passed
    model = project / "models" / "trigger_winback.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert node_counts() == {"success": 3, "pass": 3}
