{{
    config(
        materialized='incremental',
        unique_key='checkout_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_records as (
    {{ latest_raw_records('shopify', 'abandoned_checkouts', reprocess_ids=ids_to_redact_again('checkout_gid', 'shopify_customer_id', 'email_raw')) }}
),

records as (
    select
        id,
        updated_at,
        _extracted_at,
        {{ parse_json('record', [
            'name', 'abandonedCheckoutUrl', 'createdAt', 'updatedAt', 'completedAt', 'customer.id',
            'customer.defaultEmailAddress.emailAddress', 'customer.defaultEmailAddress.marketingState',
            'discountCodes[]', 'taxesIncluded', 'note',
            'subtotalPriceSet.shopMoney.amount',
            'totalLineItemsPriceSet.shopMoney.amount',
            'totalDiscountSet.shopMoney.amount',
            'totalPriceSet.shopMoney.amount',
            'totalPriceSet.presentmentMoney.amount',
            'totalPriceSet.presentmentMoney.currencyCode',
        ]) }} as r
    from latest_records
),

parsed as (
    select
        {{ gid_to_id('id') }} as checkout_id,
        id as checkout_gid,
        r.name as checkout_name,
        r.abandonedCheckoutUrl as abandoned_checkout_url,
        cast(r.createdAt as timestamptz) as created_at,
        coalesce(cast(r.updatedAt as timestamptz), updated_at) as updated_at,
        cast(r.completedAt as timestamptz) as completed_at,
        {{ gid_to_id('r.customer.id') }} as shopify_customer_id,
        -- AbandonedCheckout has no email of its own in 2026-04: it is the customer's.
        r.customer.defaultEmailAddress.emailAddress as email_raw,
        r.customer.defaultEmailAddress.marketingState as marketing_state,
        coalesce(r.discountCodes, []) as discount_codes,
        cast(r.taxesIncluded as boolean) as is_taxes_included,
        nullif(r.note, '') as note,
        {{ shop_money('r.subtotalPriceSet') }} as subtotal,
        {{ shop_money('r.totalLineItemsPriceSet') }} as line_items_total,
        {{ shop_money('r.totalDiscountSet') }} as discount_total,
        {{ shop_money('r.totalPriceSet') }} as total_price,
        r.totalPriceSet.presentmentMoney.currencyCode as presentment_currency,
        {{ presentment_money('r.totalPriceSet') }} as presentment_total_price,
        _extracted_at
    from records
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
    completed_at is not null as is_completed,
    {{ built_at() }} as _built_at
from marked
