{#-
  The one clock of the analytics layer: every RFM, lifecycle, segment and trigger
  model asks these macros for "now", so a backfill rebuilds a past day with
  `--vars '{as_of: 2025-06-30}'` and sees exactly what that day saw.

  var as_of may be
    - null (default): the real now (current_timestamp, and its UTC day);
    - a date (2025-06-30): the end of that day in UTC, so that day's orders count;
    - a timestamp (2025-06-30T15:00:00Z): that instant.
-#}

{% macro as_of_timestamp() -%}
  {%- set value = var('as_of', none) -%}
  {%- if value is none or value | string | trim | lower in ('', 'none', 'null') -%}
    current_timestamp
  {%- elif _as_of_is_date(value) -%}
    (cast('{{ value | string | trim }} 00:00:00+00' as timestamptz) + interval 1 day)
  {%- else -%}
    cast('{{ value | string | trim }}' as timestamptz)
  {%- endif -%}
{%- endmacro %}

{% macro as_of_date() -%}
  {%- set value = var('as_of', none) -%}
  {%- if value is none or value | string | trim | lower in ('', 'none', 'null') -%}
    {{ utc_date('current_timestamp') }}
  {%- elif _as_of_is_date(value) -%}
    cast('{{ value | string | trim }}' as date)
  {%- else -%}
    {{ utc_date("cast('" ~ (value | string | trim) ~ "' as timestamptz)") }}
  {%- endif -%}
{%- endmacro %}

{% macro _as_of_is_date(value) -%}
  {#- YAML turns 2025-06-30 into a date and 2025-06-30T15:00:00Z into a datetime; a CLI string stays a string. -#}
  {{- return(value | string | trim | length == 10) -}}
{%- endmacro %}
