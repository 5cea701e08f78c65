{#-
    One row per product_key: the SKU, which Amazon listings share as their seller SKU.
    Shopify variants first; SKUs only ever sold on Amazon come from the Amazon items.
-#}

with variants as (
    select * from {{ ref('stg_shopify__product_variants') }}
),

shopify_products as (
    select * from {{ ref('stg_shopify__products') }}
),

amazon_items as (
    select items.*, orders.updated_at as order_updated_at
    from {{ ref('stg_amazon__order_items') }} as items
    inner join {{ ref('stg_amazon__orders') }} as orders using (amazon_order_id)
),

shopify_catalogue as (
    select
        {{ product_key('variants.sku', "'shopify_variant:' || variants.variant_id") }} as product_key,
        variants.sku,
        shopify_products.product_id,
        variants.variant_id,
        shopify_products.title
            || case when coalesce(variants.title, 'Default Title') <> 'Default Title'
                then ' - ' || variants.title else '' end as title,
        shopify_products.handle,
        shopify_products.product_type,
        shopify_products.vendor,
        shopify_products.status,
        variants.price,
        shopify_products.image_url,
        'https://{{ var("shop_domain") }}/products/' || shopify_products.handle as product_url,
        'shopify' as catalogue_source,
        shopify_products.updated_at
    from variants
    inner join shopify_products using (product_id)
    -- A SKU reused across variants: the active, most recently updated one wins.
    qualify row_number() over (
        partition by product_key
        order by shopify_products.status = 'ACTIVE' desc, shopify_products.updated_at desc, variants.variant_id desc
    ) = 1
),

amazon_only as (
    select
        {{ product_key('seller_sku', "'amazon_asin:' || asin") }} as product_key,
        any_value(seller_sku) as sku,
        null::bigint as product_id,
        null::bigint as variant_id,
        arg_max(title, order_updated_at) as title,
        null::varchar as handle,
        null::varchar as product_type,
        null::varchar as vendor,
        null::varchar as status,
        arg_max(unit_price, order_updated_at) as price,
        null::varchar as image_url,
        null::varchar as product_url,
        'amazon' as catalogue_source,
        max(order_updated_at) as updated_at
    from amazon_items
    group by 1
    having product_key not in (select product_key from shopify_catalogue)
)

select * from shopify_catalogue
union all
select * from amazon_only
