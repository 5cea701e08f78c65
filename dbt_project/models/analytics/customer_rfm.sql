-- RFM per customer as of var as_of: 1–5 quintile scores and the 2×2×2 class (DOMAIN.md "RFM").
{%- set split = var('rfm_split_quantile') %}

with orders_until_as_of as (
    select customer_key, ordered_at, coalesce(net_revenue, 0) as net_revenue
    from {{ ref('orders') }}
    where not is_cancelled
        and customer_key is not null
        and ordered_at < {{ as_of_timestamp() }}
),

per_customer as (
    select
        customer_key,
        {{ as_of_date() }} as as_of,
        date_diff('day', {{ utc_date('max(ordered_at)') }}, {{ as_of_date() }}) as recency_days,
        count(*) as frequency,
        sum(net_revenue) as monetary
    from orders_until_as_of
    group by customer_key
),

-- Quintiles over ranks, in exact integer arithmetic: score = 1 + 5 × (rank − 1) ÷ (n − 1),
-- capped at 5. Tied values share a rank, so the many one-order customers share one
-- F score instead of being spread over quintiles at random.
ranked as (
    select
        *,
        rank() over (order by recency_days desc) - 1 as recency_rank,
        rank() over (order by frequency) - 1 as frequency_rank,
        rank() over (order by monetary) - 1 as monetary_rank,
        greatest(count(*) over () - 1, 1) as last_rank
    from per_customer
),

scored as (
    select
        customer_key,
        as_of,
        recency_days,
        frequency,
        monetary,
        cast(least(5, 1 + 5 * recency_rank // last_rank) as integer) as r_score,
        cast(least(5, 1 + 5 * frequency_rank // last_rank) as integer) as f_score,
        cast(least(5, 1 + 5 * monetary_rank // last_rank) as integer) as m_score
    from ranked
),

-- A share of rfm_split_quantile of the customers sits on the worse side of each split.
split_points as (
    select
        quantile_cont(recency_days, 1 - {{ split }}) as recency_split,
        quantile_cont(frequency, {{ split }}) as frequency_split,
        quantile_cont(monetary, {{ split }}) as monetary_split
    from per_customer
),

-- Bit 1 is the better side, strictly past the split point: ties go to the worse half,
-- so with a median of one order F=1 means "ordered more than once".
coded as (
    select
        scored.*,
        cast(scored.recency_days < split_points.recency_split as integer) as r_bit,
        cast(scored.frequency > split_points.frequency_split as integer) as f_bit,
        cast(scored.monetary > split_points.monetary_split as integer) as m_bit
    from scored
    cross join split_points
)

select
    coded.customer_key,
    coded.as_of,
    coded.recency_days,
    coded.frequency,
    coded.monetary,
    coded.r_score,
    coded.f_score,
    coded.m_score,
    coded.r_bit,
    coded.f_bit,
    coded.m_bit,
    concat(coded.r_bit, coded.f_bit, coded.m_bit) as rfm_code,
    rfm_classes.class_name as rfm_class
from coded
left join {{ ref('rfm_classes') }} as rfm_classes
    on rfm_classes.code = concat(coded.r_bit, coded.f_bit, coded.m_bit)
