-- The incident store: every incident AI Ops published, with the state operators (and, later,
-- the self-healing executor) move it through, a timeline of everything that happened to it,
-- and the feedback given on it.

CREATE TABLE incidents (
    id                text        PRIMARY KEY,
    state             text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'remediating',
                                      'verifying', 'resolved', 'failed', 'false_positive')),
    class             text        NOT NULL,
    severity          text        NOT NULL,
    title             text        NOT NULL,
    -- Lineage keys of the root cause and of every symptom's node (for filters and similarity).
    root_cause        text,
    nodes             text[]      NOT NULL DEFAULT '{}',
    previous          text,
    -- What the AI Ops engine last said (open/resolved), whatever the operators did.
    engine_status     text        NOT NULL,
    data_start        timestamptz NOT NULL,
    data_end          timestamptz NOT NULL,
    opened_at         timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    resolved_at       timestamptz,
    resolution_reason text,
    resolution_note   text,
    body              jsonb       NOT NULL
);
CREATE INDEX incidents_state ON incidents (state, updated_at DESC);
CREATE INDEX incidents_class ON incidents (class, updated_at DESC);
CREATE INDEX incidents_nodes ON incidents USING gin (nodes);

-- Everything that happened to an incident, in order. `dedup` makes a redelivered message a
-- no-op (the message's event id).
CREATE TABLE incident_timeline (
    id          bigserial   PRIMARY KEY,
    incident_id text        NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    kind        text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dedup       text        UNIQUE
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, id);

-- Operators' feedback: the right class, the right root cause, whether the remediation worked.
CREATE TABLE incident_feedback (
    id                 bigserial   PRIMARY KEY,
    incident_id        text        NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at                 timestamptz NOT NULL DEFAULT now(),
    actor              text        NOT NULL,
    class              text,
    root_cause         text,
    remediation_worked boolean,
    note               text
);
CREATE INDEX incident_feedback_incident ON incident_feedback (incident_id, id);
