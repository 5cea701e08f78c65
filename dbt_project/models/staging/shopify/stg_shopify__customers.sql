with latest_records as (
    {{ latest_raw_records('shopify', 'customers') }}
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
)

select
    *,
    {{ valid_email('email_raw') }} as email
from parsed
