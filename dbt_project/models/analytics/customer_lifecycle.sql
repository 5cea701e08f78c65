-- AIPL stage and lapse tier of every known customer as of var as_of (DOMAIN.md "AIPL", "Lapse tiers").

with known_customers as (
    select customer_key, email_consent
    from {{ ref('customers') }}
    where first_seen_at < {{ as_of_timestamp() }}
),

orders_until_as_of as (
    select customer_key, ordered_at
    from {{ ref('orders') }}
    where not is_cancelled
        and customer_key is not null
        and ordered_at < {{ as_of_timestamp() }}
),

order_gaps as (
    select
        customer_key,
        ordered_at,
        (epoch(ordered_at) - epoch(lag(ordered_at) over (partition by customer_key order by ordered_at)))
        / 86400.0 as gap_days
    from orders_until_as_of
),

buyers as (
    select
        customer_key,
        count(*) as orders_count,
        max(ordered_at) as last_order_at,
        median(gap_days) as own_cycle_days
    from order_gaps
    group by customer_key
),

-- One-time buyers have no cadence of their own: they get the typical repeat buyer's.
shop_cadence as (
    select median(own_cycle_days) as shop_cycle_days
    from buyers
    where orders_count >= 2
),

checkout_starters as (
    select distinct customer_key
    from {{ ref('int_abandoned_checkouts_identified') }}
    where customer_key is not null
        and created_at < {{ as_of_timestamp() }}
),

measured as (
    select
        known_customers.customer_key,
        known_customers.email_consent,
        coalesce(buyers.orders_count, 0) as orders_count,
        checkout_starters.customer_key is not null as started_checkout,
        -- Two orders on one day would make a cadence of hours: never expect faster than the floor.
        round(greatest(
            coalesce(buyers.own_cycle_days, shop_cadence.shop_cycle_days), {{ var('lapse_min_cycle_days') }}
        ), 1) as expected_cycle_days,
        date_diff('day', {{ utc_date('buyers.last_order_at') }}, {{ as_of_date() }}) as days_since_last_order
    from known_customers
    left join buyers on buyers.customer_key = known_customers.customer_key
    left join checkout_starters on checkout_starters.customer_key = known_customers.customer_key
    cross join shop_cadence
),

overdue as (
    select
        *,
        round(greatest(days_since_last_order - expected_cycle_days, 0), 1) as days_overdue
    from measured
)

select
    customer_key,
    {{ as_of_date() }} as as_of,
    case
        when orders_count >= 2 then 'loyalty'
        when orders_count = 1 then 'purchase'
        when email_consent = 'SUBSCRIBED' or started_checkout then 'interest'
        else 'awareness'
    end as aipl_stage,
    case
        when orders_count = 0 then null
        when days_overdue >= {{ var('lapse_churned_cycles') }} * expected_cycle_days then 'churned'
        when days_overdue >= {{ var('lapse_at_risk_cycles') }} * expected_cycle_days then 'at_risk'
        when days_overdue >= {{ var('lapse_skipped_once_cycles') }} * expected_cycle_days then 'skipped_once'
        else 'active'
    end as lapse_tier,
    case when orders_count > 0 then expected_cycle_days end as expected_cycle_days,
    days_since_last_order,
    case when orders_count > 0 then days_overdue end as days_overdue
from overdue
