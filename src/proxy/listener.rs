//! The accept loop and the start of every connection: handshake, connection
//! limit, upstream connect, then the session relay. Each connection runs in
//! its own task, tracked so that shutdown can wait for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tracing::{debug, info, warn};

use super::control::Registry;
use super::inspect;
use super::observe::{EventSink, Observer, SessionInfo};
use super::session::Session;
use super::startup::{handshake, Handshake, StartupError};
use super::stream::Stream;
use super::upstream::Connector;
use crate::config::Config;
use crate::metrics as m;

/// How long closing a cancel request's connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared by all connections.
pub struct Shared {
    pub config: Arc<Config>,
    pub tls: Option<TlsAcceptor>,
    pub upstream: Arc<Connector>,
    pub events: EventSink,
    pub clients: Arc<AtomicUsize>,
    pub sessions: Arc<Registry>,
    pub next_session_id: std::sync::atomic::AtomicU64,
}

/// Counts a client connection for as long as it lives.
struct ClientSlot(Arc<AtomicUsize>);

impl ClientSlot {
    /// Take a slot, or `None` when `max` are taken.
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<ClientSlot> {
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        let slot = ClientSlot(counter.clone());
        (prev < max).then_some(slot)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accept until `stop_accepting` fires.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    stop_accepting: CancellationToken,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop_accepting.cancelled() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(5);
                // No tracing span around the session: entering one on every
                // poll is measurable on the relay path; events name the peer.
                tracker.spawn(connection(tcp, peer, shared.clone()));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let slot = ClientSlot::take(&shared.clients, shared.config.max_client_connections);
    let timeout = shared.config.startup_timeout;
    let hs = match tokio::time::timeout(timeout, handshake(tcp, shared.tls.as_ref())).await {
        Ok(Ok(hs)) => hs,
        Ok(Err(StartupError::Protocol {
            major,
            minor,
            mut stream,
        })) => {
            let msg = format!(
                "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"
            );
            let _ = stream.write_all(&inspect::fatal("0A000", &msg)).await;
            return;
        }
        Ok(Err(e)) => {
            debug!(%peer, kind = e.kind(), error = %e, "startup failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "startup timed out");
            return;
        }
    };
    match hs {
        Handshake::Cancel { mut stream, packet } => {
            if let Err(e) = shared.upstream.cancel(&packet).await {
                warn!(%peer, error = %e, "could not forward cancel request");
            }
            // As PostgreSQL does: over TLS a close_notify, without which the
            // client reports the cancel as failed (unexpected EOF).
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        }
        Handshake::Startup {
            stream,
            packet,
            params,
        } => {
            let Some(_slot) = slot else {
                metrics::counter!(m::CONNECTIONS_REJECTED_TOTAL, m::LABEL_REASON => "too_many_clients")
                    .increment(1);
                reject(
                    stream,
                    "53300",
                    "sorry, too many clients already (IndexPilot max_client_connections)",
                )
                .await;
                return;
            };
            let _gauge = m::GaugeGuard::client_connection();
            let user = param(&params, "user");
            let database = param(&params, "database").unwrap_or(user.unwrap_or_default());
            debug!(%peer, user, database, tls = stream.is_tls(), "startup");
            let info = session_info(&shared, &params);
            relay(stream, &packet, shared, peer, info).await;
        }
    }
}

fn session_info(shared: &Shared, params: &[(String, String)]) -> SessionInfo {
    let user = param(params, "user").unwrap_or_default().to_string();
    let database = param(params, "database").unwrap_or(&user).to_string();
    let name = &shared.config.analysis.tenant_parameter;
    let startup_tenant = param(params, name)
        .map(str::to_string)
        .or_else(|| param(params, "options").and_then(|o| option_value(o, name)));
    SessionInfo {
        id: shared.next_session_id.fetch_add(1, Ordering::Relaxed),
        user,
        database,
        startup_tenant,
    }
}

/// The value of `name` in a startup `options` string such as
/// `-c indexpilot.tenant=42 --search_path=app`.
fn option_value(options: &str, name: &str) -> Option<String> {
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next()?,
            w => match w.strip_prefix("--").or_else(|| w.strip_prefix("-c")) {
                Some(rest) => rest,
                None => continue,
            },
        };
        if let Some((k, v)) = setting.split_once('=') {
            if k.replace('-', "_") == name.replace('-', "_") {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn relay(
    mut client: Stream,
    startup: &[u8],
    shared: Arc<Shared>,
    peer: SocketAddr,
    info: SessionInfo,
) {
    let server = match shared.upstream.connect().await {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, error = %e, "upstream connect failed");
            metrics::counter!(m::CONNECTIONS_REJECTED_TOTAL, m::LABEL_REASON => "upstream_unreachable").increment(1);
            let msg = format!("{e} (IndexPilot proxy)");
            let _ = client.write_all(&inspect::fatal("08001", &msg)).await;
            let _ = client.shutdown().await;
            return;
        }
    };
    let observer = Observer::new(shared.events.clone(), Arc::new(info));
    let session = Session::new(client, server, startup, observer, &shared.config);
    let registration = shared.sessions.register();
    let end = session
        .run(shared.config.clone(), registration.control.clone())
        .await;
    metrics::counter!(m::SESSIONS_ENDED_TOTAL, m::LABEL_REASON => end.kind()).increment(1);
    match &end {
        super::session::End::Closed | super::session::End::ClientGone(_) => {
            debug!(%peer, end = end.kind(), "session ended")
        }
        other => info!(%peer, end = other.kind(), detail = ?other, "session ended"),
    }
}

async fn reject(mut stream: Stream, sqlstate: &str, message: &str) {
    let _ = stream.write_all(&inspect::fatal(sqlstate, message)).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::option_value;

    #[test]
    fn tenant_from_options() {
        let name = "indexpilot.tenant";
        assert_eq!(
            option_value("-c indexpilot.tenant=42", name).as_deref(),
            Some("42")
        );
        assert_eq!(
            option_value("--indexpilot.tenant=7 -c x=1", name).as_deref(),
            Some("7")
        );
        assert_eq!(
            option_value("-cindexpilot.tenant=abc", name).as_deref(),
            Some("abc")
        );
        assert_eq!(option_value("-c search_path=app", name), None);
        assert_eq!(option_value("-c", name), None);
    }
}
