{#
    GDPR erasure, in one place. Shopify's customers/redact webhook asks the shop to erase
    one customer; hearth.webhooks lands it in raw/shopify/webhooks and suppresses the
    address at once. Staging then masks every personal field of what the request covers:
    the customer's records, their orders and checkouts (matched by Shopify customer id, by
    normalised email, or by an order listed in orders_to_redact), and Hearth's own sends
    and email events to that address. Nothing downstream of staging ever sees them. The
    person stays as one anonymous customer keyed by the request (see
    shopify_customer_key_of), so revenue, RFM and results keep adding up.
#}

{% macro redaction_key_of(customer_id='null', email='null', order_id='null') -%}
    {#-
        The key of the redaction request covering a record, else null. A request names one
        Shopify customer; guest checkouts gave the same person other ids, which the email
        catches. Null arguments match nothing. Three equality look-ups, not one OR: DuckDB
        turns each into a hash join, where the OR was a nested loop (~20x slower per row).
        The requests' columns are renamed so the caller's never bind in here.
    -#}
    (
        select min(redacted_key)
        from (
            select redacted_key
            from (select redaction_key as redacted_key, shopify_customer_id as redacted_customer_id
                  from {{ ref('stg_shopify__customer_redactions') }})
            where redacted_customer_id = {{ customer_id }}
            union all
            select redacted_key
            from (select redaction_key as redacted_key, email_sha256 as redacted_email_sha256
                  from {{ ref('stg_shopify__customer_redactions') }})
            where redacted_email_sha256 = sha256({{ normalise_email(email) }})
            union all
            select redacted_key
            from (select redaction_key as redacted_key, unnest(order_ids) as redacted_order_id
                  from {{ ref('stg_shopify__customer_redactions') }})
            where redacted_order_id = {{ order_id }}
        )
    )
{%- endmacro %}


{% macro unless_redacted(column, redaction_key='redaction_key') -%}
    {#- The column's value, or null for a record a redaction request covers. -#}
    case when {{ redaction_key }} is null then {{ column }} end
{%- endmacro %}


{% macro ids_to_redact_again(raw_id, customer_id='null', email='null', order_id='null') -%}
    {#-
        For an incremental staging model: the raw ids of rows it stored before a redaction
        request covered them. latest_raw_records reads these records again, so the model's
        own masking applies to them. A full build needs none.
    -#}
    {%- if execute and is_incremental() -%}
        {%- set found = run_query(
            "select distinct " ~ raw_id ~ " from " ~ this ~ " where redaction_key is null and "
            ~ redaction_key_of(customer_id, email, order_id) ~ " is not null"
        ) -%}
        {{- return(found.columns[0].values() | list) -}}
    {%- endif -%}
    {{- return([]) -}}
{%- endmacro %}
