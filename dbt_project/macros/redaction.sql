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
        catches. Null arguments match nothing; several matching requests give the least key.
        Each look-up is a map built once from the (few) requests, not a correlated
        subquery: at 10M orders one OR'd subquery was a nested loop, three equality ones a
        hash join over every distinct email, which ran out of memory under the cap.
    -#}
    least(
        {{ _redaction_map('shopify_customer_id') }}[{{ customer_id }}],
        {{ _redaction_map('email_sha256') }}[sha256({{ normalise_email(email) }})],
        {{ _redaction_map('unnest(order_ids)') }}[{{ order_id }}]
    )
{%- endmacro %}


{% macro _redaction_map(key) -%}
    (
        select map_from_entries(list((redacted, request_key)))
        from (
            select {{ key }} as redacted, min(redaction_key) as request_key
            from {{ ref('stg_shopify__customer_redactions') }}
            group by 1
        )
        where redacted is not null
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

        Only requests that landed since the model's incremental_cutoff() can be new to it: a
        run reads the requests before the records it stores, so a request it missed landed
        after that run began -- minutes, not var lookback_days, before the latest extraction
        it stored. Without such a request the look-up over every stored row (a digest of
        each email: ~5 s at 10M orders) is skipped.
    -#}
    {%- if execute and is_incremental() -%}
        {%- set landed = run_query(
            "select count(*) from " ~ ref('stg_shopify__customer_redactions')
            ~ " where requested_at >= " ~ incremental_cutoff()
        ) -%}
        {%- if landed.columns[0].values()[0] == 0 -%}
            {{- return([]) -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(stored_ids_where(
        raw_id, "redaction_key is null and " ~ redaction_key_of(customer_id, email, order_id) ~ " is not null"
    )) -}}
{%- endmacro %}
