{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

records as (
    -- Order.refunds is a plain list, not a connection.
    select
        id,
        _extracted_at,
        {{ parse_json('record', [
            'refunds[].id', 'refunds[].createdAt', 'refunds[].updatedAt', 'refunds[].note',
            'refunds[].totalRefundedSet.shopMoney.amount',
        ]) }} as r
    from latest_orders
),

refunds as (
    select
        {{ gid_to_id('id') }} as order_id,
        _extracted_at,
        {{ unnest_list('r.refunds', 'refund') }}
    from records
)

select
    {{ gid_to_id('refund.id') }} as refund_id,
    order_id,
    cast(refund.createdAt as timestamptz) as created_at,
    cast(refund.updatedAt as timestamptz) as updated_at,
    refund.note as note,
    {{ shop_money('refund.totalRefundedSet') }} as refunded_amount,
    _extracted_at
from refunds
