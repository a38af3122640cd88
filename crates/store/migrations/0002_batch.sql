-- Batch engine: partition versions (what changed, per table and day), exchange rates, job run
-- history, the state of every computed partition, and the staging and analytics tables.

-- Every write to a day partition of a table bumps its version, in the same transaction as
-- the rows. A job reads the versions of its inputs in the same snapshot as their rows, so a
-- partition is recomputed exactly when something it read has changed since.
CREATE TABLE partition_versions (
    table_name   text        NOT NULL,
    day          date        NOT NULL,
    version      bigint      NOT NULL,
    rows_changed bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);

-- Data ingested before this migration: one version per existing day partition.
INSERT INTO partition_versions (table_name, day, version, rows_changed)
SELECT 'users', (signed_up_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM users GROUP BY 2
UNION ALL
SELECT 'sessions', (started_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM sessions GROUP BY 2
UNION ALL
SELECT 'product_views', (viewed_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM product_views GROUP BY 2
UNION ALL
SELECT 'cart_items', (added_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM cart_items GROUP BY 2
UNION ALL
SELECT 'orders', (placed_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM orders GROUP BY 2
UNION ALL
SELECT 'payments', (processed_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM payments GROUP BY 2
UNION ALL
SELECT 'refunds', (refunded_at AT TIME ZONE 'UTC')::date, 1, count(*) FROM refunds GROUP BY 2;

-- Reference exchange rates into USD (one fixed table: reports stay reproducible).
CREATE TABLE fx_rates (
    currency     text PRIMARY KEY,
    exponent     integer        NOT NULL,
    usd_per_unit numeric(18, 8) NOT NULL
);
INSERT INTO fx_rates (currency, exponent, usd_per_unit) VALUES
    ('USD', 2, 1),
    ('EUR', 2, 1.08),
    ('GBP', 2, 1.27),
    ('JPY', 0, 0.0067),
    ('CAD', 2, 0.73),
    ('AUD', 2, 0.66);

-- One row per attempt series of one job on one day partition.
CREATE TABLE job_runs (
    run_id       uuid PRIMARY KEY,
    job          text        NOT NULL,
    day          date        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'backfill')),
    status       text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    scheduled_at timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    delayed_secs double precision NOT NULL DEFAULT 0,
    rows_read    bigint,
    rows_written bigint,
    error        text
);
CREATE INDEX job_runs_job_day ON job_runs (job, day, started_at DESC);
CREATE INDEX job_runs_started ON job_runs (started_at DESC);

-- The last successful computation of each job partition, and what it read.
CREATE TABLE job_partitions (
    job             text        NOT NULL,
    day             date        NOT NULL,
    input_signature bigint      NOT NULL,
    computed_at     timestamptz NOT NULL,
    run_id          uuid        NOT NULL,
    rows_read       bigint      NOT NULL,
    rows_written    bigint      NOT NULL,
    PRIMARY KEY (job, day)
);

-- Rows a job left out of a partition, counted by reason.
CREATE TABLE job_exclusions (
    job    text   NOT NULL,
    day    date   NOT NULL,
    reason text   NOT NULL,
    rows   bigint NOT NULL,
    PRIMARY KEY (job, day, reason)
);

-- Injected job faults already spent on a partition.
CREATE TABLE job_fault_state (
    fault_id bigint  NOT NULL,
    day      date    NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    delayed  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (fault_id, day)
);

-- OpenLineage run events, as emitted (and, later, as received from other tools).
CREATE TABLE lineage_events (
    id            bigserial PRIMARY KEY,
    event_time    timestamptz NOT NULL,
    event_type    text        NOT NULL,
    job_namespace text        NOT NULL,
    job_name      text        NOT NULL,
    run_id        uuid        NOT NULL,
    payload       jsonb       NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lineage_events_job ON lineage_events (job_namespace, job_name, event_time);
CREATE INDEX lineage_events_run ON lineage_events (run_id);

-- Staging: typed, deduplicated, in USD as well as the original currency.
CREATE TABLE stg_orders (
    day          date        NOT NULL,
    order_id     text        NOT NULL,
    user_id      text        NOT NULL,
    placed_at    timestamptz NOT NULL,
    currency     text        NOT NULL,
    amount_minor bigint      NOT NULL,
    amount_usd   numeric(24, 8) NOT NULL,
    item_count   integer     NOT NULL,
    PRIMARY KEY (day, order_id)
);

CREATE TABLE stg_payments (
    day          date        NOT NULL,
    payment_id   text        NOT NULL,
    order_id     text,
    user_id      text        NOT NULL,
    processed_at timestamptz NOT NULL,
    method       text        NOT NULL,
    status       text        NOT NULL,
    attempt      integer     NOT NULL,
    currency     text        NOT NULL,
    amount_minor bigint      NOT NULL,
    amount_usd   numeric(24, 8) NOT NULL,
    PRIMARY KEY (day, payment_id)
);

CREATE TABLE stg_refunds (
    day          date        NOT NULL,
    refund_id    text        NOT NULL,
    payment_id   text        NOT NULL,
    order_id     text,
    user_id      text        NOT NULL,
    refunded_at  timestamptz NOT NULL,
    currency     text        NOT NULL,
    amount_minor bigint      NOT NULL,
    amount_usd   numeric(24, 8) NOT NULL,
    PRIMARY KEY (day, refund_id)
);

-- Analytics.
CREATE TABLE daily_revenue (
    day                 date PRIMARY KEY,
    orders              bigint         NOT NULL,
    order_value_usd     numeric(18, 2) NOT NULL,
    avg_order_value_usd numeric(18, 2),
    gross_revenue_usd   numeric(18, 2) NOT NULL,
    refunds_usd         numeric(18, 2) NOT NULL,
    net_revenue_usd     numeric(18, 2) NOT NULL,
    paying_customers    bigint         NOT NULL
);

-- Per currency, in the currency's minor units (exact integers, no conversion).
CREATE TABLE daily_revenue_by_currency (
    day                 date   NOT NULL,
    currency            text   NOT NULL,
    orders              bigint NOT NULL,
    order_value_minor   bigint NOT NULL,
    gross_revenue_minor bigint NOT NULL,
    refunds_minor       bigint NOT NULL,
    net_revenue_minor   bigint NOT NULL,
    paying_customers    bigint NOT NULL,
    PRIMARY KEY (day, currency)
);

CREATE TABLE user_funnel (
    day           date PRIMARY KEY,
    sessions      bigint NOT NULL,
    product_views bigint NOT NULL,
    add_to_cart   bigint NOT NULL,
    orders        bigint NOT NULL,
    payments      bigint NOT NULL,
    view_rate     double precision,
    cart_rate     double precision,
    order_rate    double precision,
    payment_rate  double precision,
    overall_rate  double precision
);

CREATE TABLE user_retention (
    day           date PRIMARY KEY,
    cohort_size   bigint NOT NULL,
    active_d1     bigint NOT NULL,
    active_d7     bigint NOT NULL,
    active_d30    bigint NOT NULL,
    retention_d1  double precision,
    retention_d7  double precision,
    retention_d30 double precision
);

CREATE TABLE payment_success (
    day           date           NOT NULL,
    method        text           NOT NULL,
    attempts      bigint         NOT NULL,
    succeeded     bigint         NOT NULL,
    failed        bigint         NOT NULL,
    success_rate  double precision,
    succeeded_usd numeric(18, 2) NOT NULL,
    PRIMARY KEY (day, method)
);
