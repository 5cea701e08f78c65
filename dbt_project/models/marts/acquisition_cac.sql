{#-
    Customer acquisition cost by month and acquisition source. Only Facebook spend is
    known to Hearth, so CAC is null for the other sources (their new customers are still
    counted); Amazon buyers count under 'amazon'.
-#}

with customers as (
    select * from {{ ref('customers') }}
),

insights as (
    select * from {{ ref('stg_facebook__ad_insights') }}
),

new_customers as (
    select
        date_trunc('month', {{ utc_date('first_order_at') }}) as month,
        coalesce(acquisition_source, 'unknown') as acquisition_source,
        count(*) as new_customers
    from customers
    where first_order_at is not null
    group by 1, 2
),

ad_spend as (
    select
        date_trunc('month', date_day) as month,
        'facebook' as acquisition_source,
        sum(spend) as ad_spend
    from insights
    group by 1, 2
)

select
    cast(month as date) as month,
    acquisition_source,
    coalesce(new_customers.new_customers, 0) as new_customers,
    ad_spend.ad_spend,
    cast(round(ad_spend.ad_spend / nullif(new_customers.new_customers, 0), 2) as decimal(18, 2)) as cac
from new_customers
full outer join ad_spend using (month, acquisition_source)
