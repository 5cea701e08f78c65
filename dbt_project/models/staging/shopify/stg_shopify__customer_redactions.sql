{#-
    Shopify customers/redact requests (GDPR erasure), one row per request. Read by macro
    redaction_key_of: every staging model holding personal data masks what a request covers.
    Only what recognises later loads of the same person is kept: the Shopify ids, and the
    email as a SHA-256 digest -- never the address itself.
-#}

with deliveries as (
    select id, json(record) as record, _extracted_at
    from {{ raw_source('shopify', 'webhooks') }}
    -- Shopify retries a delivery under the same webhook id: one request each.
    qualify row_number() over (partition by id order by _extracted_at) = 1
)

select
    md5('redaction:' || id) as redaction_key,
    id as webhook_id,
    try_cast(record->>'$.payload.customer.id' as bigint) as shopify_customer_id,
    sha256({{ normalise_email("record->>'$.payload.customer.email'") }}) as email_sha256,
    coalesce(try_cast(record->'$.payload.orders_to_redact' as bigint[]), []) as order_ids,
    _extracted_at as requested_at
from deliveries
where record->>'$.topic' = 'customers/redact'
