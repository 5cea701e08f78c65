{#
    Identity rules, in one place (see models/intermediate/int_customer_identities.yml):
    a person with a valid email is keyed on that email, whatever Shopify record, order or
    checkout it comes from; anything else keeps a key of its own.
#}

{% macro normalise_email(expression) -%}
    {#- Trimmed (any whitespace) and lower-cased; empty -> null. -#}
    nullif(lower(regexp_replace({{ expression }}, '^\s+|\s+$', '', 'g')), '')
{%- endmacro %}


{% macro valid_email(expression) -%}
    {#-
        The normalised address when its syntax is usable (one @, a dotted domain, no
        whitespace), else null. Deliberately simple: it rejects what people mistype
        (a@@b, no @, no TLD), not every RFC 5322 corner.
    -#}
    case
        when regexp_full_match({{ normalise_email(expression) }}, '[^@\s]+@[^@\s.]+(\.[^@\s.]+)*\.[^@\s.]{2,}')
            then {{ normalise_email(expression) }}
    end
{%- endmacro %}


{% macro email_customer_key(email) -%}
    md5('email:' || {{ email }})
{%- endmacro %}


{% macro shopify_customer_key(shopify_customer_id) -%}
    md5('shopify_customer:' || {{ shopify_customer_id }})
{%- endmacro %}


{% macro shopify_order_key_customer(order_id) -%}
    {#- An order with neither a customer nor a valid email is a customer of its own. -#}
    md5('shopify_order:' || {{ order_id }})
{%- endmacro %}


{% macro amazon_customer_key(buyer_email, amazon_order_id) -%}
    {#- Its own namespace: an Amazon buyer never merges into an email identity. -#}
    md5('amazon:' || coalesce({{ buyer_email }}, 'order:' || {{ amazon_order_id }}))
{%- endmacro %}


{% macro redacted_customer_key(redaction_key) -%}
    {#- A customer erased on request (macros/redaction.sql): one anonymous person per request. -#}
    md5('redacted:' || {{ redaction_key }})
{%- endmacro %}


{% macro shopify_customer_key_of(email, shopify_customer_id, order_id='null', redaction_key='null') -%}
    {#- The key of a Shopify record, order or checkout from what it carries itself. -#}
    coalesce(
        {{ redacted_customer_key(redaction_key) }},
        {{ email_customer_key(email) }},
        {{ shopify_customer_key(shopify_customer_id) }},
        {{ shopify_order_key_customer(order_id) }}
    )
{%- endmacro %}


{% macro product_key(sku, fallback) -%}
    {#- A product is its SKU (Amazon listings carry the same seller SKU); no SKU: a stand-in. -#}
    coalesce({{ sku }}, {{ fallback }})
{%- endmacro %}
