//! Prometheus metrics: every metric name, its description, the bounded label
//! values it may carry, and the process-wide recorder that `/metrics` renders
//! (served by [`crate::http`]).

use std::sync::{Mutex, PoisonError};

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, Gauge, Unit,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Client connections currently open (gauge).
pub const CLIENT_CONNECTIONS: &str = "indexpilot_client_connections";
/// Connections refused before relaying, by [`RejectReason`].
pub const CONNECTIONS_REJECTED_TOTAL: &str = "indexpilot_connections_rejected_total";
/// Sessions that ended, by [`EndReason`].
pub const SESSIONS_ENDED_TOTAL: &str = "indexpilot_sessions_ended_total";
/// Statements seen, by [`StatementKind`].
pub const STATEMENTS_TOTAL: &str = "indexpilot_statements_total";
/// Statement latency, by [`StatementKind`].
pub const STATEMENT_DURATION_SECONDS: &str = "indexpilot_statement_duration_seconds";
/// Bytes received from clients.
pub const CLIENT_BYTES_TOTAL: &str = "indexpilot_client_bytes_total";
/// Bytes received from the upstream server.
pub const SERVER_BYTES_TOTAL: &str = "indexpilot_server_bytes_total";
/// Statements the SQL parser rejected.
pub const PARSE_FAILURES_TOTAL: &str = "indexpilot_parse_failures_total";
/// Statement shapes found in the fingerprint cache.
pub const PARSE_CACHE_HITS_TOTAL: &str = "indexpilot_parse_cache_hits_total";
/// Statement shapes not in the fingerprint cache.
pub const PARSE_CACHE_MISSES_TOTAL: &str = "indexpilot_parse_cache_misses_total";
/// Events queued for analysis.
pub const ANALYSIS_EVENTS_TOTAL: &str = "indexpilot_analysis_events_total";
/// Events dropped because the analysis queue was full.
pub const ANALYSIS_DROPPED_TOTAL: &str = "indexpilot_analysis_dropped_total";
/// Batches of statistics written to the database.
pub const STATS_FLUSH_BATCHES_TOTAL: &str = "indexpilot_stats_flush_batches_total";
/// Statistics flushes that failed.
pub const STATS_FLUSH_FAILURES_TOTAL: &str = "indexpilot_stats_flush_failures_total";
/// Statistics rows lost because the database stayed unreachable too long.
pub const STATS_ROWS_DROPPED_TOTAL: &str = "indexpilot_stats_rows_dropped_total";
/// Distinct tenants held in the statistics (gauge).
pub const TENANTS_TRACKED: &str = "indexpilot_tenants_tracked";
/// 1 when the upstream server is reachable, else 0 (gauge).
pub const UPSTREAM_UP: &str = "indexpilot_upstream_up";
/// Indexes IndexPilot built (valid at the end of the build).
pub const INDEXES_CREATED_TOTAL: &str = "indexpilot_indexes_created_total";
/// Indexes dropped because verification found no significant gain or a regression.
pub const INDEXES_REVERTED_TOTAL: &str = "indexpilot_indexes_reverted_total";
/// Indexes IndexPilot created and later dropped for being unused.
pub const INDEXES_DROPPED_TOTAL: &str = "indexpilot_indexes_dropped_total";
/// Index builds that failed, by reason (lock_timeout, canceled, left_invalid, build_failed, postgres).
pub const INDEX_BUILDS_FAILED_TOTAL: &str = "indexpilot_index_builds_failed_total";
/// Recommendations worth building but not built (advise mode, window or budget) (gauge).
pub const RECOMMENDATIONS_PENDING: &str = "indexpilot_recommendations_pending";
/// Unix time of the leader's last completed decision round (gauge).
pub const LAST_DECISION_TIMESTAMP_SECONDS: &str = "indexpilot_last_decision_timestamp_seconds";
/// Tenants with filter traffic within the remembered windows (gauge, leader).
pub const TENANTS_ACTIVE: &str = "indexpilot_tenants_active";
/// Tenant × field expressions enabled, per table (gauge, leader; at most 20 tables).
pub const FIELDS_EXPRESSED: &str = "indexpilot_fields_expressed";
/// 1 while this replica holds the indexer leadership, else 0 (gauge).
pub const INDEXER_LEADER: &str = "indexpilot_indexer_leader";

/// Label key carrying a [`StatementKind`].
pub const LABEL_KIND: &str = "kind";
/// Label key carrying an [`EndReason`] or a [`RejectReason`].
pub const LABEL_REASON: &str = "reason";

/// Upper bounds of the statement latency buckets, in seconds: 50 µs to 30 s,
/// roughly 1-2.5-5 per decade, so both cached point lookups and slow reports
/// land in a meaningful bucket.
pub const STATEMENT_DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Declares a closed set of label values, so a label can never grow unbounded.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value as exported.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }
    };
}

label_values! {
    /// The `kind` label of [`STATEMENTS_TOTAL`] and [`STATEMENT_DURATION_SECONDS`].
    StatementKind {
        Select => "select",
        Insert => "insert",
        Update => "update",
        Delete => "delete",
        Copy => "copy",
        Ddl => "ddl",
        Set => "set",
        Transaction => "transaction",
        Other => "other",
        Unparsed => "unparsed",
    }
}

label_values! {
    /// The `reason` label of [`SESSIONS_ENDED_TOTAL`].
    EndReason {
        Closed => "closed",
        ClientGone => "client_gone",
        ClientProtocol => "client_protocol",
        ServerGone => "server_gone",
        StartupTimeout => "startup_timeout",
        IdleTimeout => "idle_timeout",
        Shutdown => "shutdown",
    }
}

label_values! {
    /// The `reason` label of [`CONNECTIONS_REJECTED_TOTAL`].
    RejectReason {
        TooManyClients => "too_many_clients",
        UpstreamUnreachable => "upstream_unreachable",
    }
}

/// Errors from installing the recorder.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The builder refused its settings, or another global recorder is
    /// already installed in this process.
    #[error("cannot install the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
}

/// The handle of the recorder this process installed, if any. A mutex rather
/// than a `OnceLock` because installing can fail and must then be retryable.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Install the global Prometheus recorder and describe every metric.
///
/// Idempotent: later calls return a clone of the first handle, so several
/// proxies in one test process share one registry. The caller must run
/// [`PrometheusHandle::run_upkeep`] periodically; [`crate::http::serve`] does.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(STATEMENT_DURATION_SECONDS.to_owned()),
            STATEMENT_DURATION_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    register_label_sets();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Attach a help line and unit to every metric.
pub fn describe() {
    describe_gauge!(
        CLIENT_CONNECTIONS,
        Unit::Count,
        "Client connections currently open."
    );
    describe_counter!(
        CONNECTIONS_REJECTED_TOTAL,
        Unit::Count,
        "Client connections refused before relaying, by reason."
    );
    describe_counter!(
        SESSIONS_ENDED_TOTAL,
        Unit::Count,
        "Client sessions ended, by reason."
    );
    describe_counter!(
        STATEMENTS_TOTAL,
        Unit::Count,
        "Statements relayed, by kind."
    );
    describe_histogram!(
        STATEMENT_DURATION_SECONDS,
        Unit::Seconds,
        "Statement latency seen by the proxy, from the client's request to the server's completion, by kind."
    );
    describe_counter!(
        CLIENT_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes received from clients."
    );
    describe_counter!(
        SERVER_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes received from the upstream server."
    );
    describe_counter!(
        PARSE_FAILURES_TOTAL,
        Unit::Count,
        "Statements the SQL parser rejected (forwarded unanalyzed)."
    );
    describe_counter!(
        PARSE_CACHE_HITS_TOTAL,
        Unit::Count,
        "Statement shapes found in the fingerprint cache."
    );
    describe_counter!(
        PARSE_CACHE_MISSES_TOTAL,
        Unit::Count,
        "Statement shapes parsed because the fingerprint cache missed."
    );
    describe_counter!(
        ANALYSIS_EVENTS_TOTAL,
        Unit::Count,
        "Events queued for analysis."
    );
    describe_counter!(
        ANALYSIS_DROPPED_TOTAL,
        Unit::Count,
        "Analysis events dropped because the queue was full."
    );
    describe_counter!(
        STATS_FLUSH_BATCHES_TOTAL,
        Unit::Count,
        "Batches of aggregated statistics written to the database."
    );
    describe_counter!(
        STATS_FLUSH_FAILURES_TOTAL,
        Unit::Count,
        "Statistics flushes that failed."
    );
    describe_counter!(
        STATS_ROWS_DROPPED_TOTAL,
        Unit::Count,
        "Statistics rows lost because the database stayed unreachable past the memory bound."
    );
    describe_gauge!(
        TENANTS_TRACKED,
        Unit::Count,
        "Distinct tenants held in the statistics."
    );
    describe_gauge!(
        UPSTREAM_UP,
        Unit::Count,
        "1 when the upstream PostgreSQL server is reachable, else 0."
    );
    describe_counter!(
        INDEXES_CREATED_TOTAL,
        Unit::Count,
        "Indexes IndexPilot built."
    );
    describe_counter!(
        INDEXES_REVERTED_TOTAL,
        Unit::Count,
        "Indexes dropped after verification found no significant gain or a regression."
    );
    describe_counter!(
        INDEXES_DROPPED_TOTAL,
        Unit::Count,
        "Indexes IndexPilot created and dropped for being unused."
    );
    describe_counter!(
        INDEX_BUILDS_FAILED_TOTAL,
        Unit::Count,
        "Index builds that failed, by reason; none leaves an INVALID index behind."
    );
    describe_gauge!(
        RECOMMENDATIONS_PENDING,
        Unit::Count,
        "Worthwhile indexes not built yet (advise mode, build window or budget)."
    );
    describe_gauge!(
        LAST_DECISION_TIMESTAMP_SECONDS,
        Unit::Seconds,
        "Unix time of the indexer leader's last decision round."
    );
    describe_gauge!(
        TENANTS_ACTIVE,
        Unit::Count,
        "Tenants with filter traffic within the remembered windows (indexer leader)."
    );
    describe_gauge!(
        FIELDS_EXPRESSED,
        Unit::Count,
        "Tenant x field expressions enabled, per table (indexer leader)."
    );
    describe_gauge!(
        INDEXER_LEADER,
        Unit::Count,
        "1 while this replica is the indexer leader, else 0."
    );
}

/// Why an index build failed (bounded label values).
pub const BUILD_FAILURE_REASONS: &[&str] = &[
    "lock_timeout",
    "canceled",
    "left_invalid",
    "build_failed",
    "postgres",
];

/// Export every counter (each label set too) at zero from the start, so
/// `rate()` and alerts see a series before its first event.
fn register_label_sets() {
    for name in [
        CLIENT_BYTES_TOTAL,
        SERVER_BYTES_TOTAL,
        PARSE_FAILURES_TOTAL,
        PARSE_CACHE_HITS_TOTAL,
        PARSE_CACHE_MISSES_TOTAL,
        ANALYSIS_EVENTS_TOTAL,
        ANALYSIS_DROPPED_TOTAL,
        STATS_FLUSH_BATCHES_TOTAL,
        STATS_FLUSH_FAILURES_TOTAL,
        STATS_ROWS_DROPPED_TOTAL,
        INDEXES_CREATED_TOTAL,
        INDEXES_REVERTED_TOTAL,
        INDEXES_DROPPED_TOTAL,
    ] {
        counter!(name).increment(0);
    }
    for reason in BUILD_FAILURE_REASONS {
        counter!(INDEX_BUILDS_FAILED_TOTAL, LABEL_REASON => *reason).increment(0);
    }
    for name in [
        RECOMMENDATIONS_PENDING,
        LAST_DECISION_TIMESTAMP_SECONDS,
        INDEXER_LEADER,
        TENANTS_ACTIVE,
    ] {
        gauge!(name).set(0.0);
    }
    for kind in StatementKind::ALL {
        counter!(STATEMENTS_TOTAL, LABEL_KIND => kind.as_str()).increment(0);
    }
    for reason in EndReason::ALL {
        counter!(SESSIONS_ENDED_TOTAL, LABEL_REASON => reason.as_str()).increment(0);
    }
    for reason in RejectReason::ALL {
        counter!(CONNECTIONS_REJECTED_TOTAL, LABEL_REASON => reason.as_str()).increment(0);
    }
}

/// Increments a gauge now and decrements it when dropped, on every exit path.
#[must_use = "the gauge is decremented as soon as the guard is dropped"]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }

    /// Counts one open client connection in [`CLIENT_CONNECTIONS`].
    pub fn client_connection() -> Self {
        Self::new(gauge!(CLIENT_CONNECTIONS))
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use ::metrics::histogram;

    use super::*;

    const NAMES: &[&str] = &[
        CLIENT_CONNECTIONS,
        CONNECTIONS_REJECTED_TOTAL,
        SESSIONS_ENDED_TOTAL,
        STATEMENTS_TOTAL,
        STATEMENT_DURATION_SECONDS,
        CLIENT_BYTES_TOTAL,
        SERVER_BYTES_TOTAL,
        PARSE_FAILURES_TOTAL,
        PARSE_CACHE_HITS_TOTAL,
        PARSE_CACHE_MISSES_TOTAL,
        ANALYSIS_EVENTS_TOTAL,
        ANALYSIS_DROPPED_TOTAL,
        STATS_FLUSH_BATCHES_TOTAL,
        STATS_FLUSH_FAILURES_TOTAL,
        STATS_ROWS_DROPPED_TOTAL,
        TENANTS_TRACKED,
        UPSTREAM_UP,
        INDEXES_CREATED_TOTAL,
        INDEXES_REVERTED_TOTAL,
        INDEXES_DROPPED_TOTAL,
        INDEX_BUILDS_FAILED_TOTAL,
        RECOMMENDATIONS_PENDING,
        LAST_DECISION_TIMESTAMP_SECONDS,
        INDEXER_LEADER,
        TENANTS_ACTIVE,
        FIELDS_EXPRESSED,
    ];

    fn valid_label(value: &str) -> bool {
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }

    #[test]
    fn names_are_prefixed_unique_and_well_formed() {
        let unique: HashSet<_> = NAMES.iter().collect();
        assert_eq!(unique.len(), NAMES.len());
        for name in NAMES {
            let rest = name.strip_prefix("indexpilot_").expect(name);
            assert!(valid_label(rest), "{name}");
        }
    }

    #[test]
    fn label_values_are_bounded_and_distinct() {
        let sets: [Vec<&str>; 3] = [
            StatementKind::ALL.iter().map(|k| k.as_str()).collect(),
            EndReason::ALL.iter().map(|r| r.as_str()).collect(),
            RejectReason::ALL.iter().map(|r| r.as_str()).collect(),
        ];
        for set in sets {
            assert_eq!(set.iter().collect::<HashSet<_>>().len(), set.len());
            assert!(set.iter().all(|v| valid_label(v)), "{set:?}");
        }
    }

    #[test]
    fn buckets_ascend_from_50us_to_30s() {
        assert!(STATEMENT_DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(STATEMENT_DURATION_BUCKETS.first(), Some(&0.000_05));
        assert_eq!(STATEMENT_DURATION_BUCKETS.last(), Some(&30.0));
    }

    #[test]
    fn install_is_idempotent_and_renders_described_metrics() {
        let first = install().unwrap();
        let second = install().unwrap();
        counter!(STATS_FLUSH_BATCHES_TOTAL).increment(2);
        histogram!(STATEMENT_DURATION_SECONDS, LABEL_KIND => StatementKind::Select.as_str())
            .record(0.003);
        let text = second.render();
        assert!(text.contains("# HELP indexpilot_stats_flush_batches_total Batches"));
        assert!(text.contains("indexpilot_stats_flush_batches_total "));
        assert!(text
            .contains(r#"indexpilot_statement_duration_seconds_bucket{kind="select",le="0.005"}"#));
        assert!(text.contains(r#"indexpilot_sessions_ended_total{reason="idle_timeout"}"#));
        assert!(first
            .render()
            .contains("indexpilot_stats_flush_batches_total"));
    }

    #[test]
    fn gauge_guard_decrements_on_drop() {
        let handle = install().unwrap();
        let value = || {
            let text = handle.render();
            text.lines()
                .find_map(|l| l.strip_prefix("indexpilot_test_guard "))
                .map(|v| v.parse::<f64>().unwrap())
        };
        // A name of its own: other tests in this process move the real gauges.
        let guard = GaugeGuard::new(gauge!("indexpilot_test_guard"));
        assert_eq!(value(), Some(1.0));
        drop(guard);
        assert_eq!(value(), Some(0.0));
    }
}
