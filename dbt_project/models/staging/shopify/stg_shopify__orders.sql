with latest_records as (
    {{ latest_raw_records('shopify', 'orders') }}
),

parsed as (
    select
        {{ gid_to_id('id') }} as order_id,
        id as order_gid,
        record->>'$.name' as order_name,
        {{ gid_to_id("record->>'$.customer.id'") }} as shopify_customer_id,
        record->>'$.email' as email_raw,
        {{ json_timestamp('record', 'createdAt') }} as created_at,
        {{ json_timestamp('record', 'processedAt') }} as processed_at,
        coalesce({{ json_timestamp('record', 'updatedAt') }}, updated_at) as updated_at,
        {{ json_timestamp('record', 'cancelledAt') }} as cancelled_at,
        record->>'$.cancelReason' as cancel_reason,
        record->>'$.displayFinancialStatus' as financial_status,
        record->>'$.currencyCode' as currency,
        record->>'$.presentmentCurrencyCode' as presentment_currency,
        record->>'$.sourceName' as source_name,
        coalesce(cast(record->>'$.test' as boolean), false) as is_test,
        {{ json_strings('record', 'tags') }} as tags,
        coalesce({{ json_strings('record', 'discountCodes') }}, []) as discount_codes,
        {{ shop_money('record', 'subtotalPriceSet') }} as subtotal,
        {{ shop_money('record', 'totalDiscountsSet') }} as discount_total,
        {{ shop_money('record', 'totalShippingPriceSet') }} as shipping_total,
        {{ shop_money('record', 'totalTaxSet') }} as tax_total,
        {{ shop_money('record', 'totalPriceSet') }} as total_price,
        {{ shop_money('record', 'totalRefundedSet') }} as total_refunded,
        {{ shop_money('record', 'currentTotalPriceSet') }} as current_total_price,
        {{ presentment_money('record', 'totalPriceSet') }} as presentment_total_price,
        cast(record->>'$.customerJourneySummary.ready' as boolean) as is_journey_ready,
        -- The visit that brought the buyer: UTM tags when present, else Shopify's own source.
        lower(coalesce(
            record->>'$.customerJourneySummary.firstVisit.utmParameters.source',
            record->>'$.customerJourneySummary.firstVisit.source'
        )) as landing_source,
        record->>'$.customerJourneySummary.firstVisit.utmParameters.medium' as landing_medium,
        record->>'$.customerJourneySummary.firstVisit.utmParameters.campaign' as landing_campaign,
        record->>'$.customerJourneySummary.firstVisit.landingPage' as landing_page,
        record->>'$.customerJourneySummary.firstVisit.referrerUrl' as referrer_url,
        {{ json_timestamp('record', 'customerJourneySummary.firstVisit.occurredAt') }} as first_visit_at,
        _extracted_at
    from latest_records
),

marked as (
    select *, {{ redaction_key_of('shopify_customer_id', 'email_raw', 'order_id') }} as redaction_key
    from parsed
)

-- An order of a redacted customer keeps its money, not the buyer's address (macros/redaction.sql).
select
    * replace ({{ unless_redacted('email_raw') }} as email_raw),
    {{ valid_email(unless_redacted('email_raw')) }} as email
from marked
