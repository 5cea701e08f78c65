-- Best customers: recent, frequent, big spenders (RFM 111) in the top spend quintile.
select
    customer_key,
    concat('rfm 111, spend quintile 5: ', frequency, ' orders, ', round(monetary, 2), ' spent') as reason
from {{ ref('customer_rfm') }}
where rfm_code = '111'
    and m_score = 5
