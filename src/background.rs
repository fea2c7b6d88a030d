//! The proxy's background work, all off the relay path: the analysis thread,
//! the statistics flush, the indexer (leader election, decisions, builds),
//! the schema catalog refresh, the upstream readiness probe and the
//! metrics/health endpoint. Started together, stopped together.
//!
//! The runtime `start` is called on also relays sessions (it is relay
//! thread 0), so whatever computes for long runs elsewhere: the analysis
//! on its own thread, and the flush, the indexer and the catalog refresh
//! on a second one with its own runtime (`indexpilot-bg`). A leader round
//! at a thousand tenants spends tens of milliseconds planning between its
//! queries; on the relay runtime every session of that thread would wait
//! for it. Only the probe and the metrics endpoint, which do nothing
//! between awaits, stay on the caller's runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;
use crate::proxy::observe::{self, EventReceiver, ObserveStats};
use crate::proxy::upstream::Connector;
use crate::sql::{Catalog, TableName};
use crate::stats::{flush, ingest, Stats};

/// How long the flush, the indexer and the catalog refresh get to finish
/// after the stop (the flush writes its last rows within 3 s); then their
/// runtime is dropped, which ends them at their next await. A build in
/// flight is cancelled with its connection; the next leader sweeps the
/// INVALID index it leaves.
const WORKER_GRACE: Duration = Duration::from_secs(5);

/// The name of the thread running the flush, the indexer and the catalog
/// refresh.
pub const WORKER_THREAD: &str = "indexpilot-bg";

/// A named piece of work for the worker thread; the name is what
/// `/healthz` reports should it panic.
type Work = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Handles to stop everything started by [`start`].
pub struct Background {
    stop: CancellationToken,
    analysis: Option<std::thread::JoinHandle<()>>,
    worker: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start the background work for one proxy.
pub async fn start(
    config: Arc<Config>,
    events: EventReceiver,
    observe_stats: Arc<ObserveStats>,
    stats: Arc<Stats>,
    upstream: Arc<Connector>,
    proxy_id: String,
    health: Arc<Health>,
) -> Background {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut work: Vec<Work> = Vec::new();
    let analysis = if config.analysis.enabled {
        let (catalog_tx, catalog_rx) = std::sync::mpsc::channel();
        let ingest = ingest::Ingest::new(config.analysis.clone(), stats.clone());
        if let Some(dsn) = config.admin.dsn.clone() {
            let refresh = refresh_catalog(dsn, catalog_tx, stop.clone());
            work.push(("catalog refresh", Box::pin(refresh)));
        }
        let watch = health.watch("analysis");
        match ingest::spawn(
            events,
            ingest,
            catalog_rx,
            observe_stats,
            stop.clone(),
            watch,
        ) {
            Ok(handle) => Some(handle),
            Err(e) => {
                warn!(error = %e, "could not start the analysis thread; statements are not analyzed");
                None
            }
        }
    } else {
        let count = observe::count_events(events, observe_stats, stop.clone());
        tasks.push(tokio::spawn(health.watch("analysis").run(count)));
        None
    };
    let flush = flush::run(
        stats.clone(),
        config.clone(),
        proxy_id.clone(),
        stop.clone(),
    );
    work.push(("statistics flush", Box::pin(flush)));
    let indexer = crate::indexer::run::run(config.clone(), stats, proxy_id, stop.clone());
    work.push(("indexer", Box::pin(indexer)));
    let worker = match spawn_worker(work, &health, stop.clone(), WORKER_GRACE) {
        Ok(handle) => Some(handle),
        Err(e) => {
            warn!(error = %e, "could not start the background thread; no statistics flush, no indexer");
            None
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    let probe = probe_upstream(upstream, ready.clone(), stop.clone());
    tasks.push(tokio::spawn(health.watch("upstream probe").run(probe)));
    if let Some(addr) = config.metrics_listen {
        match start_http(addr, ready, health, stop.clone()).await {
            Ok(task) => tasks.push(task),
            Err(e) => warn!(error = %e, %addr, "metrics endpoint not started"),
        }
    }
    Background {
        stop,
        analysis,
        worker,
        tasks,
    }
}

/// Run `work` on a thread of its own with a current-thread runtime, until
/// every piece ends or `grace` after `stop`. A piece that panics is
/// reported dead to `health` under its name.
fn spawn_worker(
    work: Vec<Work>,
    health: &Arc<Health>,
    stop: CancellationToken,
    grace: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let work: Vec<_> = work
        .into_iter()
        .map(|(name, piece)| health.watch(name).run(piece))
        .collect();
    std::thread::Builder::new()
        .name(WORKER_THREAD.to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for w in work {
                    set.spawn(w);
                }
                let all = async { while set.join_next().await.is_some() {} };
                let deadline = async {
                    stop.cancelled().await;
                    tokio::time::sleep(grace).await;
                };
                tokio::select! {
                    _ = all => {}
                    _ = deadline => {}
                }
                // Dropping the set aborts what is left.
            });
        })
}

impl Background {
    /// Stop everything, letting the analysis drain its queue and the flush
    /// write its last rows.
    pub async fn stop(self) {
        self.stop.cancel();
        for thread in [self.analysis, self.worker].into_iter().flatten() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

async fn start_http(
    addr: std::net::SocketAddr,
    ready: Arc<AtomicBool>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let handle = m::install().map_err(|e| e.to_string())?;
    let listener = crate::http::bind(addr).await.map_err(|e| e.to_string())?;
    info!(metrics = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics and health endpoint listening");
    let ready_fn = Arc::new(move || ready.load(Ordering::Relaxed));
    Ok(tokio::spawn(crate::http::serve(
        listener, handle, ready_fn, health, stop,
    )))
}

/// Readiness: can a TCP (and TLS, if configured) connection to the upstream
/// be opened? Checked every few seconds; also exported as a gauge.
async fn probe_upstream(upstream: Arc<Connector>, ready: Arc<AtomicBool>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let up = upstream.probe().await;
        ready.store(up, Ordering::Relaxed);
        metrics::gauge!(m::UPSTREAM_UP).set(if up { 1.0 } else { 0.0 });
    }
}

/// Load table → columns from the database (for resolving unqualified
/// columns in joins) at start and every five minutes.
async fn refresh_catalog(
    dsn: String,
    tx: std::sync::mpsc::Sender<Catalog>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match load_catalog(&dsn).await {
            Ok(catalog) => {
                if tx.send(catalog).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "could not load the schema catalog; unqualified columns in joins stay unresolved")
            }
        }
    }
}

async fn load_catalog(dsn: &str) -> Result<Catalog, tokio_postgres::Error> {
    let client = crate::dbconn::connect(dsn).await?;
    let rows = client
        .query(
            "select table_schema, table_name, array_agg(column_name::text order by ordinal_position)
               from information_schema.columns
              where table_schema not in ('pg_catalog', 'information_schema')
              group by 1, 2",
            &[],
        )
        .await?;
    let mut catalog = Catalog::new();
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let columns: Vec<String> = row.get(2);
        catalog.add_table(
            TableName {
                schema: Some(schema.clone()),
                name: name.clone(),
            },
            columns.clone(),
        );
        if schema == "public" {
            catalog.add_table(TableName { schema: None, name }, columns);
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The worker's piece blocks its thread until the caller's runtime has
    /// run a timer: were it a task on the caller's runtime, the timer could
    /// not fire before the piece gave up.
    #[test]
    fn work_that_blocks_its_thread_leaves_the_callers_runtime_running() {
        current_thread().block_on(async {
            let stop = CancellationToken::new();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let piece: Work = (
                "blocks",
                Box::pin(async move {
                    let answered = go_rx.recv_timeout(Duration::from_secs(10)).is_ok();
                    let name = std::thread::current().name().map(str::to_string);
                    let _ = done_tx.send((answered, name));
                }),
            );
            let health = Arc::new(Health::default());
            let thread = spawn_worker(vec![piece], &health, stop.clone(), Duration::ZERO).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            go_tx.send(()).unwrap();
            let (answered, name) = done_rx.await.unwrap();
            assert!(answered, "the caller's timer waited for the worker");
            assert_eq!(name.as_deref(), Some(WORKER_THREAD));
            stop.cancel();
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .unwrap()
                .unwrap();
        });
    }

    /// A piece that never ends (a build in flight) is dropped once the
    /// grace after the stop has passed, and the thread ends.
    #[test]
    fn the_worker_ends_after_its_grace_even_if_a_piece_does_not() {
        let stop = CancellationToken::new();
        let (ended_tx, ended_rx) = std::sync::mpsc::channel();
        struct Dropped(std::sync::mpsc::Sender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let piece: Work = (
            "never ends",
            Box::pin(async move {
                let _guard = Dropped(ended_tx);
                std::future::pending::<()>().await;
            }),
        );
        let health = Arc::new(Health::default());
        let grace = Duration::from_millis(20);
        let thread = spawn_worker(vec![piece], &health, stop.clone(), grace).unwrap();
        assert!(ended_rx.recv_timeout(Duration::from_millis(200)).is_err());
        stop.cancel();
        ended_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the piece was dropped after the grace");
        thread.join().unwrap();
        assert!(health.dead().is_empty(), "{:?}", health.dead());
    }

    /// A piece that panics (the indexer, say) is reported dead by name,
    /// and the other pieces go on.
    #[test]
    fn a_piece_that_panics_is_reported_dead() {
        let stop = CancellationToken::new();
        let (alive_tx, alive_rx) = std::sync::mpsc::channel();
        let panics: Work = ("indexer", Box::pin(async { panic!("boom") }));
        let goes_on: Work = (
            "statistics flush",
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = alive_tx.send(());
            }),
        );
        let health = Arc::new(Health::default());
        let work = vec![panics, goes_on];
        let thread = spawn_worker(work, &health, stop.clone(), Duration::ZERO).unwrap();
        alive_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the other piece ran on");
        thread.join().unwrap();
        assert_eq!(health.dead(), ["indexer"]);
    }
}
