-- Foundation: raw and typed event tables, quarantine, exactly-once consumer offsets,
-- per-stream watermarks, dirty partitions for late data, and fault-injection ground truth.

-- Every ingested event once, with its original payload (the seed's table, extended).
CREATE TABLE raw_events (
    event_id         text PRIMARY KEY,
    event_type       text        NOT NULL,
    schema_version   text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    user_id          text        NOT NULL,
    payload          jsonb       NOT NULL,
    source           text        NOT NULL,
    source_partition integer,
    source_offset    bigint,
    produced_at      timestamptz,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    is_late          boolean     NOT NULL DEFAULT false,
    duplicate_count  integer     NOT NULL DEFAULT 0
);
CREATE INDEX raw_events_type_time ON raw_events (event_type, occurred_at);

CREATE TABLE users (
    event_id       text PRIMARY KEY,
    user_id        text        NOT NULL,
    email          text        NOT NULL,
    country        text        NOT NULL,
    device         text,
    channel        text,
    signed_up_at   timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX users_user_id ON users (user_id);

CREATE TABLE sessions (
    event_id       text PRIMARY KEY,
    session_id     text,
    user_id        text        NOT NULL,
    device         text        NOT NULL,
    channel        text        NOT NULL,
    country        text,
    started_at     timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX sessions_started_at ON sessions (started_at);

CREATE TABLE product_views (
    event_id       text PRIMARY KEY,
    user_id        text        NOT NULL,
    session_id     text,
    product_id     text        NOT NULL,
    category       text        NOT NULL,
    price_minor    bigint,
    currency       text,
    viewed_at      timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX product_views_viewed_at ON product_views (viewed_at);

CREATE TABLE cart_items (
    event_id         text PRIMARY KEY,
    user_id          text        NOT NULL,
    session_id       text,
    product_id       text        NOT NULL,
    quantity         integer     NOT NULL,
    unit_price_minor bigint      NOT NULL,
    currency         text        NOT NULL,
    added_at         timestamptz NOT NULL,
    schema_version   text        NOT NULL,
    is_late          boolean     NOT NULL DEFAULT false
);
CREATE INDEX cart_items_added_at ON cart_items (added_at);

CREATE TABLE orders (
    event_id       text PRIMARY KEY,
    order_id       text        NOT NULL,
    user_id        text        NOT NULL,
    session_id     text,
    amount_minor   bigint      NOT NULL,
    currency       text        NOT NULL,
    item_count     integer     NOT NULL,
    lines          jsonb       NOT NULL,
    placed_at      timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX orders_placed_at ON orders (placed_at);
CREATE INDEX orders_order_id ON orders (order_id);

CREATE TABLE payments (
    event_id       text PRIMARY KEY,
    payment_id     text        NOT NULL,
    order_id       text,
    user_id        text        NOT NULL,
    amount_minor   bigint      NOT NULL,
    currency       text        NOT NULL,
    method         text        NOT NULL,
    status         text        NOT NULL,
    attempt        integer     NOT NULL,
    failure_reason text,
    processed_at   timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX payments_processed_at ON payments (processed_at);
CREATE INDEX payments_order_id ON payments (order_id);

CREATE TABLE refunds (
    event_id       text PRIMARY KEY,
    refund_id      text        NOT NULL,
    payment_id     text        NOT NULL,
    order_id       text,
    user_id        text        NOT NULL,
    amount_minor   bigint      NOT NULL,
    currency       text        NOT NULL,
    reason         text        NOT NULL,
    refunded_at    timestamptz NOT NULL,
    schema_version text        NOT NULL,
    is_late        boolean     NOT NULL DEFAULT false
);
CREATE INDEX refunds_refunded_at ON refunds (refunded_at);

-- Events that could not be ingested: the bytes as received, why, and where they came from.
CREATE TABLE quarantine (
    id               bigserial PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    source           text        NOT NULL,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    event_id         text,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    raw              bytea       NOT NULL,
    status           text        NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'replayed', 'discarded')),
    replay_attempts  integer     NOT NULL DEFAULT 0,
    last_replay_at   timestamptz,
    last_replay_error text
);
CREATE INDEX quarantine_reason ON quarantine (reason, status);
CREATE INDEX quarantine_event_id ON quarantine (event_id);

-- Consumer positions, written in the same transaction as the rows they produced.
CREATE TABLE consumer_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Newest event time seen per stream (event type and source partition).
CREATE TABLE stream_watermarks (
    stream         text PRIMARY KEY,
    max_event_time timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Day partitions of typed tables that received late events and need recomputation.
CREATE TABLE dirty_partitions (
    table_name      text        NOT NULL,
    day             date        NOT NULL,
    late_events     bigint      NOT NULL,
    first_marked_at timestamptz NOT NULL DEFAULT now(),
    last_marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);

-- Ground truth of every fault a scenario injected, for evaluation.
CREATE TABLE fault_injections (
    id                 bigserial PRIMARY KEY,
    run_id             text        NOT NULL,
    scenario           text        NOT NULL,
    fault_index        integer     NOT NULL,
    kind               text        NOT NULL,
    target             text        NOT NULL,
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    rate               double precision NOT NULL,
    params             jsonb       NOT NULL,
    expected           text        NOT NULL,
    affected_count     bigint      NOT NULL,
    affected_event_ids jsonb       NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, fault_index)
);
CREATE INDEX fault_injections_kind ON fault_injections (kind);
