//! The inspection hook: per session, pairs each client Query/Sync/FunctionCall
//! with the server's ReadyForQuery, times it, and hands a [`StatementEvent`]
//! to the analysis queue with `try_send`. A full queue drops and counts; the
//! relay never waits here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::inspect;

/// How the statement reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Simple,
    Extended,
    FunctionCall,
}

/// Who is on the other end of a session, for tenant attribution.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub id: u64,
    pub user: String,
    pub database: String,
    /// The value of the configured startup parameter, if the client sent it
    /// (directly or as `-c name=value` in `options`).
    pub startup_tenant: Option<String>,
}

/// One statement executed in a round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// SQL text. Raw bytes: may be non-UTF-8.
    pub sql: Bytes,
    /// The Bind message body that supplied its parameters (extended protocol).
    pub bind: Option<Bytes>,
}

/// One round trip that ended in ReadyForQuery.
#[derive(Debug, Clone)]
pub struct StatementEvent {
    pub session: Arc<SessionInfo>,
    pub protocol: Protocol,
    /// Each statement executed (one for a simple Query, one per Bind for an
    /// extended-protocol batch).
    pub statements: Vec<Executed>,
    pub latency: Duration,
    /// The server reported an error before ReadyForQuery.
    pub failed: bool,
    /// Rows reported by the server's CommandComplete messages.
    pub rows: u64,
}

/// Counters shared by every session and the consumer.
#[derive(Debug, Default)]
pub struct ObserveStats {
    pub events_sent: AtomicU64,
    pub events_dropped: AtomicU64,
    pub events_consumed: AtomicU64,
}

pub type EventReceiver = mpsc::Receiver<StatementEvent>;

/// The sending side shared by all sessions.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<StatementEvent>,
    stats: Arc<ObserveStats>,
}

impl EventSink {
    pub fn new(capacity: usize) -> (EventSink, EventReceiver, Arc<ObserveStats>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(ObserveStats::default());
        (
            EventSink {
                tx,
                stats: stats.clone(),
            },
            rx,
            stats,
        )
    }

    fn send(&self, event: StatementEvent) {
        match self.tx.try_send(event) {
            Ok(()) => self.stats.events_sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                metrics::counter!(crate::metrics::ANALYSIS_DROPPED_TOTAL).increment(1);
                self.stats.events_dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The consumer for now: drain and count. It polls on a short interval
/// instead of awaiting `recv()`, so that senders never pay for a wake-up.
pub async fn count_events(
    mut rx: EventReceiver,
    stats: Arc<ObserveStats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => {}
        }
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        stats.events_consumed.fetch_add(n, Ordering::Relaxed);
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Named prepared statements remembered per session, beyond which new ones
/// are not tracked (their executions are reported without text).
const MAX_STATEMENTS: usize = 10_000;
/// Round trips awaiting ReadyForQuery that are remembered with their timing.
const MAX_PENDING: usize = 100_000;

struct Pending {
    start: Instant,
    protocol: Protocol,
    statements: Vec<Executed>,
    failed: bool,
    rows: u64,
}

/// Per-session protocol bookkeeping, fed with whole decoded messages.
pub struct Observer {
    sink: EventSink,
    session: Arc<SessionInfo>,
    ready: bool,
    pending: VecDeque<Pending>,
    /// Round trips beyond `MAX_PENDING`: counted, not timed.
    overflow: usize,
    unnamed: Option<Bytes>,
    named: HashMap<Bytes, Bytes>,
    /// Statements bound since the last Sync.
    batch: Vec<Executed>,
}

impl Observer {
    pub fn new(sink: EventSink, session: Arc<SessionInfo>) -> Observer {
        Observer {
            sink,
            session,
            ready: false,
            pending: VecDeque::new(),
            overflow: 0,
            unnamed: None,
            named: HashMap::new(),
            batch: Vec::new(),
        }
    }

    /// Startup and authentication are over (first ReadyForQuery seen).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// No round trip awaits the server.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.overflow == 0 && self.batch.is_empty()
    }

    /// Which client messages must be seen whole.
    pub fn client_wants(tag: u8) -> bool {
        matches!(tag, b'Q' | b'P' | b'B' | b'C')
    }

    /// Which server messages must be seen whole (small ones only).
    pub fn server_wants(tag: u8, len: usize) -> bool {
        matches!(tag, b'Z' | b'E' | b'R' | b'C') && len <= 64 * 1024
    }

    /// A client message; `body` is only present for the kinds in `client_wants`.
    pub fn on_client(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'Q' => {
                let sql = inspect::query_text(body).unwrap_or(body);
                let executed = Executed {
                    sql: Bytes::copy_from_slice(sql),
                    bind: None,
                };
                self.push(Protocol::Simple, vec![executed]);
            }
            b'P' => self.on_parse(body),
            b'B' => {
                let sql = match inspect::bind_statement(body) {
                    Some(b"") => self.unnamed.clone(),
                    Some(name) => self.named.get(name).cloned(),
                    None => None,
                };
                if let Some(sql) = sql {
                    let bind = Some(Bytes::copy_from_slice(body));
                    self.batch.push(Executed { sql, bind });
                }
            }
            b'C' => {
                if let Some(name) = inspect::close_statement(body) {
                    self.named.remove(name);
                }
            }
            b'S' => {
                let batch = std::mem::take(&mut self.batch);
                self.push(Protocol::Extended, batch);
            }
            b'F' => self.push(Protocol::FunctionCall, Vec::new()),
            _ => {}
        }
    }

    fn on_parse(&mut self, body: &[u8]) {
        let Some((name, sql)) = inspect::parse_stmt(body) else {
            return;
        };
        let sql = Bytes::copy_from_slice(sql);
        if name.is_empty() {
            self.unnamed = Some(sql);
        } else if self.named.len() < MAX_STATEMENTS || self.named.contains_key(name) {
            self.named.insert(Bytes::copy_from_slice(name), sql);
        }
    }

    fn push(&mut self, protocol: Protocol, statements: Vec<Executed>) {
        if self.pending.len() >= MAX_PENDING {
            self.overflow += 1;
            return;
        }
        self.pending.push_back(Pending {
            start: Instant::now(),
            protocol,
            statements,
            failed: false,
            rows: 0,
        });
    }

    /// A server message; `body` is only present for the kinds in `server_wants`.
    pub fn on_server(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'C' => {
                if let Some(p) = self.pending.front_mut() {
                    p.rows += inspect::command_rows(body);
                }
            }
            b'E' => {
                if let Some(p) = self.pending.front_mut() {
                    p.failed = true;
                }
            }
            b'Z' => self.on_ready(),
            _ => {}
        }
    }

    fn on_ready(&mut self) {
        if !self.ready {
            // The first ReadyForQuery ends authentication; nothing asked for it.
            self.ready = true;
            return;
        }
        if let Some(p) = self.pending.pop_front() {
            self.sink.send(StatementEvent {
                session: self.session.clone(),
                protocol: p.protocol,
                statements: p.statements,
                latency: p.start.elapsed(),
                failed: p.failed,
                rows: p.rows,
            });
        } else if self.overflow > 0 {
            self.overflow -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::codec::put_message;
    use bytes::BytesMut;

    fn observer() -> (Observer, EventReceiver) {
        let (sink, rx, _) = EventSink::new(16);
        let mut o = Observer::new(sink, Arc::default());
        o.on_server(b'Z', b"I");
        (o, rx)
    }

    fn body(tag: u8, b: &[u8]) -> Vec<u8> {
        let mut m = BytesMut::new();
        put_message(&mut m, tag, b);
        m[5..].to_vec()
    }

    #[test]
    fn simple_query_round_trip() {
        let (mut o, mut rx) = observer();
        o.on_client(b'Q', &body(b'Q', b"select 1\0"));
        assert!(!o.is_idle());
        o.on_server(b'Z', b"I");
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.protocol, Protocol::Simple);
        assert_eq!(ev.statements.len(), 1);
        assert_eq!(ev.statements[0].sql, Bytes::from_static(b"select 1"));
        assert!(ev.statements[0].bind.is_none());
        assert!(!ev.failed && o.is_idle());
    }

    #[test]
    fn pipeline_with_error_in_the_middle() {
        let (mut o, mut rx) = observer();
        o.on_client(b'P', b"s1\0select 1/$1\0\0\0");
        for _ in 0..3 {
            o.on_client(b'B', b"\0s1\0\0\0\0\0\0\0");
            o.on_client(b'S', b"");
        }
        o.on_server(b'Z', b"I");
        o.on_server(b'E', b"SERROR\0\0");
        o.on_server(b'Z', b"I");
        o.on_server(b'Z', b"I");
        let failed: Vec<bool> = (0..3).map(|_| rx.try_recv().unwrap().failed).collect();
        assert_eq!(failed, vec![false, true, false]);
        assert!(o.is_idle());
    }

    #[test]
    fn unnamed_and_closed_statements() {
        let (mut o, mut rx) = observer();
        o.on_client(b'P', b"\0select 2\0\0\0");
        o.on_client(b'B', b"\0\0\0\0\0\0\0\0");
        o.on_client(b'S', b"");
        o.on_server(b'Z', b"I");
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.statements[0].sql, Bytes::from_static(b"select 2"));
        assert_eq!(
            ev.statements[0].bind.as_deref(),
            Some(&b"\0\0\0\0\0\0\0\0"[..])
        );
        o.on_client(b'P', b"s\0select 3\0\0\0");
        o.on_client(b'C', b"Ss\0");
        o.on_client(b'B', b"\0s\0\0\0\0\0\0\0");
        o.on_client(b'S', b"");
        o.on_server(b'Z', b"I");
        assert!(rx.try_recv().unwrap().statements.is_empty());
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (sink, _rx, stats) = EventSink::new(1);
        let mut o = Observer::new(sink, Arc::default());
        o.on_server(b'Z', b"I");
        for _ in 0..3 {
            o.on_client(b'Q', b"select 1\0");
            o.on_server(b'Z', b"I");
        }
        assert_eq!(stats.events_sent.load(Ordering::Relaxed), 1);
        assert_eq!(stats.events_dropped.load(Ordering::Relaxed), 2);
    }
}
