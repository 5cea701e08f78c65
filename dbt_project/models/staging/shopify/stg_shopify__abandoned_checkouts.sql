with latest_records as (
    {{ latest_raw_records('shopify', 'abandoned_checkouts') }}
),

parsed as (
    select
        {{ gid_to_id('id') }} as checkout_id,
        id as checkout_gid,
        record->>'$.name' as checkout_name,
        record->>'$.abandonedCheckoutUrl' as abandoned_checkout_url,
        {{ json_timestamp('record', 'createdAt') }} as created_at,
        coalesce({{ json_timestamp('record', 'updatedAt') }}, updated_at) as updated_at,
        {{ json_timestamp('record', 'completedAt') }} as completed_at,
        {{ gid_to_id("record->>'$.customer.id'") }} as shopify_customer_id,
        -- AbandonedCheckout has no email of its own in 2026-04: it is the customer's.
        record->>'$.customer.defaultEmailAddress.emailAddress' as email_raw,
        record->>'$.customer.defaultEmailAddress.marketingState' as marketing_state,
        coalesce({{ json_strings('record', 'discountCodes') }}, []) as discount_codes,
        cast(record->>'$.taxesIncluded' as boolean) as is_taxes_included,
        nullif(record->>'$.note', '') as note,
        {{ shop_money('record', 'subtotalPriceSet') }} as subtotal,
        {{ shop_money('record', 'totalLineItemsPriceSet') }} as line_items_total,
        {{ shop_money('record', 'totalDiscountSet') }} as discount_total,
        {{ shop_money('record', 'totalPriceSet') }} as total_price,
        record->>'$.totalPriceSet.presentmentMoney.currencyCode' as presentment_currency,
        {{ presentment_money('record', 'totalPriceSet') }} as presentment_total_price,
        _extracted_at
    from latest_records
),

marked as (
    select *, {{ redaction_key_of('shopify_customer_id', 'email_raw') }} as redaction_key
    from parsed
)

-- A redacted customer's checkout keeps its items and money; no address, link or note.
select
    * replace (
        {{ unless_redacted('email_raw') }} as email_raw,
        {{ unless_redacted('abandoned_checkout_url') }} as abandoned_checkout_url,
        {{ unless_redacted('note') }} as note
    ),
    {{ valid_email(unless_redacted('email_raw')) }} as email,
    completed_at is not null as is_completed
from marked
