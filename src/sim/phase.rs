//! The phases of a simulation, shared by `indexpilot demo` and `indexpilot
//! simulate`: a measured phase (warm-up, trials of the mixed workload and
//! of writes alone, a traffic spike; medians over the trials), learning
//! until the indexer has settled, and the drift in which the hot field
//! moves. The proxy is whatever `conninfo` points at.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::progress::{end_status, status, Bar};
use super::seed::Seeded;
use super::workload::{self, Mix, Sample};
use super::Scenario;
use crate::report::{ClassLatency, Latency, Phase, ServerWrites, Spike};
use crate::store::quote_ident;

/// Learning may go on this many times its limit while a build is under way.
const LIMIT_STRETCH: u32 = 3;

/// The spike runs this many times the scenario's clients at once.
pub const SPIKE_FACTOR: u32 = 4;

/// Runs the workload of one scenario through one proxy.
pub struct Runner<'a> {
    /// libpq-style connection string of the proxy.
    pub conninfo: String,
    /// A connection to the same database: the rows the workload inserted
    /// are removed through it after every batch.
    pub data: &'a Client,
    /// A connection that reads IndexPilot's tables, in `schema`.
    pub admin: &'a Client,
    pub schema: String,
    pub seeded: &'a Seeded,
    pub scenario: &'a Scenario,
    /// How long learning and the drift may last at most.
    pub learn_limit: Duration,
    pub drift_limit: Duration,
    /// Learning (and drift, when nothing was built) lasts at least this
    /// long: the indexer needs calls and a few rounds to start with.
    pub min_learn: Duration,
    /// p95 per second of every batch run so far, in seconds since the
    /// runner was made: the chart's line, on the same clock as the index
    /// events.
    pub timeline: Timeline,
    /// Set once CHECKPOINT was refused (see [`Runner::checkpoint`]).
    pub no_checkpoint: AtomicBool,
}

/// The p95-per-second line of everything a [`Runner`] ran.
#[derive(Debug)]
pub struct Timeline {
    origin: Instant,
    points: std::sync::Mutex<Vec<(f64, f64)>>,
}

impl Timeline {
    /// A line starting now.
    pub fn start() -> Timeline {
        Timeline {
            origin: Instant::now(),
            points: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The points so far.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.points.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// How learning or the drift ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settled {
    pub seconds: f64,
    /// Builds recorded in the lineage log so far.
    pub builds: i64,
    /// Reverts and drops recorded so far.
    pub undone: i64,
    /// Builds still running or not yet verified when it ended (the time
    /// limit): figures measured next include their work.
    pub unsettled: i64,
}

impl Settled {
    /// A warning for the report when the indexer had not settled.
    pub fn warning(&self) -> Option<String> {
        (self.unsettled > 0).then(|| {
            format!(
                "Learning ended at its time limit with {} build(s) still running or being \
                 verified: the auto figures include that work.",
                self.unsettled
            )
        })
    }
}

impl Runner<'_> {
    /// A checkpoint and the warm-up, then per trial a run of the mixed
    /// workload and a run of writes alone, then the spike; figures are
    /// medians over the trials. The server's WAL and checkpoint counters
    /// are read around the runs (see [`ServerWrites`]).
    pub async fn measure(&self, name: &str) -> anyhow::Result<Phase> {
        let s = self.scenario;
        let warm_up = format!("{name}: warm-up");
        self.checkpoint().await;
        self.batch(Some(&warm_up), s.warmup, s.seed, Mix::Normal, s.concurrency)
            .await?;
        let start = self.mark().await;
        let mut mixed = Vec::new();
        let mut writes = Vec::new();
        // What the write-only runs wrote; None once a mark could not be read.
        let mut wal = Some(Tally::EMPTY);
        for trial in 0..s.trials {
            let seed = workload::trial_seed(s, trial);
            let label = format!("{name}: trial {}/{}", trial + 1, s.trials);
            mixed.push(
                self.batch(Some(&label), s.queries, seed, Mix::Normal, s.concurrency)
                    .await?,
            );
            let label = format!("{name}: writes {}/{}", trial + 1, s.trials);
            let before = self.mark().await;
            let run = self
                .run(
                    Some(&label),
                    write_queries(s),
                    seed ^ 0x5752_4954,
                    Mix::Writes,
                    s.concurrency,
                )
                .await?;
            let after = self.mark().await;
            self.cleanup().await?;
            wal = match (wal, before, after) {
                (Some(t), Some(b), Some(a)) => Some(t.add(&b, &a, run.len() as u64)),
                _ => None,
            };
            writes.push(run);
        }
        let clients = s.concurrency * SPIKE_FACTOR;
        let label = format!("{name}: spike ({clients} clients)");
        let spike = self
            .batch(
                Some(&label),
                s.queries.div_ceil(2),
                s.seed ^ 0x5350_494B,
                Mix::Normal,
                clients,
            )
            .await?;
        let mut phase = median_phase(name, &mixed, s.trials);
        phase.timeline = self.timeline.points();
        let write_runs: Vec<Latency> = writes.iter().map(|w| workload::summarize(w).0).collect();
        phase.writes = median_latency(&write_runs);
        phase.write_runs = write_runs.iter().map(|w| w.throughput).collect();
        phase.write_throughput = phase.writes.throughput;
        let (overall, _, filtered, _) = workload::summarize(&spike);
        phase.spike = Some(Spike {
            clients,
            overall,
            filtered,
            errors: failures(&spike),
        });
        phase.server = server_writes(start, self.mark().await, wal);
        Ok(phase)
    }

    /// The server's WAL position and checkpoint counters now; None when
    /// it will not say (a standby, a server that hides them).
    async fn mark(&self) -> Option<Mark> {
        const COUNTERS: &str = "select (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8,
                                       checkpoints_timed, checkpoints_req
                                  from pg_stat_bgwriter";
        // pg_stat_wal (PostgreSQL 14+) counts and times the WAL flushes.
        const WITH_SYNCS: &str = "select (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8,
                                         checkpoints_timed, checkpoints_req,
                                         wal_sync, wal_sync_time
                                    from pg_stat_bgwriter, pg_stat_wal";
        let (row, syncs) = match self.data.query_one(WITH_SYNCS, &[]).await {
            Ok(row) => {
                let syncs = Some((row.get(3), row.get(4)));
                (row, syncs)
            }
            Err(_) => (self.data.query_one(COUNTERS, &[]).await.ok()?, None),
        };
        Some(Mark {
            wal_bytes: row.get(0),
            timed: row.get(1),
            requested: row.get(2),
            syncs,
        })
    }

    /// Write out every dirty page before a phase is measured, so that it
    /// does not pay for what came before it: the auto phase starts right
    /// after index builds that leave gigabytes of dirty buffers and WAL
    /// behind, the baseline after nothing of the kind. Once per phase, not
    /// per run: right after a checkpoint every first touch of a page logs
    /// a full-page image, a burst each run would then pay in full, index
    /// pages included. Without the privilege (superuser or
    /// `pg_checkpoint`) the phase goes on without it, said once.
    async fn checkpoint(&self) {
        if self.no_checkpoint.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.data.batch_execute("checkpoint").await {
            self.no_checkpoint.store(true, Ordering::Relaxed);
            eprintln!(
                "simulate: warning: CHECKPOINT before measured runs refused ({e}); runs may \
                 pay for the dirty pages of what ran before them"
            );
        }
    }

    /// `n` queries of `mix` (deterministic in `seed`) with `clients`
    /// clients; the rows they inserted are deleted afterwards, so every
    /// batch starts from the same data.
    pub async fn batch(
        &self,
        label: Option<&str>,
        n: u64,
        seed: u64,
        mix: Mix,
        clients: u32,
    ) -> anyhow::Result<Vec<Sample>> {
        let samples = self.run(label, n, seed, mix, clients).await?;
        self.cleanup().await?;
        Ok(samples)
    }

    /// A [`batch`](Self::batch) without the cleanup.
    async fn run(
        &self,
        label: Option<&str>,
        n: u64,
        seed: u64,
        mix: Mix,
        clients: u32,
    ) -> anyhow::Result<Vec<Sample>> {
        let queries = Arc::new(workload::sequence(self.seeded, n, seed, mix));
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
        let offset = self.timeline.origin.elapsed().as_secs_f64();
        let samples = workload::run(&self.conninfo, queries, clients, progress).await?;
        if let Ok(mut points) = self.timeline.points.lock() {
            points.extend(workload::timeline(&samples, offset));
        }
        if let (true, Ok(mut b)) = (show, bar.lock()) {
            b.finish();
        }
        Ok(samples)
    }

    /// Delete the interactions the workload inserted.
    async fn cleanup(&self) -> anyhow::Result<()> {
        self.data
            .execute(
                "delete from interactions where id >= $1",
                &[&(workload::first_inserted_id(self.seeded) as i64)],
            )
            .await?;
        Ok(())
    }

    /// Traffic until the indexer has settled: every build verified and no
    /// new build for two batches in a row (or the time limit).
    pub async fn learn(&self) -> anyhow::Result<Settled> {
        let s = self.scenario;
        let started = Instant::now();
        let mut quiet = 0;
        let mut builds = self.builds().await?.0;
        let mut batch = 0;
        // Past the limit only while a build or its verification is still
        // under way (up to three times the limit): a phase measured during
        // a build measures the build.
        let mut busy = false;
        let mut unsettled = 0;
        while started.elapsed() < self.learn_limit
            || (busy && started.elapsed() < self.learn_limit * LIMIT_STRETCH)
        {
            batch += 1;
            let n = s.warmup.max(200);
            self.batch(None, n, s.seed ^ batch, Mix::Normal, s.concurrency)
                .await?;
            let (now_builds, unverified) = self.builds().await?;
            busy = unverified > 0;
            unsettled = unverified;
            let calm = now_builds == builds && unverified == 0;
            quiet = if calm && (now_builds > 0 || started.elapsed() >= self.min_learn) {
                quiet + 1
            } else {
                0
            };
            builds = now_builds;
            status(&format!(
                "auto: learning {:>3.0} s, {builds} build(s), {unverified} being built or verified",
                started.elapsed().as_secs_f64()
            ));
            if quiet >= 2 {
                break;
            }
        }
        end_status();
        let settled = Settled {
            seconds: started.elapsed().as_secs_f64(),
            builds,
            undone: self.undone().await?,
            unsettled,
        };
        if let Some(warning) = settled.warning() {
            eprintln!("auto: warning: {warning}");
        }
        eprintln!(
            "auto: indexer settled after {:.0} s with {builds} build(s)",
            settled.seconds
        );
        Ok(settled)
    }

    /// The hot field moves: run until an index is reverted or dropped and
    /// a new one is built (or the time limit).
    pub async fn drift(&self) -> anyhow::Result<Settled> {
        let s = self.scenario;
        let started = Instant::now();
        let (builds_before, _) = self.builds().await?;
        let undone_before = self.undone().await?;
        let mut batch = 0u64;
        let (mut builds, mut undone) = (builds_before, undone_before);
        let mut unsettled = 0;
        while started.elapsed() < self.drift_limit {
            batch += 1;
            let n = s.warmup.max(200);
            self.batch(None, n, s.seed ^ (1000 + batch), Mix::Drift, s.concurrency)
                .await?;
            undone = self.undone().await?;
            (builds, unsettled) = self.builds().await?;
            status(&format!(
                "drift: {:>3.0} s, {} new build(s), {} reverted or dropped",
                started.elapsed().as_secs_f64(),
                builds - builds_before,
                undone - undone_before
            ));
            let nothing_to_drift = builds_before == 0 && started.elapsed() >= self.min_learn;
            if (undone > undone_before && builds > builds_before) || nothing_to_drift {
                break;
            }
        }
        end_status();
        eprintln!("drift: ran {:.0} s", started.elapsed().as_secs_f64());
        Ok(Settled {
            seconds: started.elapsed().as_secs_f64(),
            builds,
            undone,
            unsettled,
        })
    }

    /// (builds so far, builds not settled yet: being built right now, or
    /// built without keep/revert/drop yet). A build on a big table takes a
    /// while and is recorded only when it ends: it shows in
    /// `pg_stat_progress_create_index` meanwhile.
    pub async fn builds(&self) -> anyhow::Result<(i64, i64)> {
        let log = format!("{}.mutation_log", quote_ident(&self.schema));
        let row = self
            .admin
            .query_one(
                &format!(
                    "select count(*), count(*) filter (where not exists (
                         select 1 from {log} r where r.parent_id = c.id
                            and r.kind in ('keep', 'revert', 'drop')))
                         + (select count(*) from pg_stat_progress_create_index
                             where datname = current_database())
                       from {log} c where c.kind = 'create' and c.outcome = 'built'"
                ),
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Reverts and drops so far.
    pub async fn undone(&self) -> anyhow::Result<i64> {
        let row = self
            .admin
            .query_one(
                &format!(
                    "select count(*) from {}.mutation_log where kind in ('revert', 'drop')",
                    quote_ident(&self.schema)
                ),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

/// The server's counters at one moment (see [`Runner::mark`]).
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// WAL position, in bytes from 0/0.
    wal_bytes: f64,
    timed: i64,
    requested: i64,
    /// WAL flushes and their total time in ms (`pg_stat_wal`), where the
    /// server has them.
    syncs: Option<(i64, f64)>,
}

/// What the write-only runs of a phase wrote, summed over the runs.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tally {
    wal_bytes: f64,
    writes: u64,
    /// (flushes, ms); None once a run's marks lacked them.
    syncs: Option<(i64, f64)>,
}

impl Tally {
    const EMPTY: Tally = Tally {
        wal_bytes: 0.0,
        writes: 0,
        syncs: Some((0, 0.0)),
    };

    /// This tally plus one run of `writes` statements between `before`
    /// and `after`.
    fn add(self, before: &Mark, after: &Mark, writes: u64) -> Tally {
        let syncs = match (self.syncs, before.syncs, after.syncs) {
            (Some((n, t)), Some((n0, t0)), Some((n1, t1))) => Some((n + n1 - n0, t + t1 - t0)),
            _ => None,
        };
        Tally {
            wal_bytes: self.wal_bytes + (after.wal_bytes - before.wal_bytes),
            writes: self.writes + writes,
            syncs,
        }
    }
}

/// The phase's [`ServerWrites`] from the marks at its start and end and
/// the write-only runs' tally; None when a mark is missing or no write
/// ran. The flush time is None when the server counted flushes but did
/// not time them (`track_wal_io_timing = off`).
fn server_writes(
    start: Option<Mark>,
    end: Option<Mark>,
    wal: Option<Tally>,
) -> Option<ServerWrites> {
    let (start, end, tally) = (start?, end?, wal?);
    (tally.writes > 0).then(|| ServerWrites {
        wal_bytes_per_write: tally.wal_bytes / tally.writes as f64,
        checkpoints_timed: end.timed - start.timed,
        checkpoints_requested: end.requested - start.requested,
        wal_sync_ms: tally
            .syncs
            .filter(|&(n, ms)| n > 0 && ms > 0.0)
            .map(|(n, ms)| ms / n as f64),
        wal_syncs_per_write: tally.syncs.map(|(n, _)| n as f64 / tally.writes as f64),
    })
}

/// Queries in each write-only run: three times a mixed trial, so that a
/// run lasts seconds, not a fraction of one (short runs made the
/// throughput swing by ±15 % between identical runs).
pub fn write_queries(s: &Scenario) -> u64 {
    (s.queries * 3).max(2_000)
}

fn failures(samples: &[Sample]) -> u64 {
    samples.iter().filter(|s| !s.ok).count() as u64
}

/// The median of `v` (upper median for even lengths; 0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Field by field medians over runs.
fn median_latency(runs: &[Latency]) -> Latency {
    let med = |f: fn(&Latency) -> f64| median(runs.iter().map(f).collect());
    Latency {
        queries: med(|l| l.queries as f64) as u64,
        throughput: med(|l| l.throughput),
        mean_ms: med(|l| l.mean_ms),
        p50_ms: med(|l| l.p50_ms),
        p95_ms: med(|l| l.p95_ms),
        p99_ms: med(|l| l.p99_ms),
    }
}

/// Per-figure medians over the mixed runs.
fn median_phase(name: &str, runs: &[Vec<Sample>], trials: u32) -> Phase {
    let summaries: Vec<_> = runs.iter().map(|r| workload::summarize(r)).collect();
    let overall = median_latency(&summaries.iter().map(|s| s.0.clone()).collect::<Vec<_>>());
    let filtered = median_latency(&summaries.iter().map(|s| s.2.clone()).collect::<Vec<_>>());
    let classes = summaries
        .first()
        .map(|s| s.1.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c: ClassLatency| {
            let of_class: Vec<Latency> = summaries
                .iter()
                .filter_map(|s| s.1.iter().find(|x| x.class == c.class))
                .map(|x| x.latency.clone())
                .collect();
            ClassLatency {
                latency: median_latency(&of_class),
                ..c
            }
        })
        .collect();
    Phase {
        name: name.to_string(),
        overall,
        classes,
        filtered,
        errors: median(runs.iter().map(|r| failures(r) as f64).collect()) as u64,
        trials,
        ..Phase::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(wal_bytes: f64, timed: i64, requested: i64) -> Option<Mark> {
        Some(Mark {
            wal_bytes,
            timed,
            requested,
            syncs: None,
        })
    }

    fn synced(wal_bytes: f64, syncs: i64, ms: f64) -> Mark {
        Mark {
            wal_bytes,
            timed: 0,
            requested: 0,
            syncs: Some((syncs, ms)),
        }
    }

    fn tally(wal_bytes: f64, writes: u64) -> Option<Tally> {
        let (b, a) = (mark(0.0, 0, 0)?, mark(wal_bytes, 0, 0)?);
        Some(Tally::EMPTY.add(&b, &a, writes))
    }

    #[test]
    fn server_writes_are_differences_and_need_every_mark() {
        let w = server_writes(mark(1e6, 4, 7), mark(9e6, 5, 10), tally(6e6, 3_000)).unwrap();
        assert_eq!(w.wal_bytes_per_write, 2_000.0);
        assert_eq!((w.checkpoints_timed, w.checkpoints_requested), (1, 3));
        assert_eq!((w.wal_sync_ms, w.wal_syncs_per_write), (None, None));
        assert_eq!(
            server_writes(None, mark(9e6, 5, 10), tally(6e6, 3_000)),
            None
        );
        assert_eq!(
            server_writes(mark(1e6, 4, 7), None, tally(6e6, 3_000)),
            None
        );
        assert_eq!(server_writes(mark(1e6, 4, 7), mark(9e6, 5, 10), None), None);
        assert_eq!(
            server_writes(mark(1e6, 4, 7), mark(9e6, 5, 10), tally(0.0, 0)),
            None
        );
    }

    #[test]
    fn flush_time_is_summed_over_runs_and_needs_every_run() {
        let two = Tally::EMPTY
            .add(&synced(0.0, 100, 50.0), &synced(1e6, 600, 550.0), 1_000)
            .add(
                &synced(2e6, 700, 600.0),
                &synced(3e6, 1_200, 1_600.0),
                1_000,
            );
        let w = server_writes(mark(0.0, 0, 0), mark(0.0, 0, 0), Some(two)).unwrap();
        // 1,000 flushes in 1,500 ms over 2,000 writes.
        assert_eq!(w.wal_sync_ms, Some(1.5));
        assert_eq!(w.wal_syncs_per_write, Some(0.5));
        assert_eq!(w.wal_bytes_per_write, 1_000.0);
        // One run without the counters: no flush figures at all.
        let gap = two.add(&mark(0.0, 0, 0).unwrap(), &mark(1e6, 0, 0).unwrap(), 1_000);
        let w = server_writes(mark(0.0, 0, 0), mark(0.0, 0, 0), Some(gap)).unwrap();
        assert_eq!((w.wal_sync_ms, w.wal_syncs_per_write), (None, None));
        // Counted but not timed (track_wal_io_timing = off).
        let untimed = Tally::EMPTY.add(&synced(0.0, 0, 0.0), &synced(1e6, 500, 0.0), 1_000);
        let w = server_writes(mark(0.0, 0, 0), mark(0.0, 0, 0), Some(untimed)).unwrap();
        assert_eq!((w.wal_sync_ms, w.wal_syncs_per_write), (None, Some(0.5)));
    }
}
