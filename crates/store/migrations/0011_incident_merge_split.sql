-- Operators merge incidents that are one problem and split failures out of an incident that
-- mixes two. A merged incident is resolved and points at the one it went into; a split-off
-- incident is the operator's (the AI Ops engine does not update it), and the failure events it
-- took stay out of its source when the engine publishes the source again.

ALTER TABLE incidents ADD COLUMN merged_into text REFERENCES incidents (id) ON DELETE SET NULL;
CREATE INDEX incidents_merged_into ON incidents (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE incident_splits (
    id                bigserial   PRIMARY KEY,
    source            text        NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    target            text        NOT NULL UNIQUE REFERENCES incidents (id) ON DELETE CASCADE,
    failure_event_ids text[]      NOT NULL,
    at                timestamptz NOT NULL DEFAULT now(),
    actor             text        NOT NULL
);
CREATE INDEX incident_splits_source ON incident_splits (source);
