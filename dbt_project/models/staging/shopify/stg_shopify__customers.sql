{{
    config(
        materialized='incremental',
        unique_key='shopify_customer_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_records as (
    {{ latest_raw_records('shopify', 'customers', reprocess_ids=ids_to_redact_again('customer_gid', 'shopify_customer_id', 'email_raw')) }}
),

parsed as (
    select
        {{ gid_to_id('id') }} as shopify_customer_id,
        id as customer_gid,
        record->>'$.firstName' as first_name,
        record->>'$.lastName' as last_name,
        record->>'$.defaultEmailAddress.emailAddress' as email_raw,
        record->>'$.defaultEmailAddress.marketingState' as marketing_state,
        record->>'$.defaultEmailAddress.marketingOptInLevel' as marketing_opt_in_level,
        {{ json_timestamp('record', 'defaultEmailAddress.marketingUpdatedAt') }} as marketing_updated_at,
        record->>'$.defaultPhoneNumber.phoneNumber' as phone,
        record->>'$.defaultAddress.city' as city,
        upper(record->>'$.defaultAddress.provinceCode') as province_code,
        upper(record->>'$.defaultAddress.countryCodeV2') as country_code,
        {{ json_strings('record', 'tags') }} as tags,
        cast(record->>'$.numberOfOrders' as bigint) as number_of_orders,
        cast(record->>'$.amountSpent.amount' as decimal(18, 2)) as amount_spent,
        cast(record->>'$.verifiedEmail' as boolean) as is_verified_email,
        {{ json_timestamp('record', 'createdAt') }} as created_at,
        coalesce({{ json_timestamp('record', 'updatedAt') }}, updated_at) as updated_at,
        _extracted_at
    from latest_records
),

marked as (
    select *, {{ redaction_key_of('shopify_customer_id', 'email_raw') }} as redaction_key
    from parsed
)

-- A redacted customer keeps no personal field (macros/redaction.sql).
select
    * replace (
        {{ unless_redacted('first_name') }} as first_name,
        {{ unless_redacted('last_name') }} as last_name,
        {{ unless_redacted('email_raw') }} as email_raw,
        {{ unless_redacted('phone') }} as phone,
        {{ unless_redacted('city') }} as city,
        {{ unless_redacted('province_code') }} as province_code,
        {{ unless_redacted('tags') }} as tags
    ),
    {{ valid_email(unless_redacted('email_raw')) }} as email
from marked
