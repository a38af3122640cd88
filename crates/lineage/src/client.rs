//! [`LineageApi`] over HTTP, for a role that runs in another process than lineage.

use crate::model::Direction;
use crate::query::*;
use crate::service::LineageApi;
use serde::de::DeserializeOwned;

/// A lineage service at `base` (e.g. `http://lineage:8085`).
#[derive(Clone)]
pub struct HttpLineage {
    base: String,
    client: reqwest::Client,
}

/// `s` as one URL path segment or query value (percent-encoded by the URL parser).
fn encode(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .push(s);
    url.path().trim_start_matches('/').to_string()
}

impl HttpLineage {
    pub fn new(base: &str) -> HttpLineage {
        HttpLineage {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, QueryError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| QueryError::Backend(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json()
                .await
                .map_err(|e| QueryError::Backend(format!("GET {url}: {e}")));
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("GET {url}: HTTP {status}"));
        Err(match status.as_u16() {
            404 if message.starts_with("no path") => QueryError::NoPath(message),
            404 => QueryError::NotFound(message),
            409 => QueryError::Ambiguous(message),
            _ => QueryError::Backend(message),
        })
    }
}

fn depth_query(depth: Option<u32>) -> String {
    depth.map(|d| format!("?depth={d}")).unwrap_or_default()
}

impl LineageApi for HttpLineage {
    async fn affected(&self, table: &str, depth: Option<u32>) -> Result<Affected, QueryError> {
        self.get(&format!(
            "/api/lineage/affected/{}{}",
            encode(table),
            depth_query(depth)
        ))
        .await
    }

    async fn dependencies(&self, job: &str) -> Result<Dependencies, QueryError> {
        self.get(&format!("/api/lineage/dependencies/{}", encode(job)))
            .await
    }

    async fn impact(&self, table: &str, depth: Option<u32>) -> Result<Impact, QueryError> {
        self.get(&format!(
            "/api/lineage/impact/{}{}",
            encode(table),
            depth_query(depth)
        ))
        .await
    }

    async fn traverse(
        &self,
        node: &str,
        direction: Direction,
        depth: Option<u32>,
    ) -> Result<Traversal, QueryError> {
        let which = match direction {
            Direction::Downstream => "downstream",
            Direction::Upstream => "upstream",
        };
        self.get(&format!(
            "/api/lineage/{which}/{}{}",
            encode(node),
            depth_query(depth)
        ))
        .await
    }

    async fn path(&self, from: &str, to: &str) -> Result<PathResult, QueryError> {
        let mut url = reqwest::Url::parse("http://x/api/lineage/path").expect("a valid URL");
        url.query_pairs_mut()
            .append_pair("from", from)
            .append_pair("to", to);
        let query = url.query().unwrap_or_default().to_string();
        self.get(&format!("/api/lineage/path?{query}")).await
    }

    async fn subgraph(&self, node: &str, depth: u32) -> Result<Subgraph, QueryError> {
        self.get(&format!(
            "/api/lineage/subgraph/{}?depth={depth}",
            encode(node)
        ))
        .await
    }

    async fn export(&self) -> Result<GraphExport, QueryError> {
        self.get("/api/lineage/graph?format=json").await
    }
}
