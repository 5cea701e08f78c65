-- Replenishment reminders due now: one row per customer and product whose last purchase is running out.

-- Only the latest purchase before as_of counts: a re-buy moves the due date (and the
-- trigger id) on.
with latest_purchases as (
    select * from {{ ref('int_product_purchases') }}
    where ordered_at < {{ as_of_timestamp() }}
        and (next_ordered_at is null or next_ordered_at >= {{ as_of_timestamp() }})
),

-- Only products with a cycle.
last_purchases as (
    select latest_purchases.*, replenishment.cycle_days
    from latest_purchases
    inner join {{ ref('product_replenishment') }} as replenishment
        on replenishment.product_key = latest_purchases.product_key
    where replenishment.cycle_days is not null
),

due as (
    select
        *,
        cast({{ utc_date('ordered_at') }} + to_days(cycle_days * quantity) as date) as due_date
    from last_purchases
),

-- Remind from a few days before due until one cycle past due; later it is a win-back matter.
reminders as (
    select
        *,
        cast(due_date - to_days({{ var('replenishment_remind_days_before') }}) as date) as remind_on
    from due
),

reminders_due as (
    select *
    from reminders
    where remind_on <= {{ as_of_date() }}
        and {{ as_of_date() }} <= cast(due_date + to_days(cycle_days) as date)
)

select
    reminders.customer_key,
    customers.email,
    customers.first_name,
    customers.timezone,
    coalesce(customers.is_marketable, false) as is_marketable,
    concat_ws(':', reminders.customer_key, reminders.product_key, reminders.order_key) as trigger_id,
    reminders.product_key,
    products.title as product_title,
    products.image_url as product_image_url,
    products.product_url,
    products.price as product_price,
    reminders.ordered_at as last_purchased_at,
    reminders.quantity as last_quantity,
    reminders.cycle_days,
    reminders.due_date,
    reminders.remind_on
from reminders_due as reminders
inner join {{ ref('customers') }} as customers on customers.customer_key = reminders.customer_key
left join {{ ref('products') }} as products on products.product_key = reminders.product_key
