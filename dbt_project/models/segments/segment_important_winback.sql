-- Big spenders who bought rarely and long ago (RFM 001): worth a win-back offer.
select
    customer_key,
    concat('rfm 001: last order ', recency_days, ' days ago, ', round(monetary, 2), ' spent') as reason
from {{ ref('customer_rfm') }}
where rfm_code = '001'
