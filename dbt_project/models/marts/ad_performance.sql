{#-
    Facebook ads by campaign and day: what Facebook reports (spend, reach, its own pixel
    purchases) beside what the shop saw (orders landing with utm_campaign = the campaign id,
    and the new customers among them), so ROAS and CAC can be read both ways.
-#}

with insights as (
    select * from {{ ref('stg_facebook__ad_insights') }}
),

campaigns as (
    select * from {{ ref('stg_facebook__campaigns') }}
),

orders as (
    select * from {{ ref('orders') }}
),

customers as (
    select * from {{ ref('customers') }}
),

daily_campaigns as (
    select
        date_day,
        campaign_id,
        arg_max(campaign_name, _extracted_at) as reported_campaign_name,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(purchases) as purchases,
        sum(purchase_value) as purchase_value
    from insights
    group by 1, 2
),

shop_orders as (
    -- Orders whose visit came from a Facebook ad carry the campaign id as utm_campaign.
    select
        {{ utc_date('ordered_at') }} as date_day,
        landing_campaign as campaign_id,
        count(*) filter (where not is_cancelled) as shop_orders,
        sum(net_revenue) as shop_revenue
    from orders
    where landing_source = 'facebook' and landing_campaign is not null
    group by 1, 2
),

new_customers as (
    select
        {{ utc_date('first_order_at') }} as date_day,
        acquisition_campaign as campaign_id,
        count(*) as new_customers
    from customers
    where acquisition_source = 'facebook' and acquisition_campaign is not null and first_order_at is not null
    group by 1, 2
)

select
    daily_campaigns.date_day as date,
    daily_campaigns.campaign_id,
    coalesce(campaigns.campaign_name, daily_campaigns.reported_campaign_name) as campaign_name,
    campaigns.objective as campaign_objective,
    daily_campaigns.spend,
    daily_campaigns.impressions,
    daily_campaigns.clicks,
    daily_campaigns.purchases,
    daily_campaigns.purchase_value,
    cast(round(daily_campaigns.purchase_value / nullif(daily_campaigns.spend, 0), 4) as decimal(18, 4)) as roas,
    coalesce(shop_orders.shop_orders, 0) as shop_orders,
    cast(coalesce(shop_orders.shop_revenue, 0) as decimal(18, 2)) as shop_revenue,
    coalesce(new_customers.new_customers, 0) as new_customers,
    cast(round(daily_campaigns.spend / nullif(new_customers.new_customers, 0), 2) as decimal(18, 2)) as cac
from daily_campaigns
left join campaigns using (campaign_id)
left join shop_orders using (date_day, campaign_id)
left join new_customers using (date_day, campaign_id)
