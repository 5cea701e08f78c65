{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert'
    )
}}

with latest_records as (
    {{ latest_raw_records('shopify', 'orders', reprocess_ids=ids_to_redact_again('order_gid', 'shopify_customer_id', 'email_raw', 'order_id')) }}
),

records as (
    select
        id,
        updated_at,
        _extracted_at,
        {{ parse_json('record', [
            'name', 'email', 'customer.id', 'test', 'tags[]', 'discountCodes[]',
            'createdAt', 'processedAt', 'updatedAt', 'cancelledAt', 'cancelReason',
            'displayFinancialStatus', 'currencyCode', 'presentmentCurrencyCode', 'sourceName',
            'subtotalPriceSet.shopMoney.amount',
            'totalDiscountsSet.shopMoney.amount',
            'totalShippingPriceSet.shopMoney.amount',
            'totalTaxSet.shopMoney.amount',
            'totalPriceSet.shopMoney.amount',
            'totalPriceSet.presentmentMoney.amount',
            'totalRefundedSet.shopMoney.amount',
            'currentTotalPriceSet.shopMoney.amount',
            'customerJourneySummary.ready',
            'customerJourneySummary.firstVisit.source',
            'customerJourneySummary.firstVisit.landingPage',
            'customerJourneySummary.firstVisit.referrerUrl',
            'customerJourneySummary.firstVisit.occurredAt',
            'customerJourneySummary.firstVisit.utmParameters.source',
            'customerJourneySummary.firstVisit.utmParameters.medium',
            'customerJourneySummary.firstVisit.utmParameters.campaign',
        ]) }} as r
    from latest_records
),

parsed as (
    select
        {{ gid_to_id('id') }} as order_id,
        id as order_gid,
        r.name as order_name,
        {{ gid_to_id('r.customer.id') }} as shopify_customer_id,
        r.email as email_raw,
        cast(r.createdAt as timestamptz) as created_at,
        cast(r.processedAt as timestamptz) as processed_at,
        coalesce(cast(r.updatedAt as timestamptz), updated_at) as updated_at,
        cast(r.cancelledAt as timestamptz) as cancelled_at,
        r.cancelReason as cancel_reason,
        r.displayFinancialStatus as financial_status,
        r.currencyCode as currency,
        r.presentmentCurrencyCode as presentment_currency,
        r.sourceName as source_name,
        coalesce(cast(r.test as boolean), false) as is_test,
        r.tags as tags,
        coalesce(r.discountCodes, []) as discount_codes,
        {{ shop_money('r.subtotalPriceSet') }} as subtotal,
        {{ shop_money('r.totalDiscountsSet') }} as discount_total,
        {{ shop_money('r.totalShippingPriceSet') }} as shipping_total,
        {{ shop_money('r.totalTaxSet') }} as tax_total,
        {{ shop_money('r.totalPriceSet') }} as total_price,
        {{ shop_money('r.totalRefundedSet') }} as total_refunded,
        {{ shop_money('r.currentTotalPriceSet') }} as current_total_price,
        {{ presentment_money('r.totalPriceSet') }} as presentment_total_price,
        cast(r.customerJourneySummary.ready as boolean) as is_journey_ready,
        -- The visit that brought the buyer: UTM tags when present, else Shopify's own source.
        lower(coalesce(
            r.customerJourneySummary.firstVisit.utmParameters.source,
            r.customerJourneySummary.firstVisit.source
        )) as landing_source,
        r.customerJourneySummary.firstVisit.utmParameters.medium as landing_medium,
        r.customerJourneySummary.firstVisit.utmParameters.campaign as landing_campaign,
        r.customerJourneySummary.firstVisit.landingPage as landing_page,
        r.customerJourneySummary.firstVisit.referrerUrl as referrer_url,
        cast(r.customerJourneySummary.firstVisit.occurredAt as timestamptz) as first_visit_at,
        _extracted_at
    from records
),

marked as (
    select *, {{ redaction_key_of('shopify_customer_id', 'email_raw', 'order_id') }} as redaction_key
    from parsed
)

-- An order of a redacted customer keeps its money, not the buyer's address (macros/redaction.sql).
select
    * replace ({{ unless_redacted('email_raw') }} as email_raw),
    {{ valid_email(unless_redacted('email_raw')) }} as email,
    {{ built_at() }} as _built_at
from marked
