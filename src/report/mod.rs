//! The before/after report (issue 6): `report.md`, `report.json` and a
//! latency chart `latency.svg`, from a [`Report`] the demo (or `indexpilot
//! report`, from IndexPilot's tables) fills in.

pub mod render;

use serde::Serialize;

/// Latency of some set of queries, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub queries: u64,
    /// Queries per second over the measured time.
    pub throughput: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One query class (email lookup, industry filter, writes, ...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassLatency {
    pub class: String,
    /// Filtered reads are what indexes can help.
    pub filtered: bool,
    pub write: bool,
    #[serde(flatten)]
    pub latency: Latency,
}

/// One phase (baseline: indexing off; auto: IndexPilot in apply mode).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    /// Medians over the trials, all queries.
    #[serde(flatten)]
    pub overall: Latency,
    pub classes: Vec<ClassLatency>,
    /// The filtered reads together.
    pub filtered: Latency,
    /// Writes per second.
    pub write_throughput: f64,
    pub trials: u32,
    /// (seconds since the phase started, p95 ms over that second) for the
    /// chart, from one trial.
    pub timeline: Vec<(f64, f64)>,
}

/// An index IndexPilot created, kept, reverted or dropped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IndexEvent {
    pub table: String,
    pub columns: Vec<String>,
    pub tenant: Option<String>,
    /// create, keep, revert, drop, advise.
    pub action: String,
    /// Seconds since the auto phase started.
    pub at_s: f64,
    pub index_name: Option<String>,
    pub reason: String,
    pub evidence: serde_json::Value,
}

/// Which fields each tenant expresses (from the expression profiles).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantExpression {
    pub tenant: String,
    pub fields: Vec<String>,
}

/// Everything the report shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub scenario: serde_json::Value,
    pub baseline: Phase,
    pub auto: Phase,
    pub indexes: Vec<IndexEvent>,
    pub expression: Vec<TenantExpression>,
    /// The configuration the proxy ran with (key = value).
    pub config: Vec<(String, String)>,
    /// baseline / auto, for p50, p95, p99 and mean of the filtered reads.
    pub improvement: serde_json::Value,
    pub notes: Vec<String>,
}
