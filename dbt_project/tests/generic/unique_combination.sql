{% test unique_combination(model, columns) %}
{#- No two rows share the same values in `columns` (nulls count as equal). -#}
select {{ columns | join(', ') }}, count(*) as rows_sharing
from {{ model }}
group by all
having count(*) > 1
{% endtest %}
