-- AI Ops: the data time of refused events (so every failure event can say when, in data time,
-- its problem happened), the incidents the engine holds, messages it could not read, and the
-- labels its classifier learns from.

-- The producer's send time of a refused payload (the bus message timestamp): data time, where
-- received_at is wall-clock time. NULL for payloads posted without one.
ALTER TABLE quarantine ADD COLUMN produced_at timestamptz;

-- Every incident the engine has opened, as last published (the whole message body).
CREATE TABLE aiops_incidents (
    id           text        PRIMARY KEY,
    fingerprint  text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('open', 'resolved')),
    class        text        NOT NULL,
    severity     text        NOT NULL,
    data_start   timestamptz NOT NULL,
    data_end     timestamptz NOT NULL,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    body         jsonb       NOT NULL
);
CREATE INDEX aiops_incidents_open ON aiops_incidents (status, updated_at DESC);
CREATE INDEX aiops_incidents_fingerprint ON aiops_incidents (fingerprint, updated_at DESC);

-- Messages on the AI Ops role's topics that could not be read: kept with their bytes and
-- position, never dropped.
CREATE TABLE aiops_dead_letters (
    id           bigserial   PRIMARY KEY,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    payload      bytea       NOT NULL,
    reason       text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);

-- Labelled incidents the classifier is trained on: the features of the decision and the
-- right class, from scenario ground truth or an operator's correction.
CREATE TABLE aiops_labels (
    id           bigserial   PRIMARY KEY,
    incident_id  text,
    features     jsonb       NOT NULL,
    class        text        NOT NULL,
    source       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
