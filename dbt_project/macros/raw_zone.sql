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


{% macro raw_source(source_name, stream, with_position=false) -%}
    {#-
        Every landed version of every record of one stream, as a subquery.

        source() is called for the lineage only: the files are read from var raw_root. A
        stream with no file yet (a fresh shop, a shop without Amazon) reads as an empty
        relation with the raw columns, so staging never fails for a source not connected.
        with_position adds each row's file and row number: its identity in the raw zone.
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
            {%- if with_position %},
            null::varchar as filename,
            null::bigint as file_row_number
            {%- endif %}
        where false
    )
    {%- else -%}
    (
        select id, updated_at, record, _load_id, _extracted_at{% if with_position %}, filename, file_row_number{% endif %}
        from read_parquet(
            '{{ raw_glob(source_name, stream) }}', union_by_name = true
            {%- if with_position %}, filename = true, file_row_number = true{% endif %}
        )
    )
    {%- endif -%}
{%- endmacro %}


{% macro latest_raw_records(source_name, stream, reprocess_ids=[]) -%}
    {#-
        The latest version of each record: the same record lands again on re-extraction,
        lookback windows and reruns after a crash. Latest = greatest updated_at, then the
        latest extraction (streams without updated_at, like Facebook insights, rely on it).
        `record` comes back as the JSON text it landed as: parse it once (parse_json), since
        every `->>` on it parses the whole document again.

        The winners are picked on the narrow columns alone and the records fetched by their
        position afterwards: ranking whole JSON records held every version of 10M orders in
        memory (17 GB); this way a build stays inside DuckDB's memory cap.

        In an incremental model, only records landed since the model's incremental_cutoff()
        are read (Parquet statistics skip older files unread), plus the raw ids in
        `reprocess_ids`; the model's unique_key then replaces their earlier versions. This
        trusts that a later extraction never returns an older version of a record.
    -#}
    {%- set since -%}
        {%- if execute and is_incremental() -%}
        {#- A constant, so that DuckDB prunes files by their Parquet statistics. -#}
        {%- set cutoff = run_query("select cast(" ~ incremental_cutoff() ~ " as varchar)").columns[0].values()[0] -%}
        where _extracted_at >= '{{ cutoff }}'::timestamptz
            {%- if reprocess_ids %} or id in ({% for id in reprocess_ids %}'{{ id }}'{{ ", " if not loop.last }}{% endfor %}){% endif %}
        {%- endif -%}
    {%- endset -%}
    select
        raw.id,
        raw.updated_at,
        raw.record,
        raw._load_id,
        raw._extracted_at
    from {{ raw_source(source_name, stream, with_position=true) }} as raw
    semi join (
        select filename, file_row_number
        from {{ raw_source(source_name, stream, with_position=true) }} as versions
        {{ since }}
        qualify row_number() over (
            partition by id
            order by updated_at desc nulls last, _extracted_at desc, _load_id desc, filename desc, file_row_number desc
        ) = 1
    ) as latest
        on latest.filename = raw.filename and latest.file_row_number = raw.file_row_number
    {{ since }}
{%- endmacro %}
