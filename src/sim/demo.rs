//! `indexpilot demo`: a throwaway PostgreSQL, the CRM seeded, the proxy
//! in-process, a baseline phase (indexing off) and an auto phase
//! (`mode = apply`) running the same query sequences after the same
//! warm-up, a drift phase, and the report. Everything is cleaned up.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use super::seed::{self, Seeded};
use super::workload::{self, Mix, Sample};
use super::Scenario;
use crate::config::Config;
use crate::pg::{PgOptions, TestPg};
use crate::proxy::Proxy;
use crate::report::{self, ClassLatency, IndexEvent, Latency, Phase, Report, TenantExpression};
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

/// How long the auto phase may learn, and the drift phase run, at most.
const LEARN_LIMIT: Duration = Duration::from_secs(75);
const DRIFT_LIMIT: Duration = Duration::from_secs(60);
/// Learning (and drift, when nothing was built) lasts at least this long.
const MIN_LEARN: Duration = Duration::from_secs(15);

/// Run the whole demo and write the report into `out`.
pub async fn demo(scenario: Scenario, out: PathBuf) -> anyhow::Result<Report> {
    let pg = tokio::task::spawn_blocking(|| {
        TestPg::start(PgOptions {
            settings: vec![("shared_buffers".into(), "256MB".into())],
            ..PgOptions::default()
        })
    })
    .await?
    .context("starting a throwaway PostgreSQL")?;
    let dsn = pg.url();
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await?;
    tokio::spawn(conn);
    let _ = client
        .batch_execute("create extension if not exists hypopg")
        .await;
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
    let upstream = format!("postgres://{}:{}", pg.host(), pg.port());

    let baseline = {
        let proxy = InProcess::start(
            &upstream,
            &[("indexer.mode", "off"), ("metrics_listen", "off")],
        )
        .await?;
        let phase = measure(
            "baseline",
            &proxy.conninfo(&pg),
            &client,
            &seeded,
            &scenario,
        )
        .await?;
        proxy.stop().await;
        phase
    };

    let mut settings: Vec<(&str, &str)> = AUTO_SETTINGS.to_vec();
    settings.push(("admin.dsn", &dsn));
    let proxy = InProcess::start(&upstream, &settings).await?;
    let conninfo = proxy.conninfo(&pg);
    let auto_started = std::time::SystemTime::now();
    learn(&conninfo, &client, &seeded, &scenario).await?;
    let auto = measure("auto", &conninfo, &client, &seeded, &scenario).await?;
    drift(&conninfo, &client, &seeded, &scenario).await?;
    proxy.stop().await;

    let indexes = index_events(&client, auto_started).await?;
    let expression = expressions(&client).await?;
    let report = Report {
        scenario: serde_json::to_value(&scenario)?,
        improvement: improvement(&baseline, &auto),
        baseline,
        auto,
        indexes,
        expression,
        config: settings
            .iter()
            .filter(|(k, _)| *k != "admin.dsn")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        notes: notes(&scenario),
    };
    let files = report::render::write_all(&report, &out)?;
    println!("{}", summary(&report));
    for f in files {
        println!("  wrote {}", f.display());
    }
    drop(client);
    drop(pg);
    Ok(report)
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
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Warm-up, then `trials` measured runs of the scenario's sequences; the
/// rows the workload inserted are removed after each run.
async fn measure(
    name: &str,
    conninfo: &str,
    admin: &Client,
    seeded: &Seeded,
    s: &Scenario,
) -> anyhow::Result<Phase> {
    run_batch(
        Some(&format!("{name}: warm-up")),
        conninfo,
        admin,
        seeded,
        s,
        s.warmup,
        s.seed,
        Mix::Normal,
    )
    .await?;
    let mut runs = Vec::new();
    for trial in 0..s.trials {
        let label = format!("{name}: trial {}/{}", trial + 1, s.trials);
        let samples = run_batch(
            Some(&label),
            conninfo,
            admin,
            seeded,
            s,
            s.queries,
            workload::trial_seed(s, trial),
            Mix::Normal,
        )
        .await?;
        runs.push(samples);
    }
    Ok(median_phase(name, &runs, s.trials))
}

#[allow(clippy::too_many_arguments)]
async fn run_batch(
    label: Option<&str>,
    conninfo: &str,
    admin: &Client,
    seeded: &Seeded,
    s: &Scenario,
    n: u64,
    seed: u64,
    mix: Mix,
) -> anyhow::Result<Vec<Sample>> {
    let queries = Arc::new(workload::sequence(seeded, n, seed, mix));
    let bar = Arc::new(std::sync::Mutex::new(Bar::new(label.unwrap_or(""), n)));
    let show = label.is_some();
    let progress_bar = bar.clone();
    let progress = Arc::new(move |done: u64| {
        if !show {
            return;
        }
        if let Ok(mut b) = progress_bar.lock() {
            b.set(done, n);
        }
    });
    let samples = workload::run(conninfo, queries, s.concurrency, progress).await?;
    if let (true, Ok(mut b)) = (show, bar.lock()) {
        b.finish();
    }
    admin
        .execute(
            "delete from interactions where id >= $1",
            &[&(workload::first_inserted_id(seeded) as i64)],
        )
        .await?;
    Ok(samples)
}

/// Per-figure medians over the runs.
fn median_phase(name: &str, runs: &[Vec<Sample>], trials: u32) -> Phase {
    let summaries: Vec<_> = runs.iter().map(|r| workload::summarize(r)).collect();
    let med = |f: &dyn Fn(&Latency) -> f64, pick: &dyn Fn(usize) -> Option<Latency>| {
        let mut v: Vec<f64> = (0..summaries.len())
            .filter_map(pick)
            .map(|l| f(&l))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let combine = |pick: &dyn Fn(usize) -> Option<Latency>| Latency {
        queries: med(&|l| l.queries as f64, pick) as u64,
        throughput: med(&|l| l.throughput, pick),
        mean_ms: med(&|l| l.mean_ms, pick),
        p50_ms: med(&|l| l.p50_ms, pick),
        p95_ms: med(&|l| l.p95_ms, pick),
        p99_ms: med(&|l| l.p99_ms, pick),
    };
    let overall = combine(&|i| Some(summaries[i].0.clone()));
    let filtered = combine(&|i| Some(summaries[i].2.clone()));
    let classes = summaries
        .first()
        .map(|s| s.1.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c: ClassLatency| {
            let name = c.class.clone();
            let latency = combine(&|i| {
                summaries[i]
                    .1
                    .iter()
                    .find(|x| x.class == name)
                    .map(|x| x.latency.clone())
            });
            ClassLatency { latency, ..c }
        })
        .collect();
    let mut writes: Vec<f64> = summaries.iter().map(|s| s.3).collect();
    writes.sort_by(f64::total_cmp);
    Phase {
        name: name.to_string(),
        overall,
        classes,
        filtered,
        write_throughput: writes.get(writes.len() / 2).copied().unwrap_or(0.0),
        trials,
        timeline: runs
            .first()
            .map(|r| workload::timeline(r, 0.0))
            .unwrap_or_default(),
    }
}

/// Traffic until the indexer has settled: every build verified and no new
/// build for two batches in a row (or the time limit).
async fn learn(
    conninfo: &str,
    admin: &Client,
    seeded: &Seeded,
    s: &Scenario,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut quiet = 0;
    let mut builds = 0;
    let mut batch = 0;
    while started.elapsed() < LEARN_LIMIT {
        batch += 1;
        run_batch(
            None,
            conninfo,
            admin,
            seeded,
            s,
            s.warmup.max(200),
            s.seed ^ batch,
            Mix::Normal,
        )
        .await?;
        let (now_builds, unverified) = build_state(admin).await?;
        // Settled: nothing new and nothing being verified, after at least
        // MIN_LEARN (the indexer needs calls and rounds to start with).
        let calm = now_builds == builds && unverified == 0;
        quiet = if calm && (now_builds > 0 || started.elapsed() >= MIN_LEARN) {
            quiet + 1
        } else {
            0
        };
        builds = now_builds;
        status(&format!(
            "auto: learning {:>3.0} s, {builds} build(s), {unverified} being verified",
            started.elapsed().as_secs_f64()
        ));
        if quiet >= 2 {
            break;
        }
    }
    eprintln!();
    eprintln!(
        "demo: indexer settled after {:.0} s with {builds} build(s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// (builds so far, builds without keep/revert yet).
async fn build_state(admin: &Client) -> anyhow::Result<(i64, i64)> {
    let row = admin
        .query_one(
            "select count(*), count(*) filter (where not exists (
                 select 1 from indexpilot.mutation_log r where r.parent_id = c.id
                    and r.kind in ('keep', 'revert', 'drop')))
               from indexpilot.mutation_log c where c.kind = 'create' and c.outcome = 'built'",
            &[],
        )
        .await;
    Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or((0, 0)))
}

/// The hot field moves; run until an index is reverted or dropped and a
/// new one is built (or the time limit).
async fn drift(
    conninfo: &str,
    admin: &Client,
    seeded: &Seeded,
    s: &Scenario,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (builds_before, _) = build_state(admin).await?;
    let mut batch = 0u64;
    while started.elapsed() < DRIFT_LIMIT {
        batch += 1;
        run_batch(
            None,
            conninfo,
            admin,
            seeded,
            s,
            s.warmup.max(200),
            s.seed ^ (1000 + batch),
            Mix::Drift,
        )
        .await?;
        let undone: i64 = admin
            .query_one(
                "select count(*) from indexpilot.mutation_log where kind in ('revert', 'drop')",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        let (builds, _) = build_state(admin).await?;
        status(&format!(
            "drift: {:>3.0} s, {} new build(s), {undone} reverted or dropped",
            started.elapsed().as_secs_f64(),
            builds - builds_before
        ));
        let nothing_to_drift = builds_before == 0 && started.elapsed() >= MIN_LEARN;
        if (undone > 0 && builds > builds_before) || nothing_to_drift {
            break;
        }
    }
    eprintln!();
    eprintln!(
        "demo: drift phase ran {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn index_events(
    admin: &Client,
    since: std::time::SystemTime,
) -> anyhow::Result<Vec<IndexEvent>> {
    let rows = admin
        .query(
            "select case when kind = 'advise' then 'advise: ' || outcome else kind end,
                    coalesce(table_name, ''), columns, tenant, at, index_name, reason, evidence::text
               from indexpilot.mutation_log
              where kind in ('create', 'keep', 'revert', 'drop')
                 or (kind = 'advise' and outcome <> 'recommended')
              order by id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let at: std::time::SystemTime = r.get(4);
            IndexEvent {
                action: r.get(0),
                table: r.get(1),
                columns: r.get(2),
                tenant: r.get(3),
                at_s: at
                    .duration_since(since)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                index_name: r.get(5),
                reason: r.get(6),
                evidence: serde_json::from_str(&r.get::<_, String>(7)).unwrap_or_default(),
            }
        })
        .collect())
}

async fn expressions(admin: &Client) -> anyhow::Result<Vec<TenantExpression>> {
    let rows = admin
        .query(
            "select tenant, array_agg(table_name || '.' || column_name order by table_name, column_name)
               from indexpilot.expression_profile where enabled group by tenant
              order by length(tenant), tenant",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TenantExpression {
            tenant: r.get(0),
            fields: r.get(1),
        })
        .collect())
}

fn improvement(baseline: &Phase, auto: &Phase) -> serde_json::Value {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    serde_json::json!({
        "filtered_p50": ratio(baseline.filtered.p50_ms, auto.filtered.p50_ms),
        "filtered_p95": ratio(baseline.filtered.p95_ms, auto.filtered.p95_ms),
        "filtered_p99": ratio(baseline.filtered.p99_ms, auto.filtered.p99_ms),
        "filtered_mean": ratio(baseline.filtered.mean_ms, auto.filtered.mean_ms),
        "all_p95": ratio(baseline.overall.p95_ms, auto.overall.p95_ms),
        "write_throughput": ratio(auto.write_throughput, baseline.write_throughput),
    })
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
        "Rows inserted by the workload were deleted after every run.".to_string(),
    ]
}

/// The few lines printed at the end.
pub fn summary(r: &Report) -> String {
    let b = &r.baseline.filtered;
    let a = &r.auto.filtered;
    let created = r.indexes.iter().filter(|i| i.action == "create").count();
    let undone = r
        .indexes
        .iter()
        .filter(|i| i.action == "revert" || i.action == "drop")
        .count();
    format!(
        "\nfiltered queries: p95 {:.2} ms -> {:.2} ms ({:.1}x), p50 {:.2} -> {:.2} ms, mean {:.2} -> {:.2} ms\n\
         writes/s: {:.0} -> {:.0}\n\
         indexes: {created} created, {undone} reverted or dropped",
        b.p95_ms,
        a.p95_ms,
        if a.p95_ms > 0.0 { b.p95_ms / a.p95_ms } else { 0.0 },
        b.p50_ms,
        a.p50_ms,
        b.mean_ms,
        a.mean_ms,
        r.baseline.write_throughput,
        r.auto.write_throughput,
    )
}

/// Overwrite the current stderr line.
fn status(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "\r{text:<70}");
    let _ = err.flush();
}

/// A one-line progress bar on stderr.
struct Bar {
    label: String,
    total: u64,
    last: Instant,
    shown: bool,
}

impl Bar {
    fn new(label: &str, total: u64) -> Bar {
        Bar {
            label: label.to_string(),
            total,
            last: Instant::now() - Duration::from_secs(1),
            shown: false,
        }
    }

    fn set(&mut self, done: u64, total: u64) {
        self.total = total;
        if self.last.elapsed() < Duration::from_millis(100) && done < total {
            return;
        }
        self.last = Instant::now();
        let width: usize = 30;
        let filled = if total == 0 {
            width
        } else {
            (done.min(total) as usize * width) / total as usize
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{:<28} [{}{}] {done}/{total}",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = err.flush();
        self.shown = true;
    }

    /// Show the bar full and end its line.
    fn finish(&mut self) {
        if self.shown || self.total > 0 {
            self.last = Instant::now() - Duration::from_secs(1);
            let total = self.total;
            self.set(total, total);
            eprintln!();
        }
    }
}
