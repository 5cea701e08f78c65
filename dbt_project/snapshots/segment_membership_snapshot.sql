{#-
  History of segment membership, one version per (segment, customer) and change of
  is_member. Entries and exits are dated by the as-of instant of the build that saw
  them, not by the wall clock, so replaying `dbt build --vars '{as_of: …}'` day by day
  rebuilds the same history. That is why exits are not left to dbt's hard-delete
  handling (which stamps the wall clock): members that left come back from the open
  snapshot rows with is_member = false. A build with an older as_of than the latest
  recorded one (a backfill of the past), or equal to it (the same build again), leaves the
  history as it is.
-#}
{% snapshot segment_membership_snapshot %}
{{
    config(
        unique_key='membership_key',
        strategy='check',
        check_cols=['is_member'],
        updated_at='as_of_at',
    )
}}
{%- set recorded = adapter.get_relation(this.database, this.schema, this.identifier) if execute else none %}

with current_members as (
    select segment, customer_key
    from {{ ref('int_segment_members_unioned') }}
),

-- Naive UTC, the type dbt-duckdb gives the snapshot's own timestamp columns.
this_run as (
    select timezone('UTC', {{ as_of_timestamp() }}) as as_of_at
),

{% if recorded %}
open_members as (
    select segment, customer_key, dbt_updated_at as recorded_at
    from {{ this }}
    where dbt_valid_to is null and is_member
),

last_run as (
    select max(dbt_updated_at) as as_of_at from {{ this }}
),
{% else %}
open_members as (
    select cast(null as varchar) as segment, cast(null as varchar) as customer_key,
        cast(null as timestamp) as recorded_at
    where false
),

last_run as (
    select cast(null as timestamp) as as_of_at
),
{% endif %}

moves_forward as (
    -- Strictly later: a rebuild at the same instant (a fixed as_of run twice) would stamp a
    -- second version with the same timestamp, which the snapshot's scd id cannot tell apart.
    select last_run.as_of_at is null or this_run.as_of_at > last_run.as_of_at as ok
    from this_run cross join last_run
),

memberships as (
    select
        coalesce(current_members.segment, open_members.segment) as segment,
        coalesce(current_members.customer_key, open_members.customer_key) as customer_key,
        current_members.customer_key is not null as is_member,
        this_run.as_of_at
    from current_members
    full outer join open_members
        on open_members.segment = current_members.segment
        and open_members.customer_key = current_members.customer_key
    cross join this_run
    where (select ok from moves_forward)
    union all
    select segment, customer_key, true as is_member, recorded_at as as_of_at
    from open_members
    where not (select ok from moves_forward)
)

select
    concat_ws(':', segment, customer_key) as membership_key,
    segment,
    customer_key,
    is_member,
    as_of_at
from memberships
{% endsnapshot %}
