"""The analytics layer of the dbt project (RFM, lifecycle, replenishment, segments, triggers)
on a warehouse built from a small demo shop, checked against the shop's ground truth.

One module-wide build: generate a ~400-customer shop with a fixed ``now``, serve it from
the sandboxes, ingest every stream into a raw zone, then ``dbt build`` once with
``as_of`` = the shop's ``now`` day. dbt runs as a subprocess with its target and log
paths in the test's temporary directory, so parallel runs never share a dbt target.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from flows.sources import land_every_stream
from hearth.config import Settings
from hearth.warehouse import open_warehouse
from sandbox.generator import generate_shop
from sandbox.run import start_sandboxes
from sandbox.shop.tables import read_table
from tests.integration.warehouse_fixture import dbt

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
AS_OF = NOW.date()
AS_OF_AT = f"timestamptz '{AS_OF + timedelta(days=1)} 00:00:00+00'"  # a date as_of means the end of that day
DBT = Path(sys.executable).with_name("dbt")
CLASS_NAMES = {
    "Important value", "Important development", "Important keep", "Important win-back",
    "General value", "General development", "General keep", "General win-back",
}  # fmt: skip
SEGMENTS = {"vip", "important_winback", "one_time_30_60_days", "high_aov", "discount_sensitive"}


def ingest(data_dir: Path, env: dict[str, str]) -> None:
    land_every_stream(Settings.from_env({**env, "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False), now=datetime.now(UTC))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of a built warehouse (``warehouse.duckdb``, ``raw/``, ``sandbox/shop/``)."""
    data_dir = tmp_path_factory.mktemp("analytics")
    generate_shop(data_dir / "sandbox" / "shop", seed=31, customers=400, now=NOW)
    sandboxes = start_sandboxes(data_dir, port_base=0, amazon_rate=50.0)
    try:
        ingest(data_dir, sandboxes.env())
    finally:
        sandboxes.stop()
    dbt(data_dir, "build", "--vars", f"{{as_of: '{AS_OF.isoformat()}'}}")
    return data_dir


@pytest.fixture
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = open_warehouse(warehouse / "warehouse.duckdb")
    yield conn
    conn.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_learned_replenishment_cycles_recover_the_true_cycles(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    con.register("truth", read_table(warehouse / "sandbox" / "shop", "products"))
    sql = """
        select r.product_key, r.learned_cycle_days, t.true_cycle_days, r.sample_size, r.is_replenishable
        from product_replenishment r join truth t on t.sku = r.product_key
        where r.sample_size >= 5
    """
    learned = rows(con, sql)
    consumables = [(key, got, true, n) for key, got, true, n, _ in learned if true is not None]
    well_sampled = [c for c in consumables if c[3] >= 20]
    assert len(well_sampled) >= 8, f"too few consumables with 20+ repeat purchases: {consumables}"
    off = [c for c in well_sampled if abs(c[1] - c[2]) > 5]
    assert not off, f"learned cycles more than 5 days off the true cycle: {off}"
    # A handful of intervals from a few customers carries their personal pace: within 15 %.
    off = [c for c in consumables if abs(c[1] - c[2]) > 0.15 * c[2]]
    assert not off, f"learned cycles more than 15 % off the true cycle: {off}"
    durables = [key for key, _, true, _, replenishable in learned if true is None and replenishable]
    assert not durables, f"durables re-bought by chance must not get a cycle: {durables}"


def test_rfm_bits_and_codes_follow_the_scores_and_the_median_split(con: duckdb.DuckDBPyConnection) -> None:
    buyers_sql = f"""
        select count(distinct customer_key) from orders
        where not is_cancelled and ordered_at < {AS_OF_AT}
    """
    (customers,) = rows(con, "select count(*) from customer_rfm")[0]
    assert customers == rows(con, buyers_sql)[0][0] > 300
    wrong_sql = f"""
        with split as (
            select median(recency_days) r, median(frequency) f, median(monetary) m from customer_rfm
        )
        select customer_key from customer_rfm, split
        where r_bit <> (recency_days < split.r)::int
           or f_bit <> (frequency > split.f)::int
           or m_bit <> (monetary > split.m)::int
           or rfm_code <> concat(r_bit, f_bit, m_bit)
           or as_of <> date '{AS_OF}'
    """
    wrong = rows(con, wrong_sql)
    assert not wrong, f"{len(wrong)} customers whose bits disagree with the median split"
    # Scores rank the customers: a better score never has a worse value.
    for score, value, better in [
        ("r_score", "recency_days", "<"),
        ("f_score", "frequency", ">"),
        ("m_score", "monetary", ">"),
    ]:
        inverted_sql = f"""
            select count(*) from customer_rfm a join customer_rfm b on a.{score} > b.{score}
            where not (a.{value} {better} b.{value})
        """
        assert rows(con, inverted_sql)[0][0] == 0, f"{score} is not monotonic in {value}"
    assert {s for (s,) in rows(con, "select distinct r_score from customer_rfm")} == {1, 2, 3, 4, 5}


def test_all_eight_rfm_classes_are_populated(con: duckdb.DuckDBPyConnection) -> None:
    classes = dict(rows(con, "select rfm_class, count(*) from customer_rfm group by 1"))
    assert set(classes) == CLASS_NAMES
    codes = {code for (code,) in rows(con, "select distinct rfm_code from customer_rfm")}
    assert codes == {f"{r}{f}{m}" for r in "01" for f in "01" for m in "01"}


def test_lapse_tiers_are_ordered_and_track_who_really_dropped_out(
    con: duckdb.DuckDBPyConnection, warehouse: Path
) -> None:
    con.register("persons", read_table(warehouse / "sandbox" / "shop", "persons"))
    sql = """
        select l.lapse_tier, avg(l.days_overdue), min(l.days_overdue / l.expected_cycle_days),
               avg((p.true_dropout_at is null)::int)
        from customer_lifecycle l
        join customers c using (customer_key)
        join persons p on p.email_canonical = c.email
        where l.lapse_tier is not null
        group by 1
    """
    tiers = {tier: (overdue, cycles, alive) for tier, overdue, cycles, alive in rows(con, sql)}
    order = ["active", "skipped_once", "at_risk", "churned"]
    assert set(tiers) == set(order)
    overdue = [tiers[t][0] for t in order]
    assert overdue == sorted(overdue) and overdue[0] < overdue[-1], f"mean days overdue by tier: {overdue}"
    assert tiers["skipped_once"][1] >= 1.0 and tiers["at_risk"][1] >= 2.0 and tiers["churned"][1] >= 3.0
    # The simulated people who are still buying sit in the active tier far more than the churned one.
    assert tiers["active"][2] > tiers["churned"][2] + 0.3, f"alive share by tier: {[tiers[t][2] for t in order]}"
    stages = dict(rows(con, "select aipl_stage, count(*) from customer_lifecycle group by 1"))
    assert set(stages) == {"awareness", "interest", "purchase", "loyalty"}
    mismatch_sql = """
        select count(*) from customer_lifecycle
        where (lapse_tier is null) <> (aipl_stage in ('awareness', 'interest'))
    """
    assert rows(con, mismatch_sql)[0][0] == 0


def test_abandoned_checkout_triggers_keep_the_exit_rules(con: duckdb.DuckDBPyConnection) -> None:
    counts = rows(con, "select count(*), count(email), count(distinct customer_key) from trigger_abandoned_checkouts")
    assert counts[0][0] > 5 and counts[0] == (counts[0][0],) * 3, "one row per person, every row with an email"
    ordered_since_sql = f"""
        select t.trigger_id from trigger_abandoned_checkouts t
        join orders o on o.customer_key = t.customer_key
            and o.ordered_at >= t.checkout_created_at and o.ordered_at < {AS_OF_AT}
    """
    assert not rows(con, ordered_since_sql), "a checkout of a person who ordered since it was started"
    completed_sql = f"""
        select t.trigger_id from trigger_abandoned_checkouts t
        join int_abandoned_checkouts_identified c on cast(c.checkout_id as varchar) = t.trigger_id
        where c.completed_at < {AS_OF_AT}
    """
    assert not rows(con, completed_sql)
    (youngest, oldest) = rows(con, "select min(minutes_since), max(minutes_since) from trigger_abandoned_checkouts")[0]
    assert youngest >= 60 and oldest < 7 * 24 * 60
    cart_sql = """
        select items, item_count, total_price from trigger_abandoned_checkouts
        where item_count > 0 order by trigger_id limit 1
    """
    (items, count, total) = rows(con, cart_sql)[0]
    assert set(items[0]) == {"title", "quantity", "unit_price", "image_url", "product_url"}
    assert count == sum(item["quantity"] for item in items) and total > 0


def test_replenishment_triggers_are_due_within_the_window(con: duckdb.DuckDBPyConnection) -> None:
    (n, unique) = rows(con, "select count(*), count(distinct trigger_id) from trigger_replenishment")[0]
    assert n > 5 and n == unique
    wrong_sql = f"""
        select trigger_id from trigger_replenishment
        where due_date <> cast(timezone('UTC', last_purchased_at) as date) + cycle_days * last_quantity
           or remind_on <> due_date - 5
           or remind_on > date '{AS_OF}'
           or due_date + cycle_days < date '{AS_OF}'
    """
    wrong = rows(con, wrong_sql)
    assert not wrong, f"reminders outside the window: {wrong[:5]}"
    rebought_sql = """
        select t.trigger_id from trigger_replenishment t
        join order_lines l on l.customer_key = t.customer_key and l.product_key = t.product_key
            and l.ordered_at > t.last_purchased_at and not l.is_cancelled
    """
    assert not rows(con, rebought_sql)


def test_winback_triggers_carry_the_last_order(con: duckdb.DuckDBPyConnection) -> None:
    tiers = dict(rows(con, "select lapse_tier, count(*) from trigger_winback group by 1"))
    assert set(tiers) <= {"skipped_once", "at_risk", "churned"} and sum(tiers.values()) > 5
    (items,) = rows(con, "select last_items from trigger_winback where len(last_items) > 0 limit 1")[0]
    assert set(items[0]) == {"title", "quantity", "image_url", "product_url"}
    mismatched_sql = """
        select w.trigger_id from trigger_winback w join customer_lifecycle l using (customer_key)
        where w.lapse_tier <> l.lapse_tier or not w.trigger_id like w.customer_key || ':%:' || w.lapse_tier
    """
    assert not rows(con, mismatched_sql)


def test_segment_members_union_every_segment_with_history(con: duckdb.DuckDBPyConnection) -> None:
    segments = dict(rows(con, "select segment, count(*) from segment_members group by 1"))
    assert set(segments) == SEGMENTS and all(segments.values())
    history_sql = "select count(*), count(*) filter (where exited_at is null) from segment_history"
    assert rows(con, history_sql)[0] == (sum(segments.values()),) * 2
    entered = rows(con, "select distinct entered_at from segment_members")
    assert entered == [(datetime.combine(AS_OF + timedelta(days=1), datetime.min.time(), UTC),)]


def test_an_older_as_of_rebuilds_rfm_and_moves_segment_history(warehouse: Path, tmp_path: Path) -> None:
    """Rebuild a copy as of 120 days earlier, its segment history set back to before that day."""
    older = AS_OF - timedelta(days=120)
    older_at = datetime.combine(older + timedelta(days=1), datetime.min.time())
    recorded_at = older_at - timedelta(days=30)
    shutil.copy(warehouse / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    (tmp_path / "raw").symlink_to(warehouse / "raw")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as surgery:
        # As if the current members had been recorded a month before `older`, plus one who has left since.
        surgery.execute(
            "update segment_membership_snapshot set as_of_at = $1, dbt_valid_from = $1, dbt_updated_at = $1",
            [recorded_at],
        )
        surgery.execute(
            "insert into segment_membership_snapshot by name select 'vip:ghost' as membership_key, 'vip' as segment,"
            " 'ghost' as customer_key, true as is_member, $1 as as_of_at, 'ghost' as dbt_scd_id,"
            " $1 as dbt_updated_at, $1 as dbt_valid_from",
            [recorded_at],
        )
    dbt(tmp_path, "build", "--select", "customer_rfm+", "--exclude", "resource_type:test", "resource_type:unit_test",
        "--vars", f"{{as_of: '{older.isoformat()}'}}")  # fmt: skip

    then_con = open_warehouse(tmp_path / "warehouse.duckdb")
    now_con = open_warehouse(warehouse / "warehouse.duckdb")
    try:
        rfm_sql = "select customer_key, rfm_code, recency_days from customer_rfm"
        now = {key: (code, recency) for key, code, recency in rows(now_con, rfm_sql)}
        then = {key: (code, recency) for key, code, recency in rows(then_con, rfm_sql)}
        as_of_days = rows(then_con, "select distinct as_of from customer_rfm")
        late_sql = f"""
            select count(*) from customer_rfm join customers c using (customer_key)
            where c.first_order_at >= timestamptz '{older_at.isoformat()}+00'
        """
        late_buyers = rows(then_con, late_sql)[0][0]
        ghost = rows(then_con, "select entered_at, exited_at from segment_history where customer_key = 'ghost'")
        stays_sql = """
            select count(*), count(*) filter (where m.entered_at = h.entered_at)
            from segment_members m join segment_history h using (segment, customer_key)
            where h.exited_at is null
        """
        stays = rows(then_con, stays_sql)[0]
        members = rows(then_con, "select count(*) from segment_members")[0][0]
        entered = {e for (e,) in rows(then_con, "select distinct timezone('UTC', entered_at) from segment_members")}
    finally:
        now_con.close()
        then_con.close()

    assert as_of_days == [(older,)]
    assert late_buyers == 0, "customers whose first order came after as_of must not be scored"
    assert set(then) < set(now)
    assert sum(then[key][0] != now[key][0] for key in then) > len(then) // 10
    assert all(recency >= 0 for _, recency in then.values()), "an order after as_of was counted"
    assert ghost == [(recorded_at.replace(tzinfo=UTC), older_at.replace(tzinfo=UTC))], "a leaver's stay is closed"
    assert stays == (members, members), "every member has exactly one open stay, and entered_at is its start"
    assert entered == {recorded_at, older_at}, "members stay since the recorded day; newcomers enter on as_of"


def test_the_same_as_of_built_again_leaves_segment_history_as_it_is(warehouse: Path, tmp_path: Path) -> None:
    """A rebuild of the day already recorded (hourly builds, a rerun) records no entry or exit.

    Between the two builds one member drops out of the unioned segment table (as if the
    data changed within the day): the snapshot must still not record an exit at the
    instant it already recorded, which would leave a stay that ends where it starts.
    """
    shutil.copy(warehouse / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    (tmp_path / "raw").symlink_to(warehouse / "raw")
    snapshot_sql = "select * from segment_membership_snapshot order by membership_key, dbt_valid_from"
    history_sql = "select * from segment_history order by all"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as before:
        snapshot, history = rows(before, snapshot_sql), rows(before, history_sql)
        before.execute(
            "delete from int_segment_members_unioned where (segment, customer_key) = "
            "(select (segment, customer_key) from int_segment_members_unioned order by all limit 1)"
        )
    dbt(tmp_path, "build", "--select", "segment_membership_snapshot+", "--exclude", "resource_type:test",
        "resource_type:unit_test", "--vars", f"{{as_of: '{AS_OF.isoformat()}'}}")  # fmt: skip
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as after:
        assert len(snapshot) > 0 and rows(after, snapshot_sql) == snapshot
        assert rows(after, history_sql) == history
