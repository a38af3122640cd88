-- Operators' feedback as AI Ops learned it from the incident-feedback topic: each message once
-- (by its event id), and the remediation outcomes it re-ranks recommendations with, taken back
-- at start.
CREATE TABLE aiops_feedback (
    event_id       text        PRIMARY KEY,
    incident_id    text        NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    -- The class the operator gave (also stored as a label in aiops_labels).
    class          text,
    -- The class and action a remediation outcome is recorded under.
    incident_class text,
    action         text,
    worked         boolean
);
