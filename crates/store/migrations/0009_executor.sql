-- The self-healing executor: the actions it plans from incidents' recommendations and what
-- became of each, an append-only audit log, the rows a data-changing action saved before it
-- changed them (its checkpoint), and publication holds that keep suspect day partitions out of
-- what consumers read.

CREATE TABLE executor_actions (
    id            bigserial   PRIMARY KEY,
    incident_id   text        NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    rank          integer     NOT NULL,
    action        text        NOT NULL,
    params        jsonb       NOT NULL,
    -- The policy's verdict when the action was planned.
    mode          text        NOT NULL CHECK (mode IN ('auto', 'approve', 'off')),
    state         text        NOT NULL CHECK (state IN ('manual', 'skipped', 'refused',
                                  'pending_approval', 'ready', 'rejected', 'applying',
                                  'applied', 'failed', 'verified', 'rolled_back')),
    -- Whether applying it changes stored rows (and so has a checkpoint to roll back to).
    data_changing boolean     NOT NULL,
    blast_radius  integer     NOT NULL DEFAULT 0,
    dry_run       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    outcome       jsonb,
    decided_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- The same action is never planned twice for one incident.
    UNIQUE (incident_id, action, params)
);
CREATE INDEX executor_actions_state ON executor_actions (state, id);

-- Everything the executor and operators did to actions: who, when, parameters, dry run,
-- outcome. Rows are only ever added.
CREATE TABLE executor_audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action_id   bigint,
    incident_id text,
    actor       text        NOT NULL,
    event       text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX executor_audit_incident ON executor_audit (incident_id, id);
CREATE INDEX executor_audit_event ON executor_audit (event, at);

CREATE FUNCTION executor_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'executor_audit is append-only';
END
$$;
CREATE TRIGGER executor_audit_no_change BEFORE UPDATE OR DELETE ON executor_audit
    FOR EACH ROW EXECUTE FUNCTION executor_audit_append_only();
CREATE TRIGGER executor_audit_no_truncate BEFORE TRUNCATE ON executor_audit
    FOR EACH STATEMENT EXECUTE FUNCTION executor_audit_append_only();

-- Rows an action removed or replaced, saved in the action's transaction, restored by its
-- rollback.
CREATE TABLE executor_checkpoints (
    id         bigserial PRIMARY KEY,
    action_id  bigint    NOT NULL REFERENCES executor_actions (id) ON DELETE CASCADE,
    table_name text      NOT NULL,
    day        date      NOT NULL,
    row_data   jsonb     NOT NULL
);
CREATE INDEX executor_checkpoints_action ON executor_checkpoints (action_id);

-- Day partitions consumers must not read yet: the seed's analytics views leave them out.
CREATE TABLE publication_holds (
    id          bigserial   PRIMARY KEY,
    action_id   bigint      REFERENCES executor_actions (id) ON DELETE SET NULL,
    dataset     text        NOT NULL,
    from_day    date        NOT NULL,
    to_day      date        NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    CHECK (from_day <= to_day)
);
CREATE INDEX publication_holds_active ON publication_holds (dataset, from_day)
    WHERE released_at IS NULL;

-- Whether `day` of `dataset` is held.
CREATE FUNCTION publication_held(dataset text, day date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM publication_holds h
                   WHERE h.dataset = $1 AND h.released_at IS NULL
                     AND $2 BETWEEN h.from_day AND h.to_day)
$$;

CREATE OR REPLACE VIEW analytics_daily_revenue AS
SELECT day                  AS date,
       gross_revenue_usd    AS total_revenue,
       orders               AS order_count,
       avg_order_value_usd  AS avg_order_value
FROM daily_revenue
WHERE NOT publication_held('daily_revenue', day);

CREATE OR REPLACE VIEW analytics_user_funnel AS
SELECT f.day                                             AS date,
       (SELECT count(*) FROM users u
         WHERE u.signed_up_at >= f.day
           AND u.signed_up_at < f.day + 1)               AS users_created,
       f.orders                                          AS orders_placed,
       f.payments                                        AS payments_processed,
       f.overall_rate                                    AS conversion_rate
FROM user_funnel f
WHERE NOT publication_held('user_funnel', f.day);

CREATE OR REPLACE VIEW analytics_user_retention AS
SELECT day         AS cohort_date,
       cohort_size AS user_count,
       active_d1   AS day_1_active,
       active_d7   AS day_7_active,
       active_d30  AS day_30_active
FROM user_retention
WHERE NOT publication_held('user_retention', day);
