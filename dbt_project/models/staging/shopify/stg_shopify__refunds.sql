with latest_orders as (
    {{ latest_raw_records('shopify', 'orders') }}
),

refunds as (
    -- Order.refunds is a plain list, not a connection.
    select
        {{ gid_to_id('id') }} as order_id,
        _extracted_at,
        {{ json_elements('record', '$.refunds', 'refund') }}
    from latest_orders
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
