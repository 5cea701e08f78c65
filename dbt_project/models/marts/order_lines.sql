{{
    config(
        materialized='incremental',
        unique_key='order_key',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

{#-
    One row per order line, both channels. unique_key is the ORDER on purpose: a run
    replaces every line of each order it reprocesses, so a line removed by an order edit
    disappears too. Reprocessed: the orders built since this model's last build (orders
    rebuilds the orders extracted since its cutoff, and re-keys old ones when a customer
    record or a redaction lands), and lines stored without a currency rate.
-#}

with orders_in_scope as (
    select order_key, channel, source_order_id, customer_key, ordered_at, is_cancelled, _extracted_at
    from {{ ref('orders') }}
    {% if is_incremental() %}
    where {{ built_since_last_build() }}
    union
    -- Stored without a rate (seeds/currency_rates lacked it): converted again, however old.
    select order_key, channel, source_order_id, customer_key, ordered_at, is_cancelled, _extracted_at
    from {{ ref('orders') }}
    where order_key in (select order_key from {{ this }} where line_total is null)
    {% endif %}
),

refunded_lines as (
    select
        order_line_id,
        sum(quantity) as refunded_quantity,
        sum(subtotal) as refunded_amount
    from {{ ref('stg_shopify__refund_lines') }}
    group by 1
),

shopify_lines as (
    select
        'shopify:' || lines.order_line_id as order_line_key,
        'shopify:' || lines.order_id as order_key,
        {{ product_key('lines.sku', "'shopify_variant:' || lines.variant_id") }} as product_key,
        lines.sku,
        lines.title,
        lines.product_id,
        lines.variant_id,
        lines.quantity,
        lines.unit_price,
        coalesce(lines.discount_total, 0) as discount_total,
        lines.line_total,
        coalesce(refunded_lines.refunded_quantity, 0) as refunded_quantity,
        coalesce(refunded_lines.refunded_amount, 0) as refunded_amount
    from {{ ref('stg_shopify__order_lines') }} as lines
    left join refunded_lines using (order_line_id)
    {% if is_incremental() %}
    -- On the source ids: keys of all 10M+ lines, only to join them, cost seconds.
    where lines.order_id in (
        select cast(source_order_id as bigint) from orders_in_scope where channel = 'shopify'
    )
    {% endif %}
),

amazon_lines as (
    select
        'amazon:' || order_item_id as order_line_key,
        'amazon:' || amazon_order_id as order_key,
        {{ product_key('seller_sku', "'amazon_asin:' || asin") }} as product_key,
        seller_sku as sku,
        title,
        null::bigint as product_id,
        null::bigint as variant_id,
        quantity,
        unit_price,
        0::decimal(18, 2) as discount_total,
        line_total,
        0 as refunded_quantity,
        0::decimal(18, 2) as refunded_amount
    from {{ ref('stg_amazon__order_items') }}
    {% if is_incremental() %}
    where amazon_order_id in (select source_order_id from orders_in_scope where channel = 'amazon')
    {% endif %}
),

lines as (
    select * from shopify_lines
    union all by name
    select * from amazon_lines
)

select
    lines.order_line_key,
    lines.order_key,
    orders_in_scope.customer_key,
    orders_in_scope.channel,
    orders_in_scope.ordered_at,
    orders_in_scope.is_cancelled,
    lines.product_key,
    lines.sku,
    lines.title,
    lines.product_id,
    lines.variant_id,
    lines.quantity,
    cast(lines.unit_price as decimal(18, 2)) as unit_price,
    cast(lines.discount_total as decimal(18, 2)) as discount_total,
    cast(lines.line_total as decimal(18, 2)) as line_total,
    cast(lines.refunded_quantity as integer) as refunded_quantity,
    cast(lines.refunded_amount as decimal(18, 2)) as refunded_amount,
    orders_in_scope._extracted_at,
    {{ built_at() }} as _built_at
from lines
inner join orders_in_scope using (order_key)
