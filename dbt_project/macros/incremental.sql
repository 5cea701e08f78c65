{% macro incremental_cutoff(column='_extracted_at') -%}
    {#-
        Rows at or after this are reprocessed by an incremental run: the latest extraction
        already in the model minus var lookback_days (late updates, refunds, settling
        ad numbers, loads that overlapped the previous run).
    -#}
    (
        select coalesce(max({{ column }}), '-infinity'::timestamptz) - to_days({{ var('lookback_days') }})
        from {{ this }}
    )
{%- endmacro %}


{% macro stored_ids_where(raw_id, condition) -%}
    {#-
        For an incremental staging model (its reprocess_ids): the raw ids of stored rows that
        match `condition` and so must be read again from the raw zone, however old (a
        redaction request, a currency rate added since). A full build reads all anyway.
    -#}
    {%- if execute and is_incremental() -%}
        {%- set found = run_query("select distinct " ~ raw_id ~ " from " ~ this ~ " where " ~ condition) -%}
        {{- return(found.columns[0].values() | list) -}}
    {%- endif -%}
    {{- return([]) -}}
{%- endmacro %}


{% macro shopify_customers_landed(models) -%}
    {#-
        For an incremental model: the Shopify customer ids on rows of `models` (staging models
        with shopify_customer_id and _extracted_at) extracted since this model's
        incremental_cutoff(). Their customers' other rows may need reprocessing: a customer
        record gives the key, an order or checkout links to the others. Call it inside
        is_incremental() and declare the refs with `-- depends_on:` hints.
    -#}
    {%- for model in models %}
    select shopify_customer_id from {{ ref(model) }}
    where _extracted_at >= {{ incremental_cutoff() }}
    {%- if not loop.last %}
    union
    {%- endif %}
    {%- endfor %}
{%- endmacro %}


{% macro built_at() -%}
    {#-
        When this dbt invocation started, stamped on every row a model writes as _built_at:
        a model downstream of an incremental model reads only the rows built since its own
        latest _built_at. Extraction times cannot tell it which rows changed: a re-keyed order
        is rewritten with the _extracted_at it had.
    -#}
    cast('{{ run_started_at.isoformat() }}' as timestamptz)
{%- endmacro %}


{% macro built_since_last_build() -%}
    {#-
        For an incremental model reading a model that stamps _built_at (built_at()): a
        condition on the parent's rows, true for those built since this model's own latest
        build. Call it inside is_incremental().
    -#}
    _built_at > (select coalesce(max(_built_at), '-infinity'::timestamptz) from {{ this }})
{%- endmacro %}
