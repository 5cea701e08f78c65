{# Small parsing helpers shared by the staging models. #}

{% macro shop_money(json_column, path) -%}
    {#- A MoneyBag field in the shop currency (shopMoney), exact to the cent. -#}
    cast({{ json_column }}->>'$.{{ path }}.shopMoney.amount' as decimal(18, 2))
{%- endmacro %}


{% macro presentment_money(json_column, path) -%}
    cast({{ json_column }}->>'$.{{ path }}.presentmentMoney.amount' as decimal(18, 2))
{%- endmacro %}


{% macro json_timestamp(json_column, path) -%}
    {#- ISO 8601 with Z or an offset (Facebook writes +0000): an instant, TIMESTAMPTZ. -#}
    cast({{ json_column }}->>'$.{{ path }}' as timestamptz)
{%- endmacro %}


{% macro json_strings(json_column, path) -%}
    {#- A JSON array of strings as VARCHAR[]; a missing or null field is null. -#}
    from_json({{ json_column }}->'$.{{ path }}', '["varchar"]')
{%- endmacro %}


{% macro gid_to_id(expression) -%}
    {#- gid://shopify/Order/5801000167912 -> 5801000167912 (null when absent or not numeric). -#}
    try_cast(regexp_extract({{ expression }}, '/(\d+)$', 1) as bigint)
{%- endmacro %}


{% macro utc_date(expression) -%}
    {#- The UTC calendar day of an instant, whatever the session time zone. -#}
    cast(timezone('UTC', {{ expression }}) as date)
{%- endmacro %}

{% macro pixel_purchase(action) -%}
    {#- Graph repeats one purchase under several action types: the pixel's count, else "purchase". -#}
    coalesce(
        max(cast({{ action }}->>'$.value' as decimal(18, 2)))
            filter (where {{ action }}->>'$.action_type' = 'offsite_conversion.fb_pixel_purchase'),
        max(cast({{ action }}->>'$.value' as decimal(18, 2)))
            filter (where {{ action }}->>'$.action_type' = 'purchase')
    )
{%- endmacro %}


{% macro json_elements(json_column, path, element, position=none) -%}
    {#-
        In a select list: one row per element of the JSON array at `path` (no row when it is
        missing, null or empty), as column `element` and, if named, its 1-based `position`.
        Not a lateral json_each: DuckDB plans a lateral table function as a hash join on the
        whole JSON document, which over 10M orders spilled 30 GB; unnest streams.
    -#}
    unnest(
        list_transform(
            cast(json_extract({{ json_column }}, '{{ path }}') as json[]),
            lambda value, index: {'{{ element }}': value{% if position %}, '{{ position }}': index{% endif %}}
        ),
        recursive := true
    )
{%- endmacro %}
