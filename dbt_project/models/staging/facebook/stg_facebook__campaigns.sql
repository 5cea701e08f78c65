with latest_records as (
    {{ latest_raw_records('facebook', 'campaigns') }}
)

select
    id as campaign_id,
    record->>'$.name' as campaign_name,
    record->>'$.status' as status,
    record->>'$.effective_status' as effective_status,
    record->>'$.objective' as objective,
    {{ json_timestamp('record', 'created_time') }} as created_at,
    coalesce({{ json_timestamp('record', 'updated_time') }}, updated_at) as updated_at,
    _extracted_at
from latest_records
