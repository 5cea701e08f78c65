{{
    config(
        materialized='incremental',
        unique_key='customer_key',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="delete from {{ this }} where order_key is null"
    )
}}

{#-
    One row per customer, product and order: a product may sit on several lines of one
    order; cancelled orders are no purchase. Each purchase carries the customer's previous
    and next purchase of the product, ranked once here: product_replenishment learns cycles
    from the previous one, trigger_replenishment finds the latest purchase as of var as_of
    by the next one. No as_of filter here, so a backfill reads the same rows.

    Incremental by customer, since a new purchase moves its neighbours' previous and
    next: a run rebuilds every purchase of each customer with an order line built since
    this model's last build, and of each customer those orders belonged to before (a
    re-keyed order leaves its old owner). By customer and product would rewrite half the
    rows, but DuckDB then joins the 14M order lines on the pair: slower (bench/README).
-#}

with lines as (
    select customer_key, product_key, order_key, ordered_at, quantity
    from {{ ref('order_lines') }}
    where not is_cancelled
        and customer_key is not null
        and product_key is not null
        and quantity > 0
),

{% if is_incremental() %}
changed_orders as (
    select order_key, customer_key
    from {{ ref('order_lines') }}
    where {{ built_since_last_build() }}
),

customers_to_rebuild as (
    select customer_key from changed_orders where customer_key is not null
    union
    select customer_key from {{ this }} where order_key in (select order_key from changed_orders)
),
{% endif %}

purchases as (
    select
        customer_key,
        product_key,
        order_key,
        min(ordered_at) as ordered_at,
        cast(sum(quantity) as integer) as quantity
    from lines
    {% if is_incremental() %}
    where customer_key in (select customer_key from customers_to_rebuild)
    {% endif %}
    group by customer_key, product_key, order_key
)

select
    *,
    lag(ordered_at) over same_product as previous_ordered_at,
    lag(quantity) over same_product as previous_quantity,
    lead(ordered_at) over same_product as next_ordered_at,
    {{ built_at() }} as _built_at
from purchases
window same_product as (partition by customer_key, product_key order by ordered_at, order_key)

{% if is_incremental() %}
-- delete+insert clears only the customers it inserts rows for. A customer left without any
-- purchase (their orders re-keyed away or cancelled) gets one empty row, so their stored
-- rows go too; the post-hook then deletes the empty row.
union all by name
select customer_key from customers_to_rebuild
anti join purchases using (customer_key)
{% endif %}
