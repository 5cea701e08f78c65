with latest_records as (
    {{ latest_raw_records('hearth', 'sends') }}
),

parsed as (
    select
        id as send_key,
        record->>'$.customer_key' as customer_key,
        nullif(record->>'$.email', '') as email,
        record->>'$.sequence' as sequence,
        record->>'$.step' as step,
        record->>'$.trigger_id' as trigger_id,
        record->>'$.status' as status,
        record->>'$.reason' as reason,
        record->>'$.message_id' as message_id,
        record->>'$.run_id' as run_id,
        record->>'$.batch_id' as batch_id,
        {{ json_timestamp('record', 'reserved_at') }} as reserved_at,
        {{ json_timestamp('record', 'sending_at') }} as sending_at,
        {{ json_timestamp('record', 'created_at') }} as created_at,
        coalesce({{ json_timestamp('record', 'updated_at') }}, updated_at) as updated_at,
        _extracted_at
    from latest_records
)

select
    -- Sent to a customer who was since erased: the address goes (macros/redaction.sql).
    * replace ({{ unless_redacted('email', redaction_key_of(email='email')) }} as email),
    status = 'accepted' as is_accepted,
    -- hearth.policy.HOLDOUT: kept out of the sequence on purpose, the control group.
    status = 'skipped' and reason = 'holdout' as is_holdout
from parsed
