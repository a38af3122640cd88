//! Building and running the chosen roles (create first, so wiring errors fail before anything
//! runs; then start).

use crate::generate::{self, GeneratorStatus};
use crate::health::{self, Readiness};
use crate::IMPLEMENTED_ROLES;
use anyhow::{bail, Context};
use axum::Router;
use heal_bus::Bus;
use heal_config::{Config, Role, RoleSet};
use heal_generator::SchemaMix;
use heal_ingest::{ConsumerStats, Ingestor, Settings};
use heal_model::topics;
use heal_store::Database;
use serde_json::json;
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

struct BatchRole {
    engine: Arc<heal_batch::Engine>,
    schedules: Arc<heal_batch::Schedules>,
    state: Arc<heal_batch::schedule::SchedulerState>,
}

struct LineageRole {
    service: Arc<heal_lineage::Lineage>,
    interval: std::time::Duration,
}

struct QualityRole {
    role: Arc<heal_quality::role::QualityRole>,
    interval: std::time::Duration,
}

struct AiopsRole {
    role: Arc<heal_aiops::AiopsRole>,
    refresh: std::time::Duration,
}

struct IngestRole {
    ingestor: Arc<Ingestor>,
    stats: Arc<ConsumerStats>,
}

pub struct App {
    config: Config,
    roles: Vec<Role>,
    mode: Mode,
    db: Database,
    bus: Bus,
    readiness: Arc<Readiness>,
    ingest: Option<IngestRole>,
    generator: Option<Arc<GeneratorStatus>>,
    batch: Option<BatchRole>,
    lineage: Option<LineageRole>,
    quality: Option<QualityRole>,
    aiops: Option<AiopsRole>,
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
        let ingest = if running.contains(&Role::Ingest) {
            let settings = Settings {
                batch_size: config.ingest.batch_size,
                batch_timeout: std::time::Duration::from_millis(config.ingest.batch_timeout_ms),
                allowed_lateness: chrono::Duration::seconds(config.ingest.allowed_lateness_secs),
                future_tolerance: chrono::Duration::seconds(config.ingest.future_tolerance_secs),
            };
            Some(IngestRole {
                ingestor: Arc::new(Ingestor::new(db.pool().clone(), settings).await?),
                stats: Arc::new(ConsumerStats::default()),
            })
        } else {
            None
        };
        let generator = running
            .contains(&Role::Generator)
            .then(|| Arc::new(GeneratorStatus::default()));
        let batch = if running.contains(&Role::Batch) {
            let engine = heal_batch::Engine::new(
                db.pool().clone(),
                Some(bus.clone()),
                crate::batch_settings(&config),
            )?;
            let schedules = heal_batch::Schedules::build(
                &engine,
                &config.batch.default_schedule,
                &config.batch.schedules,
            )?;
            Some(BatchRole {
                engine: Arc::new(engine),
                schedules: Arc::new(schedules),
                state: Arc::default(),
            })
        } else {
            None
        };
        let lineage = if running.contains(&Role::Lineage) {
            let service = crate::lineage_service(&config, db.pool().clone()).await?;
            Some(LineageRole {
                service: Arc::new(service),
                interval: std::time::Duration::from_millis(config.lineage.project_interval_ms),
            })
        } else {
            None
        };
        let quality = if running.contains(&Role::Quality) {
            let engine = crate::quality_engine(&config, db.pool().clone()).await?;
            Some(QualityRole {
                role: Arc::new(heal_quality::role::QualityRole::new(
                    Arc::new(engine),
                    Some(bus.clone()),
                    topics::DATA_QUALITY_CHECKS,
                )),
                interval: std::time::Duration::from_millis(config.quality.interval_ms),
            })
        } else {
            None
        };
        let aiops = if running.contains(&Role::Aiops) {
            let source: Arc<dyn heal_aiops::LineageSource> =
                match (&lineage, &config.aiops.lineage_url) {
                    (Some(l), _) => Arc::new(crate::aiops::InProcess(l.service.clone())),
                    (None, Some(url)) => Arc::new(crate::aiops::OverHttp(
                        heal_lineage::client::HttpLineage::new(url),
                    )),
                    (None, None) => Arc::new(crate::aiops::InProcess(Arc::new(
                        crate::lineage_service(&config, db.pool().clone()).await?,
                    ))),
                };
            let role = heal_aiops::AiopsRole::new(
                db.pool().clone(),
                Some(bus.clone()),
                topics::INCIDENTS,
                source,
                crate::aiops::settings(&config)?,
                crate::aiops::llm(&config),
            )
            .await
            .context("starting the aiops role")?;
            Some(AiopsRole {
                role: Arc::new(role),
                refresh: std::time::Duration::from_millis(config.aiops.refresh_ms),
            })
        } else {
            None
        };
        Ok(App {
            config,
            roles: running,
            mode,
            db,
            bus,
            readiness,
            ingest,
            generator,
            batch,
            lineage,
            quality,
            aiops,
        })
    }

    /// Declares the running roles' jobs to lineage (static OpenLineage job events in the
    /// event log). A failure is logged: lineage is informative, never a reason not to run.
    async fn announce(&self) {
        let pool = self.db.pool();
        let bootstrap = self.config.kafka.bootstrap_servers.as_deref();
        if self.ingest.is_some() {
            if let Err(e) =
                heal_ingest::lineage::announce(pool, bootstrap, &self.config.ingest.topic).await
            {
                tracing::warn!(error = %e, "cannot declare the ingest job to lineage");
            }
        }
        if self.generator.is_some() {
            if let Err(e) = generate::announce(pool, bootstrap).await {
                tracing::warn!(error = %e, "cannot declare the generator job to lineage");
            }
        }
        if let Some(batch) = &self.batch {
            batch.engine.announce().await;
        }
    }

    /// The quality role, when this process runs it.
    pub fn quality(&self) -> Option<Arc<heal_quality::role::QualityRole>> {
        self.quality.as_ref().map(|q| q.role.clone())
    }

    /// The AI Ops role, when this process runs it.
    pub fn aiops(&self) -> Option<Arc<heal_aiops::AiopsRole>> {
        self.aiops.as_ref().map(|a| a.role.clone())
    }

    /// The lineage service, when this process runs the lineage role.
    pub fn lineage(&self) -> Option<Arc<heal_lineage::Lineage>> {
        self.lineage.as_ref().map(|l| l.service.clone())
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
        match role {
            Role::Ingest => match &self.ingest {
                Some(i) => heal_ingest::routes(i.ingestor.clone()),
                None => Router::new(),
            },
            Role::Generator => match &self.generator {
                Some(status) => {
                    let status = status.clone();
                    let rate = self.config.generator.events_per_second;
                    Router::new().route(
                        "/api/generator/status",
                        axum::routing::get(move || {
                            let status = status.clone();
                            async move {
                                axum::Json(json!({
                                    "events_per_second": rate,
                                    "sent": status.sent.load(Ordering::Relaxed),
                                    "errors": status.errors.load(Ordering::Relaxed),
                                }))
                            }
                        }),
                    )
                }
                None => Router::new(),
            },
            Role::Batch => match &self.batch {
                Some(b) => heal_batch::http::routes(b.engine.clone(), b.schedules.clone()),
                None => Router::new(),
            },
            Role::Lineage => match &self.lineage {
                Some(l) => heal_lineage::http::routes(l.service.clone()),
                None => Router::new(),
            },
            Role::Quality => match &self.quality {
                Some(q) => heal_quality::http::routes(q.role.clone()),
                None => Router::new(),
            },
            Role::Aiops => match &self.aiops {
                Some(a) => heal_aiops::http::routes(a.role.clone()),
                None => Router::new(),
            },
            _ => Router::new(),
        }
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
    }

    /// Serves HTTP and runs the roles until `shutdown` turns true; then finishes in-flight
    /// work, stops the listeners and closes the database. `bound` receives the actual
    /// listen addresses (useful with port 0).
    pub async fn start(
        self,
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
        self.announce().await;
        if let Some(quality) = &self.quality {
            let group = format!("{}-quality", self.config.kafka.group_prefix);
            let consumer = self.bus.consumer(&group, topics::PIPELINE_EVENTS)?;
            let running = self.readiness.component("quality-checks");
            let run = heal_quality::role::run_loop(
                quality.role.clone(),
                quality.interval,
                Some((consumer, topics::PIPELINE_EVENTS.to_string())),
                stop.clone(),
            );
            tasks.spawn(async move {
                running.store(true, Ordering::SeqCst);
                run.await;
                running.store(false, Ordering::SeqCst);
                Ok(())
            });
        }
        if let Some(aiops) = &self.aiops {
            let prefix = &self.config.kafka.group_prefix;
            let failures = self
                .bus
                .consumer(&format!("{prefix}-aiops"), topics::DATA_QUALITY_CHECKS)?;
            let pipeline = self
                .bus
                .consumer(&format!("{prefix}-aiops-pipeline"), topics::PIPELINE_EVENTS)?;
            let running = self.readiness.component("aiops-engine");
            let run = heal_aiops::role::run_loop(
                aiops.role.clone(),
                (failures, topics::DATA_QUALITY_CHECKS.to_string()),
                (pipeline, topics::PIPELINE_EVENTS.to_string()),
                aiops.refresh,
                stop.clone(),
            );
            tasks.spawn(async move {
                running.store(true, Ordering::SeqCst);
                run.await;
                running.store(false, Ordering::SeqCst);
                Ok(())
            });
        }
        if let Some(lineage) = &self.lineage {
            let running = self.readiness.component("lineage-projector");
            let service = lineage.service.clone();
            let interval = lineage.interval;
            let mut stop_projecting = stop.clone();
            tasks.spawn(async move {
                running.store(true, Ordering::SeqCst);
                loop {
                    if let Err(e) = service.project().await {
                        tracing::warn!(error = %e, "lineage projection failed; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = stop_projecting.wait_for(|v| *v) => break,
                    }
                }
                running.store(false, Ordering::SeqCst);
                Ok(())
            });
            let group = format!("{}-lineage", self.config.kafka.group_prefix);
            let consumer = self.bus.consumer(&group, topics::LINEAGE_EVENTS)?;
            let run = heal_lineage::topic::run_consumer(
                lineage.service.clone(),
                consumer,
                topics::LINEAGE_EVENTS.to_string(),
                stop.clone(),
            );
            let fail = fail_tx.clone();
            tasks.spawn(async move {
                let result = run.await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "lineage topic consumer failed");
                    let _ = fail.send(true);
                }
                result.map_err(anyhow::Error::from)
            });
        }
        if let Some(ingest) = &self.ingest {
            let group = format!("{}-ingest", self.config.kafka.group_prefix);
            let topic = self.config.ingest.topic.clone();
            if topic != topics::RAW_EVENTS {
                self.bus
                    .create_topics(
                        &[topic.as_str()],
                        self.config.kafka.partitions,
                        self.config.kafka.replication_factor,
                    )
                    .await?;
            }
            let assignment = if self.config.kafka.assignment == "static" {
                heal_bus::Assignment::Static {
                    replicas: self.config.kafka.replicas,
                    index: self.config.kafka.replica_index,
                    start: heal_ingest::stored_offsets(self.db.pool(), &group, &topic).await?,
                }
            } else {
                heal_bus::Assignment::Group
            };
            let consumer = self.bus.consumer_with(&group, &topic, &assignment)?;
            let running = self.readiness.component("ingest-consumer");
            let ingestor = ingest.ingestor.clone();
            let stats = ingest.stats.clone();
            let stop = stop.clone();
            let fail = fail_tx.clone();
            let events = Some(self.bus.clone());
            tasks.spawn(async move {
                running.store(true, Ordering::SeqCst);
                let result = heal_ingest::run_consumer(
                    ingestor, consumer, events, group, topic, stats, stop,
                )
                .await;
                running.store(false, Ordering::SeqCst);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "ingest consumer failed");
                    let _ = fail.send(true);
                }
                result.map_err(anyhow::Error::from)
            });
        }
        if let Some(status) = &self.generator {
            let g = &self.config.generator;
            let mix = SchemaMix {
                v1: g.schema_mix[0],
                v2: g.schema_mix[1],
                v3: g.schema_mix[2],
            };
            let run = generate::run_realtime(
                self.bus.clone(),
                g.seed,
                g.events_per_second,
                mix,
                status.clone(),
                stop.clone(),
            );
            tasks.spawn(async move {
                run.await;
                Ok(())
            });
        }
        if let Some(batch) = &self.batch {
            let running = self.readiness.component("batch-scheduler");
            let run = heal_batch::run_scheduler(
                batch.engine.clone(),
                (*batch.schedules).clone(),
                batch.state.clone(),
                stop.clone(),
            );
            let fail = fail_tx.clone();
            tasks.spawn(async move {
                running.store(true, Ordering::SeqCst);
                let result = run.await;
                running.store(false, Ordering::SeqCst);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "batch scheduler failed");
                    let _ = fail.send(true);
                }
                result.map_err(anyhow::Error::from)
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
