-- Customers whose average order is in the shop's top tenth (as of var as_of).
with order_values as (
    select customer_key, monetary / frequency as avg_order_value
    from {{ ref('customer_rfm') }}
),

cutoff as (
    select quantile_cont(avg_order_value, 0.9) as top_decile_aov
    from order_values
)

select
    order_values.customer_key,
    concat('average order ', round(order_values.avg_order_value, 2), ' ≥ top-decile ', round(cutoff.top_decile_aov, 2))
        as reason
from order_values
cross join cutoff
where order_values.avg_order_value >= cutoff.top_decile_aov
