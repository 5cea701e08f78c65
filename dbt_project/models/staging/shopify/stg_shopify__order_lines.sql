{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

records as (
    select
        id,
        _extracted_at,
        {{ parse_json('record', [
            'lineItems.nodes[].id', 'lineItems.nodes[].title', 'lineItems.nodes[].name',
            'lineItems.nodes[].sku', 'lineItems.nodes[].quantity', 'lineItems.nodes[].vendor',
            'lineItems.nodes[].variant.id', 'lineItems.nodes[].product.id',
            'lineItems.nodes[].originalUnitPriceSet.shopMoney.amount',
            'lineItems.nodes[].totalDiscountSet.shopMoney.amount',
            'lineItems.nodes[].discountedTotalSet.shopMoney.amount',
        ]) }} as r
    from latest_orders
),

line_items as (
    select
        {{ gid_to_id('id') }} as order_id,
        _extracted_at,
        {{ unnest_list('r.lineItems.nodes', 'line', 'line_position') }}
    from records
)

select
    {{ gid_to_id('line.id') }} as order_line_id,
    order_id,
    cast(line_position as integer) as line_position,
    line.title as title,
    line.name as name,
    nullif(trim(line.sku), '') as sku,
    cast(line.quantity as integer) as quantity,
    line.vendor as vendor,
    {{ gid_to_id('line.variant.id') }} as variant_id,
    {{ gid_to_id('line.product.id') }} as product_id,
    {{ shop_money('line.originalUnitPriceSet') }} as unit_price,
    {{ shop_money('line.totalDiscountSet') }} as discount_total,
    -- After line discounts (order-level discounts allocated to the line included).
    {{ shop_money('line.discountedTotalSet') }} as line_total,
    _extracted_at,
    {{ built_at() }} as _built_at
from line_items
