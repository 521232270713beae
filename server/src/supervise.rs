//! Supervision of the background tasks (purge, gauges, key maintenance,
//! the admin socket, ...): each runs until shutdown; one that ends before
//! it, or panics, is logged with its name and makes `/healthz` fail, so a
//! dead purge or key rotation shows where operators look instead of going
//! unnoticed.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Whether every supervised task is still running. Cheap to clone; read by
/// the health check.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth {
    /// The names of the tasks that died, in the order they did. A std mutex
    /// is enough: held for a push or a copy, never across an await.
    dead: Arc<Mutex<Vec<&'static str>>>,
}

impl TaskHealth {
    /// The tasks that ended before shutdown or panicked; empty while all run.
    pub fn dead(&self) -> Vec<&'static str> {
        self.dead.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn mark_dead(&self, name: &'static str) {
        self.dead.lock().unwrap_or_else(PoisonError::into_inner).push(name);
    }
}

/// Spawns named background tasks and watches them until shutdown.
#[derive(Debug)]
pub struct Supervisor {
    health: TaskHealth,
    shutdown: CancellationToken,
    watchers: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// A supervisor for tasks that are meant to run until `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { health: TaskHealth::default(), shutdown, watchers: Vec::new() }
    }

    /// The health the supervised tasks report to.
    pub fn health(&self) -> TaskHealth {
        self.health.clone()
    }

    /// Spawns `task` under `name`. If it returns before shutdown, or panics
    /// at any time, that is logged as an error with `name` and the health
    /// turns bad for good (a restart brings the task back).
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let (health, shutdown) = (self.health.clone(), self.shutdown.clone());
        self.watchers.push(tokio::spawn(async move {
            match handle.await {
                Ok(()) if shutdown.is_cancelled() => {}
                Ok(()) => {
                    tracing::error!(task = name, "a background task ended before shutdown; /healthz now fails");
                    health.mark_dead(name);
                }
                Err(error) => {
                    let how = if error.is_panic() { "panicked" } else { "was cancelled" };
                    tracing::error!(task = name, how, "a background task {how}; /healthz now fails");
                    health.mark_dead(name);
                }
            }
        }));
    }

    /// Waits for every task to end (after shutdown was cancelled).
    pub async fn join(self) {
        for watcher in self.watchers {
            // A watcher only awaits its task and logs; it cannot panic itself.
            if let Err(error) = watcher.await {
                tracing::error!(%error, "a task watcher failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
