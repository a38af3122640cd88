//! The Bolt/Cypher backend (the seed's Neo4j; tested against FalkorDB's Bolt listener).
//!
//! Nodes are `(:Node {key, kind, namespace, name, props})` with `props` the JSON of
//! [`Props`]; edges are relationships typed `PRODUCES`, `READS`, `WRITES`, `MONITORS` or
//! `MEASURES`; column lineage is `DERIVES {sf, df, t}` between dataset nodes. Traversals are
//! breadth-first, one Cypher query per level over the frontier (each node visited once), so
//! they need no depth bound and never enumerate paths.
//!
//! The `neo4j` driver is blocking: every call runs on the blocking pool under a timeout.
//! Written to what Neo4j 5 and FalkorDB both accept, with FalkorDB's Bolt limits in mind:
//! each query's parameters stay small (rows are sent in chunks), no floats are sent, map keys
//! are plain identifiers, and — when the server turns out to render parameters into Cypher
//! text without escaping them (FalkorDB does; detected at connect) — string parameters are
//! escaped first. No database is selected unless configured, since FalkorDB reads the first
//! key of a query's metadata as the graph name.

use crate::model::{ColumnEdge, Direction, Edge, EdgeKind, Node, NodeKind, Props, Reach, Update};
use crate::{Error, Result};
use neo4j::address::Address;
use neo4j::driver::auth::AuthToken;
use neo4j::driver::{ConnectionConfig, Driver, DriverConfig, Record};
use neo4j::session::SessionConfig;
use neo4j::{ValueReceive, ValueSend};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How to reach the Bolt server.
#[derive(Debug, Clone)]
pub struct BoltSettings {
    /// `bolt://host:port` or `neo4j://host:port` (routing is not used either way).
    pub uri: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Database to use; unset: the server's default (required for FalkorDB).
    pub database: Option<String>,
}

/// Longest a single Bolt call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Budget for one query's parameters, as JSON bytes (FalkorDB renders query text and
/// parameters into a 4 KB buffer).
const PARAM_BUDGET: usize = 2500;
const FLOW: &str = "PRODUCES|READS|WRITES|MONITORS|MEASURES";

#[derive(Clone)]
pub struct BoltGraph {
    driver: Arc<Driver>,
    database: Option<Arc<String>>,
    /// The server parses parameters back from text: escape strings.
    escape: bool,
}

fn bolt_error(e: impl std::fmt::Display) -> Error {
    Error::Bolt(e.to_string())
}

fn address(uri: &str) -> Result<Address> {
    let rest = uri
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| Error::Bolt(format!("{uri}: not a bolt:// URI")))?;
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| Error::Bolt(format!("{uri}: bad port {p:?}")))?,
        ),
        None => (hostport.to_string(), 7687),
    };
    Ok(Address::from((host, port)))
}

fn to_send(v: &Value, escape: bool) -> ValueSend {
    match v {
        Value::Null => ValueSend::Null,
        Value::Bool(b) => ValueSend::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ValueSend::Integer(i),
            None => ValueSend::String(n.to_string()),
        },
        Value::String(s) if escape => {
            ValueSend::String(s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        Value::String(s) => ValueSend::String(s.clone()),
        Value::Array(items) => ValueSend::List(items.iter().map(|i| to_send(i, escape)).collect()),
        Value::Object(map) => ValueSend::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), to_send(v, escape)))
                .collect(),
        ),
    }
}

fn string(r: &Record, key: &str) -> String {
    r.value(key)
        .and_then(ValueReceive::as_string)
        .cloned()
        .unwrap_or_default()
}

fn node_of(r: &Record) -> Result<Node> {
    let kind = string(r, "kind");
    let props: Props = serde_json::from_str(&string(r, "props")).unwrap_or_default();
    Ok(Node {
        key: string(r, "key"),
        kind: NodeKind::parse(&kind).ok_or_else(|| Error::Corrupt(format!("node kind {kind}")))?,
        namespace: string(r, "namespace"),
        name: string(r, "name"),
        props,
    })
}

const NODE_RETURN: &str =
    "n.key AS key, n.kind AS kind, n.namespace AS namespace, n.name AS name, n.props AS props";

/// Splits `rows` into chunks whose JSON stays within the parameter budget.
fn chunks(rows: Vec<Value>) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for row in rows {
        let n = row.to_string().len() + 8;
        if !cur.is_empty() && size + n > PARAM_BUDGET {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(row);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn edge_type(k: EdgeKind) -> &'static str {
    match k {
        EdgeKind::Produces => "PRODUCES",
        EdgeKind::Reads => "READS",
        EdgeKind::Writes => "WRITES",
        EdgeKind::Monitors => "MONITORS",
        EdgeKind::Measures => "MEASURES",
    }
}

impl BoltGraph {
    /// Connects (retrying once: FalkorDB may not answer the first handshake after another
    /// client said goodbye), detects whether string parameters need escaping, and creates the
    /// key index if the server does not have it.
    pub async fn connect(settings: BoltSettings) -> Result<BoltGraph> {
        let auth = match (&settings.username, &settings.password) {
            (Some(u), Some(p)) => AuthToken::new_basic_auth(u, p),
            _ => AuthToken::new_none_auth(),
        };
        let driver = Driver::new(
            ConnectionConfig::new(address(&settings.uri)?).with_routing(false),
            DriverConfig::new()
                .with_auth(Arc::new(auth))
                .with_connection_timeout(Duration::from_secs(2))
                .with_connection_acquisition_timeout(Duration::from_secs(3))
                .without_max_connection_lifetime()
                .with_max_connection_pool_size(8),
        );
        let mut g = BoltGraph {
            driver: Arc::new(driver),
            database: settings.database.map(Arc::new),
            escape: false,
        };
        // Detect parameter rendering: a doubled backslash comes back single when the server
        // parses parameters from text.
        let probe = "a\\\\b";
        let rows = match g.run("RETURN $s AS s", json!({ "s": probe })).await {
            Ok(r) => r,
            Err(_) => g.run("RETURN $s AS s", json!({ "s": probe })).await?,
        };
        let back = rows.first().map(|r| string(r, "s")).unwrap_or_default();
        g.escape = back != probe;
        // Index on the key; an error means it exists (or the server has its own syntax).
        if let Err(e) = g
            .run("CREATE INDEX FOR (n:Node) ON (n.key)", json!({}))
            .await
        {
            tracing::debug!(error = %e, "key index not created");
        }
        Ok(g)
    }

    async fn run(&self, query: &str, params: Value) -> Result<Vec<Record>> {
        let driver = self.driver.clone();
        let database = self.database.clone();
        let query = query.to_string();
        let params: HashMap<String, ValueSend> = params
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), to_send(v, self.escape)))
                    .collect()
            })
            .unwrap_or_default();
        let call = tokio::task::spawn_blocking(move || {
            let mut config = SessionConfig::new();
            if let Some(db) = database {
                config = config.with_database(db);
            }
            let mut session = driver.session(config);
            session
                .auto_commit(query.as_str())
                .with_parameters(params)
                .run()
                .map(|r| r.records)
                .map_err(|e| e.to_string())
        });
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(result)) => result.map_err(Error::Bolt),
            Ok(Err(join)) => Err(bolt_error(join)),
            Err(_) => Err(Error::Bolt(format!(
                "no answer within {}s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Runs `query` once per chunk of `rows` (bound to `$rows`), collecting the records.
    async fn run_rows(&self, query: &str, rows: Vec<Value>) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for chunk in chunks(rows) {
            out.extend(self.run(query, json!({ "rows": chunk })).await?);
        }
        Ok(out)
    }

    pub async fn apply(&self, u: &Update) -> Result<()> {
        if u.nodes.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = u.nodes.iter().map(|n| n.key.clone()).collect();
        let stored: HashMap<String, Props> = self
            .nodes(&keys)
            .await?
            .into_iter()
            .map(|n| (n.key, n.props))
            .collect();
        let rows: Vec<Value> = u
            .nodes
            .iter()
            .map(|n| {
                let mut props = stored.get(&n.key).cloned().unwrap_or_default();
                props.merge(&n.props);
                let mut text = serde_json::to_string(&props).unwrap_or_default();
                if text.len() > PARAM_BUDGET - 400 {
                    // Too big for one query: keep everything but the field list.
                    props.fields = None;
                    text = serde_json::to_string(&props).unwrap_or_default();
                }
                json!({ "key": n.key, "kind": n.kind.as_str(), "ns": n.namespace,
                        "name": n.name, "props": text })
            })
            .collect();
        self.run_rows(
            "UNWIND $rows AS r MERGE (n:Node {key: r.key})
             SET n.kind = r.kind, n.namespace = r.ns, n.name = r.name, n.props = r.props",
            rows,
        )
        .await?;
        for kind in EdgeKind::ALL {
            let rows: Vec<Value> = u
                .edges
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| json!({ "s": e.src, "d": e.dst }))
                .collect();
            if rows.is_empty() {
                continue;
            }
            self.run_rows(
                &format!(
                    "UNWIND $rows AS r MATCH (a:Node {{key: r.s}}) MATCH (b:Node {{key: r.d}})
                     MERGE (a)-[:{}]->(b)",
                    edge_type(kind)
                ),
                rows,
            )
            .await?;
        }
        let rows: Vec<Value> = u
            .columns
            .iter()
            .map(|c| {
                json!({ "s": c.src, "d": c.dst, "sf": c.src_field, "df": c.dst_field,
                        "t": c.transformation })
            })
            .collect();
        if !rows.is_empty() {
            self.run_rows(
                "UNWIND $rows AS r MATCH (a:Node {key: r.s}) MATCH (b:Node {key: r.d})
                 MERGE (a)-[c:DERIVES {sf: r.sf, df: r.df}]->(b) SET c.t = r.t",
                rows,
            )
            .await?;
        }
        Ok(())
    }

    pub async fn find(&self, reference: &str) -> Result<Vec<Node>> {
        let rows = self
            .run(
                &format!(
                    "MATCH (n:Node) WHERE n.key = $r OR n.name = $r OR n.name = $p
                     RETURN {NODE_RETURN}"
                ),
                json!({ "r": reference, "p": format!("public.{reference}") }),
            )
            .await?;
        let mut nodes = rows.iter().map(node_of).collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(nodes)
    }

    pub async fn nodes(&self, keys: &[String]) -> Result<Vec<Node>> {
        let rows = self
            .run_rows(
                &format!("UNWIND $rows AS k MATCH (n:Node {{key: k}}) RETURN {NODE_RETURN}"),
                keys.iter().map(|k| json!(k)).collect(),
            )
            .await?;
        let mut nodes = rows.iter().map(node_of).collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(nodes)
    }

    pub async fn reach(&self, key: &str, dir: Direction, depth: Option<u32>) -> Result<Reach> {
        let step = match dir {
            Direction::Downstream => format!(
                "UNWIND $rows AS k MATCH (a:Node {{key: k}})-[r:{FLOW}]->(b:Node)
                 RETURN a.key AS src, b.key AS dst, type(r) AS kind"
            ),
            Direction::Upstream => format!(
                "UNWIND $rows AS k MATCH (a:Node)-[r:{FLOW}]->(b:Node {{key: k}})
                 RETURN a.key AS src, b.key AS dst, type(r) AS kind"
            ),
        };
        let exists = self
            .run(
                "MATCH (n:Node {key: $k}) RETURN n.key AS key",
                json!({ "k": key }),
            )
            .await?;
        if exists.is_empty() {
            return Ok(Reach::default());
        }
        let mut seen: HashSet<String> = HashSet::from([key.to_string()]);
        let mut reach = Reach::default();
        let mut frontier = vec![key.to_string()];
        let mut level = 0u32;
        while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
            level += 1;
            let rows = self
                .run_rows(&step, frontier.iter().map(|k| json!(k)).collect())
                .await?;
            let mut next = Vec::new();
            for r in &rows {
                let (src, dst) = (string(r, "src"), string(r, "dst"));
                let Some(kind) = EdgeKind::parse(&string(r, "kind")) else {
                    continue;
                };
                let other = if dir == Direction::Downstream {
                    dst.clone()
                } else {
                    src.clone()
                };
                if seen.insert(other.clone()) {
                    reach.nodes.push((other.clone(), level));
                    next.push(other);
                }
                reach.edges.push(Edge { src, dst, kind });
            }
            frontier = next;
        }
        Ok(reach)
    }

    pub async fn columns(&self, key: &str) -> Result<Vec<ColumnEdge>> {
        let rows = self
            .run(
                "MATCH (a:Node)-[c:DERIVES]->(b:Node) WHERE a.key = $k OR b.key = $k
                 RETURN a.key AS src, c.sf AS sf, b.key AS dst, c.df AS df, c.t AS t",
                json!({ "k": key }),
            )
            .await?;
        let mut out: Vec<ColumnEdge> = rows
            .iter()
            .map(|r| ColumnEdge {
                src: string(r, "src"),
                src_field: string(r, "sf"),
                dst: string(r, "dst"),
                dst_field: string(r, "df"),
                transformation: string(r, "t"),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.dst, &a.dst_field, &a.src, &a.src_field).cmp(&(
                &b.dst,
                &b.dst_field,
                &b.src,
                &b.src_field,
            ))
        });
        Ok(out)
    }

    pub async fn export(&self) -> Result<(Vec<Node>, Vec<Edge>)> {
        let rows = self
            .run(&format!("MATCH (n:Node) RETURN {NODE_RETURN}"), json!({}))
            .await?;
        let mut nodes = rows.iter().map(node_of).collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|a, b| a.key.cmp(&b.key));
        let rows = self
            .run(
                &format!(
                    "MATCH (a:Node)-[r:{FLOW}]->(b:Node)
                     RETURN a.key AS src, b.key AS dst, type(r) AS kind"
                ),
                json!({}),
            )
            .await?;
        let mut edges: Vec<Edge> = rows
            .iter()
            .filter_map(|r| {
                Some(Edge {
                    src: string(r, "src"),
                    dst: string(r, "dst"),
                    kind: EdgeKind::parse(&string(r, "kind"))?,
                })
            })
            .collect();
        edges.sort();
        Ok((nodes, edges))
    }

    pub async fn clear(&self) -> Result<()> {
        self.run("MATCH (n:Node) DETACH DELETE n", json!({}))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_chunked_within_the_budget() {
        let rows: Vec<Value> = (0..500)
            .map(|i| json!({ "key": format!("dataset:postgres://heal:public.table_{i}") }))
            .collect();
        let parts = chunks(rows.clone());
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 500);
        for p in &parts {
            assert!(json!(p).to_string().len() <= PARAM_BUDGET + 64);
        }
    }

    #[test]
    fn addresses_parse_from_uris() {
        assert!(address("bolt://db:7687").is_ok());
        assert!(address("neo4j://db").is_ok());
        assert!(address("bolt://db:x").is_err());
        assert!(address("db:7687").is_err());
    }
}
