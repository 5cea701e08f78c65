{{
    config(
        materialized='incremental',
        unique_key='ad_insight_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

{#-
    One row per ad and day. Incremental: a run reads only the insight loads since the
    cutoff (macro incremental_cutoff); the connector lands the recent, still-settling days
    again at every extraction, so their latest numbers replace the stored ones.
-#}

with latest_records as (
    -- No updated_at: the latest extraction of an (ad, day) is the settled-most number.
    {{ latest_raw_records('facebook', 'insights') }}
),

parsed as (
    select
        id as ad_insight_id,
        record->>'$.ad_id' as ad_id,
        cast(record->>'$.date_start' as date) as date_day,
        record->>'$.campaign_id' as campaign_id,
        record->>'$.campaign_name' as campaign_name,
        record->>'$.adset_id' as adset_id,
        record->>'$.adset_name' as adset_name,
        record->>'$.ad_name' as ad_name,
        -- Graph sends numbers as strings; spend is in the ad account currency (= shop currency).
        coalesce(cast(record->>'$.spend' as decimal(18, 2)), 0) as spend,
        coalesce(cast(record->>'$.impressions' as bigint), 0) as impressions,
        coalesce(cast(record->>'$.clicks' as bigint), 0) as clicks,
        record->'$.actions' as actions,
        record->'$.action_values' as action_values,
        _extracted_at
    from latest_records
),

purchases as (
    -- Graph repeats one purchase under several action types (macro pixel_purchase picks one).
    select
        ad_insight_id,
        {{ pixel_purchase('action') }} as purchases
    from (select ad_insight_id, {{ json_elements('actions', '$', 'action') }} from parsed)
    group by 1
),

purchase_values as (
    select
        ad_insight_id,
        {{ pixel_purchase('action') }} as purchase_value
    from (select ad_insight_id, {{ json_elements('action_values', '$', 'action') }} from parsed)
    group by 1
)

select
    parsed.* exclude (actions, action_values),
    cast(coalesce(purchases.purchases, 0) as bigint) as purchases,
    coalesce(purchase_values.purchase_value, 0) as purchase_value
from parsed
left join purchases using (ad_insight_id)
left join purchase_values using (ad_insight_id)
