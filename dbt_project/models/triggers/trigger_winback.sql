-- Win-back emails due now: one row per lapsed customer, for the tier their current lapse has reached.

-- A tier triggers within one expected cycle of the customer entering it: someone who
-- churned long ago (or before Hearth was installed) is not mailed out of the blue.
with lapsed as (
    select customer_key, lapse_tier, days_since_last_order
    from {{ ref('customer_lifecycle') }}
    where lapse_tier in ('skipped_once', 'at_risk', 'churned')
        and days_overdue < expected_cycle_days * (1 + case lapse_tier
            when 'skipped_once' then {{ var('lapse_skipped_once_cycles') }}
            when 'at_risk' then {{ var('lapse_at_risk_cycles') }}
            else {{ var('lapse_churned_cycles') }}
        end)
),

last_orders as (
    select customer_key, order_key, ordered_at
    from {{ ref('orders') }}
    where not is_cancelled
        and customer_key in (select customer_key from lapsed)
        and ordered_at < {{ as_of_timestamp() }}
    qualify row_number() over (partition by customer_key order by ordered_at desc, order_key desc) = 1
),

last_items as (
    select
        lines.order_key,
        list(
            struct_pack(
                title := lines.title,
                quantity := lines.quantity,
                image_url := products.image_url,
                product_url := products.product_url
            )
            order by lines.order_line_key
        ) as last_items
    from {{ ref('order_lines') }} as lines
    left join {{ ref('products') }} as products on products.product_key = lines.product_key
    where lines.order_key in (select order_key from last_orders)
    group by lines.order_key
)

select
    lapsed.customer_key,
    customers.email,
    customers.first_name,
    customers.timezone,
    coalesce(customers.is_marketable, false) as is_marketable,
    -- A new order starts a new lapse; each tier of one lapse triggers once.
    concat_ws(':', lapsed.customer_key, last_orders.order_key, lapsed.lapse_tier) as trigger_id,
    lapsed.lapse_tier,
    last_orders.ordered_at as last_order_at,
    lapsed.days_since_last_order,
    coalesce(last_items.last_items, []) as last_items
from lapsed
inner join last_orders on last_orders.customer_key = lapsed.customer_key
inner join {{ ref('customers') }} as customers on customers.customer_key = lapsed.customer_key
left join last_items on last_items.order_key = last_orders.order_key
