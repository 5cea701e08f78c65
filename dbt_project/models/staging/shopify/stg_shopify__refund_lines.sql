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
    select
        id,
        _extracted_at,
        {{ parse_json('record', [
            'refunds[].id',
            'refunds[].refundLineItems.nodes[].lineItem.id',
            'refunds[].refundLineItems.nodes[].quantity',
            'refunds[].refundLineItems.nodes[].subtotalSet.shopMoney.amount',
        ]) }} as r
    from latest_orders
),

refunds as (
    select
        {{ gid_to_id('id') }} as order_id,
        _extracted_at,
        {{ unnest_list('r.refunds', 'refund') }}
    from records
),

refund_lines as (
    select
        order_id,
        {{ gid_to_id('refund.id') }} as refund_id,
        _extracted_at,
        {{ unnest_list('refund.refundLineItems.nodes', 'line', 'line_position') }}
    from refunds
)

select
    -- RefundLineItem.id is nullable: the refund and the line's position name it.
    refund_id || ':' || line_position as refund_line_key,
    refund_id,
    order_id,
    {{ gid_to_id('line.lineItem.id') }} as order_line_id,
    cast(line.quantity as integer) as quantity,
    {{ shop_money('line.subtotalSet') }} as subtotal,
    _extracted_at
from refund_lines
