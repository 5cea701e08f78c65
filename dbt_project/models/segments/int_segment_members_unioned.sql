{#-
  Every model tagged `segment` (one SQL file per segment in this folder) as rows of
  segment, customer_key, reason. The segment's name is its model name without the
  `segment_` prefix. dbt needs each dependency declared when it parses the project,
  before the graph exists: a new segment also gets a `depends_on` line below, and
  dbt names the missing line in its error if it is forgotten.
-#}
-- depends_on: {{ ref('segment_vip') }}
-- depends_on: {{ ref('segment_important_winback') }}
-- depends_on: {{ ref('segment_one_time_30_60_days') }}
-- depends_on: {{ ref('segment_high_aov') }}
-- depends_on: {{ ref('segment_discount_sensitive') }}

{%- set segment_models = [] %}
{%- if execute %}
    {%- for node in graph.nodes.values() | sort(attribute='name') %}
        {%- if node.resource_type == 'model' and 'segment' in node.tags %}
            {%- do segment_models.append(node.name) %}
        {%- endif %}
    {%- endfor %}
{%- endif %}

{% for model_name in segment_models %}
select
    '{{ model_name | replace("segment_", "", 1) }}' as segment,
    customer_key,
    reason,
    {{ as_of_date() }} as as_of,
    {{ as_of_timestamp() }} as as_of_at
from {{ ref(model_name) }}
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as varchar) as segment,
    cast(null as varchar) as customer_key,
    cast(null as varchar) as reason,
    {{ as_of_date() }} as as_of,
    {{ as_of_timestamp() }} as as_of_at
where false
{%- endfor %}
