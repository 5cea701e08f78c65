{{
    config(
        materialized='incremental',
        unique_key='checkout_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_checkouts as (
    {{ latest_raw_records('shopify', 'abandoned_checkouts') }}
),

records as (
    select
        id,
        _extracted_at,
        {{ parse_json('record', [
            'lineItems.nodes[].id', 'lineItems.nodes[].title', 'lineItems.nodes[].sku',
            'lineItems.nodes[].quantity', 'lineItems.nodes[].variant.id', 'lineItems.nodes[].product.id',
            'lineItems.nodes[].originalUnitPriceSet.shopMoney.amount',
            'lineItems.nodes[].discountedTotalPriceSet.shopMoney.amount',
        ]) }} as r
    from latest_checkouts
),

line_items as (
    select
        {{ gid_to_id('id') }} as checkout_id,
        _extracted_at,
        {{ unnest_list('r.lineItems.nodes', 'line', 'line_position') }}
    from records
)

select
    {{ gid_to_id('line.id') }} as checkout_line_id,
    checkout_id,
    cast(line_position as integer) as line_position,
    line.title as title,
    nullif(trim(line.sku), '') as sku,
    cast(line.quantity as integer) as quantity,
    {{ gid_to_id('line.variant.id') }} as variant_id,
    {{ gid_to_id('line.product.id') }} as product_id,
    {{ shop_money('line.originalUnitPriceSet') }} as unit_price,
    {{ shop_money('line.discountedTotalPriceSet') }} as line_total,
    _extracted_at,
    {{ built_at() }} as _built_at
from line_items
