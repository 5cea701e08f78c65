-- Who is in which segment as of var as_of, and since when.

with current_members as (
    select segment, customer_key, reason, as_of, as_of_at
    from {{ ref('int_segment_members_unioned') }}
),

stays as (
    select segment, customer_key, entered_at, exited_at
    from {{ ref('segment_history') }}
)

select
    current_members.segment,
    current_members.customer_key,
    current_members.reason,
    current_members.as_of,
    -- The recorded stay that covers as_of (a backfill of a past day finds that day's);
    -- a member the snapshot has not recorded yet (a plain dbt run) entered at as_of.
    coalesce(stays.entered_at, current_members.as_of_at) as entered_at
from current_members
left join stays
    on stays.segment = current_members.segment
    and stays.customer_key = current_members.customer_key
    and stays.entered_at <= current_members.as_of_at
    and (stays.exited_at is null or stays.exited_at > current_members.as_of_at)
