-- One row per customer, product and order placed before var as_of: a product may sit on
-- several lines of one order. Each purchase carries the customer's previous purchase of the
-- product and whether it is their latest: replenishment learns cycles from the one and
-- dates reminders by the other. Ranked once here, not again in each of them.

with purchases as (
    select
        customer_key,
        product_key,
        order_key,
        min(ordered_at) as ordered_at,
        cast(sum(quantity) as integer) as quantity
    from {{ ref('order_lines') }}
    where not is_cancelled
        and customer_key is not null
        and product_key is not null
        and quantity > 0
        and ordered_at < {{ as_of_timestamp() }}
    group by customer_key, product_key, order_key
)

select
    *,
    lag(ordered_at) over same_product as previous_ordered_at,
    lag(quantity) over same_product as previous_quantity,
    lead(ordered_at) over same_product is null as is_latest
from purchases
window same_product as (partition by customer_key, product_key order by ordered_at, order_key)
