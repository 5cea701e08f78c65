{% test expression_is_true(model, expression) %}
{#- Every row satisfies `expression` (a null result fails too). -#}
select *
from {{ model }}
where not coalesce({{ expression }}, false)
{% endtest %}
