//! One client session after the startup packet: a 1:1 relay between the
//! client and its own upstream connection, driven by a single task that polls
//! both directions, with the inspection hook on the side. Ends cleanly on
//! either side closing, a protocol error, a timeout or a forced shutdown; a
//! client always gets a Postgres-shaped FATAL error rather than a bare reset.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::codec::FrameError;
use super::control::{Control, CHECK_TIMERS, SHUTDOWN};
use super::inspect;
use super::observe::Observer;
use super::pipe::Pipe;
use super::stream::Stream;
use crate::config::Config;
use crate::metrics as m;

/// Why the relay stopped.
#[derive(Debug)]
pub enum End {
    /// Both sides closed in order (Terminate or EOF).
    Closed,
    /// The client went away or its socket failed.
    ClientGone(io::Error),
    /// The client sent a frame the proxy refuses.
    ClientProtocol(FrameError),
    /// The upstream closed or failed while the client still needed it.
    ServerGone(Option<io::Error>),
    StartupTimeout,
    IdleTimeout,
    Shutdown,
}

impl End {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::ClientGone(_) => "client_gone",
            End::ClientProtocol(_) => "client_protocol",
            End::ServerGone(_) => "server_gone",
            End::StartupTimeout => "startup_timeout",
            End::IdleTimeout => "idle_timeout",
            End::Shutdown => "shutdown",
        }
    }
}

/// Deadlines a session checks when the registry's sweep asks it to.
struct Timers {
    startup_deadline: Instant,
    idle_timeout: Option<Duration>,
    last_bytes: u64,
    last_change: Instant,
    /// Bytes already added to the byte counters (client, server).
    reported: (u64, u64),
}

pub struct Session {
    client: Stream,
    server: Stream,
    c2s: Pipe,
    s2c: Pipe,
    observer: Observer,
    /// The server announced it is closing (a FATAL error).
    server_fatal: bool,
    /// The client sent Terminate.
    client_terminated: bool,
}

impl Session {
    pub fn new(
        client: Stream,
        server: Stream,
        startup: &[u8],
        observer: Observer,
        config: &Config,
    ) -> Session {
        let mut c2s = Pipe::new(config.buffer_bytes, Some(config.max_message_bytes)).end_at(b'X');
        c2s.preload(startup);
        Session {
            client,
            server,
            c2s,
            s2c: Pipe::new(config.buffer_bytes, None),
            observer,
            server_fatal: false,
            client_terminated: false,
        }
    }

    /// Relay until the session ends; then tell the client why, if it should know.
    pub async fn run(mut self, config: Arc<Config>, control: Arc<Control>) -> End {
        let mut timers = Timers {
            startup_deadline: Instant::now() + config.startup_timeout,
            idle_timeout: config.idle_timeout,
            last_bytes: 0,
            last_change: Instant::now(),
            reported: (0, 0),
        };
        let mut known_waker = None;
        let end = poll_fn(|cx| {
            control.register(&mut known_waker, cx.waker());
            let signal = control.take();
            if signal & SHUTDOWN != 0 {
                return Poll::Ready(End::Shutdown);
            }
            if signal & CHECK_TIMERS != 0 {
                if let Some(end) = self.check_timers(&mut timers) {
                    return Poll::Ready(end);
                }
            }
            self.poll_relay(cx)
        })
        .await;
        self.report_bytes(&mut timers);
        self.finish(&end).await;
        end
    }

    /// Add the bytes relayed since the last report to the byte counters.
    fn report_bytes(&self, t: &mut Timers) {
        let (c, s) = (self.c2s.bytes, self.s2c.bytes);
        metrics::counter!(m::CLIENT_BYTES_TOTAL).increment(c - t.reported.0);
        metrics::counter!(m::SERVER_BYTES_TOTAL).increment(s - t.reported.1);
        t.reported = (c, s);
    }

    /// Called on the registry's periodic sweep (about once a second).
    fn check_timers(&mut self, t: &mut Timers) -> Option<End> {
        let now = Instant::now();
        self.report_bytes(t);
        if !self.observer.is_ready() {
            return (now >= t.startup_deadline).then_some(End::StartupTimeout);
        }
        let idle = t.idle_timeout?;
        let moved = self.c2s.bytes + self.s2c.bytes;
        if moved != t.last_bytes || !self.observer.is_idle() {
            t.last_bytes = moved;
            t.last_change = now;
            return None;
        }
        (now.duration_since(t.last_change) >= idle).then_some(End::IdleTimeout)
    }

    fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        loop {
            let mut progress = false;
            match self.poll_client_to_server(cx) {
                Poll::Ready(Ok(p)) => progress |= p,
                Poll::Ready(Err(end)) => return Poll::Ready(end),
                Poll::Pending => {}
            }
            match self.poll_server_to_client(cx) {
                Poll::Ready(Ok(p)) => progress |= p,
                Poll::Ready(Err(end)) => return Poll::Ready(end),
                Poll::Pending => {}
            }
            // The server closed and the client has everything it sent.
            if self.s2c.finished() {
                return Poll::Ready(End::Closed);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn poll_client_to_server(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, End>> {
        let mut progress = false;
        if let Poll::Ready(r) = self.c2s.poll_fill(cx, &mut self.client) {
            progress = r.map_err(End::ClientGone)?;
            let (observer, terminated) = (&mut self.observer, &mut self.client_terminated);
            self.c2s
                .frame(
                    |tag, _| Observer::client_wants(tag),
                    |tag, body| {
                        *terminated |= tag == b'X';
                        observer.on_client(tag, body.unwrap_or_default());
                        None
                    },
                )
                .map_err(End::ClientProtocol)?;
        }
        match self.c2s.poll_drain(cx, &mut self.server) {
            Poll::Ready(Ok(p)) => Poll::Ready(Ok(progress | p)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(End::ServerGone(Some(e)))),
            Poll::Pending if progress => Poll::Ready(Ok(true)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_server_to_client(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, End>> {
        let mut progress = false;
        if let Poll::Ready(r) = self.s2c.poll_fill(cx, &mut self.server) {
            progress = r.map_err(|e| End::ServerGone(Some(e)))?;
            let (observer, fatal) = (&mut self.observer, &mut self.server_fatal);
            let framed = self.s2c.frame(Observer::server_wants, |tag, body| {
                let body = body.unwrap_or_default();
                *fatal |= tag == b'E' && inspect::error_is_fatal(body);
                observer.on_server(tag, body);
                // The server only offers -PLUS over its own TLS leg; a
                // client either talks plain to us (libpq then refuses the
                // offer) or binds to our certificate (a mismatch): never pass it.
                if tag == b'R' {
                    inspect::strip_scram_plus(body)
                } else {
                    None
                }
            });
            // The server side has no length limit, so framing cannot fail;
            // should it ever, the upstream is broken.
            framed.map_err(|e| {
                End::ServerGone(Some(io::Error::new(io::ErrorKind::InvalidData, e)))
            })?;
            // An unannounced close: stop before the EOF is passed on, so
            // that `finish` can still tell the client what happened.
            let client_left = self.client_terminated || self.c2s.read_eof();
            if self.s2c.read_eof() && !client_left && !self.server_fatal {
                return Poll::Ready(Err(End::ServerGone(None)));
            }
        }
        match self.s2c.poll_drain(cx, &mut self.client) {
            Poll::Ready(Ok(p)) => Poll::Ready(Ok(progress | p)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(End::ClientGone(e))),
            Poll::Pending if progress => Poll::Ready(Ok(true)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// After the relay: a FATAL error for the client where it helps, then
    /// close. A client that sent Terminate hears nothing more, as from
    /// PostgreSQL, which reads nothing after it.
    async fn finish(&mut self, end: &End) {
        let notice = match end {
            _ if self.client_terminated => None,
            End::Closed | End::ClientGone(_) => None,
            End::ClientProtocol(e) => Some(inspect::fatal("08P01", &format!("invalid frontend message: {e}"))),
            End::ServerGone(_) if self.server_fatal => None,
            End::ServerGone(_) => Some(inspect::fatal(
                "08006",
                "connection to the upstream server was lost (IndexPilot proxy)",
            )),
            End::StartupTimeout => Some(inspect::fatal(
                "08006",
                "startup and authentication did not complete within startup_timeout (IndexPilot proxy)",
            )),
            End::IdleTimeout => Some(inspect::fatal(
                "57P05",
                "terminating connection due to idle timeout (IndexPilot proxy idle_timeout)",
            )),
            End::Shutdown => Some(inspect::fatal(
                "57P01",
                "terminating connection because the IndexPilot proxy is shutting down",
            )),
        };
        if let Some(message) = notice {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.tell_client(message)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.shutdown()).await;
    }

    /// Flush what the client is owed, then insert `message` if the client is
    /// between messages (never in the middle of one).
    async fn tell_client(&mut self, message: Bytes) {
        if self.s2c.has_unwritten() {
            let client = &mut self.client;
            let s2c = &mut self.s2c;
            if poll_fn(|cx| s2c.poll_write_out(cx, client)).await.is_err() {
                return;
            }
        }
        self.s2c.discard_unframed();
        if self.s2c.at_boundary() {
            let _ = self.client.write_all(&message).await;
            let _ = self.client.flush().await;
        }
    }
}
