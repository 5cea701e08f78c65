-- Repeat buyers who used a discount on at least half of their orders (as of var as_of).
with discount_use as (
    select
        customer_key,
        count(*) as orders_count,
        count(*) filter (where has_discount) as discounted_orders
    from {{ ref('orders') }}
    where not is_cancelled
        and customer_key is not null
        and ordered_at < {{ as_of_timestamp() }}
    group by customer_key
)

select
    customer_key,
    concat(discounted_orders, ' of ', orders_count, ' orders discounted') as reason
from discount_use
where orders_count >= 2
    and discounted_orders >= 0.5 * orders_count
