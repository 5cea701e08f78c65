with latest_checkouts as (
    {{ latest_raw_records('shopify', 'abandoned_checkouts') }}
),

line_items as (
    select
        {{ gid_to_id('id') }} as checkout_id,
        _extracted_at,
        {{ json_elements('record', '$.lineItems.nodes', 'line', 'line_position') }}
    from latest_checkouts
)

select
    {{ gid_to_id("line->>'$.id'") }} as checkout_line_id,
    checkout_id,
    line_position,
    line->>'$.title' as title,
    nullif(trim(line->>'$.sku'), '') as sku,
    cast(line->>'$.quantity' as integer) as quantity,
    {{ gid_to_id("line->>'$.variant.id'") }} as variant_id,
    {{ gid_to_id("line->>'$.product.id'") }} as product_id,
    {{ shop_money('line', 'originalUnitPriceSet') }} as unit_price,
    {{ shop_money('line', 'discountedTotalPriceSet') }} as line_total,
    _extracted_at
from line_items
