//! Building and running the chosen roles (create first, so wiring errors fail before anything
//! runs; then start).

use crate::health::{self, Readiness};
use crate::role::Running;
use crate::roles::{self, Handles};
use crate::IMPLEMENTED_ROLES;
use anyhow::{bail, Context};
use axum::Router;
use heal_bus::Bus;
use heal_config::{Config, Role, RoleSet};
use heal_model::topics;
use heal_store::Database;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// All roles on one port, or each role on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monolithic,
    Microservices,
}

/// An address to listen on, and the role it serves (`None`: every role of the process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub role: Option<Role>,
    pub addr: SocketAddr,
}

pub struct App {
    config: Config,
    roles: Vec<Role>,
    mode: Mode,
    db: Database,
    bus: Bus,
    readiness: Arc<Readiness>,
    /// Who may do what through the HTTP APIs.
    auth: Arc<heal_http::auth::Auth>,
    /// Each running role, built.
    running: Vec<(Role, Running)>,
    handles: Handles,
}

impl App {
    /// Checks that `config` can run `roles`, without connecting to anything. Returns the mode
    /// and the roles that will run.
    pub fn check(config: &Config, roles: &RoleSet) -> anyhow::Result<(Mode, Vec<Role>)> {
        let mode = if roles.is_all() {
            Mode::Monolithic
        } else {
            Mode::Microservices
        };
        Self::check_in(config, roles, mode)
    }

    /// [`App::check`] with the mode chosen by the caller (a subset of roles may run
    /// monolithic, on embedded storage, e.g. in `heal demo`).
    pub fn check_in(
        config: &Config,
        roles: &RoleSet,
        mode: Mode,
    ) -> anyhow::Result<(Mode, Vec<Role>)> {
        let missing: Vec<Role> = roles
            .iter()
            .filter(|r| !IMPLEMENTED_ROLES.contains(r))
            .collect();
        if mode == Mode::Microservices && !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|r| r.as_str()).collect();
            let available: Vec<&str> = IMPLEMENTED_ROLES.iter().map(|r| r.as_str()).collect();
            bail!(
                "role(s) {} are not implemented in this build yet; available: {}",
                names.join(", "),
                available.join(", ")
            );
        }
        if mode == Mode::Microservices {
            let mut unset = Vec::new();
            if config.database.url.is_none() {
                unset.push("DATABASE_URL (database.url)");
            }
            // The lineage role alone needs no broker: its events come through PostgreSQL and
            // HTTP (its topic consumer then listens on the in-process bus, where nothing
            // arrives).
            let needs_bus = roles.iter().any(|r| r != Role::Lineage);
            if needs_bus && config.kafka.bootstrap_servers.is_none() {
                unset.push("KAFKA_BOOTSTRAP_SERVERS (kafka.bootstrap_servers)");
            }
            if !unset.is_empty() {
                bail!(
                    "running a subset of roles (--roles {roles}) needs {}: the embedded PostgreSQL and the in-process bus only exist inside one process that runs every role",
                    unset.join(" and ")
                );
            }
        }
        let running = roles
            .iter()
            .filter(|r| IMPLEMENTED_ROLES.contains(r))
            .collect();
        Ok((mode, running))
    }

    /// Opens storage and the bus, migrates, creates topics and builds the roles.
    pub async fn create(config: Config, roles: &RoleSet) -> anyhow::Result<App> {
        let (mode, _) = Self::check(&config, roles)?;
        Self::create_in(config, roles, mode).await
    }

    /// [`App::create`] in a mode chosen by the caller.
    pub async fn create_in(config: Config, roles: &RoleSet, mode: Mode) -> anyhow::Result<App> {
        let (mode, running) = Self::check_in(&config, roles, mode)?;
        let auth = Arc::new(auth(&config)?);
        // Install the metrics recorder before anything records.
        crate::telemetry::prometheus();
        for r in roles.iter().filter(|r| !running.contains(r)) {
            tracing::info!(role = %r, "role not implemented yet; skipped");
        }
        let db = Database::open(
            config.database_url().as_deref(),
            config.database.max_connections,
            &config.data_dir,
        )
        .await
        .context("opening the database")?;
        db.migrate().await.context("applying migrations")?;
        let bus =
            Bus::new(config.kafka.bootstrap_servers.as_deref()).context("creating the bus")?;
        bus.create_topics(
            &topics::ALL,
            config.kafka.partitions,
            config.kafka.replication_factor,
        )
        .await
        .context("creating topics")?;
        let readiness = Readiness::new(
            db.pool().clone(),
            running.iter().map(|r| r.to_string()).collect(),
        );
        let mut handles = Handles::default();
        let mut built = Vec::new();
        for role in roles::BUILD_ORDER.iter().filter(|r| running.contains(r)) {
            let r = roles::build(*role, &config, &db, &bus, &auth, &mut handles).await?;
            built.push((*role, r));
        }
        Ok(App {
            config,
            roles: running,
            mode,
            db,
            bus,
            readiness,
            auth,
            running: built,
            handles,
        })
    }

    /// The quality role, when this process runs it.
    pub fn quality(&self) -> Option<Arc<heal_quality::role::QualityRole>> {
        self.handles.quality.clone()
    }

    /// The AI Ops role, when this process runs it.
    pub fn aiops(&self) -> Option<Arc<heal_aiops::AiopsRole>> {
        self.handles.aiops.clone()
    }

    /// The lineage service, when this process runs the lineage role.
    pub fn lineage(&self) -> Option<Arc<heal_lineage::Lineage>> {
        self.handles.lineage.clone()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Where the HTTP listeners go.
    pub fn listeners(&self) -> Vec<Listen> {
        match self.mode {
            Mode::Monolithic => vec![Listen {
                role: None,
                addr: self.config.http_addr,
            }],
            Mode::Microservices => self
                .roles
                .iter()
                .map(|r| Listen {
                    role: Some(*r),
                    addr: format!("{}:{}", self.config.bind_host, self.config.role_port(*r))
                        .parse()
                        .unwrap_or_else(|_| {
                            SocketAddr::from(([0, 0, 0, 0], self.config.role_port(*r)))
                        }),
                })
                .collect(),
        }
    }

    fn role_routes(&self, role: Role) -> Router {
        self.running
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, r)| r.routes.clone())
            .unwrap_or_default()
    }

    fn router(&self, role: Option<Role>) -> Router {
        let mut router = health::routes(self.readiness.clone());
        let roles: Vec<Role> = match role {
            Some(r) => vec![r],
            None => self.roles.clone(),
        };
        for r in roles {
            router = router.merge(self.role_routes(r));
        }
        router
            .layer(axum::middleware::from_fn_with_state(
                self.auth.clone(),
                heal_http::auth::layer,
            ))
            .layer(axum::middleware::from_fn(heal_http::refuse_nul_in_path))
            .layer(axum::middleware::from_fn(crate::telemetry::time_request))
    }

    /// Serves HTTP and runs the roles until `shutdown` turns true; then finishes in-flight
    /// work, stops the listeners and closes the database. `bound` receives the actual
    /// listen addresses (useful with port 0).
    pub async fn start(
        mut self,
        shutdown: watch::Receiver<bool>,
        bound: Option<tokio::sync::oneshot::Sender<Vec<Listen>>>,
    ) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let (fail_tx, fail_rx) = watch::channel(false);
        // Stop when asked, or when a role's task fails.
        let stop = {
            let mut a = shutdown.clone();
            let mut b = fail_rx.clone();
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                tokio::select! {
                    _ = a.wait_for(|v| *v) => {}
                    _ = b.wait_for(|v| *v) => {}
                }
                let _ = tx.send(true);
            });
            rx
        };
        // What the roles declare to lineage, then their tasks, all run the same way: a task
        // holds its readiness component up while it runs, and its failure stops the process.
        let mut work = Vec::new();
        for (_, r) in self.running.iter_mut() {
            if let Some(announce) = r.announce.take() {
                announce.await;
            }
            work.append(&mut r.tasks);
        }
        for task in work {
            let running = task.component.map(|c| self.readiness.component(c));
            let fail = fail_tx.clone();
            let what = task.what;
            let run = task.start(stop.clone());
            tasks.spawn(async move {
                if let Some(r) = &running {
                    r.store(true, Ordering::SeqCst);
                }
                let result = run.await;
                if let Some(r) = &running {
                    r.store(false, Ordering::SeqCst);
                }
                if let Err(e) = &result {
                    tracing::error!(error = %e, task = what, "a role's task failed; stopping");
                    let _ = fail.send(true);
                }
                result
            });
        }
        let mut bound_addrs = Vec::new();
        for listen in self.listeners() {
            let listener = tokio::net::TcpListener::bind(listen.addr)
                .await
                .with_context(|| format!("binding {}", listen.addr))?;
            let addr = listener.local_addr()?;
            let which = listen
                .role
                .map(|r| r.to_string())
                .unwrap_or_else(|| "all".into());
            tracing::info!(%addr, roles = %which, "listening");
            bound_addrs.push(Listen {
                role: listen.role,
                addr,
            });
            let router = self.router(listen.role);
            let mut stop = stop.clone();
            tasks.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|v| *v).await;
                    })
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        for r in &self.roles {
            metrics::gauge!("heal_up", "role" => r.to_string()).set(1.0);
        }
        if let Some(tx) = bound {
            let _ = tx.send(bound_addrs);
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                let _ = fail_tx.send(true);
                first_error.get_or_insert(e);
            }
        }
        self.db.close().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The API's tokens from the configuration, with a warning when nothing protects changes.
fn auth(config: &Config) -> anyhow::Result<heal_http::auth::Auth> {
    let tokens = config.auth.all_tokens()?;
    let auth = heal_http::auth::Auth::new(
        config.auth.disabled,
        config.auth.protect_reads,
        tokens.into_iter().map(|t| (t.name, t.token, t.scopes)),
    );
    if auth.is_disabled() {
        tracing::warn!(
            "authentication is off (auth.disabled): anyone who reaches the API can change data, run jobs and move incidents"
        );
    } else if auth.token_count() == 0 {
        tracing::warn!(
            "no API tokens are configured: every change through the API is refused (401); set auth.tokens or auth.tokens_file"
        );
    } else {
        tracing::info!(
            tokens = auth.token_count(),
            protect_reads = config.auth.protect_reads,
            "API tokens loaded"
        );
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lineage_role_alone_needs_no_broker() {
        let mut config = Config::default();
        config.database.url = Some("postgresql://heal@db:5432/heal".into());
        let lineage: RoleSet = "lineage".parse().unwrap();
        let (mode, roles) = App::check(&config, &lineage).expect("lineage without Kafka");
        assert_eq!(mode, Mode::Microservices);
        assert_eq!(roles, vec![Role::Lineage]);
        for others in ["batch", "batch,lineage", "ingest"] {
            let set: RoleSet = others.parse().unwrap();
            let err = App::check(&config, &set).unwrap_err().to_string();
            assert!(err.contains("KAFKA_BOOTSTRAP_SERVERS"), "{others}: {err}");
        }
        config.database.url = None;
        let err = App::check(&config, &lineage).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }
}
