//! The PostgreSQL backend: nodes, edges and column edges in tables (migration
//! `0003_lineage.sql`), traversals as a breadth-first walk that reads one level of edges per
//! query through the edge indexes (`src` for downstream, `(dst, src)` for upstream), visiting
//! each node once. This keeps a depth-5 impact query to five index scans over the frontier,
//! whatever the number of paths, where a recursive CTE re-expands every path.

use crate::model::{ColumnEdge, Direction, Edge, EdgeKind, Node, NodeKind, Props, Reach, Update};
use crate::{Error, Result};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{HashMap, HashSet};

#[derive(Clone)]
pub struct PgGraph {
    pool: PgPool,
}

fn node_from_row(row: &sqlx::postgres::PgRow) -> Result<Node> {
    let kind: String = row.try_get("kind")?;
    let facets: serde_json::Value = row.try_get("facets")?;
    Ok(Node {
        key: row.try_get("key")?,
        kind: NodeKind::parse(&kind).ok_or_else(|| Error::Corrupt(format!("node kind {kind}")))?,
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        props: serde_json::from_value(facets).unwrap_or_default(),
    })
}

const NODE_COLUMNS: &str = "key, kind, namespace, name, facets";

impl PgGraph {
    pub fn new(pool: PgPool) -> PgGraph {
        PgGraph { pool }
    }

    /// Applies `u` inside the caller's transaction: nodes are merged with what is stored
    /// (see [`Props::merge`]), edges and column edges added if new.
    pub async fn apply_in(conn: &mut PgConnection, u: &Update) -> Result<()> {
        if u.nodes.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = u.nodes.iter().map(|n| n.key.as_str()).collect();
        let kinds: Vec<&str> = u.nodes.iter().map(|n| n.kind.as_str()).collect();
        let namespaces: Vec<&str> = u.nodes.iter().map(|n| n.namespace.as_str()).collect();
        let names: Vec<&str> = u.nodes.iter().map(|n| n.name.as_str()).collect();
        // Every node exists before it is locked, so that two writers creating the same node
        // serialize on its row instead of the second overwriting the first's merge.
        sqlx::query(
            "INSERT INTO lineage_nodes (key, kind, namespace, name)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&keys)
        .bind(&kinds)
        .bind(&namespaces)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
        let stored: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT key, facets FROM lineage_nodes WHERE key = ANY($1) ORDER BY key FOR UPDATE",
        )
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        let stored: HashMap<String, Props> = stored
            .into_iter()
            .map(|(k, f)| (k, serde_json::from_value(f).unwrap_or_default()))
            .collect();
        let mut facets = Vec::new();
        for n in &u.nodes {
            let mut props = stored.get(&n.key).cloned().unwrap_or_default();
            props.merge(&n.props);
            facets.push(serde_json::to_value(&props).map_err(|e| Error::Corrupt(e.to_string()))?);
        }
        sqlx::query(
            "UPDATE lineage_nodes n SET facets = u.facets, updated_at = now()
             FROM UNNEST($1::text[], $2::jsonb[]) AS u(key, facets) WHERE n.key = u.key",
        )
        .bind(&keys)
        .bind(&facets)
        .execute(&mut *conn)
        .await?;
        if !u.edges.is_empty() {
            let src: Vec<&str> = u.edges.iter().map(|e| e.src.as_str()).collect();
            let dst: Vec<&str> = u.edges.iter().map(|e| e.dst.as_str()).collect();
            let kind: Vec<&str> = u.edges.iter().map(|e| e.kind.as_str()).collect();
            sqlx::query(
                "INSERT INTO lineage_edges (src, dst, kind)
                 SELECT s.id, d.id, e.kind
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS e(src, dst, kind)
                 JOIN lineage_nodes s ON s.key = e.src
                 JOIN lineage_nodes d ON d.key = e.dst
                 ON CONFLICT (src, dst, kind) DO UPDATE SET updated_at = now()",
            )
            .bind(&src)
            .bind(&dst)
            .bind(&kind)
            .execute(&mut *conn)
            .await?;
        }
        if !u.columns.is_empty() {
            let c = &u.columns;
            let src: Vec<&str> = c.iter().map(|e| e.src.as_str()).collect();
            let src_field: Vec<&str> = c.iter().map(|e| e.src_field.as_str()).collect();
            let dst: Vec<&str> = c.iter().map(|e| e.dst.as_str()).collect();
            let dst_field: Vec<&str> = c.iter().map(|e| e.dst_field.as_str()).collect();
            let t: Vec<&str> = c.iter().map(|e| e.transformation.as_str()).collect();
            sqlx::query(
                "INSERT INTO lineage_column_edges (src_node, src_field, dst_node, dst_field, transformation)
                 SELECT s.id, e.sf, d.id, e.df, e.t
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS e(src, sf, dst, df, t)
                 JOIN lineage_nodes s ON s.key = e.src
                 JOIN lineage_nodes d ON d.key = e.dst
                 ON CONFLICT (dst_node, dst_field, src_node, src_field)
                 DO UPDATE SET transformation = EXCLUDED.transformation",
            )
            .bind(&src)
            .bind(&src_field)
            .bind(&dst)
            .bind(&dst_field)
            .bind(&t)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    pub async fn apply(&self, u: &Update) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        Self::apply_in(&mut tx, u).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Nodes whose key is `reference`, or whose name is `reference` (with or without a
    /// `public.` schema prefix).
    pub async fn find(&self, reference: &str) -> Result<Vec<Node>> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM lineage_nodes
             WHERE key = $1 OR name = $1 OR name = 'public.' || $1
             ORDER BY key"
        ))
        .bind(reference)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_from_row).collect()
    }

    pub async fn nodes(&self, keys: &[String]) -> Result<Vec<Node>> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM lineage_nodes WHERE key = ANY($1) ORDER BY key"
        ))
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Breadth-first walk from `key`, each node at its shortest distance, up to `depth` edges
    /// (all the way when `None`).
    pub async fn reach(&self, key: &str, dir: Direction, depth: Option<u32>) -> Result<Reach> {
        let mut conn = self.pool.acquire().await?;
        let start: Option<i64> = sqlx::query_scalar("SELECT id FROM lineage_nodes WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(start) = start else {
            return Ok(Reach::default());
        };
        let (walk, edges) = bfs(&mut conn, start, dir, depth).await?;
        let mut ids: Vec<i64> = walk.iter().map(|(id, _)| *id).collect();
        ids.push(start);
        let keys: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
            "SELECT id, key FROM lineage_nodes WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let key_of = |id: i64| keys.get(&id).cloned().unwrap_or_default();
        Ok(Reach {
            nodes: walk.iter().map(|(id, d)| (key_of(*id), *d)).collect(),
            edges: edges
                .iter()
                .filter_map(|(s, d, k)| {
                    Some(Edge {
                        src: key_of(*s),
                        dst: key_of(*d),
                        kind: EdgeKind::parse(k)?,
                    })
                })
                .collect(),
        })
    }

    /// Column edges into or out of the dataset `key`.
    pub async fn columns(&self, key: &str) -> Result<Vec<ColumnEdge>> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT s.key, c.src_field, d.key, c.dst_field, c.transformation
             FROM lineage_column_edges c
             JOIN lineage_nodes s ON s.id = c.src_node
             JOIN lineage_nodes d ON d.id = c.dst_node
             WHERE s.key = $1 OR d.key = $1
             ORDER BY d.key, c.dst_field, s.key, c.src_field",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(src, src_field, dst, dst_field, transformation)| ColumnEdge {
                    src,
                    src_field,
                    dst,
                    dst_field,
                    transformation,
                },
            )
            .collect())
    }

    /// The whole graph.
    pub async fn export(&self) -> Result<(Vec<Node>, Vec<Edge>)> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM lineage_nodes ORDER BY key"
        ))
        .fetch_all(&self.pool)
        .await?;
        let nodes = rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?;
        let edges: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT s.key, d.key, e.kind FROM lineage_edges e
             JOIN lineage_nodes s ON s.id = e.src JOIN lineage_nodes d ON d.id = e.dst
             ORDER BY s.key, d.key, e.kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let edges = edges
            .into_iter()
            .filter_map(|(src, dst, k)| {
                Some(Edge {
                    src,
                    dst,
                    kind: EdgeKind::parse(&k)?,
                })
            })
            .collect();
        Ok((nodes, edges))
    }

    /// Removes every node and edge (the event log is kept, so a rebuild can replay it).
    pub async fn clear(&self) -> Result<()> {
        sqlx::query("TRUNCATE lineage_column_edges, lineage_edges, lineage_nodes")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Empties the graph and marks the whole event log for projection again, atomically.
    /// Returns the number of events to project.
    pub async fn reset(&self) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("TRUNCATE lineage_column_edges, lineage_edges, lineage_nodes")
            .execute(&mut *tx)
            .await?;
        let n =
            sqlx::query("UPDATE lineage_events SET projected_at = NULL, projection_error = NULL")
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

type EdgeRow = (i64, i64, String);

/// The level-by-level walk over node ids: `(node, depth)` in visit order and the edges
/// followed.
pub async fn bfs(
    conn: &mut PgConnection,
    start: i64,
    dir: Direction,
    depth: Option<u32>,
) -> Result<(Vec<(i64, u32)>, Vec<EdgeRow>)> {
    let query = match dir {
        Direction::Downstream => "SELECT src, dst, kind FROM lineage_edges WHERE src = ANY($1)",
        Direction::Upstream => "SELECT src, dst, kind FROM lineage_edges WHERE dst = ANY($1)",
    };
    let mut seen: HashSet<i64> = HashSet::from([start]);
    let mut walk = Vec::new();
    let mut edges = Vec::new();
    let mut frontier = vec![start];
    let mut level = 0u32;
    while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
        level += 1;
        let rows: Vec<EdgeRow> = sqlx::query_as(query)
            .bind(&frontier)
            .fetch_all(&mut *conn)
            .await?;
        let mut next = Vec::new();
        for (src, dst, kind) in rows {
            let other = if dir == Direction::Downstream {
                dst
            } else {
                src
            };
            if seen.insert(other) {
                walk.push((other, level));
                next.push(other);
            }
            edges.push((src, dst, kind));
        }
        frontier = next;
    }
    Ok((walk, edges))
}
