-- Replaying quarantined events after a mapping fix (the executor's `replay_quarantine`).
--
-- A field mapping tells ingest to move a renamed key back to the field the schema expects,
-- for one event type (and schema version, when given), for every event it decodes from then
-- on while the mapping is active. The executor registers the mappings its action carries and a
-- replay request in one transaction; ingest replays the quarantined events the request tagged
-- and records what happened. A rollback retires the mappings, removes what the replay stored
-- and puts the events back in quarantine.

CREATE TABLE field_mappings (
    id             bigserial   PRIMARY KEY,
    event_type     text        NOT NULL,
    schema_version text,
    from_field     text        NOT NULL,
    to_field       text        NOT NULL,
    action_id      bigint      REFERENCES executor_actions (id) ON DELETE SET NULL,
    active         boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    retired_at     timestamptz,
    CHECK (from_field <> to_field)
);
CREATE INDEX field_mappings_active ON field_mappings (event_type) WHERE active;

-- The replay of the quarantined events an action tagged: ingest picks up requests without
-- `done_at`, replays, and stores its report.
CREATE TABLE replay_requests (
    action_id    bigint      PRIMARY KEY REFERENCES executor_actions (id) ON DELETE CASCADE,
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    report       jsonb
);
CREATE INDEX replay_requests_pending ON replay_requests (requested_at) WHERE done_at IS NULL;

-- The action whose replay request covers a quarantined event.
ALTER TABLE quarantine ADD COLUMN replay_action bigint;
CREATE INDEX quarantine_replay_action ON quarantine (replay_action) WHERE replay_action IS NOT NULL;
