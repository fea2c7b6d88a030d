//! Workload statistics: lock-free (DashMap) counters keyed by compact ids,
//! per (tenant, table, column, predicate class), per AND-group of columns,
//! and per (statement fingerprint, tenant) with a latency histogram. Counts
//! live in sliding windows so that recent traffic dominates; closed windows
//! become rows for the database flush. [`Stats::snapshot`] is what the
//! indexer reads.

pub mod flush;
pub mod histogram;
pub mod ingest;
mod intern;
pub mod latency;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use histogram::Histogram;
use intern::Interner;
use latency::{Measured, Resolution, Ring};

/// Tenant id for statements without a tenant.
pub const NO_TENANT: u32 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ColumnKey {
    pub tenant: u32,
    pub table: u32,
    pub column: u32,
    pub class: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub tenant: u32,
    pub table: u32,
    /// Sorted, distinct column ids filtered together in one AND group.
    pub columns: Box<[u32]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StmtKey {
    fingerprint: u64,
    tenant: u32,
}

#[derive(Debug, Default)]
struct StmtAgg {
    calls: u64,
    errors: u64,
    total_us: u64,
    rows: u64,
    hist: Histogram,
}

/// Counts in the last `slots.len()` windows (a ring indexed by window id).
#[derive(Debug, Clone)]
struct Windowed {
    slots: Box<[(u64, u64, u64)]>, // (window id, calls, rows)
    total_calls: u64,
}

impl Windowed {
    fn new(kept: usize) -> Windowed {
        Windowed {
            slots: vec![(u64::MAX, 0, 0); kept].into_boxed_slice(),
            total_calls: 0,
        }
    }

    fn add(&mut self, window: u64, calls: u64, rows: u64) {
        let n = self.slots.len() as u64;
        let slot = &mut self.slots[(window % n) as usize];
        if slot.0 != window {
            *slot = (window, 0, 0);
        }
        slot.1 += calls;
        slot.2 += rows;
        self.total_calls += calls;
    }

    fn in_window(&self, window: u64) -> (u64, u64) {
        let n = self.slots.len() as u64;
        let slot = self.slots[(window % n) as usize];
        if slot.0 == window {
            (slot.1, slot.2)
        } else {
            (0, 0)
        }
    }

    /// Calls and rows within the kept windows, and an exponentially decayed
    /// call count (half-life: a quarter of the kept windows).
    fn summarize(&self, now: u64) -> (u64, u64, f64) {
        let kept = self.slots.len() as u64;
        let half_life = (kept as f64 / 4.0).max(1.0);
        let (mut calls, mut rows, mut recent) = (0, 0, 0.0);
        for &(w, c, r) in self.slots.iter() {
            if w == u64::MAX || w > now || now - w >= kept {
                continue;
            }
            calls += c;
            rows += r;
            recent += c as f64 * 0.5f64.powf((now - w) as f64 / half_life);
        }
        (calls, rows, recent)
    }
}

/// One statement execution, as the analysis task reports it.
pub struct Observation<'a> {
    pub fingerprint: u64,
    pub tenant: u32,
    pub latency: Duration,
    pub failed: bool,
    pub rows: u64,
    /// (table, column-or-expression, predicate class, AND group)
    pub filters: &'a [(&'a str, &'a str, &'static str, u16)],
}

/// A row for the database, from a closed window.
#[derive(Clone, Debug, PartialEq)]
pub enum FlushRow {
    Statement {
        window_start: SystemTime,
        fingerprint: u64,
        tenant: Option<Arc<str>>,
        calls: u64,
        errors: u64,
        total_ms: f64,
        p95_ms: f64,
        rows: u64,
    },
    Filter {
        window_start: SystemTime,
        tenant: Option<Arc<str>>,
        table: Arc<str>,
        column: Arc<str>,
        class: &'static str,
        calls: u64,
        rows: u64,
    },
    /// Columns filtered together in one AND group.
    Group {
        window_start: SystemTime,
        tenant: Option<Arc<str>>,
        table: Arc<str>,
        columns: Vec<Arc<str>>,
        calls: u64,
    },
}

/// Live statistics, shared by the analysis task, the flush task, metrics
/// and the indexer.
pub struct Stats {
    window: Duration,
    kept: usize,
    max_pending: usize,
    tenants: Interner,
    names: Interner,
    columns: DashMap<ColumnKey, Windowed>,
    groups: DashMap<GroupKey, Windowed>,
    current: DashMap<StmtKey, StmtAgg>,
    current_window: AtomicU64,
    texts: DashMap<u64, Arc<str>>,
    samples: DashMap<u64, Sample>,
    latency: DashMap<StmtKey, Ring>,
    resolution: Resolution,
    pending: Mutex<VecDeque<FlushRow>>,
    roll_lock: Mutex<()>,
    pub rows_dropped: AtomicU64,
}

/// Statements whose constants are followed ([`Stats::sample`]).
const MAX_SAMPLES: usize = 10_000;
/// Longer statements are not sampled.
const MAX_SAMPLE_BYTES: usize = 4096;
/// Executions before a literal that never changed counts as a constant.
pub const TEMPLATE_AFTER: u64 = 20;

/// One statement's first text and which of its literals varied since.
struct Sample {
    text: Arc<str>,
    literals: Vec<Range<usize>>,
    varies: Vec<bool>,
    /// The highest `$n` of the text.
    params: u16,
    seen: u64,
}

impl Sample {
    fn observe(&mut self, sql: &[u8], literals: &[Range<usize>]) {
        self.seen += 1;
        if literals.len() != self.literals.len() {
            self.varies.iter_mut().for_each(|v| *v = true);
            return;
        }
        let text = self.text.as_bytes();
        for (i, span) in literals.iter().enumerate() {
            if !self.varies[i] && sql.get(span.clone()) != text.get(self.literals[i].clone()) {
                self.varies[i] = true;
            }
        }
    }

    fn template(&self) -> String {
        let text = &*self.text;
        let mut next = u32::from(self.params) + 1;
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (span, varies) in self.literals.iter().zip(&self.varies) {
            if !varies || span.start < at || text.get(span.clone()).is_none() {
                continue;
            }
            out.push_str(&text[at..span.start]);
            out.push_str(&format!("${next}"));
            next += 1;
            at = span.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// One entry of [`Snapshot::columns`].
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStat {
    pub tenant: Option<Arc<str>>,
    pub table: Arc<str>,
    pub column: Arc<str>,
    pub class: &'static str,
    /// Calls within the kept windows.
    pub calls: u64,
    /// Rows returned by those calls (an estimate of selectivity).
    pub rows: u64,
    /// Exponentially decayed calls: recent traffic weighs most.
    pub recent: f64,
    pub total_calls: u64,
}

/// One entry of [`Snapshot::groups`].
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStat {
    pub tenant: Option<Arc<str>>,
    pub table: Arc<str>,
    pub columns: Vec<Arc<str>>,
    pub calls: u64,
    pub recent: f64,
}

/// The current window's statement counters.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementStat {
    pub fingerprint: u64,
    pub text: Option<Arc<str>>,
    pub tenant: Option<Arc<str>>,
    pub calls: u64,
    pub errors: u64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}

/// A consistent-enough copy of the counters for readers.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub columns: Vec<ColumnStat>,
    pub groups: Vec<GroupStat>,
    pub statements: Vec<StatementStat>,
}

fn window_of(t: SystemTime, window: Duration) -> u64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    secs / window.as_secs().max(1)
}

impl Stats {
    pub fn new(window: Duration, kept: usize, max_pending: usize, max_tenants: usize) -> Stats {
        Stats {
            window,
            kept,
            max_pending,
            tenants: Interner::new(max_tenants),
            names: Interner::new(1_000_000),
            columns: DashMap::new(),
            groups: DashMap::new(),
            current: DashMap::new(),
            current_window: AtomicU64::new(window_of(SystemTime::now(), window)),
            texts: DashMap::new(),
            samples: DashMap::new(),
            latency: DashMap::new(),
            resolution: Resolution::default(),
            pending: Mutex::new(VecDeque::new()),
            roll_lock: Mutex::new(()),
            rows_dropped: AtomicU64::new(0),
        }
    }

    /// Remember recent latency at this resolution (see [`latency`]); call
    /// before sharing.
    pub fn with_latency_resolution(mut self, resolution: Resolution) -> Stats {
        self.resolution = resolution;
        self
    }

    /// Calls and summed latency of `fingerprints` from `from` to `to`
    /// (normally now; see [`Ring::between`]), for one tenant or (None) all
    /// of them, as far back as the rings remember.
    pub fn measured(
        &self,
        fingerprints: &[u64],
        tenant: Option<&str>,
        from: SystemTime,
        to: SystemTime,
    ) -> Measured {
        let tenant_id = match tenant {
            Some(name) => match self.tenants.find(name) {
                Some(id) => Some(id),
                None => return Measured::default(),
            },
            None => None,
        };
        let mut out = Measured::default();
        for e in self.latency.iter() {
            let k = e.key();
            if fingerprints.contains(&k.fingerprint) && tenant_id.is_none_or(|t| t == k.tenant) {
                out.add(e.value().between(self.resolution, from, to));
            }
        }
        out
    }

    /// Latency of every statement but `fingerprints`, all tenants, between
    /// `from` and `to`: the control group of a verification (what an index
    /// does not serve moves only with the machine).
    pub fn measured_except(
        &self,
        fingerprints: &[u64],
        from: SystemTime,
        to: SystemTime,
    ) -> Measured {
        let mut out = Measured::default();
        for e in self.latency.iter() {
            if !fingerprints.contains(&e.key().fingerprint) {
                out.add(e.value().between(self.resolution, from, to));
            }
        }
        out
    }

    /// Follow the constants of a statement: its first execution's text and
    /// literal spans are kept, and each literal is marked as varying once an
    /// execution carries another value there. Bounded: at most
    /// [`MAX_SAMPLES`] statements of at most [`MAX_SAMPLE_BYTES`].
    pub fn sample(&self, sql: &[u8], norm: &crate::sql::Normalized) {
        let (fingerprint, literals) = (norm.fingerprint, &norm.literals);
        if let Some(mut s) = self.samples.get_mut(&fingerprint) {
            s.observe(sql, literals);
            return;
        }
        if sql.len() > MAX_SAMPLE_BYTES || self.samples.len() >= MAX_SAMPLES {
            return;
        }
        let Ok(text) = std::str::from_utf8(sql) else {
            return;
        };
        self.samples.insert(
            fingerprint,
            Sample {
                text: Arc::from(text),
                literals: literals.clone(),
                varies: vec![false; literals.len()],
                params: norm.params,
                seen: 1,
            },
        );
    }

    /// The statement's text with the constants it always carried kept and
    /// every other literal turned into a parameter (`$n` after the highest
    /// one in the text), once it ran [`TEMPLATE_AFTER`] times: what a
    /// constant predicate (`status in ('new', 'open')`) of the application
    /// looks like, without any value that changes between executions.
    pub fn template(&self, fingerprint: u64) -> Option<String> {
        let s = self.samples.get(&fingerprint)?;
        (s.seen >= TEMPLATE_AFTER).then(|| s.template())
    }

    /// A table or column name by id ("" for an unknown id).
    fn name_of(&self, id: u32) -> Arc<str> {
        self.names.name(id).unwrap_or_else(|| Arc::from(""))
    }

    /// Id of a tenant name (bounded: beyond the limit, one shared "other" id).
    pub fn tenant_id(&self, name: &str) -> u32 {
        self.tenants.id(name)
    }

    pub fn tenants_tracked(&self) -> usize {
        self.tenants.len()
    }

    /// Remember a fingerprint's normalized text (once).
    pub fn remember_text(&self, fingerprint: u64, text: impl FnOnce() -> String) {
        if !self.texts.contains_key(&fingerprint) {
            self.texts.insert(fingerprint, Arc::from(text()));
        }
    }

    /// Every remembered fingerprint text.
    pub fn for_each_text(&self, mut f: impl FnMut(u64, &str)) {
        for e in self.texts.iter() {
            f(*e.key(), e.value());
        }
    }

    pub fn text(&self, fingerprint: u64) -> Option<Arc<str>> {
        self.texts.get(&fingerprint).map(|t| t.clone())
    }

    /// Count one execution.
    pub fn record(&self, now: SystemTime, obs: &Observation<'_>) {
        self.roll(now);
        let window = self.current_window.load(Ordering::Acquire);
        {
            let key = StmtKey {
                fingerprint: obs.fingerprint,
                tenant: obs.tenant,
            };
            let mut agg = self.current.entry(key).or_default();
            agg.calls += 1;
            agg.errors += obs.failed as u64;
            let us = obs.latency.as_micros() as u64;
            agg.total_us += us;
            agg.rows += obs.rows;
            agg.hist.record_us(us);
            drop(agg);
            self.latency
                .entry(key)
                .or_insert_with(|| Ring::new(self.resolution))
                .record(self.resolution, now, us);
        }
        self.record_filters(window, obs);
    }

    fn record_filters(&self, window: u64, obs: &Observation<'_>) {
        let mut groups: Vec<(u16, u32, u32)> = Vec::with_capacity(obs.filters.len());
        for &(table, column, class, group) in obs.filters {
            let (t, c) = (self.names.id(table), self.names.id(column));
            let key = ColumnKey {
                tenant: obs.tenant,
                table: t,
                column: c,
                class,
            };
            self.columns
                .entry(key)
                .or_insert_with(|| Windowed::new(self.kept))
                .add(window, 1, obs.rows);
            groups.push((group, t, c));
        }
        groups.sort_unstable();
        groups.dedup();
        for chunk in groups.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            if chunk.len() < 2 {
                continue;
            }
            let key = GroupKey {
                tenant: obs.tenant,
                table: chunk[0].1,
                columns: chunk.iter().map(|g| g.2).collect(),
            };
            self.groups
                .entry(key)
                .or_insert_with(|| Windowed::new(self.kept))
                .add(window, 1, 0);
        }
    }

    /// Close the current window if `now` is past it: its counters become
    /// flush rows. Called on every record and by the flush timer.
    pub fn roll(&self, now: SystemTime) {
        let now_window = window_of(now, self.window);
        if now_window <= self.current_window.load(Ordering::Acquire) {
            return;
        }
        let Ok(_guard) = self.roll_lock.lock() else {
            return;
        };
        let closing = self.current_window.load(Ordering::Acquire);
        if now_window <= closing {
            return;
        }
        let start = UNIX_EPOCH + self.window * closing as u32;
        let mut rows = Vec::new();
        let keys: Vec<StmtKey> = self.current.iter().map(|e| *e.key()).collect();
        for key in keys {
            if let Some((_, agg)) = self.current.remove(&key) {
                rows.push(FlushRow::Statement {
                    window_start: start,
                    fingerprint: key.fingerprint,
                    tenant: self.tenants.name(key.tenant),
                    calls: agg.calls,
                    errors: agg.errors,
                    total_ms: agg.total_us as f64 / 1000.0,
                    p95_ms: agg.hist.quantile_us(0.95) as f64 / 1000.0,
                    rows: agg.rows,
                });
            }
        }
        for e in self.columns.iter() {
            let (calls, rows_seen) = e.value().in_window(closing);
            if calls > 0 {
                rows.push(FlushRow::Filter {
                    window_start: start,
                    tenant: self.tenants.name(e.key().tenant),
                    table: self.name_of(e.key().table),
                    column: self.name_of(e.key().column),
                    class: e.key().class,
                    calls,
                    rows: rows_seen,
                });
            }
        }
        for e in self.groups.iter() {
            let (calls, _) = e.value().in_window(closing);
            if calls > 0 {
                rows.push(FlushRow::Group {
                    window_start: start,
                    tenant: self.tenants.name(e.key().tenant),
                    table: self.name_of(e.key().table),
                    columns: e.key().columns.iter().map(|&c| self.name_of(c)).collect(),
                    calls,
                });
            }
        }
        // Forget latency rings with nothing in their span any more.
        self.latency
            .retain(|_, ring| !ring.is_stale(self.resolution, now));
        self.current_window.store(now_window, Ordering::Release);
        self.push_pending(rows);
    }

    /// Queue rows for the flush, dropping (and counting) the oldest beyond the bound.
    pub fn push_pending(&self, rows: Vec<FlushRow>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(rows);
        self.drop_excess(&mut pending);
    }

    /// Put back rows a failed flush could not write, ahead of newer ones.
    pub fn requeue(&self, rows: Vec<FlushRow>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows.into_iter().rev() {
            pending.push_front(row);
        }
        self.drop_excess(&mut pending);
    }

    /// Drop the oldest rows beyond the bound, counting the loss.
    fn drop_excess(&self, pending: &mut VecDeque<FlushRow>) {
        let excess = pending.len().saturating_sub(self.max_pending);
        if excess > 0 {
            pending.drain(..excess);
            self.rows_dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
            metrics::counter!(crate::metrics::STATS_ROWS_DROPPED_TOTAL).increment(excess as u64);
        }
    }

    /// Take up to `max` rows to flush.
    pub fn take_pending(&self, max: usize) -> Vec<FlushRow> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let n = pending.len().min(max);
        pending.drain(..n).collect()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Copy the counters out for readers (the indexer, tests, reports).
    pub fn snapshot(&self) -> Snapshot {
        let now = self.current_window.load(Ordering::Acquire);
        let name = |id| self.name_of(id);
        let columns = self
            .columns
            .iter()
            .map(|e| {
                let (calls, rows, recent) = e.value().summarize(now);
                ColumnStat {
                    tenant: self.tenants.name(e.key().tenant),
                    table: name(e.key().table),
                    column: name(e.key().column),
                    class: e.key().class,
                    calls,
                    rows,
                    recent,
                    total_calls: e.value().total_calls,
                }
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|e| {
                let (calls, _, recent) = e.value().summarize(now);
                GroupStat {
                    tenant: self.tenants.name(e.key().tenant),
                    table: name(e.key().table),
                    columns: e.key().columns.iter().map(|&c| name(c)).collect(),
                    calls,
                    recent,
                }
            })
            .collect();
        let statements = self
            .current
            .iter()
            .map(|e| StatementStat {
                fingerprint: e.key().fingerprint,
                text: self.text(e.key().fingerprint),
                tenant: self.tenants.name(e.key().tenant),
                calls: e.value().calls,
                errors: e.value().errors,
                mean_ms: e.value().total_us as f64 / 1000.0 / e.value().calls.max(1) as f64,
                p95_ms: e.value().hist.quantile_us(0.95) as f64 / 1000.0,
            })
            .collect();
        Snapshot {
            columns,
            groups,
            statements,
        }
    }
}

#[cfg(test)]
mod tests;
