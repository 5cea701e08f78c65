-- Replenishment cycle per product, learned from repeat purchases as of var as_of (DOMAIN.md "Replenishment").

-- A purchase before as_of has its previous purchase before as_of too.
with purchases as (
    select * from {{ ref('int_product_purchases') }}
    where ordered_at < {{ as_of_timestamp() }}
),

-- Days one unit lasted: the gap to the customer's next purchase of the same product,
-- divided by the units bought at the earlier purchase (three bags last three cycles).
unit_intervals as (
    select
        product_key,
        (epoch(ordered_at) - epoch(previous_ordered_at)) / 86400.0 / previous_quantity as days_per_unit
    from purchases
),

-- Each product's intervals as one list, its quartiles taken from the list: DuckDB's quantile
-- aggregates fed straight from the intervals took 4x as long at 10M orders (bench/README).
interval_lists as (
    select
        product_key,
        coalesce(list(days_per_unit) filter (where days_per_unit is not null), []) as intervals
    from unit_intervals
    group by product_key
),

learned as (
    select
        product_key,
        round(quartiles[2], 1) as learned_cycle_days,
        len(intervals) as sample_size,
        round((quartiles[3] - quartiles[1]) / nullif(quartiles[2], 0), 2) as interval_dispersion
    from (
        select *, list_aggregate(intervals, 'quantile_cont', [0.25, 0.5, 0.75]) as quartiles
        from interval_lists
    )
),

-- Enough repeat intervals, and clustered ones: durables bought twice by chance are not replenished.
trusted as (
    select
        *,
        sample_size >= {{ var('replenishment_min_samples') }}
        and interval_dispersion <= {{ var('replenishment_max_dispersion') }} as is_trusted
    from learned
)

select
    products.product_key,
    trusted.learned_cycle_days,
    coalesce(trusted.sample_size, 0) as sample_size,
    trusted.interval_dispersion,
    overrides.cycle_days as override_cycle_days,
    case
        when overrides.cycle_days is not null then overrides.cycle_days
        when trusted.is_trusted then cast(round(trusted.learned_cycle_days) as integer)
    end as cycle_days,
    coalesce(overrides.cycle_days is not null or trusted.is_trusted, false) as is_replenishable
from {{ ref('products') }} as products
left join trusted on trusted.product_key = products.product_key
left join {{ ref('replenishment_overrides') }} as overrides on overrides.product_key = products.product_key
