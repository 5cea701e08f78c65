{{ config(materialized='view') }}
-- Every stay of a customer in a segment: entered_at, and exited_at (null while still a member).

select
    segment,
    customer_key,
    -- The snapshot keeps naive UTC timestamps.
    timezone('UTC', dbt_valid_from) as entered_at,
    timezone('UTC', dbt_valid_to) as exited_at
from {{ ref('segment_membership_snapshot') }}
where is_member
