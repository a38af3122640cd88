-- Lineage: the OpenLineage event log becomes deduplicated (an event may arrive over the topic
-- and over HTTP) and is projected once into a graph of nodes and edges.

-- Static job events (OpenLineage JobEvent) have no run.
ALTER TABLE lineage_events ALTER COLUMN run_id DROP NOT NULL;
-- Where the event came from: the role that emitted it, `http` or `topic`.
ALTER TABLE lineage_events ADD COLUMN source text NOT NULL DEFAULT 'batch';
ALTER TABLE lineage_events
    ADD COLUMN event_key text GENERATED ALWAYS AS (md5(payload::text)) STORED;
DELETE FROM lineage_events a
    USING lineage_events b
    WHERE a.event_key = b.event_key AND a.id > b.id;
CREATE UNIQUE INDEX lineage_events_key ON lineage_events (event_key);
-- Set when the event has been applied to the graph, in the same transaction.
ALTER TABLE lineage_events ADD COLUMN projected_at timestamptz;
-- Why the graph refused the event, when it did (the event is then skipped, not retried).
ALTER TABLE lineage_events ADD COLUMN projection_error text;
CREATE INDEX lineage_events_pending ON lineage_events (id) WHERE projected_at IS NULL;

-- One node per stream, dataset, job, check or KPI. `key` is `kind:namespace:name`, the
-- identity every backend shares.
CREATE TABLE lineage_nodes (
    id         bigserial   PRIMARY KEY,
    key        text        NOT NULL UNIQUE,
    kind       text        NOT NULL,
    namespace  text        NOT NULL,
    name       text        NOT NULL,
    facets     jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lineage_nodes_name ON lineage_nodes (name);

-- Directed in the direction data flows: stream/dataset -reads-> job -writes-> dataset,
-- producer job -produces-> stream, dataset -monitors-> check, dataset -measures-> kpi.
CREATE TABLE lineage_edges (
    src        bigint      NOT NULL REFERENCES lineage_nodes (id) ON DELETE CASCADE,
    dst        bigint      NOT NULL REFERENCES lineage_nodes (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (src, dst, kind)
);
CREATE INDEX lineage_edges_dst ON lineage_edges (dst, src);

-- Column-level lineage: output column <- input column, through a job.
CREATE TABLE lineage_column_edges (
    src_node       bigint NOT NULL REFERENCES lineage_nodes (id) ON DELETE CASCADE,
    src_field      text   NOT NULL,
    dst_node       bigint NOT NULL REFERENCES lineage_nodes (id) ON DELETE CASCADE,
    dst_field      text   NOT NULL,
    transformation text   NOT NULL,
    PRIMARY KEY (dst_node, dst_field, src_node, src_field)
);
CREATE INDEX lineage_column_edges_src ON lineage_column_edges (src_node, src_field);
