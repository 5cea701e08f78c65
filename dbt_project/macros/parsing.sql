{# Small parsing helpers shared by the staging models. #}

{% macro parse_json(json_column, fields) -%}
    {#-
        A JSON document parsed once into a STRUCT of just `fields`: dotted paths such as
        'customer.id'; a segment ending in [] is a list ('lineItems.nodes[].title' makes
        lineItems.nodes a list of structs; 'tags[]' a list of strings). Leaves are VARCHAR:
        cast them where they are used. `->>` parses the whole document on every call; the
        thirty fields of a 2.7 KB order took ~9x the time of one parse.
    -#}
    {%- set shape = {} -%}
    {%- for field in fields -%}
        {%- set ns = namespace(node=shape) -%}
        {%- set parts = field.split('.') -%}
        {%- for part in parts -%}
            {%- set is_list = part.endswith('[]') -%}
            {%- set key = part[:-2] if is_list else part -%}
            {%- if loop.last -%}
                {%- do ns.node.update({key: ['VARCHAR'] if is_list else 'VARCHAR'}) -%}
            {%- elif is_list -%}
                {%- if key not in ns.node -%}{%- do ns.node.update({key: [{}]}) -%}{%- endif -%}
                {%- set ns.node = ns.node[key][0] -%}
            {%- else -%}
                {%- if key not in ns.node -%}{%- do ns.node.update({key: {}}) -%}{%- endif -%}
                {%- set ns.node = ns.node[key] -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    from_json({{ json_column }}, '{{ tojson(shape) }}')
{%- endmacro %}


{% macro shop_money(money_bag) -%}
    {#- A parsed MoneyBag (parse_json) in the shop currency (shopMoney), exact to the cent. -#}
    cast({{ money_bag }}.shopMoney.amount as decimal(18, 2))
{%- endmacro %}


{% macro presentment_money(money_bag) -%}
    cast({{ money_bag }}.presentmentMoney.amount as decimal(18, 2))
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


{% macro unnest_list(list_expression, element, position=none) -%}
    {#-
        In a select list: one row per element of a list (none when it is null or empty), as
        column `element` and, if named, its 1-based `position`. Not a lateral json_each:
        DuckDB plans a lateral table function as a hash join on the whole JSON document,
        which over 10M orders spilled 30 GB; unnest streams.
    -#}
    unnest({{ list_expression }}) as {{ element }}
    {%- if position %}, generate_subscripts({{ list_expression }}, 1) as {{ position }}{% endif %}
{%- endmacro %}


{% macro json_elements(json_column, path, element, position=none) -%}
    {#- unnest_list over the JSON array at `path` (a JSON path, '$.orderItems'). -#}
    {{ unnest_list("cast(json_extract(" ~ json_column ~ ", '" ~ path ~ "') as json[])", element, position) }}
{%- endmacro %}
