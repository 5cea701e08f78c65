-- Abandoned checkouts to email now: one row per person (their newest), everything the template needs.
-- Exit rules (DOMAIN.md "Abandoned checkout") are applied here; consent is the send policy's.

with emailable_checkouts as (
    select *
    from {{ ref('int_abandoned_checkouts_identified') }}
    where customer_key is not null
        and email is not null
        and created_at < {{ as_of_timestamp() }}
),

-- Not completed as of as_of, past the wait, not yet too old to mention.
abandoned as (
    select *
    from emailable_checkouts
    where (completed_at is null or completed_at >= {{ as_of_timestamp() }})
        and created_at <= {{ as_of_timestamp() }} - to_minutes({{ var('abandoned_checkout_wait_minutes') }})
        and created_at > {{ as_of_timestamp() }} - to_days({{ var('abandoned_checkout_max_age_days') }})
),

-- Any order by the same person since the checkout started ends its sequence.
not_ordered_since as (
    select *
    from abandoned
    where not exists (
        select 1
        from {{ ref('orders') }} as orders
        where orders.customer_key = abandoned.customer_key
            and orders.ordered_at >= abandoned.created_at
            and orders.ordered_at < {{ as_of_timestamp() }}
    )
),

-- A newer abandoned checkout supersedes an older one: one cart sequence per person.
latest_per_person as (
    select *
    from not_ordered_since
    qualify row_number() over (partition by customer_key order by created_at desc, checkout_id desc) = 1
),

items as (
    select
        lines.checkout_id,
        list(
            struct_pack(
                title := lines.title,
                quantity := lines.quantity,
                unit_price := lines.unit_price,
                image_url := products.image_url,
                product_url := products.product_url
            )
            order by lines.line_position
        ) as items,
        cast(sum(lines.quantity) as integer) as item_count
    from {{ ref('stg_shopify__abandoned_checkout_lines') }} as lines
    left join {{ ref('products') }} as products
        on products.product_key = {{ product_key('lines.sku', "'shopify_variant:' || lines.variant_id") }}
    where lines.checkout_id in (select checkout_id from latest_per_person)
    group by lines.checkout_id
)

select
    checkouts.customer_key,
    coalesce(customers.email, checkouts.email) as email,
    customers.first_name,
    customers.timezone,
    coalesce(customers.is_marketable, false) as is_marketable,
    cast(checkouts.checkout_id as varchar) as trigger_id,
    checkouts.abandoned_checkout_url as checkout_url,
    checkouts.created_at as checkout_created_at,
    cast(floor((epoch({{ as_of_timestamp() }}) - epoch(checkouts.created_at)) / 60) as integer) as minutes_since,
    coalesce(items.items, []) as items,
    coalesce(items.item_count, 0) as item_count,
    checkouts.total_price
from latest_per_person as checkouts
left join {{ ref('customers') }} as customers on customers.customer_key = checkouts.customer_key
left join items on items.checkout_id = checkouts.checkout_id
