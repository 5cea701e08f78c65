-- One-order customers whose order was 30–60 days ago: the window for a second-order nudge.
select
    customer_key,
    concat('one order, ', recency_days, ' days ago') as reason
from {{ ref('customer_rfm') }}
where frequency = 1
    and recency_days between 30 and 60
