-- Quality: every check result with its metric value (the history anomaly baselines learn
-- from), where each check has read up to, and the ongoing failure conditions.

-- One result per check, subject and evaluated window; re-evaluating a window (late data)
-- replaces its row.
CREATE TABLE quality_results (
    id           bigserial PRIMARY KEY,
    check_name   text        NOT NULL,
    check_type   text        NOT NULL,
    dataset      text        NOT NULL,
    subject      text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pass', 'fail', 'error', 'learning')),
    severity     text,
    metric       double precision,
    expected     double precision,
    lower_bound  double precision,
    upper_bound  double precision,
    threshold    text        NOT NULL DEFAULT '',
    message      text        NOT NULL DEFAULT '',
    detail       jsonb       NOT NULL DEFAULT '{}',
    sample       jsonb       NOT NULL DEFAULT '[]',
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (check_name, subject, window_start, window_end)
);
CREATE INDEX quality_results_check_time ON quality_results (check_name, window_end DESC);
CREATE INDEX quality_results_failing ON quality_results (status, window_end DESC)
    WHERE status IN ('fail', 'error');

-- Incremental checks (quarantine, job runs) remember the last row they judged.
CREATE TABLE quality_cursors (
    check_name text PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    moment     timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Repeated failures of one check on one subject are one condition until it passes again.
CREATE TABLE quality_conditions (
    id           bigserial PRIMARY KEY,
    check_name   text        NOT NULL,
    subject      text        NOT NULL,
    dataset      text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('open', 'resolved')),
    severity     text        NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    occurrences  bigint      NOT NULL DEFAULT 1,
    passes       integer     NOT NULL DEFAULT 0,
    -- The failure event that opened the condition, and the newest one about it.
    first_event  jsonb       NOT NULL DEFAULT '{}',
    last_event   jsonb       NOT NULL,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE UNIQUE INDEX quality_conditions_open ON quality_conditions (check_name, subject)
    WHERE state = 'open';
CREATE INDEX quality_conditions_recent ON quality_conditions (opened_at DESC);
