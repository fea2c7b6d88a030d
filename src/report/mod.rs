//! The before/after report (issue 6): `report.md`, `report.json` and a
//! latency chart `latency.svg`, from a [`Report`] that [`collect`] builds
//! from IndexPilot's tables: the simulation runs the demo and `indexpilot
//! simulate` record, the lineage log, the expression profiles and the
//! indexes themselves.

pub mod collect;
pub mod render;

use serde::{Deserialize, Serialize};

/// Latency of some set of queries, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassLatency {
    pub class: String,
    /// Filtered reads are what indexes can help.
    pub filtered: bool,
    pub write: bool,
    #[serde(flatten)]
    pub latency: Latency,
}

/// One phase (baseline: indexing off; auto: IndexPilot in apply mode).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// Medians over the trials, all queries.
    #[serde(flatten)]
    pub overall: Latency,
    pub classes: Vec<ClassLatency>,
    /// The filtered reads together.
    pub filtered: Latency,
    /// Writes per second in the write-only runs (the closed-loop mix would
    /// credit faster reads to the writes).
    pub write_throughput: f64,
    /// The write-only runs (medians).
    #[serde(default)]
    pub writes: Latency,
    /// Writes per second of each write-only run, in order (the spread
    /// behind the median).
    #[serde(default)]
    pub write_runs: Vec<f64>,
    /// Failed queries, median over the trials.
    #[serde(default)]
    pub errors: u64,
    /// The traffic spike: many more clients at once, after the trials.
    #[serde(default)]
    pub spike: Option<Spike>,
    /// What the server wrote meanwhile: WAL per write, checkpoints. None
    /// when the server would not say (reports of older runs, too).
    #[serde(default)]
    pub server: Option<ServerWrites>,
    pub trials: u32,
    /// (seconds since the phase started, p95 ms over that second) for the
    /// chart, over the whole phase (for auto: learning to the end of the
    /// drift, on the same clock as the index events).
    pub timeline: Vec<(f64, f64)>,
}

/// A burst of clients: does latency hold, does anything fail?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    pub clients: u32,
    pub overall: Latency,
    pub filtered: Latency,
    pub errors: u64,
}

/// The server's side of a phase's writes: what each write cost in WAL
/// and how often the server checkpointed. After a checkpoint the first
/// change to each page logs the whole page, so every extra index leaf a
/// write touches costs 8 KiB more WAL until the page is touched again:
/// checkpoints forced by WAL volume (`max_wal_size`) make index upkeep
/// dearer, and this is where a report shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerWrites {
    /// WAL bytes per statement of the write-only runs, over all of them
    /// (cleanup of the inserted rows excluded).
    pub wal_bytes_per_write: f64,
    /// Checkpoints begun from the end of the warm-up to the end of the
    /// spike because `checkpoint_timeout` had passed ...
    pub checkpoints_timed: i64,
    /// ... and because they were requested: WAL past `max_wal_size`, or
    /// someone's CHECKPOINT.
    pub checkpoints_requested: i64,
    /// Mean time of one WAL flush to disk (`pg_stat_wal`) during the
    /// write-only runs, in ms. Every commit waits for one (`synchronous_commit
    /// = on`), alone or grouped with others', so the disk's flush latency
    /// is part of every write figure. Server-wide: every commit in those
    /// seconds counts, IndexPilot's own included. None when the server does
    /// not time it (`track_wal_io_timing = off`, PostgreSQL before 14).
    #[serde(default)]
    pub wal_sync_ms: Option<f64>,
    /// WAL flushes per write-only statement: below 1 when commits share a
    /// flush (group commit).
    #[serde(default)]
    pub wal_syncs_per_write: Option<f64>,
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

/// An index of IndexPilot's that exists when the report is made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IndexSize {
    pub index_name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub tenant: Option<String>,
    pub bytes: i64,
}

/// Everything the report shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub scenario: serde_json::Value,
    pub baseline: Phase,
    pub auto: Phase,
    pub indexes: Vec<IndexEvent>,
    /// IndexPilot's indexes as they are now, with their size.
    pub index_sizes: Vec<IndexSize>,
    pub expression: Vec<TenantExpression>,
    /// The configuration the proxy ran with (key = value).
    pub config: Vec<(String, String)>,
    /// baseline / auto, for p50, p95, p99 and mean of the filtered reads.
    pub improvement: serde_json::Value,
    pub notes: Vec<String>,
}
