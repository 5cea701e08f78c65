{#
    Reading the raw zone: $HEARTH_DATA_DIR/raw/<source>/<stream>/*.parquet, append-only,
    one file per load, columns id, updated_at, record (JSON text), _load_id, _extracted_at.
    Staging models are the only callers.
#}

{% macro raw_glob(source_name, stream) -%}
    {{ var('raw_root') }}/{{ source_name }}/{{ stream }}/*.parquet
{%- endmacro %}


{% macro raw_stream_is_empty(source_name, stream) %}
    {#- read_parquet fails on a glob that matches nothing: ask DuckDB's glob() first. -#}
    {%- set found = run_query("select count(*) from glob('" ~ raw_glob(source_name, stream) ~ "')") -%}
    {{- return(found.columns[0].values()[0] == 0) -}}
{% endmacro %}


{% macro raw_source(source_name, stream) -%}
    {#-
        Every landed version of every record of one stream, as a subquery.

        source() is called for the lineage only: the files are read from var raw_root. A
        stream with no file yet (a fresh shop, a shop without Amazon) reads as an empty
        relation with the raw columns, so staging never fails for a source not connected.
    -#}
    {%- do source(source_name, stream) -%}
    {%- if execute and raw_stream_is_empty(source_name, stream) -%}
    (
        select
            null::varchar as id,
            null::timestamptz as updated_at,
            null::varchar as record,
            null::varchar as _load_id,
            null::timestamptz as _extracted_at
        where false
    )
    {%- else -%}
    (
        select id, updated_at, record, _load_id, _extracted_at
        from read_parquet('{{ raw_glob(source_name, stream) }}', union_by_name = true)
    )
    {%- endif -%}
{%- endmacro %}


{% macro latest_raw_records(source_name, stream) -%}
    {#-
        The latest version of each record: the same record lands again on re-extraction,
        lookback windows and reruns after a crash. Latest = greatest updated_at, then the
        latest extraction (streams without updated_at, like Facebook insights, rely on it).
        `record` comes back parsed as JSON.
    -#}
    select
        id,
        updated_at,
        json(record) as record,
        _load_id,
        _extracted_at
    from (
        select * from {{ raw_source(source_name, stream) }} as raw
        qualify row_number() over (
            partition by id
            order by updated_at desc nulls last, _extracted_at desc, _load_id desc
        ) = 1
    ) as latest
{%- endmacro %}
