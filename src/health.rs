//! Liveness of the proxy's long-lived parts (relay threads, analysis,
//! statistics flush, indexer, probes, signal handling). A part that panics
//! is recorded as dead, and `/healthz` answers 503 from then on, so that an
//! orchestrator restarts a proxy that no longer indexes or no longer stops.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// The parts that died, shared by everything that watches one.
#[derive(Debug, Default)]
pub struct Health {
    dead: Mutex<Vec<&'static str>>,
}

impl Health {
    /// Record that `part` stopped when it should not have.
    pub fn fail(&self, part: &'static str) {
        // Called while unwinding: never panic here, poisoned or not.
        let mut dead = self.dead.lock().unwrap_or_else(PoisonError::into_inner);
        if !dead.contains(&part) {
            dead.push(part);
        }
    }

    /// The parts that died, in the order they did; empty when all is well.
    pub fn dead(&self) -> Vec<&'static str> {
        self.dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A guard for `part` to hold for as long as it runs.
    pub fn watch(self: &Arc<Self>, part: &'static str) -> Watch {
        Watch {
            health: Arc::clone(self),
            part,
        }
    }
}

/// Records its part as dead when dropped by a panic: held on a thread's
/// stack or in a task's future, it is dropped while that panic unwinds
/// (tokio drops a task's future inside its panic guard).
#[derive(Debug)]
pub struct Watch {
    health: Arc<Health>,
    part: &'static str,
}

impl Watch {
    /// Run `work` under this watch.
    pub async fn run<F: Future>(self, work: F) -> F::Output {
        let _watch = self;
        work.await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.health.fail(self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_is_dead_one_that_returns_is_not() {
        let health = Arc::new(Health::default());
        let watch = health.watch("returns");
        std::thread::spawn(move || drop(watch)).join().unwrap();
        let watch = health.watch("panics");
        let panicked = std::thread::spawn(move || {
            let _watch = watch;
            panic!("boom");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(health.dead(), ["panics"]);
    }

    #[tokio::test]
    async fn a_task_that_panics_is_dead() {
        let health = Arc::new(Health::default());
        let task = tokio::spawn(health.watch("task").run(async {
            tokio::task::yield_now().await;
            panic!("boom");
        }));
        assert!(task.await.unwrap_err().is_panic());
        let ended = tokio::spawn(health.watch("ended").run(async {})).await;
        assert!(ended.is_ok());
        assert_eq!(health.dead(), ["task"]);
    }
}
