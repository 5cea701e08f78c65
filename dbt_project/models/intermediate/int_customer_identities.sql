{#-
    Every record that identifies a customer, with the customer_key of the person behind it.
    The rule (macros/identity.sql), applied here to the emails as typed: a valid normalised
    email is the person -- guest checkouts create a new Shopify customer per checkout, typing
    the address in another case or with spaces; a Shopify record without one keeps a key from
    its own id; an Amazon buyer is a customer of its own (relay address, else the order),
    never merged into an email identity.
-#}

with shopify_customers as (
    select * from {{ ref('stg_shopify__customers') }}
),

shopify_orders as (
    select * from {{ ref('stg_shopify__orders') }}
),

amazon_orders as (
    select * from {{ ref('stg_amazon__orders') }}
),

customer_records as (
    select
        {{ shopify_customer_key_of(valid_email('email_raw'), 'shopify_customer_id', redaction_key='redaction_key') }}
            as customer_key,
        'shopify_customer' as record_type,
        'shopify' as channel,
        cast(shopify_customer_id as varchar) as source_record_id,
        shopify_customer_id,
        {{ valid_email('email_raw') }} as email,
        email_raw,
        first_name,
        last_name,
        marketing_state,
        marketing_opt_in_level,
        marketing_updated_at,
        country_code,
        province_code,
        city,
        created_at,
        updated_at
    from shopify_customers
),

orders_without_customer_record as (
    -- An order whose customer was deleted (or has not landed yet) still identifies a buyer.
    select
        {{ shopify_customer_key_of(valid_email('email_raw'), 'shopify_customer_id', 'order_id', 'redaction_key') }}
            as customer_key,
        'shopify_order' as record_type,
        'shopify' as channel,
        cast(order_id as varchar) as source_record_id,
        shopify_customer_id,
        {{ valid_email('email_raw') }} as email,
        email_raw,
        null::varchar as first_name,
        null::varchar as last_name,
        null::varchar as marketing_state,
        null::varchar as marketing_opt_in_level,
        null::timestamptz as marketing_updated_at,
        null::varchar as country_code,
        null::varchar as province_code,
        null::varchar as city,
        created_at,
        updated_at
    from shopify_orders
    where not is_test
        and (
            shopify_customer_id is null
            or not exists (
                select 1 from shopify_customers as known
                where known.shopify_customer_id = shopify_orders.shopify_customer_id
            )
        )
),

amazon_buyers as (
    -- One row per buyer; their latest order speaks for the name and the address.
    select
        {{ amazon_customer_key(normalise_email('buyer_email_raw'), 'amazon_order_id') }} as customer_key,
        'amazon_buyer' as record_type,
        'amazon' as channel,
        coalesce({{ normalise_email('buyer_email_raw') }}, 'order:' || min(amazon_order_id)) as source_record_id,
        null::bigint as shopify_customer_id,
        -- Relay addresses are for order service only: never exposed as a marketing email.
        null::varchar as email,
        {{ normalise_email('buyer_email_raw') }} as email_raw,
        split_part(arg_max(buyer_name, updated_at), ' ', 1) as first_name,
        nullif(trim(regexp_replace(arg_max(buyer_name, updated_at), '^\S+', '')), '') as last_name,
        null::varchar as marketing_state,
        null::varchar as marketing_opt_in_level,
        null::timestamptz as marketing_updated_at,
        arg_max(ship_country_code, updated_at) as country_code,
        null::varchar as province_code,
        null::varchar as city,
        min(created_at) as created_at,
        max(updated_at) as updated_at
    from amazon_orders
    group by 1, {{ normalise_email('buyer_email_raw') }}
)

select * from customer_records
union all
select * from orders_without_customer_record
union all
select * from amazon_buyers
