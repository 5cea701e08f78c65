with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

refunds as (
    -- Order.refunds is a plain list, not a connection.
    select
        {{ gid_to_id('latest_orders.id') }} as order_id,
        refund.value as refund,
        latest_orders._extracted_at
    from latest_orders, json_each(latest_orders.record, '$.refunds') as refund
)

select
    {{ gid_to_id("refund->>'$.id'") }} as refund_id,
    order_id,
    {{ json_timestamp('refund', 'createdAt') }} as created_at,
    {{ json_timestamp('refund', 'updatedAt') }} as updated_at,
    refund->>'$.note' as note,
    {{ shop_money('refund', 'totalRefundedSet') }} as refunded_amount,
    _extracted_at
from refunds
