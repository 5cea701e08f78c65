-- One row per customer, product and order placed before var as_of: a product may sit on
-- several lines of one order. What replenishment learns cycles from and dates reminders by.

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
