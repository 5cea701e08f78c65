with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

line_items as (
    select
        {{ gid_to_id('latest_orders.id') }} as order_id,
        cast(line.key as integer) + 1 as line_position,
        line.value as line,
        latest_orders._extracted_at
    from latest_orders, json_each(latest_orders.record, '$.lineItems.nodes') as line
)

select
    {{ gid_to_id("line->>'$.id'") }} as order_line_id,
    order_id,
    line_position,
    line->>'$.title' as title,
    line->>'$.name' as name,
    nullif(trim(line->>'$.sku'), '') as sku,
    cast(line->>'$.quantity' as integer) as quantity,
    line->>'$.vendor' as vendor,
    {{ gid_to_id("line->>'$.variant.id'") }} as variant_id,
    {{ gid_to_id("line->>'$.product.id'") }} as product_id,
    {{ shop_money('line', 'originalUnitPriceSet') }} as unit_price,
    {{ shop_money('line', 'totalDiscountSet') }} as discount_total,
    -- After line discounts (order-level discounts allocated to the line included).
    {{ shop_money('line', 'discountedTotalSet') }} as line_total,
    _extracted_at
from line_items
