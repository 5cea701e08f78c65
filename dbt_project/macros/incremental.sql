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
