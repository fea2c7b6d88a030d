//! The proxy's background work, all off the relay path: the analysis thread,
//! the statistics flush, the indexer (leader election, decisions, builds),
//! the schema catalog refresh, the upstream readiness probe and the
//! metrics/health endpoint. Started together, stopped together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::metrics as m;
use crate::proxy::observe::{self, EventReceiver, ObserveStats};
use crate::proxy::upstream::Connector;
use crate::sql::{Catalog, TableName};
use crate::stats::{flush, ingest, Stats};

/// Handles to stop everything started by [`start`].
pub struct Background {
    stop: CancellationToken,
    analysis: Option<std::thread::JoinHandle<()>>,
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
) -> Background {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let analysis = if config.analysis.enabled {
        let (catalog_tx, catalog_rx) = std::sync::mpsc::channel();
        let ingest = ingest::Ingest::new(config.analysis.clone(), stats.clone());
        if let Some(dsn) = config.admin.dsn.clone() {
            tasks.push(tokio::spawn(refresh_catalog(dsn, catalog_tx, stop.clone())));
        }
        match ingest::spawn(events, ingest, catalog_rx, observe_stats, stop.clone()) {
            Ok(handle) => Some(handle),
            Err(e) => {
                warn!(error = %e, "could not start the analysis thread; statements are not analyzed");
                None
            }
        }
    } else {
        tasks.push(tokio::spawn(observe::count_events(
            events,
            observe_stats,
            stop.clone(),
        )));
        None
    };
    tasks.push(tokio::spawn(flush::run(
        stats.clone(),
        config.clone(),
        proxy_id.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(crate::indexer::run::run(
        config.clone(),
        stats,
        proxy_id,
        stop.clone(),
    )));
    let ready = Arc::new(AtomicBool::new(false));
    tasks.push(tokio::spawn(probe_upstream(
        upstream,
        ready.clone(),
        stop.clone(),
    )));
    if let Some(addr) = config.metrics_listen {
        match start_http(addr, ready, stop.clone()).await {
            Ok(task) => tasks.push(task),
            Err(e) => warn!(error = %e, %addr, "metrics endpoint not started"),
        }
    }
    Background {
        stop,
        analysis,
        tasks,
    }
}

impl Background {
    /// Stop everything, letting the analysis drain its queue and the flush
    /// write its last rows.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Some(thread) = self.analysis {
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
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let handle = m::install().map_err(|e| e.to_string())?;
    let listener = crate::http::bind(addr).await.map_err(|e| e.to_string())?;
    info!(metrics = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics and health endpoint listening");
    let ready_fn = Arc::new(move || ready.load(Ordering::Relaxed));
    Ok(tokio::spawn(crate::http::serve(
        listener, handle, ready_fn, stop,
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
