//! The lineage service: accepts OpenLineage events (validated, appended to the event log,
//! projected into the graph) and answers queries through [`LineageApi`], the interface the AI
//! Ops role uses in-process or, through [`crate::client::HttpLineage`], over HTTP.

use crate::model::{ColumnEdge, Direction, Node, NodeKind, Reach, Update};
use crate::pg::PgGraph;
use crate::query::{self, *};
use crate::validate::{self, Schemas};
use crate::{mapping, Error, Result};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;

/// Where the graph lives.
#[derive(Clone)]
pub enum Graph {
    Postgres(PgGraph),
    Bolt(crate::bolt::BoltGraph),
}

impl Graph {
    pub async fn apply(&self, u: &Update) -> Result<()> {
        match self {
            Graph::Postgres(g) => g.apply(u).await,
            Graph::Bolt(g) => g.apply(u).await,
        }
    }

    pub async fn find(&self, reference: &str) -> Result<Vec<Node>> {
        match self {
            Graph::Postgres(g) => g.find(reference).await,
            Graph::Bolt(g) => g.find(reference).await,
        }
    }

    pub async fn nodes(&self, keys: &[String]) -> Result<Vec<Node>> {
        match self {
            Graph::Postgres(g) => g.nodes(keys).await,
            Graph::Bolt(g) => g.nodes(keys).await,
        }
    }

    pub async fn reach(&self, key: &str, dir: Direction, depth: Option<u32>) -> Result<Reach> {
        match self {
            Graph::Postgres(g) => g.reach(key, dir, depth).await,
            Graph::Bolt(g) => g.reach(key, dir, depth).await,
        }
    }

    pub async fn columns(&self, key: &str) -> Result<Vec<ColumnEdge>> {
        match self {
            Graph::Postgres(g) => g.columns(key).await,
            Graph::Bolt(g) => g.columns(key).await,
        }
    }

    pub async fn export(&self) -> Result<(Vec<Node>, Vec<crate::model::Edge>)> {
        match self {
            Graph::Postgres(g) => g.export().await,
            Graph::Bolt(g) => g.export().await,
        }
    }

    pub async fn clear(&self) -> Result<()> {
        match self {
            Graph::Postgres(g) => g.clear().await,
            Graph::Bolt(g) => g.clear().await,
        }
    }
}

/// The queries lineage answers. Implemented in-process by [`Lineage`] and over HTTP by
/// [`crate::client::HttpLineage`]; references are node keys, names, or `kind:name`.
pub trait LineageApi: Send + Sync {
    fn affected(
        &self,
        table: &str,
        depth: Option<u32>,
    ) -> impl Future<Output = std::result::Result<Affected, QueryError>> + Send;
    fn dependencies(
        &self,
        job: &str,
    ) -> impl Future<Output = std::result::Result<Dependencies, QueryError>> + Send;
    fn impact(
        &self,
        table: &str,
        depth: Option<u32>,
    ) -> impl Future<Output = std::result::Result<Impact, QueryError>> + Send;
    fn traverse(
        &self,
        node: &str,
        direction: Direction,
        depth: Option<u32>,
    ) -> impl Future<Output = std::result::Result<Traversal, QueryError>> + Send;
    fn path(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = std::result::Result<PathResult, QueryError>> + Send;
    fn subgraph(
        &self,
        node: &str,
        depth: u32,
    ) -> impl Future<Output = std::result::Result<Subgraph, QueryError>> + Send;
    fn export(&self) -> impl Future<Output = std::result::Result<GraphExport, QueryError>> + Send;
}

/// What became of a posted event.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// False when the same event had been received before.
    pub stored: bool,
    /// Events applied to the graph by this call (this one and any still pending).
    pub projected: usize,
    /// Facets with a schema the specification does not define, accepted as custom facets.
    pub custom_facets: Vec<String>,
}

/// An event refused, with every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid OpenLineage event: {}", problems.join("; "))]
pub struct Rejected {
    pub problems: Vec<String>,
}

pub struct Lineage {
    graph: Graph,
    pool: PgPool,
    schemas: Option<Arc<Schemas>>,
    projecting: tokio::sync::Mutex<()>,
}

/// Events projected per transaction.
const PROJECT_BATCH: i64 = 200;

async fn refuse(conn: &mut sqlx::PgConnection, id: i64, reason: &str) -> Result<()> {
    tracing::warn!(
        event = id,
        reason,
        "the lineage graph refused an event; skipped"
    );
    metrics::counter!("heal_lineage_events_refused_total").increment(1);
    sqlx::query("UPDATE lineage_events SET projection_error = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// The graph update of a batch of events, in log order.
fn batch_update(rows: &[(i64, Value)]) -> Update {
    let mut update = Update::default();
    for (_, event) in rows {
        update.extend(mapping::update(event));
    }
    update
}

async fn mark_projected(conn: &mut sqlx::PgConnection, rows: &[(i64, Value)]) -> Result<()> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("UPDATE lineage_events SET projected_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(conn)
        .await?;
    Ok(())
}

impl Lineage {
    pub fn new(graph: Graph, pool: PgPool, schemas: Option<Arc<Schemas>>) -> Lineage {
        Lineage {
            graph,
            pool,
            schemas,
            projecting: tokio::sync::Mutex::new(()),
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Validates `event` (see [`validate`]) and reports every problem, or nothing.
    pub fn check(&self, event: &Value) -> std::result::Result<Vec<String>, Rejected> {
        let mut problems = validate::structural(event);
        let mut unknown = Vec::new();
        if let Some(s) = &self.schemas {
            let report = s.check(event);
            for p in report.problems {
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
            unknown = report.unknown;
        }
        if problems.is_empty() {
            Ok(unknown)
        } else {
            Err(Rejected { problems })
        }
    }

    /// Accepts an event from `source` (`http`, `topic`, …): validates, stores it in the event
    /// log (once), and projects what is pending into the graph.
    pub async fn accept(
        &self,
        event: &Value,
        source: &str,
    ) -> std::result::Result<Accepted, AcceptError> {
        let custom_facets = self.check(event)?;
        let stored = heal_store::lineage_log::record(&self.pool, source, event)
            .await
            .map_err(|e| match &e {
                // Data the database refuses as such (class 22: e.g. a NUL in a string).
                sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("22")) => {
                    AcceptError::Invalid(Rejected {
                        problems: vec![format!("$: the event cannot be stored: {d}")],
                    })
                }
                _ => AcceptError::Backend(e.to_string()),
            })?;
        // Stored is accepted: if the graph cannot take it now, the projector applies it later.
        let projected = match self.project().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "lineage projection failed; the projector retries");
                0
            }
        };
        metrics::counter!("heal_lineage_events_accepted_total", "source" => source.to_string())
            .increment(1);
        Ok(Accepted {
            stored,
            projected,
            custom_facets,
        })
    }

    /// Applies every event of the log not yet in the graph, a batch at a time in log order.
    /// On PostgreSQL each batch is marked projected in the transaction that writes it (rows
    /// locked with `SKIP LOCKED`, so replicas share the work); on Bolt the batch is applied
    /// first (idempotent `MERGE`s, no PostgreSQL transaction held meanwhile) and marked
    /// after. A batch the graph refuses is retried event by event; an event refused on its
    /// own is marked with the reason and skipped. Returns the number of events applied.
    pub async fn project(&self) -> Result<usize> {
        let _one = self.projecting.lock().await;
        let mut total = 0;
        loop {
            let n = match &self.graph {
                Graph::Postgres(_) => self.project_pg_batch().await?,
                Graph::Bolt(g) => self.project_bolt_batch(g).await?,
            };
            if n == 0 {
                break;
            }
            total += n;
            metrics::counter!("heal_lineage_events_projected_total").increment(n as u64);
        }
        Ok(total)
    }

    async fn project_pg_batch(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, Value)> = sqlx::query_as(
            "SELECT id, payload FROM lineage_events WHERE projected_at IS NULL
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(PROJECT_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let update = batch_update(&rows);
        sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
        if let Err(e) = PgGraph::apply_in(&mut tx, &update).await {
            tracing::warn!(error = %e, "a batch of lineage events was refused; applying them one by one");
            sqlx::query("ROLLBACK TO SAVEPOINT batch")
                .execute(&mut *tx)
                .await?;
            for (id, event) in &rows {
                sqlx::query("SAVEPOINT one").execute(&mut *tx).await?;
                if let Err(e) = PgGraph::apply_in(&mut tx, &mapping::update(event)).await {
                    sqlx::query("ROLLBACK TO SAVEPOINT one")
                        .execute(&mut *tx)
                        .await?;
                    refuse(&mut tx, *id, &e.to_string()).await?;
                }
            }
        }
        mark_projected(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    async fn project_bolt_batch(&self, g: &crate::bolt::BoltGraph) -> Result<usize> {
        let rows: Vec<(i64, Value)> = sqlx::query_as(
            "SELECT id, payload FROM lineage_events WHERE projected_at IS NULL
             ORDER BY id LIMIT $1",
        )
        .bind(PROJECT_BATCH)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let update = batch_update(&rows);
        let mut tx = self.pool.begin().await?;
        if let Err(e) = g.apply(&update).await {
            tracing::warn!(error = %e, "a batch of lineage events was refused; applying them one by one");
            for (id, event) in &rows {
                if let Err(e) = g.apply(&mapping::update(event)).await {
                    if matches!(e, Error::Bolt(ref m) if m.starts_with("no answer")) {
                        // The server is not answering: nothing is marked, all is retried.
                        return Err(e);
                    }
                    refuse(&mut tx, *id, &e.to_string()).await?;
                }
            }
        }
        mark_projected(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Empties the graph and marks the whole log for projection again (e.g. after switching
    /// backends); the next [`Lineage::project`] rebuilds it. Returns the events to project.
    pub async fn rebuild(&self) -> Result<usize> {
        let _one = self.projecting.lock().await;
        let n = match &self.graph {
            Graph::Postgres(g) => g.reset().await?,
            Graph::Bolt(g) => {
                // Flags first: a crash in between leaves a full graph to re-apply onto.
                let n = sqlx::query(
                    "UPDATE lineage_events SET projected_at = NULL, projection_error = NULL",
                )
                .execute(&self.pool)
                .await?
                .rows_affected();
                g.clear().await?;
                n
            }
        };
        Ok(n as usize)
    }

    /// The node `reference` names among `kinds` (all when empty).
    pub async fn resolve(
        &self,
        reference: &str,
        kinds: &[NodeKind],
    ) -> std::result::Result<Node, QueryError> {
        let (kind, rest) = query::split_kind(reference);
        let mut candidates = self.graph.find(reference).await?;
        if candidates.is_empty() && rest != reference {
            candidates = self.graph.find(rest).await?;
        }
        let allowed: Vec<NodeKind> = match kind {
            Some(k) if kinds.is_empty() || kinds.contains(&k) => vec![k],
            Some(k) => {
                return Err(QueryError::NotFound(format!(
                    "{reference:?} is a {k} reference; this query takes a {}",
                    kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )))
            }
            None => kinds.to_vec(),
        };
        query::choose(rest, candidates, &allowed).map_err(|e| match e {
            QueryError::NotFound(_) if rest != reference => {
                QueryError::NotFound(format!("no node named {reference:?} in the lineage graph"))
            }
            other => other,
        })
    }

    async fn walk(
        &self,
        node: &Node,
        dir: Direction,
        depth: Option<u32>,
    ) -> std::result::Result<(Vec<Asset>, Vec<crate::model::Edge>), QueryError> {
        let reach = self.graph.reach(&node.key, dir, depth).await?;
        let keys: Vec<String> = reach.nodes.iter().map(|(k, _)| k.clone()).collect();
        let nodes = self.graph.nodes(&keys).await?;
        let depth_of: BTreeMap<&str, u32> =
            reach.nodes.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        let assets = nodes
            .iter()
            .filter_map(|n| Some(Asset::new_at(n, *depth_of.get(n.key.as_str())?)))
            .collect();
        Ok((assets, reach.edges))
    }

    /// Column lineage into and out of a dataset.
    pub async fn columns(
        &self,
        dataset: &str,
    ) -> std::result::Result<(Node, Vec<ColumnEdge>), QueryError> {
        let node = self
            .resolve(dataset, &[NodeKind::Dataset, NodeKind::Stream])
            .await?;
        let edges = self.graph.columns(&node.key).await?;
        Ok((node, edges))
    }
}

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Invalid(#[from] Rejected),
    #[error("lineage storage: {0}")]
    Backend(String),
}

impl From<Error> for AcceptError {
    fn from(e: Error) -> Self {
        AcceptError::Backend(e.to_string())
    }
}

const DATA: [NodeKind; 2] = [NodeKind::Dataset, NodeKind::Stream];

impl LineageApi for Lineage {
    async fn affected(
        &self,
        table: &str,
        depth: Option<u32>,
    ) -> std::result::Result<Affected, QueryError> {
        let node = self.resolve(table, &DATA).await?;
        let (assets, _) = self.walk(&node, Direction::Downstream, depth).await?;
        Ok(query::affected(node, depth, assets))
    }

    async fn dependencies(&self, job: &str) -> std::result::Result<Dependencies, QueryError> {
        let node = self.resolve(job, &[NodeKind::Job]).await?;
        let (down, _) = self.walk(&node, Direction::Downstream, None).await?;
        let (up, _) = self.walk(&node, Direction::Upstream, None).await?;
        Ok(query::dependencies(node, &down, &up))
    }

    async fn impact(
        &self,
        table: &str,
        depth: Option<u32>,
    ) -> std::result::Result<Impact, QueryError> {
        let node = self.resolve(table, &DATA).await?;
        let (assets, edges) = self.walk(&node, Direction::Downstream, depth).await?;
        Ok(query::impact(
            node,
            depth,
            &assets,
            &edges,
            chrono::Utc::now(),
        ))
    }

    async fn traverse(
        &self,
        node: &str,
        direction: Direction,
        depth: Option<u32>,
    ) -> std::result::Result<Traversal, QueryError> {
        let node = self.resolve(node, &[]).await?;
        let (mut nodes, mut edges) = self.walk(&node, direction, depth).await?;
        query::sort_assets(&mut nodes);
        edges.sort();
        edges.dedup();
        Ok(Traversal {
            node,
            direction,
            depth_limit: depth,
            nodes,
            edges,
        })
    }

    async fn path(&self, from: &str, to: &str) -> std::result::Result<PathResult, QueryError> {
        let a = self.resolve(from, &[]).await?;
        let b = self.resolve(to, &[]).await?;
        for dir in [Direction::Downstream, Direction::Upstream] {
            let reach = self.graph.reach(&a.key, dir, None).await?;
            if let Some((keys, edges)) = query::shortest_path(&a.key, &b.key, &reach.edges, dir) {
                let found = self.graph.nodes(&keys).await?;
                let nodes = keys
                    .iter()
                    .filter_map(|k| found.iter().find(|n| &n.key == k).cloned())
                    .collect();
                return Ok(PathResult {
                    direction: dir,
                    nodes,
                    edges,
                });
            }
        }
        Err(QueryError::NoPath(format!(
            "no path between {} and {} in either direction",
            a.key, b.key
        )))
    }

    async fn subgraph(&self, node: &str, depth: u32) -> std::result::Result<Subgraph, QueryError> {
        let center = self.resolve(node, &[]).await?;
        let mut keys: HashSet<String> = HashSet::from([center.key.clone()]);
        let mut edges = Vec::new();
        for dir in [Direction::Downstream, Direction::Upstream] {
            let reach = self.graph.reach(&center.key, dir, Some(depth)).await?;
            keys.extend(reach.nodes.into_iter().map(|(k, _)| k));
            edges.extend(reach.edges);
        }
        edges.sort();
        edges.dedup();
        let keys: Vec<String> = keys.into_iter().collect();
        let nodes = self.graph.nodes(&keys).await?;
        Ok(Subgraph {
            center,
            depth,
            nodes,
            edges,
        })
    }

    async fn export(&self) -> std::result::Result<GraphExport, QueryError> {
        let (nodes, edges) = self.graph.export().await?;
        Ok(GraphExport { nodes, edges })
    }
}
