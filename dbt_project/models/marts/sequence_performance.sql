{#-
    One row per sequence and step: reach, engagement, and revenue against the holdout.
    Groups, attribution window and formulas are documented in sequence_performance.yml.
-#}

with audience as (
    -- The two groups compared: accepted sends and holdout skips. Other skips (consent,
    -- caps, stale), failures and unconfirmed sends are neither treated nor a control.
    select
        send_key,
        customer_key,
        sequence,
        step,
        is_holdout,
        -- When the person entered their group: the send for the treated, the decision for
        -- the holdout (a holdout row is written when the send would have been decided).
        case when is_holdout then created_at else coalesce(sending_at, created_at) end as entered_at
    from {{ ref('stg_hearth__sends') }}
    where is_accepted or is_holdout
),

engagement as (
    select
        send_key,
        bool_or(event = 'delivered') as was_delivered,
        bool_or(event = 'open') as was_opened,
        bool_or(event = 'click') as was_clicked,
        bool_or(event = 'bounce') as was_bounced,
        bool_or(event in ('unsubscribe', 'group_unsubscribe')) as was_unsubscribed
    from {{ ref('stg_hearth__email_events') }}
    where send_key is not null
    group by 1
),

attributed as (
    -- Orders by the same person within the window after they entered their group.
    select
        audience.send_key,
        count(orders.order_key) as orders,
        coalesce(sum(orders.net_revenue), 0) as revenue
    from audience
    left join {{ ref('orders') }} as orders
        on orders.customer_key = audience.customer_key
        and not orders.is_cancelled
        and orders.ordered_at > audience.entered_at
        and orders.ordered_at <= audience.entered_at + to_days({{ var('attribution_window_days') }})
    group by 1
),

per_step as (
    select
        audience.sequence,
        audience.step,
        count(*) as audience,
        count(*) filter (where not audience.is_holdout) as sends_accepted,
        count(*) filter (where audience.is_holdout) as holdouts,
        count(*) filter (where engagement.was_delivered and not audience.is_holdout) as deliveries,
        count(*) filter (where engagement.was_opened and not audience.is_holdout) as unique_opens,
        count(*) filter (where engagement.was_clicked and not audience.is_holdout) as unique_clicks,
        count(*) filter (where engagement.was_bounced and not audience.is_holdout) as bounces,
        count(*) filter (where engagement.was_unsubscribed and not audience.is_holdout) as unsubscribes,
        count(*) filter (where attributed.orders > 0 and not audience.is_holdout) as sent_converted,
        count(*) filter (where attributed.orders > 0 and audience.is_holdout) as holdout_converted,
        coalesce(sum(attributed.orders) filter (where not audience.is_holdout), 0) as sent_orders,
        coalesce(sum(attributed.orders) filter (where audience.is_holdout), 0) as holdout_orders,
        coalesce(sum(attributed.revenue) filter (where not audience.is_holdout), 0) as sent_revenue,
        coalesce(sum(attributed.revenue) filter (where audience.is_holdout), 0) as holdout_revenue
    from audience
    left join engagement using (send_key)
    inner join attributed using (send_key)
    group by 1, 2
),

rates as (
    select
        *,
        sent_converted / nullif(sends_accepted, 0) as sent_conversion_rate,
        holdout_converted / nullif(holdouts, 0) as holdout_conversion_rate,
        sent_revenue / nullif(sends_accepted, 0) as sent_revenue_per_person,
        holdout_revenue / nullif(holdouts, 0) as holdout_revenue_per_person
    from per_step
)

select
    sequence || ':' || step as sequence_step,
    sequence,
    step,
    audience,
    sends_accepted,
    holdouts,
    deliveries,
    unique_opens,
    unique_clicks,
    bounces,
    unsubscribes,
    sent_orders,
    cast(sent_revenue as decimal(18, 2)) as sent_revenue,
    holdout_orders,
    cast(holdout_revenue as decimal(18, 2)) as holdout_revenue,
    sent_conversion_rate,
    holdout_conversion_rate,
    (sent_conversion_rate - holdout_conversion_rate) * audience as incremental_orders,
    (sent_conversion_rate - holdout_conversion_rate) * 1000 as incremental_orders_per_1000,
    cast((sent_revenue_per_person - holdout_revenue_per_person) * audience as decimal(18, 2)) as incremental_revenue,
    cast((sent_revenue_per_person - holdout_revenue_per_person) * 1000 as decimal(18, 2))
        as incremental_revenue_per_1000
from rates
