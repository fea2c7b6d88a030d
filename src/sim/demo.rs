//! `indexpilot demo`: a throwaway PostgreSQL, the CRM seeded, the proxy
//! in-process, a baseline phase (indexing off) and an auto phase
//! (`mode = apply`) running the same query sequences after the same
//! warm-up, a drift phase, and the report, built from IndexPilot's tables
//! exactly as `indexpilot report` builds it. Everything is cleaned up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio_postgres::NoTls;

use super::phase::{self, Runner, Timeline};
use super::progress::Bar;
use super::seed;
use super::Scenario;
use crate::config::Config;
use crate::pg::{PgOptions, TestPg};
use crate::proxy::Proxy;
use crate::report::collect::{self, Mode, Run};
use crate::report::{self, Report};
use crate::shutdown::Shutdown;

/// The proxy settings of the auto phase: IndexPilot's defaults, except
/// what a few-minute demo needs to see a whole lifecycle.
pub const AUTO_SETTINGS: &[(&str, &str)] = &[
    ("indexer.mode", "apply"),
    ("indexer.interval", "1s"),
    ("indexer.verify_window", "10s"),
    ("indexer.unused_after", "20s"),
    ("stats.window", "5s"),
    ("stats.flush_interval", "1s"),
    ("metrics_listen", "off"),
];

/// The baseline phase's proxy: the same proxy path, indexing off.
const BASELINE_SETTINGS: &[(&str, &str)] = &[("indexer.mode", "off"), ("metrics_listen", "off")];

/// IndexPilot's schema in the throwaway database.
const SCHEMA: &str = "indexpilot";

/// How long learning and the drift may last: 75 s, plus time for the
/// builds of a big scenario (about 20 s per 10M rows, one at a time).
fn limit(s: &Scenario) -> Duration {
    Duration::from_secs(75 + s.contacts / 50_000)
}

/// The throwaway server's settings: PostgreSQL's default durability, as
/// in production (the test harness turns it off for speed; here every
/// commit is flushed, so write throughput is what an application would
/// see), more shared buffers than the default 128MB, and room for WAL
/// between checkpoints. The default `max_wal_size` (1GB) suits a small
/// database: at the `large` scenario's write rate it forces a checkpoint
/// every few seconds, PostgreSQL logs "checkpoints are occurring too
/// frequently" and advises raising it, and each forced checkpoint makes
/// the next change to every index page log the whole page again. Both
/// phases run with it; the report counts the checkpoints either way.
/// `track_wal_io_timing` lets the report give the disk's flush time, which
/// bounds every durable commit (the cost is a clock read per WAL write).
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "256MB"),
    ("max_wal_size", "8GB"),
    ("track_wal_io_timing", "on"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
];

/// [`SERVER_SETTINGS`] with `overrides` applied (a later key wins).
fn server_settings(overrides: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SERVER_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in overrides {
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    out
}

/// Run the whole demo and write the report into `out`; `server` overrides
/// settings of the throwaway PostgreSQL. Interrupted (Ctrl-C, SIGTERM), it
/// still stops and removes its PostgreSQL.
pub async fn demo(
    scenario: Scenario,
    out: PathBuf,
    server: Vec<(String, String)>,
) -> anyhow::Result<Report> {
    let server = server_settings(server);
    let settings = server.clone();
    let pg = tokio::task::spawn_blocking(move || {
        TestPg::start(PgOptions {
            settings,
            ..PgOptions::default()
        })
    })
    .await?
    .context("starting a throwaway PostgreSQL")?;
    let result = tokio::select! {
        result = run(&pg, scenario, out, &server) => result,
        signal = interrupted() => Err(anyhow::anyhow!(
            "{signal}: stopped; the throwaway PostgreSQL is stopped and removed"
        )),
    };
    drop(pg);
    result
}

/// Resolves on the first SIGINT or SIGTERM, with its name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn run(
    pg: &TestPg,
    scenario: Scenario,
    out: PathBuf,
    server: &[(String, String)],
) -> anyhow::Result<Report> {
    let dsn = pg.url();
    if let Some(log) = pg.log_path() {
        eprintln!(
            "demo: throwaway PostgreSQL on port {} (log: {}; removed at the end)",
            pg.port(),
            log.display()
        );
    }
    let (mut client, conn) = tokio_postgres::connect(&dsn, NoTls).await?;
    tokio::spawn(conn);
    let _ = client
        .batch_execute("create extension if not exists hypopg")
        .await;
    crate::store::migrate(&mut client, SCHEMA).await?;
    eprintln!(
        "demo: scenario {} — {} tenants, {} contacts, {} queries per run, {} clients, {} trials",
        scenario.name,
        scenario.tenants,
        scenario.contacts,
        scenario.queries,
        scenario.concurrency,
        scenario.trials
    );
    let mut bar = Bar::new("seeding", 1);
    let seeded = seed::seed(&client, &scenario, &mut |done, total| bar.set(done, total)).await?;
    bar.finish();
    eprintln!("demo: seeded in {:.0} s", seeded.seconds);
    let upstream = format!("postgres://{}:{}", pg.host(), pg.port());
    let scenario_json = serde_json::to_value(&scenario)?;

    let proxy = InProcess::start(&upstream, BASELINE_SETTINGS).await?;
    let runner = Runner {
        conninfo: proxy.conninfo(pg),
        data: &client,
        admin: &client,
        schema: SCHEMA.to_string(),
        seeded: &seeded,
        scenario: &scenario,
        learn_limit: limit(&scenario),
        drift_limit: limit(&scenario),
        min_learn: Duration::from_secs(15 + scenario.contacts / 1_000_000),
        timeline: Timeline::start(),
        no_checkpoint: Default::default(),
    };
    let started = SystemTime::now();
    let baseline = runner.measure("baseline").await?;
    proxy.stop().await;
    collect::record(
        &client,
        SCHEMA,
        &Run {
            mode: Mode::Baseline,
            started,
            scenario: scenario_json.clone(),
            phase: baseline,
            config: with_server(pairs(BASELINE_SETTINGS), server),
            notes: notes(&scenario),
        },
    )
    .await?;

    let mut settings: Vec<(&str, &str)> = AUTO_SETTINGS.to_vec();
    settings.push(("admin.dsn", &dsn));
    let proxy = InProcess::start(&upstream, &settings).await?;
    let started = SystemTime::now();
    let runner = Runner {
        conninfo: proxy.conninfo(pg),
        timeline: Timeline::start(),
        ..runner
    };
    let learned = runner.learn().await?;
    let mut auto = runner.measure("auto").await?;
    let drifted = runner.drift().await?;
    // The auto line covers learning, measuring and the drift.
    auto.timeline = runner.timeline.points();
    proxy.stop().await;
    // Counted once the proxy has stopped: a round in flight when the drift
    // ended may have recorded more.
    let (builds, _) = runner.builds().await?;
    let undone = runner.undone().await?;
    let mut notes = vec![format!(
        "The indexer settled after {:.0} s of traffic with {} build(s); the drift phase ran \
         {:.0} s; {builds} build(s) and {undone} revert(s) or drop(s) were recorded in all.",
        learned.seconds, learned.builds, drifted.seconds
    )];
    notes.extend(learned.warning());
    collect::record(
        &client,
        SCHEMA,
        &Run {
            mode: Mode::Auto,
            started,
            scenario: scenario_json,
            phase: auto,
            config: with_server(pairs(AUTO_SETTINGS), server),
            notes,
        },
    )
    .await?;

    let report = collect::collect(&client, SCHEMA).await?;
    let files = report::render::write_all(&report, &out)?;
    println!("{}", summary(&report));
    for f in files {
        println!("  wrote {}", f.display());
    }
    Ok(report)
}

/// The proxy's settings followed by the server's, as `postgresql.<key>`.
fn with_server(
    mut config: Vec<(String, String)>,
    server: &[(String, String)],
) -> Vec<(String, String)> {
    config.extend(
        server
            .iter()
            .map(|(k, v)| (format!("postgresql.{k}"), v.clone())),
    );
    config
}

fn pairs(settings: &[(&str, &str)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A proxy running in this process.
struct InProcess {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(upstream: &str, extra: &[(&str, &str)]) -> anyhow::Result<InProcess> {
        let mut pairs = vec![("listen", "127.0.0.1:0"), ("upstream", upstream)];
        pairs.extend_from_slice(extra);
        let config = Arc::new(Config::from_overrides(&pairs)?);
        let proxy = Proxy::bind(config).await?;
        let addr = proxy.local_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(proxy.run(shutdown.clone()));
        Ok(InProcess {
            addr,
            shutdown,
            task,
        })
    }

    fn conninfo(&self, pg: &TestPg) -> String {
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname={}",
            self.addr.port(),
            pg.user(),
            pg.password(),
            pg.dbname()
        )
    }

    async fn stop(self) {
        self.shutdown.now();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

fn notes(s: &Scenario) -> Vec<String> {
    vec![
        format!(
            "Both phases ran the same {} seeded query sequences (seed {}) against the same data, \
             after the same {}-query warm-up; figures are medians over the trials.",
            s.trials, s.seed, s.warmup
        ),
        "Baseline: the proxy with indexing off. Auto: IndexPilot in apply mode after it had \
         settled (every build verified); the drift phase then moved the hot field."
            .to_string(),
        format!(
            "Write throughput comes from write-only runs ({} INSERT/UPDATE statements per trial, \
             same clients), so faster reads cannot inflate it. The spike ran {}× the clients \
             at once after the trials.",
            phase::write_queries(s),
            super::phase::SPIKE_FACTOR
        ),
        "Rows inserted by the workload were deleted after every run.".to_string(),
    ]
}

/// The few lines printed at the end.
pub fn summary(r: &Report) -> String {
    let (b, a) = (&r.baseline, &r.auto);
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let created = r.indexes.iter().filter(|i| i.action == "create").count();
    let undone = r
        .indexes
        .iter()
        .filter(|i| i.action == "revert" || i.action == "drop")
        .count();
    let bytes: i64 = r.index_sizes.iter().map(|i| i.bytes).sum();
    let mut lines = vec![
        String::new(),
        format!(
            "filtered queries: p95 {:.2} ms -> {:.2} ms ({:.1}x), p50 {:.2} -> {:.2} ms, mean {:.2} -> {:.2} ms",
            b.filtered.p95_ms,
            a.filtered.p95_ms,
            ratio(b.filtered.p95_ms, a.filtered.p95_ms),
            b.filtered.p50_ms,
            a.filtered.p50_ms,
            b.filtered.mean_ms,
            a.filtered.mean_ms,
        ),
        format!(
            "writes/s (write-only runs): {:.0} -> {:.0} ({:+.1}%)",
            b.write_throughput,
            a.write_throughput,
            (ratio(a.write_throughput, b.write_throughput) - 1.0) * 100.0
        ),
    ];
    if let (Some(bs), Some(as_)) = (&b.server, &a.server) {
        lines.push(format!(
            "WAL per write: {:.1} -> {:.1} KiB; checkpoints requested during the runs: {} -> {}",
            bs.wal_bytes_per_write / 1024.0,
            as_.wal_bytes_per_write / 1024.0,
            bs.checkpoints_requested,
            as_.checkpoints_requested
        ));
        if let (Some(fb), Some(fa)) = (bs.wal_sync_ms, as_.wal_sync_ms) {
            lines.push(format!(
                "WAL flush (every commit waits for one): {fb:.3} -> {fa:.3} ms"
            ));
        }
    }
    if let (Some(bs), Some(as_)) = (&b.spike, &a.spike) {
        lines.push(format!(
            "spike ({} clients): filtered p95 {:.2} -> {:.2} ms, errors {} -> {}",
            as_.clients, bs.filtered.p95_ms, as_.filtered.p95_ms, bs.errors, as_.errors
        ));
    }
    lines.push(format!(
        "indexes: {created} created, {undone} reverted or dropped; {} in place, {:.1} MiB",
        r.index_sizes.len(),
        bytes as f64 / (1024.0 * 1024.0)
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_settings_are_durable_unless_overridden() {
        let s = server_settings(vec![]);
        assert!(s.contains(&("fsync".into(), "on".into())));
        assert!(s.contains(&("synchronous_commit".into(), "on".into())));
        let s = server_settings(vec![
            ("fsync".into(), "off".into()),
            ("work_mem".into(), "64MB".into()),
        ]);
        let fsync: Vec<_> = s.iter().filter(|(k, _)| k == "fsync").collect();
        assert_eq!(fsync, [&("fsync".to_string(), "off".to_string())]);
        assert!(s.contains(&("work_mem".into(), "64MB".into())));
        assert!(s.contains(&("shared_buffers".into(), "256MB".into())));
        assert!(s.contains(&("max_wal_size".into(), "8GB".into())));
        assert!(s.contains(&("track_wal_io_timing".into(), "on".into())));
    }
}
