//! PostgreSQL for every role: a server named by URL, or — when none is configured — the
//! embedded PostgreSQL 17 (pglite-oxide) running inside this process with its data directory
//! on disk, so a restart resumes. One SQL dialect and one set of migrations serve both.
//!
//! The embedded engine has a single backend connection: its pool has exactly one connection
//! and every user in the process shares it.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx;

pub mod faults;
pub mod lineage_log;
pub mod outage;
pub mod versions;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot start the embedded PostgreSQL in {dir}: {reason}")]
    Embedded { dir: PathBuf, reason: String },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which engine a [`Database`] talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Server,
    Embedded { data_dir: Option<PathBuf> },
}

/// A connection pool and, for the embedded engine, the engine itself (kept alive with it).
pub struct Database {
    pool: PgPool,
    engine: Engine,
    #[cfg(feature = "embedded")]
    embedded: Option<pglite_oxide::PgliteServer>,
}

/// Hides the password of a URL for messages.
pub use heal_config::dburl::redact;

impl Database {
    /// Connects to a PostgreSQL server.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Database> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| Error::Connect {
                target: redact(url),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(2));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                target: redact(url),
                source,
            })?;
        Ok(Database {
            pool,
            engine: Engine::Server,
            #[cfg(feature = "embedded")]
            embedded: None,
        })
    }

    /// Starts the embedded engine with its data under `data_dir` (created if missing), or in a
    /// temporary directory when `data_dir` is `None` (tests).
    #[cfg(feature = "embedded")]
    pub async fn embedded(data_dir: Option<&Path>) -> Result<Database> {
        let dir = data_dir.map(Path::to_path_buf);
        let for_errors = dir.clone().unwrap_or_else(|| PathBuf::from("<temporary>"));
        let server = tokio::task::spawn_blocking(move || match &dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                pglite_oxide::PgliteServer::builder()
                    .path(dir)
                    .start()
                    .map_err(|e| format!("{e:#}"))
            }
            None => pglite_oxide::PgliteServer::temporary_tcp().map_err(|e| format!("{e:#}")),
        })
        .await
        .map_err(|e| Error::Embedded {
            dir: for_errors.clone(),
            reason: e.to_string(),
        })?
        .map_err(|reason| Error::Embedded {
            dir: for_errors.clone(),
            reason,
        })?;
        let url = server.database_url();
        let options = PgConnectOptions::from_str(&url)
            .map_err(|source| Error::Connect {
                target: url.clone(),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace);
        // One backend connection: a second one would block until the first closes.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(600))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                target: url.clone(),
                source,
            })?;
        Ok(Database {
            pool,
            engine: Engine::Embedded {
                data_dir: data_dir.map(Path::to_path_buf),
            },
            embedded: Some(server),
        })
    }

    /// Connects to `url` if given, else starts the embedded engine under `data_dir/pg`.
    pub async fn open(
        url: Option<&str>,
        max_connections: u32,
        data_dir: &Path,
    ) -> Result<Database> {
        match url {
            Some(url) => Self::connect(url, max_connections).await,
            #[cfg(feature = "embedded")]
            None => Self::embedded(Some(&data_dir.join("pg"))).await,
            #[cfg(not(feature = "embedded"))]
            None => Err(Error::Embedded {
                dir: data_dir.to_path_buf(),
                reason: "this build has no embedded engine; set DATABASE_URL".into(),
            }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.engine, Engine::Embedded { .. })
    }

    /// Applies every migration not yet applied (they are embedded in the binary).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Versions of the applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<(i64, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Closes the pool and stops the embedded engine, flushing its data to disk.
    pub async fn close(self) {
        if self.is_embedded() {
            // The embedded engine serves one client connection until it disconnects: close it
            // explicitly (the pool may still be returning it when `close` resolves).
            if let Ok(Ok(conn)) =
                tokio::time::timeout(Duration::from_secs(5), self.pool.acquire()).await
            {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
        #[cfg(feature = "embedded")]
        if let Some(server) = self.embedded {
            // Shutdown joins the engine's thread; never let a stuck client connection hang
            // the caller for longer than a few seconds.
            let stop = tokio::task::spawn_blocking(move || server.shutdown());
            match tokio::time::timeout(Duration::from_secs(10), stop).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "embedded PostgreSQL shutdown failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "embedded PostgreSQL shutdown panicked"),
                Err(_) => tracing::warn!("embedded PostgreSQL did not stop within 10 s"),
            }
        }
    }
}

/// The versioned migrations under `crates/store/migrations`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgresql://heal:secret@db:5432/x"),
            "postgresql://heal:***@db:5432/x"
        );
        assert_eq!(redact("postgresql://db/x"), "postgresql://db/x");
    }
}
