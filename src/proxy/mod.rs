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

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Config;
use crate::shutdown::Shutdown;
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
}

impl Proxy {
    pub async fn bind(config: Arc<Config>) -> Result<Proxy, ProxyError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let upstream = upstream::Connector::new(&config, tls::connector(&config.upstream_tls)?)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let (sink, events, stats) = EventSink::new(config.event_queue_capacity);
        let shared = Arc::new(Shared {
            config,
            tls,
            upstream,
            events: sink,
            clients: Arc::new(AtomicUsize::new(0)),
            sessions: Arc::new(control::Registry::default()),
        });
        Ok(Proxy {
            listener,
            shared,
            events,
            stats,
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
        } = self;
        let config = shared.config.clone();
        let background_stop = CancellationToken::new();
        let consumer = tokio::spawn(observe::count_events(
            events,
            stats,
            background_stop.clone(),
        ));
        let sessions = shared.sessions.clone();
        tokio::spawn(
            sessions
                .clone()
                .sweep(sweep_period(&config), background_stop.clone()),
        );
        let tracker = TaskTracker::new();
        info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
              upstream = shared.upstream.shown(), "proxy listening");
        listener::accept_loop(
            listener,
            shared,
            tracker.clone(),
            shutdown.stop_accepting.clone(),
        )
        .await;
        tracker.close();
        if !shutdown.immediate.is_cancelled() {
            info!(sessions = tracker.len(), timeout = ?config.shutdown_timeout, "draining sessions");
            tokio::select! {
                _ = tracker.wait() => {}
                _ = tokio::time::sleep(config.shutdown_timeout) => {}
                _ = shutdown.immediate.cancelled() => {}
            }
        }
        sessions.shutdown_all();
        let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
        background_stop.cancel();
        let _ = consumer.await;
        info!("proxy stopped");
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
