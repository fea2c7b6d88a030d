//! The analysis task: drains the sessions' event queue on its own thread,
//! turns each statement into its shape (parsed once per fingerprint, then
//! cached), attributes it to a tenant, and bumps the counters. Everything
//! here is off the relay path; parse failures fail open (counted, sampled).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Observation, Stats, NO_TENANT};
use crate::config::{AnalysisConfig, TenantSource};
use crate::metrics as m;
use crate::proxy::observe::{EventReceiver, Executed, ObserveStats, StatementEvent};
use crate::sql::{self, Catalog, Shape, TenantValue};

/// A cached analysis: the shapes, or the fact that parsing failed.
type Cached = Arc<Result<Vec<Shape>, ()>>;

/// A bounded cache keyed by fingerprint, evicting the least recently used
/// tenth when full.
struct ShapeCache {
    map: HashMap<u64, (Cached, u64)>,
    capacity: usize,
    clock: u64,
}

impl ShapeCache {
    fn new(capacity: usize) -> ShapeCache {
        ShapeCache {
            map: HashMap::with_capacity(capacity.min(1 << 16)),
            capacity,
            clock: 0,
        }
    }

    fn get(&mut self, fingerprint: u64) -> Option<Cached> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(&fingerprint).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    fn insert(&mut self, fingerprint: u64, value: Cached) {
        if self.map.len() >= self.capacity {
            let mut stamps: Vec<u64> = self.map.values().map(|(_, u)| *u).collect();
            let cut = (self.capacity / 10).max(1).min(stamps.len() - 1);
            let (_, nth, _) = stamps.select_nth_unstable(cut);
            let threshold = *nth;
            self.map.retain(|_, (_, u)| *u > threshold);
        }
        self.clock += 1;
        self.map.insert(fingerprint, (value, self.clock));
    }
}

/// Per-thread analysis state.
pub struct Ingest {
    config: AnalysisConfig,
    stats: Arc<Stats>,
    cache: ShapeCache,
    catalog: Catalog,
    /// Tenant set with `SET <tenant_parameter>` per session (bounded).
    session_tenants: HashMap<u64, String>,
    failures_logged: u64,
}

impl Ingest {
    pub fn new(config: AnalysisConfig, stats: Arc<Stats>) -> Ingest {
        let capacity = config.cache_capacity;
        Ingest {
            config,
            stats,
            cache: ShapeCache::new(capacity),
            catalog: Catalog::new(),
            session_tenants: HashMap::new(),
            failures_logged: 0,
        }
    }

    /// Replace the schema catalog used to resolve unqualified columns.
    pub fn set_catalog(&mut self, catalog: Catalog) {
        self.catalog = catalog;
        self.cache = ShapeCache::new(self.config.cache_capacity);
    }

    /// Analyze one event and count it.
    pub fn ingest(&mut self, event: &StatementEvent, now: SystemTime) {
        metrics::counter!(m::ANALYSIS_EVENTS_TOTAL).increment(1);
        let n = event.statements.len().max(1) as u32;
        for executed in &event.statements {
            self.ingest_statement(event, executed, event.latency / n, now);
        }
    }

    fn ingest_statement(
        &mut self,
        event: &StatementEvent,
        executed: &Executed,
        latency: Duration,
        now: SystemTime,
    ) {
        let sql_bytes = &executed.sql[..];
        if sql_bytes.len() > self.config.max_parse_bytes {
            metrics::counter!(m::STATEMENTS_TOTAL, "kind" => "unparsed").increment(1);
            return;
        }
        let norm = sql::normalize(sql_bytes);
        let shapes = self.shapes(norm.fingerprint, sql_bytes);
        self.stats
            .remember_text(norm.fingerprint, || sql::normalized_text(sql_bytes));
        self.stats.sample(sql_bytes, &norm);
        let Ok(shapes) = shapes.as_ref() else {
            metrics::counter!(m::STATEMENTS_TOTAL, "kind" => "unparsed").increment(1);
            return;
        };
        let tenant_name = self.tenant(event, executed, shapes, &norm);
        let tenant = tenant_name
            .as_deref()
            .map_or(NO_TENANT, |t| self.stats.tenant_id(t));
        // (table label, column or expression, class, AND group); ORDER BY and
        // GROUP BY columns count too, outside any AND group.
        let uses: Vec<(String, &str, &'static str, u16)> = shapes
            .iter()
            .flat_map(|shape| {
                let kind = shape.kind.as_str();
                metrics::counter!(m::STATEMENTS_TOTAL, "kind" => kind).increment(1);
                metrics::histogram!(m::STATEMENT_DURATION_SECONDS, "kind" => kind)
                    .record(latency.as_secs_f64());
                let filters = shape.filters.iter().map(|f| (f, f.class.as_str(), f.group));
                let order = shape.order_by.iter().map(|f| (f, "order_by", u16::MAX));
                let group = shape.group_by.iter().map(|f| (f, "group_by", u16::MAX - 1));
                filters.chain(order).chain(group)
            })
            .filter_map(|(f, class, group)| Some((f.table.as_ref()?, f, class, group)))
            .map(|(table, f, class, group)| {
                (
                    table.to_string(),
                    f.expression.as_deref().unwrap_or(&f.column),
                    class,
                    group,
                )
            })
            .collect();
        let filters: Vec<(&str, &str, &'static str, u16)> = uses
            .iter()
            .map(|(t, c, class, g)| (t.as_str(), *c, *class, *g))
            .collect();
        self.stats.record(
            now,
            &Observation {
                fingerprint: norm.fingerprint,
                tenant,
                latency,
                failed: event.failed,
                rows: event.rows,
                filters: &filters,
            },
        );
    }

    fn shapes(&mut self, fingerprint: u64, sql_bytes: &[u8]) -> Cached {
        if let Some(hit) = self.cache.get(fingerprint) {
            metrics::counter!(m::PARSE_CACHE_HITS_TOTAL).increment(1);
            return hit;
        }
        metrics::counter!(m::PARSE_CACHE_MISSES_TOTAL).increment(1);
        let result = match std::str::from_utf8(sql_bytes) {
            Ok(text) => {
                sql::analyze(text, &self.catalog, &self.config.tenant_column).map_err(|e| {
                    self.log_failure(&e.to_string(), text);
                })
            }
            Err(_) => {
                self.log_failure("not UTF-8", "");
                Err(())
            }
        };
        let cached = Arc::new(result);
        self.cache.insert(fingerprint, cached.clone());
        cached
    }

    /// Count a parse failure; log the first few and then one in a thousand.
    fn log_failure(&mut self, error: &str, text: &str) {
        metrics::counter!(m::PARSE_FAILURES_TOTAL).increment(1);
        self.failures_logged += 1;
        if self.failures_logged <= 10 || self.failures_logged.is_multiple_of(1000) {
            let sample: String = text.chars().take(200).collect();
            debug!(
                error,
                sample, "statement not analyzed (forwarded unchanged)"
            );
        }
    }

    fn tenant(
        &mut self,
        event: &StatementEvent,
        executed: &Executed,
        shapes: &[Shape],
        norm: &sql::Normalized,
    ) -> Option<String> {
        let session = &event.session;
        for shape in shapes {
            if let Some((name, value)) = &shape.set_variable {
                if *name == self.config.tenant_parameter {
                    if self.session_tenants.len() > 100_000 {
                        self.session_tenants.clear();
                    }
                    self.session_tenants.insert(session.id, value.clone());
                }
            }
        }
        match self.config.tenant_source {
            TenantSource::StartupParameter => session.startup_tenant.clone(),
            TenantSource::SessionVariable => self.session_tenants.get(&session.id).cloned(),
            TenantSource::User => Some(session.user.clone()),
            TenantSource::Column => {
                let value = shapes.iter().find_map(|s| s.tenant)?;
                match value {
                    TenantValue::Literal(i) => {
                        sql::literal_value(&executed.sql, norm.literals.get(i)?.clone())
                    }
                    TenantValue::Param(n) => sql::bind_param_text(executed.bind.as_deref()?, n),
                }
            }
        }
    }
}

/// Run the analysis loop on a dedicated thread until `stop`; drains what is
/// queued before returning. Polls the queue (2 ms) instead of blocking on it,
/// so that sessions' `try_send` never has to wake this thread.
pub fn spawn(
    mut rx: EventReceiver,
    mut ingest: Ingest,
    catalogs: std::sync::mpsc::Receiver<Catalog>,
    observe: Arc<ObserveStats>,
    stop: CancellationToken,
    watch: crate::health::Watch,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("indexpilot-analysis".into())
        .spawn(move || {
            let _watch = watch;
            loop {
                let stopping = stop.is_cancelled();
                if let Ok(catalog) = catalogs.try_recv() {
                    ingest.set_catalog(catalog);
                }
                let mut n = 0u64;
                while let Ok(event) = rx.try_recv() {
                    ingest.ingest(&event, SystemTime::now());
                    n += 1;
                }
                observe.events_consumed.fetch_add(n, Ordering::Relaxed);
                metrics::gauge!(m::TENANTS_TRACKED).set(ingest.stats.tenants_tracked() as f64);
                if stopping {
                    return;
                }
                if n == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_least_recently_used() {
        let mut c = ShapeCache::new(10);
        for i in 0..10 {
            c.insert(i, Arc::new(Err(())));
        }
        assert!(c.get(0).is_some());
        c.insert(100, Arc::new(Err(())));
        assert!(c.get(0).is_some(), "recently used survives");
        assert!(c.get(1).is_none(), "oldest is evicted");
        assert!(c.map.len() <= 10);
    }
}
