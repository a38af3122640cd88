//! The one shape every role takes in a process: [`Running`] holds the HTTP routes it serves,
//! the background tasks it runs until the stop signal (each holding up a readiness component
//! while it runs), and what it declares to lineage at start. `roles.rs` builds one per role
//! from the configuration; `App::start` runs them all the same way, so adding a role is one
//! builder and one line in `roles::build`.

use axum::Router;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::watch;

/// Turns true when the process is asked to stop (or a task failed).
pub type Stop = watch::Receiver<bool>;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A background task of a role.
pub struct Task {
    /// The readiness component it holds up while it runs (`None`: readiness does not wait
    /// for it), also its name in the log.
    pub component: Option<&'static str>,
    /// What it is, for the log when it fails.
    pub what: &'static str,
    run: Box<dyn FnOnce(Stop) -> Boxed<anyhow::Result<()>> + Send>,
}

impl Task {
    /// A task; an error it returns stops the process.
    pub fn new<F, Fut>(what: &'static str, component: Option<&'static str>, run: F) -> Task
    where
        F: FnOnce(Stop) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Task {
            component,
            what,
            run: Box::new(move |stop| Box::pin(run(stop))),
        }
    }

    /// Starts the task's future.
    pub fn start(self, stop: Stop) -> Boxed<anyhow::Result<()>> {
        (self.run)(stop)
    }
}

/// A role as the process runs it.
pub struct Running {
    pub routes: Router,
    pub tasks: Vec<Task>,
    /// Declared to lineage before the tasks start (failures are logged, never fatal).
    pub announce: Option<Boxed<()>>,
}

impl Running {
    pub fn new(routes: Router) -> Running {
        Running {
            routes,
            tasks: Vec::new(),
            announce: None,
        }
    }

    pub fn task(mut self, task: Task) -> Running {
        self.tasks.push(task);
        self
    }

    pub fn announce<F>(mut self, announce: F) -> Running
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.announce = Some(Box::pin(announce));
        self
    }
}
