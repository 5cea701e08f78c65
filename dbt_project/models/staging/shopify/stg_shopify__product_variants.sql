with latest_products as (
    {{ latest_raw_records('shopify', 'products') }}
),

variants as (
    select
        {{ gid_to_id('latest_products.id') }} as product_id,
        coalesce({{ json_timestamp('latest_products.record', 'updatedAt') }}, latest_products.updated_at)
            as product_updated_at,
        latest_products._extracted_at,
        {{ json_elements('latest_products.record', '$.variants.nodes', 'variant') }}
    from latest_products
)

select
    {{ gid_to_id("variant->>'$.id'") }} as variant_id,
    product_id,
    variant->>'$.title' as title,
    nullif(trim(variant->>'$.sku'), '') as sku,
    -- ProductVariant.price is a plain Money scalar (decimal string) in the shop currency.
    cast(variant->>'$.price' as decimal(18, 2)) as price,
    cast(variant->>'$.compareAtPrice' as decimal(18, 2)) as compare_at_price,
    product_updated_at,
    _extracted_at
from variants
