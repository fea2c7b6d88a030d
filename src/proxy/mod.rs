//! The wire-protocol relay.
//!
//! - [`codec`]: pure framing of the message stream
//! - [`inspect`]: views over the few messages the proxy decodes, and the
//!   ErrorResponses it writes itself
//! - [`startup`]: SSLRequest / GSSENCRequest / CancelRequest / StartupMessage
//! - [`upstream`]: connecting to the server (TCP, Unix socket, TLS)
//! - [`listener`]: accept loop, connection limit, per-connection task
//! - [`session`] and [`pipe`]: the relay loop and one direction of it
//! - [`observe`]: the inspection hook feeding the analysis queue

pub mod codec;
pub mod control;
pub mod inspect;
pub mod listener;
pub mod observe;
pub mod pipe;
pub mod session;
pub mod startup;
pub mod stream;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::health::Health;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use listener::Shared;
use observe::{EventReceiver, EventSink, ObserveStats};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
}

/// A bound, not yet running proxy.
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    events: EventReceiver,
    stats: Arc<ObserveStats>,
    workload: Arc<Stats>,
    health: Arc<Health>,
}

impl Proxy {
    pub async fn bind(config: Arc<Config>) -> Result<Proxy, ProxyError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let upstream = upstream::Connector::new(&config, tls::connector(&config.upstream_tls)?)?;
        let listener = bind_listener(config.listen, relay_threads(&config) > 1)?;
        let (sink, events, stats) = EventSink::new(config.event_queue_capacity);
        let workload = Arc::new(
            Stats::new(
                config.stats.window,
                config.stats.windows_kept,
                config.stats.max_pending_rows,
                config.analysis.max_tenants,
            )
            .with_latency_resolution(crate::stats::latency::Resolution::covering(
                config.indexer.verify_window,
            )),
        );
        let shared = Arc::new(Shared {
            config,
            tls,
            upstream,
            events: sink,
            clients: Arc::new(AtomicUsize::new(0)),
            sessions: Arc::new(control::Registry::default()),
            next_session_id: std::sync::atomic::AtomicU64::new(1),
        });
        Ok(Proxy {
            listener,
            shared,
            events,
            stats,
            workload,
            health: Arc::new(Health::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Inspection-hook counters (events sent, dropped, consumed).
    pub fn observe_stats(&self) -> Arc<ObserveStats> {
        self.stats.clone()
    }

    /// The workload statistics the analysis fills (what the indexer reads).
    pub fn workload(&self) -> Arc<Stats> {
        self.workload.clone()
    }

    /// Which long-lived parts have died (what `/healthz` reports).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Number of client connections currently open.
    pub fn client_gauge(&self) -> Arc<AtomicUsize> {
        self.shared.clients.clone()
    }

    /// Serve until shutdown: on `stop_accepting`, stop accepting and let
    /// sessions finish for up to `shutdown_timeout`, then end them with an
    /// error; on `immediate`, end them at once.
    pub async fn run(self, shutdown: Shutdown) {
        let Proxy {
            listener,
            shared,
            events,
            stats,
            workload,
            health,
        } = self;
        let config = shared.config.clone();
        let background_stop = CancellationToken::new();
        let addr = listener.local_addr().unwrap_or(config.listen);
        let background = crate::background::start(
            config.clone(),
            events,
            stats,
            workload,
            shared.upstream.clone(),
            proxy_id(addr),
            health.clone(),
        )
        .await;
        let sessions = shared.sessions.clone();
        let sweep = sessions
            .clone()
            .sweep(sweep_period(&config), background_stop.clone());
        tokio::spawn(health.watch("session timers").run(sweep));
        let mut trackers = vec![TaskTracker::new()];
        let mut threads = Vec::new();
        for i in 1..relay_threads(&config) {
            let tracker = TaskTracker::new();
            trackers.push(tracker.clone());
            let (shared, stop) = (shared.clone(), shutdown.stop_accepting.clone());
            let watch = health.watch("relay thread");
            match spawn_relay_thread(i, addr, shared, tracker, stop, watch).await {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    warn!(error = %e, thread = i, "could not start relay thread; continuing with fewer")
                }
            }
        }
        info!(listen = %addr, upstream = shared.upstream.shown(), threads = threads.len() + 1, "proxy listening");
        listener::accept_loop(
            listener,
            shared,
            trackers[0].clone(),
            shutdown.stop_accepting.clone(),
        )
        .await;
        let all_done = async {
            for t in &trackers {
                t.close();
                t.wait().await;
            }
        };
        tokio::pin!(all_done);
        let mut drained = false;
        if !shutdown.immediate.is_cancelled() {
            info!(sessions = sessions.len(), timeout = ?config.shutdown_timeout, "draining sessions");
            tokio::select! {
                _ = &mut all_done => drained = true,
                _ = tokio::time::sleep(config.shutdown_timeout) => {}
                _ = shutdown.immediate.cancelled() => {}
            }
        }
        sessions.shutdown_all();
        if !drained {
            let _ = tokio::time::timeout(Duration::from_secs(3), all_done).await;
        }
        background_stop.cancel();
        background.stop().await;
        for t in threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!("proxy stopped");
    }
}

/// How this proxy names itself in the rows it writes: host and port.
fn proxy_id(addr: SocketAddr) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".to_string()
    };
    format!("{host}:{}", addr.port())
}

/// How many relay threads `worker_threads` asks for (0 = one per CPU).
fn relay_threads(config: &Config) -> usize {
    match config.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// A listening socket; with `reuse_port`, several threads each accept on
/// their own socket for the same address and the kernel spreads clients.
fn bind_listener(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, ProxyError> {
    let bind_err = |source| ProxyError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    if reuse_port {
        socket.set_reuseport(true).map_err(bind_err)?;
    }
    socket.bind(addr).map_err(bind_err)?;
    socket.listen(1024).map_err(bind_err)
}

/// One more relay thread: its own current-thread runtime and listener, so
/// that sessions never migrate between threads (no work-stealing, no
/// cross-thread wake-ups on the relay path). Resolves once it listens.
async fn spawn_relay_thread(
    index: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    stop: CancellationToken,
    watch: crate::health::Watch,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let handle = std::thread::Builder::new()
        .name(format!("indexpilot-relay-{index}"))
        .spawn(move || {
            let _watch = watch;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match bind_listener(addr, true) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                listener::accept_loop(listener, shared, tracker.clone(), stop).await;
                tracker.close();
                tracker.wait().await;
            })
        })?;
    match ready_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(_) => Err(std::io::Error::other("relay thread exited during start-up")),
    }
}

/// How often sessions check their startup and idle deadlines: often enough
/// for a tenth of the shortest timeout, at most once a second.
fn sweep_period(config: &Config) -> Duration {
    let shortest = config
        .idle_timeout
        .map_or(config.startup_timeout, |i| i.min(config.startup_timeout));
    (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}
