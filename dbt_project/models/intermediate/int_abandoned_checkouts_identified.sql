{{
    config(
        materialized='incremental',
        unique_key='checkout_id',
        incremental_strategy='delete+insert'
    )
}}

{#-
    Abandoned checkouts with the customer_key of the person (same rule as orders) and, for a
    recovered one, the order it became: that customer's order created when the checkout
    completed (Shopify sets completedAt as the order is placed; ±10 minutes of slack).

    Incremental: both depend only on the checkout itself and on its Shopify customer (the
    customer's record gives the key, the customer's orders the recovery, and recoveries
    compete only among one customer's checkouts). A run reprocesses checkouts extracted
    since the cutoff (macros/incremental.sql) and every checkout of a customer whose record,
    order or checkout was, plus those of customers erased on request.
-#}

-- Read only by incremental runs; declared so dbt knows the dependency at parse time:
-- depends_on: {{ ref('stg_shopify__customers') }}

with
{% if is_incremental() %}
customers_touched as (
    {{ shopify_customers_landed(['stg_shopify__customers', 'stg_shopify__orders', 'stg_shopify__abandoned_checkouts']) }}
),
{% endif %}

checkouts as (
    -- Staging's _built_at stays there: it says when staging wrote the row, not this model.
    select * exclude (_built_at) from {{ ref('stg_shopify__abandoned_checkouts') }}
    {% if is_incremental() %}
    where _extracted_at >= {{ incremental_cutoff() }}
        or shopify_customer_id in (select shopify_customer_id from customers_touched)
        or redaction_key is not null
    {% endif %}
),

orders as (
    select * from {{ ref('stg_shopify__orders') }}
    {% if is_incremental() %}
    where shopify_customer_id in (select shopify_customer_id from checkouts)
    {% endif %}
),

customer_keys as (
    select shopify_customer_id, customer_key
    from {{ ref('int_customer_identities') }}
    where record_type = 'shopify_customer'
),

recovery_candidates as (
    select
        checkouts.checkout_id,
        orders.order_id,
        abs(epoch(orders.created_at) - epoch(checkouts.completed_at)) as seconds_apart
    from checkouts
    inner join orders
        on orders.shopify_customer_id = checkouts.shopify_customer_id
        and orders.created_at between checkouts.completed_at - interval 10 minute
        and checkouts.completed_at + interval 10 minute
    where checkouts.completed_at is not null
),

nearest_order_per_checkout as (
    select * from recovery_candidates
    qualify row_number() over (partition by checkout_id order by seconds_apart, order_id) = 1
),

recoveries as (
    -- One order recovers at most one checkout.
    select * from nearest_order_per_checkout
    qualify row_number() over (partition by order_id order by seconds_apart, checkout_id) = 1
)

select
    checkouts.*,
    case
        when checkouts.shopify_customer_id is not null or checkouts.email is not null
            or checkouts.redaction_key is not null
            then coalesce(
                customer_keys.customer_key,
                {{ shopify_customer_key_of('checkouts.email', 'checkouts.shopify_customer_id',
                                           redaction_key='checkouts.redaction_key') }}
            )
    end as customer_key,
    recoveries.order_id as recovered_order_id
from checkouts
left join customer_keys using (shopify_customer_id)
left join recoveries using (checkout_id)
