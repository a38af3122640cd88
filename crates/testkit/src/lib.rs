//! Fixtures for tests that need real infrastructure.
//!
//! * Databases: every storage test runs on the embedded engine, and also on a real PostgreSQL
//!   server when `HEAL_TEST_DATABASE_URL` names one (an admin URL; each test gets a fresh
//!   database created from it and migrated). In CI (`CI=true`) the server is required.
//! * Kafka: `HEAL_TEST_KAFKA` names a Kafka-protocol broker (the test script starts tansu). In
//!   CI it is required; elsewhere tests that need it say that they skip.

use heal_store::Database;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where a test database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Server(String),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Embedded => f.write_str("embedded"),
            Backend::Server(_) => f.write_str("server"),
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The backends every storage test must pass on.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Embedded];
    match std::env::var("HEAL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => out.push(Backend::Server(url)),
        _ if in_ci() => panic!("CI=true but HEAL_TEST_DATABASE_URL is not set: the server backend must be tested in CI"),
        _ => eprintln!("note: HEAL_TEST_DATABASE_URL is not set; testing the embedded engine only"),
    }
    out
}

/// Only the server backend, when configured (for tests that need several connections or
/// other processes).
pub fn server_url() -> Option<String> {
    match std::env::var("HEAL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("CI=true but HEAL_TEST_DATABASE_URL is not set"),
        _ => None,
    }
}

/// The Kafka bootstrap servers for tests, if a broker is configured.
pub fn kafka() -> Option<String> {
    match std::env::var("HEAL_TEST_KAFKA") {
        Ok(s) if !s.is_empty() => Some(s),
        _ if in_ci() => {
            panic!("CI=true but HEAL_TEST_KAFKA is not set: the broker tests must run in CI")
        }
        _ => None,
    }
}

/// A TCP port that was free a moment ago (for servers started as child processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// One HTTP request to `127.0.0.1:port`; returns the status code and the body (whatever the
/// status), or `None` when nothing answers.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_as(port, method, path, body, None)
}

/// [`http`] with `Authorization: Bearer <token>` when a token is given.
pub fn http_as(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let request = request.body(body.to_string()).ok()?;
    let mut response = agent.run(request).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((status, text))
}

/// Polls the async `check` until it holds, backing off from 20 ms to 500 ms between tries;
/// panics naming `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    let mut pause = std::time::Duration::from_millis(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
}

/// The `heal` binary run as a child process by a test: `bin` is the test's
/// `env!("CARGO_BIN_EXE_heal")`. By default it runs in the temp folder with
/// `HEAL_LOG_LEVEL=warn`, and the test's own `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` are
/// not passed on (set them with [`Heal::env`]).
pub struct Heal {
    cmd: std::process::Command,
}

impl Heal {
    pub fn new(bin: &str) -> Heal {
        let mut cmd = std::process::Command::new(bin);
        cmd.env("HEAL_LOG_LEVEL", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .current_dir(std::env::temp_dir());
        Heal { cmd }
    }

    /// Nothing from the test's environment but `PATH` (and what [`Heal::env`] adds after).
    pub fn clean_env(mut self) -> Heal {
        self.cmd
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Heal {
        self.cmd.env(key, value);
        self
    }

    /// Runs in `dir` (for relative paths in the arguments).
    pub fn dir(mut self, dir: impl AsRef<std::path::Path>) -> Heal {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs to completion with `args`.
    pub fn run(mut self, args: &[&str]) -> std::process::Output {
        self.cmd.args(args).output().expect("heal runs")
    }
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after 90 s.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The OpenLineage specification folder (`spec/OpenLineage.json`, `spec/facets/`, `tests/`):
/// `HEAL_TEST_OPENLINEAGE_DIR`, or `shared/openlineage` beside an ancestor of the workspace.
pub fn openlineage_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("HEAL_TEST_OPENLINEAGE_DIR") {
        return std::path::PathBuf::from(dir);
    }
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join("shared/openlineage"))
        .chain([std::path::PathBuf::from("/work/shared/openlineage")])
        .find(|p| p.join("spec/OpenLineage.json").is_file())
        .expect("the OpenLineage schemas: set HEAL_TEST_OPENLINEAGE_DIR to the folder holding spec/OpenLineage.json")
}

#[cfg(feature = "pipeline")]
pub mod pipeline;

/// The repository's shipped scenario files (`scenarios/`).
pub fn scenarios_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// A fresh, migrated database.
pub struct TestDb {
    pub db: Database,
    pub backend: Backend,
    name: Option<String>,
    url: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Replaces the database name of a URL.
pub fn with_database(url: &str, name: &str) -> String {
    heal_config::dburl::with_database(url, name)
        .expect("HEAL_TEST_DATABASE_URL is a postgresql:// URL")
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Embedded => {
                let db = Database::embedded(None)
                    .await
                    .expect("embedded engine starts");
                db.migrate().await.expect("migrations apply");
                TestDb {
                    db,
                    backend: backend.clone(),
                    name: None,
                    url: None,
                }
            }
            Backend::Server(admin) => {
                let name = format!(
                    "heal_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0)
                );
                let admin_db = Database::connect(admin, 1).await.expect("admin connection");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(admin_db.pool())
                    .await
                    .expect("create test database");
                admin_db.close().await;
                let url = with_database(admin, &name);
                let db = Database::connect(&url, 8)
                    .await
                    .expect("test database connection");
                db.migrate().await.expect("migrations apply");
                TestDb {
                    db,
                    backend: backend.clone(),
                    name: Some(name),
                    url: Some(url),
                }
            }
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.db.pool()
    }

    /// The URL of a server database (for child processes); `None` for the embedded engine.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Closes the pool and drops the server database.
    pub async fn finish(self) {
        self.db.close().await;
        if let (Some(name), Backend::Server(admin)) = (self.name, self.backend) {
            if let Ok(admin_db) = Database::connect(&admin, 1).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(admin_db.pool())
                    .await;
                admin_db.close().await;
            }
        }
    }
}
