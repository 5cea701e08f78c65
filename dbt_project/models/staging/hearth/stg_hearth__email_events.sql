with latest_records as (
    -- latest_raw_records keeps one row per id: SendGrid retries a batch with the same events.
    {{ latest_raw_records('hearth', 'email_events') }}
)

select
    id as event_id,
    record->>'$.hearth_send_key' as send_key,
    record->>'$.event' as event,
    -- updated_at is the event's Unix timestamp (hearth.webhooks).
    updated_at as occurred_at,
    -- Events of a customer who was since erased lose the address (macros/redaction.sql).
    {{ unless_redacted(normalise_email("record->>'$.email'"),
                       redaction_key_of(email="record->>'$.email'")) }} as email,
    record->>'$.url' as url,
    record->>'$.sg_message_id' as sg_message_id,
    record->>'$.reason' as reason,
    try_cast(record->>'$.asm_group_id' as bigint) as asm_group_id,
    _extracted_at
from latest_records
