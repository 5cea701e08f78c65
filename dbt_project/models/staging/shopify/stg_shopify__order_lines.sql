with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

line_items as (
    select
        {{ gid_to_id('id') }} as order_id,
        _extracted_at,
        {{ json_elements('record', '$.lineItems.nodes', 'line', 'line_position') }}
    from latest_orders
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
