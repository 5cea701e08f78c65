with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

refunds as (
    select
        {{ gid_to_id('latest_orders.id') }} as order_id,
        refund.value as refund,
        latest_orders._extracted_at
    from latest_orders, json_each(latest_orders.record, '$.refunds') as refund
),

refund_lines as (
    select
        refunds.order_id,
        {{ gid_to_id("refunds.refund->>'$.id'") }} as refund_id,
        cast(line.key as integer) + 1 as line_position,
        line.value as line,
        refunds._extracted_at
    from refunds, json_each(refunds.refund, '$.refundLineItems.nodes') as line
)

select
    -- RefundLineItem.id is nullable: the refund and the line's position name it.
    refund_id || ':' || line_position as refund_line_key,
    refund_id,
    order_id,
    {{ gid_to_id("line->>'$.lineItem.id'") }} as order_line_id,
    cast(line->>'$.quantity' as integer) as quantity,
    {{ shop_money('line', 'subtotalSet') }} as subtotal,
    _extracted_at
from refund_lines
