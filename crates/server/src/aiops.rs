//! Wiring of the AI Ops role: its settings from the configuration, and the lineage snapshot
//! it reasons over, read through [`heal_lineage::LineageApi`] — the lineage service in this
//! process (monolithic, or the graph in the database) or the lineage role over HTTP.

use futures::future::BoxFuture;
use heal_aiops::{GraphEdge, GraphNode, GraphSnapshot, LineageSource};
use heal_lineage::LineageApi;
use std::sync::Arc;

/// A lineage export as the engine's snapshot.
pub fn snapshot_of(g: heal_lineage::query::GraphExport) -> GraphSnapshot {
    GraphSnapshot {
        nodes: g
            .nodes
            .into_iter()
            .map(|n| GraphNode {
                name: n.short_name().to_string(),
                key: n.key,
                kind: n.kind.as_str().to_string(),
                layer: n.props.layer,
                owner: n.props.owner,
                criticality: n.props.criticality,
            })
            .collect(),
        edges: g
            .edges
            .into_iter()
            .map(|e| GraphEdge {
                src: e.src,
                dst: e.dst,
                kind: e.kind.as_str().to_string(),
            })
            .collect(),
    }
}

/// Where a role reads the lineage graph: the lineage service of this process (which
/// projects pending events first), or the lineage role over HTTP. AI Ops takes its snapshot
/// from it, the console its export.
pub enum LineageReader {
    InProcess(Arc<heal_lineage::Lineage>),
    OverHttp(heal_lineage::client::HttpLineage),
    /// No graph could be reached at start (why): every read answers that.
    Unavailable(String),
}

impl LineageReader {
    /// The service of this process when it runs the lineage role, else the role at
    /// `aiops.lineage_url`, else a service of its own over the configured graph.
    pub async fn of(
        config: &heal_config::Config,
        pool: &sqlx::PgPool,
        in_process: Option<&Arc<heal_lineage::Lineage>>,
    ) -> anyhow::Result<LineageReader> {
        Ok(match (in_process, &config.aiops.lineage_url) {
            (Some(l), _) => LineageReader::InProcess(l.clone()),
            (None, Some(url)) => {
                LineageReader::OverHttp(heal_lineage::client::HttpLineage::new(url))
            }
            (None, None) => LineageReader::InProcess(Arc::new(
                crate::lineage_service(config, pool.clone()).await?,
            )),
        })
    }

    pub async fn export(&self) -> Result<heal_lineage::query::GraphExport, String> {
        match self {
            LineageReader::InProcess(l) => {
                if let Err(e) = l.project().await {
                    tracing::debug!(error = %e, "lineage projection before a read failed");
                }
                l.export().await.map_err(|e| e.to_string())
            }
            LineageReader::OverHttp(h) => h.export().await.map_err(|e| e.to_string()),
            LineageReader::Unavailable(why) => Err(why.clone()),
        }
    }
}

impl LineageSource for LineageReader {
    fn snapshot(&self) -> BoxFuture<'_, Result<GraphSnapshot, String>> {
        Box::pin(async move { self.export().await.map(snapshot_of) })
    }
}

impl heal_console::GraphSource for LineageReader {
    fn export(&self) -> BoxFuture<'_, Result<heal_lineage::query::GraphExport, String>> {
        Box::pin(LineageReader::export(self))
    }
}

/// The engine settings a configuration asks for (validated when it was loaded).
pub fn settings(config: &heal_config::Config) -> anyhow::Result<heal_aiops::Settings> {
    use anyhow::Context;
    let a = &config.aiops;
    let d = |key: &str, v: &str| {
        heal_model::duration::parse_iso_duration(v)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{key} = {v}"))
    };
    Ok(heal_aiops::Settings {
        window: d("aiops.window", &a.window)?,
        max_hops: a.max_hops,
        shared_datasets: a.shared_datasets.clone(),
        resolve_after: d("aiops.resolve_after", &a.resolve_after)?,
        low_confidence: a.low_confidence,
        ..heal_aiops::Settings::default()
    })
}

/// The optional language model for prose.
pub fn llm(config: &heal_config::Config) -> Option<heal_aiops::llm::Llm> {
    let a = &config.aiops;
    a.llm_url
        .as_deref()
        .map(|url| heal_aiops::llm::Llm::new(url, a.llm_key.clone(), &a.llm_model, a.llm_timeout))
}
