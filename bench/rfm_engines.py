"""RFM computed four ways — DuckDB SQL, pandas, Polars lazy — and a check that they agree.

The baselines of the `warehouse.rfm` stage: the same quintile scores and 2×2×2 codes as
the dbt model `customer_rfm`, from the same orders, so the comparison is honest.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa

SPLIT = 0.5
RFM_COLUMNS = "customer_key, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_code"


def check_agreement(results: dict[str, Any]) -> dict[str, int]:
    """Rows per engine whose scores or code differ from the dbt model's; raises if any do."""
    conn = duckdb.connect()
    keys = "customer_key, r_score, f_score, m_score, rfm_code"
    differs: dict[str, int] = {}
    conn.register("model", results["dbt model"])
    for name, table in results.items():
        conn.register("other", table)
        differs[name] = conn.execute(
            f"select count(*) from ((select {keys} from model except select {keys} from other) "
            f"union all (select {keys} from other except select {keys} from model))"
        ).fetchall()[0][0]
    if any(differs.values()):
        raise AssertionError(f"RFM engines disagree with customer_rfm (rows that differ): {differs}")
    return differs


# -- the same RFM by hand: one DuckDB query, pandas, Polars lazy ------------------------
# Each follows customer_rfm.sql exactly: paid orders before as_of, recency in UTC days,
# scores 1 + 5 × rank ÷ (n − 1) over min-ranks capped at 5, bits strictly past the
# linear-interpolated split quantile (ties to the worse side).


def duckdb_rfm(conn: duckdb.DuckDBPyConnection, source: str, as_of: datetime, split: float) -> pa.Table:
    """RFM as one hand-written DuckDB query over ``source`` (a table name or ``read_parquet(...)``)."""
    return conn.sql(f"""
        with per_customer as (
            select customer_key,
                date_diff('day', cast(timezone('UTC', max(ordered_at)) as date), date '{as_of.date()}') as recency_days,
                count(*) as frequency, sum(coalesce(net_revenue, 0)) as monetary
            from {source}
            where not is_cancelled and customer_key is not null and ordered_at < timestamptz '{as_of.isoformat()}'
            group by customer_key
        ), splits as (
            select quantile_cont(recency_days, {1 - split}) as r, quantile_cont(frequency, {split}) as f,
                quantile_cont(monetary, {split}) as m, greatest(count(*) - 1, 1) as last_rank
            from per_customer
        )
        select customer_key, recency_days, frequency, monetary,
            cast(least(5, 1 + 5 * (rank() over (order by recency_days desc) - 1) // last_rank) as integer) as r_score,
            cast(least(5, 1 + 5 * (rank() over (order by frequency) - 1) // last_rank) as integer) as f_score,
            cast(least(5, 1 + 5 * (rank() over (order by monetary) - 1) // last_rank) as integer) as m_score,
            concat((recency_days < r)::int, (frequency > f)::int, (monetary > m)::int) as rfm_code
        from per_customer, splits
    """).to_arrow_table()


def _bits(*bits: Any) -> Any:
    return bits[0].astype(int).astype(str) + bits[1].astype(int).astype(str) + bits[2].astype(int).astype(str)


def pandas_rfm(parquet: Path, as_of: datetime, split: float) -> pa.Table:
    """RFM in pandas from the orders Parquet; money as integer cents so sums are exact like DECIMAL."""
    columns = ["customer_key", "ordered_at", "net_revenue", "is_cancelled"]
    orders = pd.read_parquet(parquet, columns=columns)
    kept = orders[~orders["is_cancelled"] & orders["customer_key"].notna() & (orders["ordered_at"] < as_of)]
    cents = (kept["net_revenue"].astype("float64").fillna(0) * 100).round().astype("int64")
    day = kept["ordered_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    grouped = pd.DataFrame({"customer_key": kept["customer_key"], "day": day, "cents": cents}).groupby("customer_key")
    rfm = grouped.agg(last_day=("day", "max"), frequency=("day", "size"), cents=("cents", "sum")).reset_index()
    rfm["recency_days"] = (pd.Timestamp(as_of.date()) - rfm["last_day"]).dt.days
    last_rank = max(len(rfm) - 1, 1)
    for score, column, ascending in (("r", "recency_days", False), ("f", "frequency", True), ("m", "cents", True)):
        rank0 = rfm[column].rank(method="min", ascending=ascending).astype("int64") - 1
        rfm[f"{score}_score"] = (1 + 5 * rank0 // last_rank).clip(upper=5).astype("int32")
    rfm["rfm_code"] = _bits(
        rfm["recency_days"] < rfm["recency_days"].quantile(1 - split),
        rfm["frequency"] > rfm["frequency"].quantile(split),
        rfm["cents"] > rfm["cents"].quantile(split),
    )
    rfm["monetary"] = rfm["cents"] / 100
    return pa.Table.from_pandas(rfm[RFM_COLUMNS.split(", ")], preserve_index=False)


def polars_rfm(parquet: Path, as_of: datetime, split: float) -> pa.Table:
    """RFM as one Polars lazy query over the orders Parquet (money as integer cents)."""
    n1 = (pl.len() - 1).clip(lower_bound=1)

    def score(column: str, descending: bool = False) -> pl.Expr:
        rank0 = pl.col(column).rank("min", descending=descending).cast(pl.Int64) - 1
        return (1 + 5 * rank0 // n1).clip(upper_bound=5).cast(pl.Int32)

    def bit(expr: pl.Expr) -> pl.Expr:
        return expr.cast(pl.Int8).cast(pl.Utf8)

    recency, frequency, cents = pl.col("recency_days"), pl.col("frequency"), pl.col("cents")
    return (
        pl.scan_parquet(parquet)
        .filter(~pl.col("is_cancelled") & pl.col("customer_key").is_not_null() & (pl.col("ordered_at") < as_of))
        .group_by("customer_key")
        .agg(
            pl.col("ordered_at").max().dt.convert_time_zone("UTC").dt.date().alias("last_day"),
            pl.len().alias("frequency"),
            (pl.col("net_revenue").fill_null(0).cast(pl.Float64) * 100).round().cast(pl.Int64).sum().alias("cents"),
        )
        .with_columns((pl.lit(as_of.date()) - pl.col("last_day")).dt.total_days().alias("recency_days"))
        .with_columns(
            score("recency_days", descending=True).alias("r_score"),
            score("frequency").alias("f_score"),
            score("cents").alias("m_score"),
            pl.concat_str(
                bit(recency < recency.quantile(1 - split, "linear")),
                bit(frequency > frequency.quantile(split, "linear")),
                bit(cents > cents.quantile(split, "linear")),
            ).alias("rfm_code"),
            (cents / 100).alias("monetary"),
        )
        .select(RFM_COLUMNS.split(", "))
        .collect()
        .to_arrow()
    )
