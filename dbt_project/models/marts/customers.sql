{#-
    One row per person (customer_key, see int_customer_identities): Shopify persons merged
    across their customer records, Amazon buyers on their own. Consent, name and address
    are those of the person's most recently updated Shopify customer record.
-#}

with identities as (
    select * from {{ ref('int_customer_identities') }}
),

orders as (
    select * from {{ ref('orders') }}
),

checkouts as (
    select customer_key, min(created_at) as first_checkout_at
    from {{ ref('int_abandoned_checkouts_identified') }}
    where customer_key is not null
    group by 1
),

region_timezones as (
    select * from {{ ref('region_timezones') }}
),

latest_record as (
    -- Customer records outrank stand-ins (orders without a record); then the latest update.
    select * from identities
    qualify row_number() over (
        partition by customer_key
        order by
            record_type <> 'shopify_order' desc,
            updated_at desc nulls last,
            marketing_updated_at desc nulls last,
            created_at desc nulls last,
            source_record_id desc
    ) = 1
),

latest_address as (
    select customer_key, country_code, province_code, city
    from identities
    where country_code is not null
    qualify row_number() over (
        partition by customer_key order by updated_at desc nulls last, source_record_id desc
    ) = 1
),

records as (
    select
        customer_key,
        min(channel) as channel,
        coalesce(
            list(distinct shopify_customer_id order by shopify_customer_id)
                filter (where record_type = 'shopify_customer'),
            []
        ) as shopify_customer_ids,
        -- Any valid email the person's records carry (one, by construction, for email identities).
        max(email) as email,
        min(created_at) as first_record_at
    from identities
    group by 1
),

order_totals as (
    select
        customer_key,
        count(*) filter (where not is_cancelled) as orders_count,
        sum(net_revenue) as total_revenue,
        min(ordered_at) filter (where not is_cancelled) as first_order_at,
        max(ordered_at) filter (where not is_cancelled) as last_order_at,
        avg(case when has_discount then 1.0 else 0.0 end) filter (where not is_cancelled) as discount_order_share,
        min(ordered_at) as first_order_placed_at,
        -- Acquisition is how the person came to their first order, whatever became of it.
        arg_min(
            struct_pack(channel, landing_source, landing_campaign, is_journey_ready),
            struct_pack(ordered_at, order_key)
        ) as first_order
    from orders
    group by 1
),

all_customers as (
    -- From order_totals, not orders: a second read of orders would make DuckDB copy it whole.
    select customer_key from records
    union
    select customer_key from order_totals
)

select
    all_customers.customer_key,
    records.email,
    latest_record.first_name,
    latest_record.last_name,
    order_totals.first_order_at,
    order_totals.last_order_at,
    coalesce(order_totals.orders_count, 0) as orders_count,
    cast(coalesce(order_totals.total_revenue, 0) as decimal(18, 2)) as total_revenue,
    cast(round(order_totals.total_revenue / nullif(order_totals.orders_count, 0), 2) as decimal(18, 2))
        as avg_order_value,
    coalesce(records.channel, order_totals.first_order.channel) as channels,
    latest_record.marketing_state as email_consent,
    latest_record.marketing_opt_in_level as email_opt_in_level,
    latest_record.marketing_updated_at as email_consent_updated_at,
    coalesce(
        coalesce(records.channel, order_totals.first_order.channel) = 'shopify'
        and records.email is not null
        and latest_record.marketing_state = 'SUBSCRIBED',
        false
    ) as is_marketable,
    coalesce(by_province.timezone, by_country.timezone, '{{ var("shop_timezone") }}') as timezone,
    latest_address.country_code,
    latest_address.province_code,
    latest_address.city,
    case
        when order_totals.first_order.channel = 'amazon' then 'amazon'
        when order_totals.first_order.landing_source is not null then order_totals.first_order.landing_source
        -- Shopify recorded the journey and saw no tracked source: a direct / organic visit.
        when order_totals.first_order.is_journey_ready then 'organic'
    end as acquisition_source,
    order_totals.first_order.landing_campaign as acquisition_campaign,
    records.shopify_customer_ids,
    len(records.shopify_customer_ids) as shopify_records_count,
    cast(round(order_totals.discount_order_share, 4) as decimal(5, 4)) as discount_order_share,
    least(records.first_record_at, order_totals.first_order_placed_at, checkouts.first_checkout_at) as first_seen_at
from all_customers
left join records using (customer_key)
left join latest_record using (customer_key)
left join latest_address using (customer_key)
left join order_totals using (customer_key)
left join checkouts using (customer_key)
left join region_timezones as by_province
    on by_province.country_code = latest_address.country_code
    and by_province.province_code = latest_address.province_code
left join region_timezones as by_country
    on by_country.country_code = latest_address.country_code
    and by_country.province_code is null
