//! One builder per role: what it needs from the configuration, the database and the bus, made
//! into a [`Running`] (routes, tasks, lineage declaration). Roles are built in dependency
//! order (lineage before AI Ops, which walks it in-process when both run here).

use crate::role::{Running, Task};
use anyhow::Context;
use axum::Router;
use heal_bus::Bus;
use heal_config::{Config, Role};
use heal_generator::role::{self as generate, GeneratorStatus};
use heal_generator::SchemaMix;
use heal_ingest::{ConsumerStats, Ingestor};
use heal_model::topics;
use heal_store::Database;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Roles in the order they are built.
pub const BUILD_ORDER: [Role; 7] = [
    Role::Lineage,
    Role::Ingest,
    Role::Generator,
    Role::Batch,
    Role::Quality,
    Role::Aiops,
    Role::Incidents,
];

/// What other parts of the process (and `heal demo`) reach into a built role for.
#[derive(Default, Clone)]
pub struct Handles {
    pub lineage: Option<Arc<heal_lineage::Lineage>>,
    pub quality: Option<Arc<heal_quality::role::QualityRole>>,
    pub aiops: Option<Arc<heal_aiops::AiopsRole>>,
}

/// Builds `role`, recording its handle in `handles`.
pub async fn build(
    role: Role,
    config: &Config,
    db: &Database,
    bus: &Bus,
    auth: &Arc<heal_http::auth::Auth>,
    handles: &mut Handles,
) -> anyhow::Result<Running> {
    Ok(match role {
        Role::Ingest => ingest(config, db, bus).await?,
        Role::Generator => generator(config, db, bus),
        Role::Batch => batch(config, db, bus)?,
        Role::Lineage => lineage(config, db, bus, handles).await?,
        Role::Quality => quality(config, db, bus, handles).await?,
        Role::Aiops => aiops(config, db, bus, handles).await?,
        Role::Incidents => incidents(config, db, bus, auth, handles).await?,
    })
}

async fn ingest(config: &Config, db: &Database, bus: &Bus) -> anyhow::Result<Running> {
    let settings = crate::ingest_settings(config);
    let ingestor = Arc::new(
        Ingestor::new(db.pool().clone(), settings)
            .await?
            .with_events(bus.clone()),
    );
    let pool = db.pool().clone();
    let bootstrap = config.kafka.bootstrap_servers.clone();
    let topic = config.ingest.topic.clone();
    let kafka = config.kafka.clone();
    let group = format!("{}-ingest", kafka.group_prefix);
    let announce = {
        let (pool, topic, bootstrap) = (pool.clone(), topic.clone(), bootstrap.clone());
        async move {
            if let Err(e) =
                heal_ingest::lineage::announce(&pool, bootstrap.as_deref(), &topic).await
            {
                tracing::warn!(error = %e, "cannot declare the ingest job to lineage");
            }
        }
    };
    let (bus, consumer_ingestor) = (bus.clone(), ingestor.clone());
    let consume = Task::new(
        "ingest consumer",
        Some("ingest-consumer"),
        move |stop| async move {
            if topic != topics::RAW_EVENTS {
                bus.create_topics(
                    &[topic.as_str()],
                    kafka.partitions,
                    kafka.replication_factor,
                )
                .await?;
            }
            let assignment = if kafka.assignment == "static" {
                heal_bus::Assignment::Static {
                    replicas: kafka.replicas,
                    index: kafka.replica_index,
                    start: heal_ingest::stored_offsets(&pool, &group, &topic).await?,
                }
            } else {
                heal_bus::Assignment::Group
            };
            let consumer = bus.consumer_with(&group, &topic, &assignment)?;
            let stats = Arc::new(ConsumerStats::default());
            heal_ingest::run_consumer(
                consumer_ingestor,
                consumer,
                Some(bus),
                group,
                topic,
                stats,
                stop,
            )
            .await?;
            Ok(())
        },
    );
    // Replays of quarantined events that the self-healing executor requested.
    let replayer = ingestor.clone();
    let replays = Task::new("requested replays", None, move |stop| async move {
        heal_ingest::quarantine::run_requested_loop(
            replayer,
            std::time::Duration::from_secs(1),
            stop,
        )
        .await;
        Ok(())
    });
    Ok(Running::new(heal_ingest::routes(ingestor))
        .task(consume)
        .task(replays)
        .announce(announce))
}

fn generator(config: &Config, db: &Database, bus: &Bus) -> Running {
    let status = Arc::new(GeneratorStatus::default());
    let rate = config.generator.events_per_second;
    let routes = {
        let status = status.clone();
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
    };
    let g = config.generator.clone();
    let mix = SchemaMix {
        v1: g.schema_mix[0],
        v2: g.schema_mix[1],
        v3: g.schema_mix[2],
    };
    let bus = bus.clone();
    let run = Task::new("generator", None, move |stop| async move {
        generate::run_realtime(bus, g.seed, g.events_per_second, mix, status, stop).await;
        Ok(())
    });
    let pool = db.pool().clone();
    let bootstrap = config.kafka.bootstrap_servers.clone();
    Running::new(routes).task(run).announce(async move {
        if let Err(e) = generate::announce(&pool, bootstrap.as_deref()).await {
            tracing::warn!(error = %e, "cannot declare the generator job to lineage");
        }
    })
}

fn batch(config: &Config, db: &Database, bus: &Bus) -> anyhow::Result<Running> {
    let engine = Arc::new(heal_batch::Engine::new(
        db.pool().clone(),
        Some(bus.clone()),
        crate::batch_settings(config),
    )?);
    let schedules = Arc::new(heal_batch::Schedules::build(
        &engine,
        &config.batch.default_schedule,
        &config.batch.schedules,
    )?);
    let state = Arc::<heal_batch::schedule::SchedulerState>::default();
    let (e, s) = (engine.clone(), (*schedules).clone());
    let scheduler = Task::new(
        "batch scheduler",
        Some("batch-scheduler"),
        move |stop| async move {
            heal_batch::run_scheduler(e, s, state, stop).await?;
            Ok(())
        },
    );
    let announcing = engine.clone();
    Ok(Running::new(heal_batch::http::routes(engine, schedules))
        .task(scheduler)
        .announce(async move { announcing.announce().await }))
}

async fn lineage(
    config: &Config,
    db: &Database,
    bus: &Bus,
    handles: &mut Handles,
) -> anyhow::Result<Running> {
    let service = Arc::new(crate::lineage_service(config, db.pool().clone()).await?);
    handles.lineage = Some(service.clone());
    let interval = config.lineage.project_interval;
    let projecting = service.clone();
    let projector = Task::new(
        "lineage projector",
        Some("lineage-projector"),
        move |mut stop| async move {
            loop {
                if let Err(e) = projecting.project().await {
                    tracing::warn!(error = %e, "lineage projection failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
            Ok(())
        },
    );
    let group = format!("{}-lineage", config.kafka.group_prefix);
    let (consuming, bus) = (service.clone(), bus.clone());
    let consumer = Task::new("lineage topic consumer", None, move |stop| async move {
        let consumer = bus.consumer(&group, topics::LINEAGE_EVENTS)?;
        heal_lineage::topic::run_consumer(
            consuming,
            consumer,
            topics::LINEAGE_EVENTS.to_string(),
            stop,
        )
        .await?;
        Ok(())
    });
    Ok(Running::new(heal_lineage::http::routes(service))
        .task(projector)
        .task(consumer))
}

async fn quality(
    config: &Config,
    db: &Database,
    bus: &Bus,
    handles: &mut Handles,
) -> anyhow::Result<Running> {
    let engine = crate::quality_engine(config, db.pool().clone()).await?;
    let role = Arc::new(
        heal_quality::role::QualityRole::new(
            Arc::new(engine),
            Some(bus.clone()),
            topics::DATA_QUALITY_CHECKS,
        )
        .on_refusals(config.quality.on_refusals),
    );
    handles.quality = Some(role.clone());
    let interval = config.quality.interval;
    let group = format!("{}-quality", config.kafka.group_prefix);
    let (running, bus) = (role.clone(), bus.clone());
    let checks = Task::new(
        "quality checks",
        Some("quality-checks"),
        move |stop| async move {
            let consumer = bus.consumer(&group, topics::PIPELINE_EVENTS)?;
            let requests = bus.consumer(&format!("{group}-requests"), topics::QUALITY_REQUESTS)?;
            heal_quality::role::run_loop(
                running,
                interval,
                Some((consumer, topics::PIPELINE_EVENTS.to_string())),
                Some((requests, topics::QUALITY_REQUESTS.to_string())),
                stop,
            )
            .await;
            Ok(())
        },
    );
    Ok(Running::new(heal_quality::http::routes(role)).task(checks))
}

async fn aiops(
    config: &Config,
    db: &Database,
    bus: &Bus,
    handles: &mut Handles,
) -> anyhow::Result<Running> {
    let source: Arc<dyn heal_aiops::LineageSource> = Arc::new(
        crate::aiops::LineageReader::of(config, db.pool(), handles.lineage.as_ref()).await?,
    );
    let role = Arc::new(
        heal_aiops::AiopsRole::new(
            db.pool().clone(),
            Some(bus.clone()),
            topics::INCIDENTS,
            source,
            crate::aiops::settings(config)?,
            crate::aiops::llm(config),
        )
        .await
        .context("starting the aiops role")?,
    );
    handles.aiops = Some(role.clone());
    let refresh = config.aiops.refresh;
    let prefix = config.kafka.group_prefix.clone();
    let (running, bus) = (role.clone(), bus.clone());
    let engine = Task::new(
        "aiops engine",
        Some("aiops-engine"),
        move |stop| async move {
            let failures = bus.consumer(&format!("{prefix}-aiops"), topics::DATA_QUALITY_CHECKS)?;
            let pipeline =
                bus.consumer(&format!("{prefix}-aiops-pipeline"), topics::PIPELINE_EVENTS)?;
            let feedback = bus.consumer(
                &format!("{prefix}-aiops-feedback"),
                topics::INCIDENT_FEEDBACK,
            )?;
            heal_aiops::role::run_loop(
                running,
                (failures, topics::DATA_QUALITY_CHECKS.to_string()),
                (pipeline, topics::PIPELINE_EVENTS.to_string()),
                (feedback, topics::INCIDENT_FEEDBACK.to_string()),
                refresh,
                stop,
            )
            .await;
            Ok(())
        },
    );
    Ok(Running::new(heal_aiops::http::routes(role)).task(engine))
}

/// The incidents role, with the web console (its pages read the lineage graph from the
/// lineage service in this process, or the lineage role over HTTP).
async fn incidents(
    config: &Config,
    db: &Database,
    bus: &Bus,
    auth: &Arc<heal_http::auth::Auth>,
    handles: &Handles,
) -> anyhow::Result<Running> {
    let pool = db.pool().clone();
    // The console shows everything else when the graph cannot be reached: never fatal.
    let graph: Arc<dyn heal_console::GraphSource> = Arc::new(
        match crate::aiops::LineageReader::of(config, &pool, handles.lineage.as_ref()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the console cannot read the lineage graph; its pages show none");
                crate::aiops::LineageReader::Unavailable(format!("{e:#}"))
            }
        },
    );
    let console = heal_console::routes(heal_console::Console::new(
        pool.clone(),
        Some(bus.clone()),
        auth.clone(),
        graph,
    ));
    let group = format!("{}-incidents", config.kafka.group_prefix);
    let bus_for_api = bus.clone();
    let (store, bus) = (pool.clone(), bus.clone());
    let consume = Task::new(
        "incident store",
        Some("incident-store"),
        move |stop| async move {
            let consumer = bus.consumer(&group, topics::INCIDENTS)?;
            heal_incidents::role::run_loop(store, consumer, topics::INCIDENTS.to_string(), stop)
                .await;
            Ok(())
        },
    );
    if !config.executor.enabled {
        return Ok(Running::new(
            heal_incidents::http::routes(pool, Some(bus_for_api)).merge(console),
        )
        .task(consume));
    }
    let executor = Arc::new(heal_incidents::executor::Executor::new(
        pool.clone(),
        crate::executor::settings(&config.executor),
        Some(bus_for_api.clone()),
    ));
    let runner = executor.clone();
    let heal = Task::new("self-healing executor", None, move |stop| async move {
        heal_incidents::executor::run_loop(runner, stop).await;
        Ok(())
    });
    Ok(Running::new(
        heal_incidents::http::routes_with(pool, Some(bus_for_api), Some(executor)).merge(console),
    )
    .task(consume)
    .task(heal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_role_has_a_builder_and_only_those() {
        for r in crate::IMPLEMENTED_ROLES {
            assert!(BUILD_ORDER.contains(&r), "{r} is never built");
        }
        assert_eq!(BUILD_ORDER.len(), crate::IMPLEMENTED_ROLES.len());
        let at = |r: Role| BUILD_ORDER.iter().position(|x| *x == r).unwrap();
        assert!(
            at(Role::Lineage) < at(Role::Aiops),
            "AI Ops walks lineage in-process"
        );
    }
}
