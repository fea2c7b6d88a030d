//! The indexer loop. Every replica runs it; only the leader (see
//! [`leader`](super::leader)) decides. Each round: read the catalog and the
//! workload (the leader's live counters plus what other replicas flushed),
//! verify recent builds, drop long-unused indexes of ours, turn hot
//! patterns into costed proposals, then record them (`advise`) or build the
//! best one (`apply`) inside build windows and budgets. Every step is a
//! lineage record with its numbers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::candidates::{self, Candidate, Rejected, Settings};
use super::catalog;
use super::ddl;
use super::leader::Seat;
use super::lineage::{self, Kind, Mutation};
use super::model::TableFacts;
use super::plan::{self, Proposal, Round, Uses};
use super::whatif;
use super::workload;
use crate::config::{Config, IndexerConfig, IndexerMode};
use crate::metrics as m;
use crate::stats::latency::Measured;
use crate::stats::{Snapshot, Stats};
use crate::store::quote_ident;

/// How long a build that failed waits before it is tried again.
const FAILED_BUILD_BACKOFF: Duration = Duration::from_secs(300);
/// The same recommendation (or refusal) is recorded at most this often.
const RERECORD_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Verification waits at most this many windows for enough traffic.
const VERIFY_PATIENCE: u32 = 5;
/// Proposals costed per round (hottest first).
const MAX_PROPOSALS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Lineage(#[from] lineage::LineageError),
    #[error(transparent)]
    Ddl(#[from] ddl::DdlError),
    #[error(transparent)]
    Connect(#[from] crate::stats::flush::FlushError),
    #[error("no database to read: set indexer.dsn or admin.dsn (or pass --dsn)")]
    NoDsn,
}

/// The connection the indexer uses: `indexer.dsn`, else `admin.dsn`.
pub fn dsn(config: &Config) -> Option<String> {
    config
        .indexer
        .dsn
        .clone()
        .or_else(|| config.admin.dsn.clone())
}

/// Candidate-generation knobs from the configuration.
pub fn settings(config: &Config) -> Settings {
    Settings {
        min_calls: config.indexer.min_calls,
        min_table_rows: config.indexer.min_table_rows as f64,
        tenant_column: config.analysis.tenant_column.clone(),
        max_partial_tenants: config.indexer.max_partial_tenants,
        partial_share: config.indexer.partial_share,
    }
}

/// How far back the statistics reach, and their decay half-life in windows.
fn lookback(config: &Config) -> (Duration, f64) {
    let span = config.stats.window * config.stats.windows_kept as u32;
    (span, (config.stats.windows_kept as f64 / 4.0).max(1.0))
}

/// Run until `stop`: try to lead every `indexer.interval`; while leading,
/// run a decision round each time.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<Stats>,
    proxy_id: String,
    stop: CancellationToken,
) {
    if config.indexer.mode == IndexerMode::Off {
        return;
    }
    let Some(dsn) = dsn(&config) else {
        warn!(
            mode = config.indexer.mode.as_str(),
            "the indexer needs indexer.dsn or admin.dsn; it is not running"
        );
        return;
    };
    let mut tick = tokio::time::interval(config.indexer.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seat: Option<Seat> = None;
    let mut leader: Option<Leader> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        if seat.as_ref().is_none_or(Seat::is_closed) {
            leader = None;
            metrics::gauge!(m::INDEXER_LEADER).set(0.0);
            match Seat::connect(&dsn, &config.admin.schema).await {
                Ok(s) => seat = Some(s),
                Err(e) => {
                    warn!(error = %e, "indexer: cannot connect; retrying");
                    continue;
                }
            }
        }
        let Some(s) = seat.as_mut() else { continue };
        match s.try_lead().await {
            Ok(true) => {}
            Ok(false) => {
                leader = None;
                metrics::gauge!(m::INDEXER_LEADER).set(0.0);
                continue;
            }
            Err(e) => {
                warn!(error = %e, "indexer: lost the admin connection");
                seat = None;
                continue;
            }
        }
        metrics::gauge!(m::INDEXER_LEADER).set(1.0);
        let l = match leader.as_mut() {
            Some(l) => l,
            None => {
                info!(proxy = %proxy_id, "indexer: this replica is the leader");
                let mut l = Leader::new(config.clone(), stats.clone(), proxy_id.clone());
                let taken = tokio::select! {
                    r = l.take_over(s.client()) => r,
                    _ = stop.cancelled() => break,
                };
                if let Err(e) = taken {
                    warn!(error = %e, "indexer: taking over failed; retrying");
                    continue;
                }
                leader.insert(l)
            }
        };
        let round = tokio::select! {
            r = l.round(s.client()) => r,
            _ = stop.cancelled() => break,
        };
        if let Err(e) = round {
            warn!(error = ?e, "indexer round failed");
            if s.is_closed() {
                seat = None;
            }
        }
    }
    metrics::gauge!(m::INDEXER_LEADER).set(0.0);
}

/// A build waiting for its verification.
#[derive(Clone, Debug)]
struct Pending {
    create_id: i64,
    schema: String,
    table: String,
    index_name: String,
    tenant: Option<String>,
    fingerprints: Vec<u64>,
    before: Measured,
    built_at: SystemTime,
}

/// An index of ours that verification kept, watched for use.
struct Watched {
    create_id: i64,
    scans: i64,
    since: Instant,
}

/// The leader's state; rebuilt from the lineage log on takeover.
struct Leader {
    config: Arc<Config>,
    stats: Arc<Stats>,
    proxy_id: String,
    started: Instant,
    uses: Uses,
    texts_seen: usize,
    write_samples: HashMap<String, VecDeque<(Instant, f64)>>,
    builds: VecDeque<SystemTime>,
    pending: Vec<Pending>,
    watched: HashMap<String, Watched>,
    creates: HashMap<String, i64>,
    recorded: HashMap<(String, String), Instant>,
    backoff: HashMap<String, Instant>,
    /// Indexes reverted or dropped recently: not proposed again for a day,
    /// so that a pattern whose index did not pay off does not flap.
    reverted: HashMap<String, Instant>,
    /// Failed builds whose INVALID index could not be dropped yet, by name:
    /// the create record the cleanup will point at.
    failed_creates: HashMap<String, i64>,
}

impl Leader {
    fn new(config: Arc<Config>, stats: Arc<Stats>, proxy_id: String) -> Leader {
        Leader {
            config,
            stats,
            proxy_id,
            started: Instant::now(),
            uses: Uses::default(),
            texts_seen: 0,
            write_samples: HashMap::new(),
            builds: VecDeque::new(),
            pending: Vec::new(),
            watched: HashMap::new(),
            creates: HashMap::new(),
            recorded: HashMap::new(),
            backoff: HashMap::new(),
            reverted: HashMap::new(),
            failed_creates: HashMap::new(),
        }
    }

    fn ix(&self) -> &IndexerConfig {
        &self.config.indexer
    }

    fn schema(&self) -> &str {
        &self.config.admin.schema
    }

    async fn record(&self, client: &Client, m: Mutation) -> Result<i64, IndexerError> {
        Ok(lineage::record(client, self.schema(), &m, &self.proxy_id).await?)
    }

    /// Pick up what a previous leader left: builds not yet verified, recent
    /// reverts, the hour's build count. (INVALID indexes an interrupted
    /// build left are swept at the start of every round.)
    async fn take_over(&mut self, client: &Client) -> Result<(), IndexerError> {
        let s = quote_ident(self.schema());
        let rows = client
            .query(
                &format!(
                    "select c.id, c.index_name, c.tenant, c.evidence::text, c.table_name
                       from {s}.mutation_log c
                      where c.kind = 'create' and c.outcome = 'built'
                        and not exists (select 1 from {s}.mutation_log r
                                         where r.parent_id = c.id
                                           and r.kind in ('keep', 'revert', 'drop'))"
                ),
                &[],
            )
            .await?;
        let now = SystemTime::now();
        for r in rows {
            let evidence: serde_json::Value =
                serde_json::from_str(&r.get::<_, String>(3)).unwrap_or_default();
            let before = Measured {
                calls: evidence["before"]["calls"].as_u64().unwrap_or(0),
                total_us: evidence["before"]["total_us"].as_u64().unwrap_or(0),
            };
            let fingerprints = evidence["proposal"]["fingerprints"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| u64::from_str_radix(f.as_str()?, 16).ok())
                        .collect()
                })
                .unwrap_or_default();
            self.pending.push(Pending {
                create_id: r.get(0),
                schema: evidence["proposal"]["schema"]
                    .as_str()
                    .unwrap_or("public")
                    .to_string(),
                table: r.get::<_, Option<String>>(4).unwrap_or_default(),
                index_name: r.get::<_, Option<String>>(1).unwrap_or_default(),
                tenant: r.get(2),
                fingerprints,
                before,
                // The after window starts now: this leader saw nothing earlier.
                built_at: now,
            });
        }
        for r in client
            .query(
                &format!(
                    "select distinct on (index_name) index_name, id from {s}.mutation_log
                      where kind = 'create' and outcome = 'built' and index_name is not null
                      order by index_name, id desc"
                ),
                &[],
            )
            .await?
        {
            self.creates.insert(r.get(0), r.get(1));
        }
        for r in client
            .query(
                &format!(
                    "select index_name, extract(epoch from now() - max(at))::float8
                       from {s}.mutation_log
                      where kind in ('revert', 'drop') and index_name is not null
                        and at > now() - interval '1 day'
                      group by 1"
                ),
                &[],
            )
            .await?
        {
            let age = Duration::from_secs_f64(r.get::<_, f64>(1).max(0.0));
            let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.reverted.insert(r.get(0), at);
        }
        for r in client
            .query(
                &format!(
                    "select at from {s}.mutation_log
                      where kind = 'create' and at > now() - interval '1 hour' order by at"
                ),
                &[],
            )
            .await?
        {
            self.builds.push_back(r.get(0));
        }
        Ok(())
    }

    /// One decision round.
    async fn round(&mut self, client: &Client) -> Result<(), IndexerError> {
        let prefix = self.ix().index_prefix.clone();
        let mut tables = catalog::load(client, &prefix, self.schema()).await?;
        let rates_known = self.update_write_rates(&mut tables);
        self.sweep_invalid(client, &tables).await?;
        self.verify(client).await?;
        self.drop_unused(client, &tables).await?;
        if !rates_known {
            // The first round only samples write counters.
            return Ok(());
        }
        let snapshot = self.workload(client).await?;
        self.learn_texts(client, &tables).await?;
        let (found, _) = candidates::generate(&snapshot, &tables, &settings(&self.config));
        let hypopg =
            self.ix().hypopg && matches!(whatif::hypopg_version(client).await, Ok(Some(_)));
        let proposals = self.proposals(client, &tables, &found, hypopg).await;
        let pending = self.act(client, &tables, proposals).await?;
        metrics::gauge!(m::RECOMMENDATIONS_PENDING).set(pending as f64);
        metrics::gauge!(m::LAST_DECISION_TIMESTAMP_SECONDS).set(unix_now());
        Ok(())
    }

    /// Drop INVALID indexes of ours (no build is in flight between rounds):
    /// those a failed build could not drop at once, because the same
    /// transaction that made it time out still held the table.
    async fn sweep_invalid(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && !i.valid) {
                let dropped = ddl::drop_index(
                    client,
                    &t.schema,
                    &i.name,
                    &ix.index_prefix,
                    ix.lock_timeout,
                    ix.statement_timeout,
                )
                .await;
                if let Err(e) = dropped {
                    tracing::debug!(index = %i.name, error = %e, "INVALID index not dropped yet; retrying next round");
                    continue;
                }
                let m = Mutation {
                    parent_id: self.failed_creates.remove(&i.name),
                    kind: Kind::Cleanup,
                    tenant: None,
                    table: Some(t.label()),
                    columns: i.keys.clone(),
                    index_name: Some(i.name.clone()),
                    ddl: Some(ddl::drop_sql(&t.schema, &i.name)),
                    reason: "INVALID index left by a failed build dropped".into(),
                    evidence: json!({ "size_bytes": i.size_bytes }),
                    outcome: "dropped".into(),
                };
                self.record(client, m).await?;
            }
        }
        Ok(())
    }

    /// Replace each table's lifetime-average write rate with the rate over
    /// the last minute of samples; false while any table has only one.
    fn update_write_rates(&mut self, tables: &mut [TableFacts]) -> bool {
        let now = Instant::now();
        let mut known = true;
        for t in tables.iter_mut() {
            let samples = self.write_samples.entry(t.label()).or_default();
            samples.push_back((now, t.writes_total));
            while samples.len() > 2 && now - samples[1].0 >= Duration::from_secs(60) {
                samples.pop_front();
            }
            let (first, last) = (samples[0], samples[samples.len() - 1]);
            let secs = (last.0 - first.0).as_secs_f64();
            if secs > 0.0 {
                t.writes_per_sec = ((last.1 - first.1) / secs).max(0.0);
            } else {
                known = false;
            }
        }
        known
    }

    /// The live counters of this replica plus what the others flushed.
    async fn workload(&self, client: &Client) -> Result<Snapshot, IndexerError> {
        let (span, half_life) = lookback(&self.config);
        let mut snapshot = self.stats.snapshot();
        let others =
            workload::flushed(client, self.schema(), Some(&self.proxy_id), span, half_life).await?;
        workload::merge(&mut snapshot, others);
        Ok(snapshot)
    }

    /// Analyze statement texts not seen yet: this replica's, then those
    /// the other replicas flushed.
    async fn learn_texts(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        let catalog = plan::analyzer_catalog(tables);
        let tenant_column = self.config.analysis.tenant_column.clone();
        let mut local = Vec::new();
        self.stats.for_each_text(|fp, text| {
            if !self.uses.knows(fp) {
                local.push((fp, text.to_string()));
            }
        });
        for (fp, text) in local {
            self.uses.learn(fp, &text, &catalog, &tenant_column);
        }
        let flushed = workload::texts(client, self.schema()).await?;
        if flushed.len() != self.texts_seen {
            self.texts_seen = flushed.len();
            for (fp, text) in flushed {
                if !self.uses.knows(fp) {
                    self.uses.learn(fp, &text, &catalog, &tenant_column);
                }
            }
        }
        Ok(())
    }

    async fn proposals(
        &self,
        client: &Client,
        tables: &[TableFacts],
        found: &[Candidate],
        hypopg: bool,
    ) -> Vec<Proposal> {
        let (span, _) = lookback(&self.config);
        let observed_secs = self.started.elapsed().min(span).as_secs_f64();
        let window = self.ix().verify_window;
        let stats = self.stats.clone();
        let recent = move |fps: &[u64], tenant: Option<&str>| {
            let now = SystemTime::now();
            let m = stats.measured(fps, tenant, now - window, now);
            Some(m.calls as f64 / window.as_secs_f64())
        };
        let round = Round {
            tables,
            uses: &self.uses,
            tenant_column: &self.config.analysis.tenant_column,
            prefix: &self.ix().index_prefix,
            horizon: self.ix().horizon,
            observed_secs,
            recent_rate: &recent,
            client: Some(client),
            hypopg,
        };
        let mut out = Vec::new();
        for c in found.iter().take(MAX_PROPOSALS) {
            let name = ddl::index_name(
                &self.ix().index_prefix,
                &c.table,
                &c.keys,
                c.tenant.as_deref(),
            );
            let exists = tables
                .iter()
                .any(|t| t.indexes.iter().any(|i| i.name == name));
            let waiting = self.pending.iter().any(|p| p.index_name == name)
                || self
                    .reverted
                    .get(&name)
                    .is_some_and(|t| t.elapsed() < RERECORD_AFTER)
                || self
                    .backoff
                    .get(&name)
                    .is_some_and(|t| t.elapsed() < FAILED_BUILD_BACKOFF);
            if exists || waiting {
                continue;
            }
            if let Some(p) = plan::propose(&round, c).await {
                out.push(p);
            }
        }
        out
    }

    /// Record or build; returns how many worthwhile proposals wait.
    async fn act(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
        proposals: Vec<Proposal>,
    ) -> Result<usize, IndexerError> {
        let mut waiting = 0;
        let mut built = false;
        for p in proposals {
            if !p.worthwhile {
                self.note(client, &p, "declined", &p.verdict.clone())
                    .await?;
                continue;
            }
            if self.ix().mode == IndexerMode::Advise {
                waiting += 1;
                self.note(client, &p, "recommended", &p.verdict.clone())
                    .await?;
                continue;
            }
            if built {
                // One build at a time: the rest wait for the next round.
                waiting += 1;
                continue;
            }
            match self.blocked(tables, &p) {
                Some((kind, why)) => {
                    waiting += 1;
                    self.note(client, &p, &format!("deferred: {kind}"), &why)
                        .await?;
                }
                None => {
                    built = true;
                    self.build(client, &p).await?;
                }
            }
        }
        Ok(waiting)
    }

    /// Why a worthwhile build may not start now (build windows, budgets).
    /// Returns a bounded kind (`build window`, `budget`) and the details.
    fn blocked(&mut self, tables: &[TableFacts], p: &Proposal) -> Option<(&'static str, String)> {
        let ix = &self.config.indexer;
        if !ix.build_windows.is_empty() {
            let minute = ((unix_now() as u64 % 86_400) / 60) as u16;
            if !ix.build_windows.iter().any(|w| w.contains(minute)) {
                return Some((
                    "build window",
                    "outside the build windows (indexer.build_windows)".into(),
                ));
            }
        }
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        while self.builds.front().is_some_and(|t| *t < hour_ago) {
            self.builds.pop_front();
        }
        if self.builds.len() >= ix.max_builds_per_hour as usize {
            return Some((
                "budget",
                format!(
                    "budget: {} builds in the last hour (indexer.max_builds_per_hour)",
                    self.builds.len()
                ),
            ));
        }
        let ours = |t: &TableFacts| t.indexes.iter().filter(|i| i.ours && i.valid).count();
        if let Some(t) = tables.iter().find(|t| t.label() == p.candidate.table) {
            if ours(t) >= ix.max_indexes_per_table {
                return Some((
                    "budget",
                    format!(
                        "budget: {} indexes of ours on {} (indexer.max_indexes_per_table)",
                        ours(t),
                        p.candidate.table
                    ),
                ));
            }
        }
        let total: i64 = tables
            .iter()
            .flat_map(|t| &t.indexes)
            .filter(|i| i.ours)
            .map(|i| i.size_bytes)
            .sum();
        if ix.max_total_index_bytes > 0
            && (total + p.estimated_bytes) as u64 > ix.max_total_index_bytes
        {
            return Some((
                "budget",
                format!(
                "budget: {total} bytes of ours + ~{} would exceed indexer.max_total_index_bytes",
                p.estimated_bytes
            ),
            ));
        }
        None
    }

    /// Record an advise entry for `p` unless the same outcome was recorded
    /// for it within the last day.
    async fn note(
        &mut self,
        client: &Client,
        p: &Proposal,
        outcome: &str,
        reason: &str,
    ) -> Result<(), IndexerError> {
        let key = (p.index_name.clone(), outcome.to_string());
        if self
            .recorded
            .get(&key)
            .is_some_and(|t| t.elapsed() < RERECORD_AFTER)
        {
            return Ok(());
        }
        if self.recorded.is_empty() {
            self.load_recorded(client).await?;
            if self
                .recorded
                .get(&key)
                .is_some_and(|t| t.elapsed() < RERECORD_AFTER)
            {
                return Ok(());
            }
        }
        let m = proposal_mutation(p, Kind::Advise, outcome, reason, json!({ "proposal": p }));
        self.record(client, m).await?;
        self.recorded.insert(key, Instant::now());
        Ok(())
    }

    /// Advise entries of the last day, so a new leader does not repeat them.
    async fn load_recorded(&mut self, client: &Client) -> Result<(), IndexerError> {
        let s = quote_ident(self.schema());
        let rows = client
            .query(
                &format!(
                    "select index_name, outcome, extract(epoch from now() - max(at))::float8
                       from {s}.mutation_log
                      where kind = 'advise' and index_name is not null
                        and at > now() - interval '1 day'
                      group by 1, 2"
                ),
                &[],
            )
            .await?;
        for r in rows {
            let age = Duration::from_secs_f64(r.get::<_, f64>(2).max(0.0));
            let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.recorded.insert((r.get(0), r.get(1)), at);
        }
        // A marker so that an empty log is not re-read every time.
        self.recorded
            .entry((String::new(), String::new()))
            .or_insert_with(Instant::now);
        Ok(())
    }

    async fn build(&mut self, client: &Client, p: &Proposal) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        let now = SystemTime::now();
        let tenant = p.candidate.tenant.as_deref();
        let before = self
            .stats
            .measured(&p.fingerprint_ids, tenant, now - ix.verify_window, now);
        self.builds.push_back(now);
        info!(index = %p.index_name, table = %p.candidate.table, "building index");
        let built = ddl::build(
            client,
            &p.spec,
            &p.index_name,
            ix.lock_timeout,
            ix.statement_timeout,
        )
        .await;
        let before_json = json!({
            "calls": before.calls,
            "total_us": before.total_us,
            "mean_ms": before.mean_ms(),
            "window_s": ix.verify_window.as_secs_f64(),
        });
        match built {
            Ok(outcome) => {
                metrics::counter!(m::INDEXES_CREATED_TOTAL).increment(1);
                let evidence = json!({
                    "proposal": p,
                    "before": before_json,
                    "build_ms": outcome.duration.as_secs_f64() * 1000.0,
                    "size_bytes": outcome.size_bytes,
                });
                let reason = format!("{}; {}", p.candidate.evidence.reason, p.verdict);
                let m = proposal_mutation(p, Kind::Create, "built", &reason, evidence);
                let id = self.record(client, m).await?;
                self.creates.insert(p.index_name.clone(), id);
                self.pending.push(Pending {
                    create_id: id,
                    schema: p.schema.clone(),
                    table: p.candidate.table.clone(),
                    index_name: p.index_name.clone(),
                    tenant: p.candidate.tenant.clone(),
                    fingerprints: p.fingerprint_ids.clone(),
                    before,
                    built_at: SystemTime::now(),
                });
            }
            Err(e) => {
                let kind = e.kind();
                metrics::counter!(m::INDEX_BUILDS_FAILED_TOTAL, m::LABEL_REASON => kind)
                    .increment(1);
                warn!(index = %p.index_name, error = %e, "index build failed");
                self.backoff.insert(p.index_name.clone(), Instant::now());
                let cleaned = matches!(
                    e,
                    ddl::DdlError::Build {
                        cleaned_up: true,
                        ..
                    }
                );
                let evidence =
                    json!({ "proposal": p, "before": before_json, "error": e.to_string() });
                let m = proposal_mutation(
                    p,
                    Kind::Create,
                    &format!("failed: {kind}"),
                    &e.to_string(),
                    evidence,
                );
                let id = self.record(client, m).await?;
                if !cleaned {
                    self.failed_creates.insert(p.index_name.clone(), id);
                }
                if cleaned {
                    let mut m = proposal_mutation(
                        p,
                        Kind::Cleanup,
                        "dropped",
                        "the failed build left an INVALID index; dropped",
                        json!({}),
                    );
                    m.parent_id = Some(id);
                    m.ddl = Some(ddl::drop_sql(&p.schema, &p.index_name));
                    self.record(client, m).await?;
                }
            }
        }
        Ok(())
    }

    /// Keep or revert the builds whose verification window has passed.
    async fn verify(&mut self, client: &Client) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        let now = SystemTime::now();
        let ready: Vec<Pending> = self
            .pending
            .iter()
            .filter(|p| now >= p.built_at + ix.verify_window + ix.verify_window / 12)
            .cloned()
            .collect();
        for p in ready {
            let after = self.stats.measured(
                &p.fingerprints,
                p.tenant.as_deref(),
                now - ix.verify_window,
                now,
            );
            let patience_over = now >= p.built_at + ix.verify_window * VERIFY_PATIENCE;
            if after.calls < ix.verify_min_calls && !patience_over {
                continue; // wait for traffic
            }
            self.pending.retain(|q| q.create_id != p.create_id);
            let gain = if after.calls > 0 && after.total_us > 0 {
                p.before.mean_ms() / after.mean_ms()
            } else {
                0.0
            };
            let evidence = json!({
                "before": { "calls": p.before.calls, "mean_ms": p.before.mean_ms() },
                "after": { "calls": after.calls, "mean_ms": after.mean_ms() },
                "measured_gain": gain,
                "min_gain": ix.verify_min_gain,
                "window_s": ix.verify_window.as_secs_f64(),
                "fingerprints": p.fingerprints.iter().map(|f| format!("{f:016x}")).collect::<Vec<_>>(),
            });
            let enough =
                p.before.calls >= ix.verify_min_calls && after.calls >= ix.verify_min_calls;
            let base = Mutation {
                parent_id: Some(p.create_id),
                kind: Kind::Keep,
                tenant: p.tenant.clone(),
                table: Some(p.table.clone()),
                columns: Vec::new(),
                index_name: Some(p.index_name.clone()),
                ddl: None,
                reason: String::new(),
                evidence,
                outcome: "kept".into(),
            };
            if !enough {
                let reason = format!(
                    "not enough traffic to compare ({} calls before, {} after; need {}): kept, the unused check still applies",
                    p.before.calls, after.calls, ix.verify_min_calls
                );
                self.record(
                    client,
                    Mutation {
                        reason,
                        outcome: "unverified".into(),
                        ..base
                    },
                )
                .await?;
            } else if gain >= ix.verify_min_gain {
                let reason = format!(
                    "mean latency {:.3} ms -> {:.3} ms ({gain:.2}x >= {:.2}x)",
                    p.before.mean_ms(),
                    after.mean_ms(),
                    ix.verify_min_gain
                );
                self.record(client, Mutation { reason, ..base }).await?;
            } else {
                let reason = format!(
                    "{}: mean latency {:.3} ms -> {:.3} ms ({gain:.2}x < {:.2}x)",
                    if gain < 1.0 {
                        "regression"
                    } else {
                        "no significant gain"
                    },
                    p.before.mean_ms(),
                    after.mean_ms(),
                    ix.verify_min_gain
                );
                let dropped = ddl::drop_index(
                    client,
                    &p.schema,
                    &p.index_name,
                    &ix.index_prefix,
                    ix.lock_timeout,
                    ix.statement_timeout,
                )
                .await;
                let outcome = match &dropped {
                    Ok(()) => {
                        metrics::counter!(m::INDEXES_REVERTED_TOTAL).increment(1);
                        self.reverted.insert(p.index_name.clone(), Instant::now());
                        "dropped".to_string()
                    }
                    Err(e) => {
                        // Retried as an unused index later; recorded either way.
                        warn!(index = %p.index_name, error = %e, "revert failed");
                        format!("drop failed: {}", e.kind())
                    }
                };
                let m = Mutation {
                    kind: Kind::Revert,
                    ddl: Some(ddl::drop_sql(&p.schema, &p.index_name)),
                    reason,
                    outcome,
                    ..base
                };
                self.record(client, m).await?;
            }
        }
        Ok(())
    }

    /// Drop indexes of ours nobody has scanned for `indexer.unused_after`.
    async fn drop_unused(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        let Some(unused_after) = ix.unused_after else {
            return Ok(());
        };
        let mut present = Vec::new();
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && i.valid) {
                present.push(i.name.clone());
                let Some(&create_id) = self.creates.get(&i.name) else {
                    continue; // no create record: not provably ours
                };
                if self.pending.iter().any(|p| p.index_name == i.name) {
                    continue;
                }
                let w = self.watched.entry(i.name.clone()).or_insert(Watched {
                    create_id,
                    scans: i.scans,
                    since: Instant::now(),
                });
                if i.scans != w.scans {
                    w.scans = i.scans;
                    w.since = Instant::now();
                    continue;
                }
                if w.since.elapsed() < unused_after {
                    continue;
                }
                let idle = w.since.elapsed();
                let parent = w.create_id;
                self.watched.remove(&i.name);
                let dropped = ddl::drop_index(
                    client,
                    &t.schema,
                    &i.name,
                    &ix.index_prefix,
                    ix.lock_timeout,
                    ix.statement_timeout,
                )
                .await;
                let outcome = match &dropped {
                    Ok(()) => {
                        metrics::counter!(m::INDEXES_DROPPED_TOTAL).increment(1);
                        self.reverted.insert(i.name.clone(), Instant::now());
                        "dropped".to_string()
                    }
                    Err(e) => format!("drop failed: {}", e.kind()),
                };
                let m = Mutation {
                    parent_id: Some(parent),
                    kind: Kind::Drop,
                    tenant: None,
                    table: Some(t.label()),
                    columns: i.keys.clone(),
                    index_name: Some(i.name.clone()),
                    ddl: Some(ddl::drop_sql(&t.schema, &i.name)),
                    reason: format!(
                        "unused: no scans for {:.0} s (indexer.unused_after = {:.0} s)",
                        idle.as_secs_f64(),
                        unused_after.as_secs_f64()
                    ),
                    evidence: json!({ "idx_scan": i.scans, "size_bytes": i.size_bytes, "idle_s": idle.as_secs_f64() }),
                    outcome,
                };
                self.record(client, m).await?;
            }
        }
        self.watched.retain(|name, _| present.contains(name));
        Ok(())
    }
}

/// A lineage entry describing a proposal.
fn proposal_mutation(
    p: &Proposal,
    kind: Kind,
    outcome: &str,
    reason: &str,
    evidence: serde_json::Value,
) -> Mutation {
    Mutation {
        parent_id: None,
        kind,
        tenant: p.candidate.tenant.clone(),
        table: Some(p.candidate.table.clone()),
        columns: p.candidate.keys.clone(),
        index_name: Some(p.index_name.clone()),
        ddl: Some(p.ddl.clone()),
        reason: reason.to_string(),
        evidence,
        outcome: outcome.to_string(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long `indexpilot advise` samples the tables' write counters.
const ADVISE_WRITE_SAMPLE: Duration = Duration::from_secs(2);

/// `indexpilot advise`: what the leader would decide now from the
/// statistics every replica flushed, with write rates sampled over two
/// seconds, as text or JSON.
pub async fn advise(config: &Config, json_out: bool) -> Result<String, IndexerError> {
    let dsn = dsn(config).ok_or(IndexerError::NoDsn)?;
    let client = super::leader::connect_plain(&dsn).await?;
    let ix = &config.indexer;
    let schema = &config.admin.schema;
    let first = catalog::load(&client, &ix.index_prefix, schema).await?;
    let sampled = Instant::now();
    tokio::time::sleep(ADVISE_WRITE_SAMPLE).await;
    let mut tables = catalog::load(&client, &ix.index_prefix, schema).await?;
    let secs = sampled.elapsed().as_secs_f64();
    for t in &mut tables {
        if let Some(before) = first.iter().find(|f| f.label() == t.label()) {
            t.writes_per_sec = ((t.writes_total - before.writes_total) / secs).max(0.0);
        }
    }
    let (span, half_life) = lookback(config);
    let observed_secs = workload::flushed_secs(&client, schema, span)
        .await?
        .unwrap_or(span.as_secs_f64());
    let snapshot = workload::flushed(&client, &config.admin.schema, None, span, half_life).await?;
    let catalog = plan::analyzer_catalog(&tables);
    let mut uses = Uses::default();
    for (fp, text) in workload::texts(&client, &config.admin.schema).await? {
        uses.learn(fp, &text, &catalog, &config.analysis.tenant_column);
    }
    let (found, rejected) = candidates::generate(&snapshot, &tables, &settings(config));
    let hypopg = ix.hypopg && matches!(whatif::hypopg_version(&client).await, Ok(Some(_)));
    let no_rate = |_: &[u64], _: Option<&str>| None;
    let round = Round {
        tables: &tables,
        uses: &uses,
        tenant_column: &config.analysis.tenant_column,
        prefix: &ix.index_prefix,
        horizon: ix.horizon,
        observed_secs,
        recent_rate: &no_rate,
        client: Some(&client),
        hypopg,
    };
    let mut proposals = Vec::new();
    for c in found.iter().take(MAX_PROPOSALS) {
        let exists = tables.iter().any(|t| {
            let name = ddl::index_name(&ix.index_prefix, &c.table, &c.keys, c.tenant.as_deref());
            t.indexes.iter().any(|i| i.name == name)
        });
        if !exists {
            if let Some(p) = plan::propose(&round, c).await {
                proposals.push(p);
            }
        }
    }
    Ok(if json_out {
        format!(
            "{:#}\n",
            json!({ "hypopg": hypopg, "proposals": proposals, "rejected": rejected })
        )
    } else {
        render_advice(&proposals, &rejected, hypopg)
    })
}

fn render_advice(proposals: &[Proposal], rejected: &[Rejected], hypopg: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cost check: {}",
        if hypopg {
            "HypoPG what-if + EXPLAIN"
        } else {
            "estimate from table and column statistics (HypoPG not installed)"
        }
    );
    if proposals.is_empty() {
        let _ = writeln!(
            out,
            "\nno recommendations: no hot, selective, unindexed pattern yet"
        );
    }
    for p in proposals {
        let c = &p.candidate;
        let scope = c
            .tenant
            .as_ref()
            .map(|t| format!(" for tenant {t} (partial)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{} {} ({}){scope}",
            if p.worthwhile {
                "RECOMMEND"
            } else {
                "skip     "
            },
            c.table,
            c.keys.join(", "),
        );
        let _ = writeln!(out, "  why:      {}", c.evidence.reason);
        let _ = writeln!(out, "  verdict:  {}", p.verdict);
        let _ = writeln!(
            out,
            "  traffic:  {:.2} calls/s on {} statement(s), table {:.0} rows, {:.2} writes/s",
            p.calls_per_sec,
            p.fingerprints.len(),
            c.evidence.table_rows,
            p.writes_per_sec
        );
        match &p.planner {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "  planner:  cost {:.1} -> {:.1} per call, uses index: {}, ~{} bytes",
                    w.cost_before, w.cost_after, w.uses_index, w.estimated_bytes
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  estimate: cost {:.1} -> {:.1} per call, build {:.0}, writes {:.1}/s, ~{} bytes",
                    p.estimate.cost_before,
                    p.estimate.cost_after,
                    p.estimate.build_cost,
                    p.estimate.write_overhead_per_sec,
                    p.estimated_bytes
                );
            }
        }
        let _ = writeln!(out, "  ddl:      {};", p.ddl);
    }
    if !rejected.is_empty() {
        let _ = writeln!(out, "\nseen, not proposed:");
        for r in rejected {
            let _ = writeln!(out, "  {} ({}): {}", r.table, r.keys.join(", "), r.reason);
        }
    }
    out
}
