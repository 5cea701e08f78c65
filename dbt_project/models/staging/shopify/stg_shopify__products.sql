with latest_records as (
    {{ latest_raw_records('shopify', 'products') }}
)

select
    {{ gid_to_id('id') }} as product_id,
    id as product_gid,
    record->>'$.title' as title,
    record->>'$.handle' as handle,
    nullif(record->>'$.productType', '') as product_type,
    record->>'$.vendor' as vendor,
    record->>'$.status' as status,
    {{ json_strings('record', 'tags') }} as tags,
    record->>'$.onlineStoreUrl' as online_store_url,
    record->>'$.featuredMedia.preview.image.url' as image_url,
    {{ json_timestamp('record', 'createdAt') }} as created_at,
    coalesce({{ json_timestamp('record', 'updatedAt') }}, updated_at) as updated_at,
    {{ json_timestamp('record', 'publishedAt') }} as published_at,
    _extracted_at
from latest_records
