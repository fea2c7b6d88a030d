//! The indexer loop. Every replica runs it; only the leader (see
//! [`leader`](super::leader)) decides. Each round: read the catalog and the
//! workload (the leader's live counters plus what other replicas flushed),
//! verify recent builds, drop long-unused or superseded indexes of ours, turn hot
//! patterns into costed proposals, then record them (`advise`) or build the
//! best one (`apply`) inside build windows and budgets. Every step is a
//! lineage record with its numbers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::candidates::{self, Candidate, Settings};
use super::catalog;
use super::ddl;
use super::leader::Seat;
use super::lineage::{self, Kind, Mutation};
use super::model::TableFacts;
use super::plan::{self, Proposal, Round, Uses};
use super::whatif;
use super::workload;

mod act;
mod advise;
mod upkeep;

use crate::config::{Config, IndexerConfig, IndexerMode};
use crate::genome;
use crate::genome::expression::Profiles;
use crate::metrics as m;
use crate::stats::latency::Measured;
use crate::stats::{Snapshot, Stats};
use crate::store::quote_ident;
pub use advise::advise;

/// How long a build that failed waits before it is tried again.
const FAILED_BUILD_BACKOFF: Duration = Duration::from_secs(300);
/// The same recommendation (or refusal) is recorded at most this often.
const RERECORD_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a declined composite leaves its calls to its single columns
/// before it is evaluated again.
const DECLINED_FOR: Duration = Duration::from_secs(3600);
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
    #[error(transparent)]
    Expression(#[from] crate::genome::expression::ExpressionError),
    #[error(transparent)]
    Genome(#[from] crate::genome::catalog::GenomeError),
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
        not_indexable: config
            .genome
            .not_indexable
            .iter()
            .filter_map(|f| f.rsplit_once('.'))
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect(),
        declined: Vec::new(),
    }
}

/// Whether the genome overrides leave `t` to the indexer.
pub fn in_genome(config: &Config, t: &TableFacts) -> bool {
    !config.genome.exclude_schemas.contains(&t.schema)
        && !config.genome.exclude_tables.contains(&t.label())
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
        // A round is not cut short by shutdown: a DROP or CREATE INDEX sent
        // to the server completes there whether or not we wait, and its
        // lineage record must follow it. A round still busy after
        // FINISH_ON_STOP (a long build) has its statement cancelled: the
        // INVALID index it leaves is swept by the next leader.
        let cancel = s.client().cancel_token();
        let mut stopping = false;
        let round = {
            let round = l.round(s.client_mut());
            tokio::pin!(round);
            tokio::select! {
                r = &mut round => Some(r),
                _ = stop.cancelled() => {
                    stopping = true;
                    tokio::time::timeout(FINISH_ON_STOP, &mut round).await.ok()
                }
            }
        };
        let Some(round) = round else {
            warn!("indexer: a build was still running at shutdown; cancelling it");
            let _ = cancel.cancel_query(tokio_postgres::NoTls).await;
            break;
        };
        if let Err(e) = round {
            warn!(error = ?e, "indexer round failed");
            if s.is_closed() {
                seat = None;
            }
        }
        if stopping {
            break;
        }
    }
    metrics::gauge!(m::INDEXER_LEADER).set(0.0);
}

/// How long a round in flight may go on after shutdown was asked for.
const FINISH_ON_STOP: Duration = Duration::from_secs(10);

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
    /// The statements it does not serve, over the same window: the control.
    control_before: Measured,
    built_at: SystemTime,
}

/// An index of ours that verification kept, watched for use.
struct Watched {
    create_id: i64,
    scans: i64,
    /// When `scans` last moved.
    since: Instant,
    /// When the planner was last asked whether it is superseded.
    checked: Option<Instant>,
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
    pending: Vec<Pending>,
    watched: HashMap<String, Watched>,
    /// Every index of ours with a create record, by name.
    book: HashMap<String, Built>,
    recorded: HashMap<(String, String), Instant>,
    backoff: HashMap<String, Instant>,
    /// Indexes reverted or dropped recently: not proposed again for a day,
    /// so that a pattern whose index did not pay off does not flap.
    reverted: HashMap<String, Instant>,
    /// Composites (table label, keys without the tenant column) the planner
    /// declined, and when: for `DECLINED_FOR`, their calls count for their
    /// single columns instead.
    declined: HashMap<(String, Vec<String>), Instant>,
    /// Failed builds whose INVALID index could not be dropped yet, by name:
    /// the create record the cleanup will point at.
    failed_creates: HashMap<String, i64>,
    profiles: Profiles,
    /// The genome as last synced to `genome_catalog`.
    genome: Option<Vec<genome::catalog::Field>>,
    /// Expression indexes asked of PostgreSQL ([`ddl::refusal`]), by name:
    /// why it refuses them, or `None` when it accepts them.
    refused: HashMap<String, Option<String>>,
    /// When the current round started.
    round_started: Instant,
}

/// An index IndexPilot built (its create record), as the book keeps it.
#[derive(Clone, Debug)]
struct Built {
    create_id: i64,
    tenant: Option<String>,
    /// Table label.
    table: String,
    keys: Vec<String>,
    /// Planner cost units it saves per call of the statements it was built
    /// for (the planner's what-if, else the estimate), and what its upkeep
    /// costs per second: with the calls those statements make now, its
    /// value against later proposals when a budget binds.
    saving_per_call: f64,
    upkeep_per_sec: f64,
    fingerprints: Vec<u64>,
    built_at: SystemTime,
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
            pending: Vec::new(),
            watched: HashMap::new(),
            book: HashMap::new(),
            recorded: HashMap::new(),
            backoff: HashMap::new(),
            reverted: HashMap::new(),
            declined: HashMap::new(),
            failed_creates: HashMap::new(),
            profiles: Profiles::default(),
            genome: None,
            refused: HashMap::new(),
            round_started: Instant::now(),
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

    /// Pick up what a previous leader left: builds not yet verified, the
    /// book of indexes built (the hour's kept builds among them), recent
    /// reverts. (INVALID indexes an interrupted
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
            let fingerprints = hex_fingerprints(&evidence["proposal"]["fingerprints"]);
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
                control_before: Measured {
                    calls: evidence["before"]["control_calls"].as_u64().unwrap_or(0),
                    total_us: evidence["before"]["control_total_us"].as_u64().unwrap_or(0),
                },
                // The after window starts now: this leader saw nothing earlier.
                built_at: now,
            });
        }
        for r in client
            .query(
                &format!(
                    "select distinct on (index_name) index_name, id, tenant, table_name, columns,
                            evidence::text, at
                       from {s}.mutation_log
                      where kind = 'create' and outcome = 'built' and index_name is not null
                      order by index_name, id desc"
                ),
                &[],
            )
            .await?
        {
            let table: Option<String> = r.get(3);
            let evidence: serde_json::Value =
                serde_json::from_str(&r.get::<_, String>(5)).unwrap_or_default();
            let proposal = &evidence["proposal"];
            let planner = &proposal["planner"];
            let saving_per_call = match (
                planner["cost_before"].as_f64(),
                planner["cost_after"].as_f64(),
            ) {
                (Some(before), Some(after)) => (before - after).max(0.0),
                _ => proposal["estimate"]["saving_per_call"]
                    .as_f64()
                    .unwrap_or(0.0),
            };
            let built = Built {
                create_id: r.get(1),
                tenant: r.get(2),
                table: table.unwrap_or_default(),
                keys: r.get(4),
                saving_per_call,
                upkeep_per_sec: proposal["estimate"]["write_overhead_per_sec"]
                    .as_f64()
                    .unwrap_or(0.0),
                fingerprints: hex_fingerprints(&proposal["fingerprints"]),
                built_at: r.get(6),
            };
            self.book.insert(r.get(0), built);
        }
        self.profiles = Profiles::load(client, self.schema()).await?;
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
        Ok(())
    }

    /// One decision round.
    async fn round(&mut self, client: &mut Client) -> Result<(), IndexerError> {
        self.round_started = Instant::now();
        let prefix = self.ix().index_prefix.clone();
        let mut tables = catalog::load(client, &prefix, self.schema()).await?;
        // The genome follows the catalog within one round of any DDL.
        let desired = genome::catalog::discover(&tables, &self.config.genome);
        if self.genome.as_ref() != Some(&desired) {
            let schema = self.config.admin.schema.clone();
            genome::catalog::sync(client, &schema, &desired, &self.proxy_id).await?;
            self.genome = Some(desired);
        }
        let client: &Client = client;
        let rates_known = self.update_write_rates(&mut tables);
        self.sweep_invalid(client, &tables).await?;
        self.verify(client, &tables).await?;
        self.drop_unused(client, &tables).await?;
        self.advise_redundant(client, &tables).await?;
        if !rates_known {
            // The first round only samples write counters.
            return Ok(());
        }
        let mut snapshot = self.workload(client).await?;
        let config = self.config.clone();
        self.profiles
            .refresh_declared(client, &config.admin.schema)
            .await?;
        self.profiles
            .observe(
                client,
                &config.admin.schema,
                &snapshot,
                &config.expression,
                &config.analysis.tenant_column,
                &self.proxy_id,
            )
            .await?;
        self.profiles.filter(&mut snapshot);
        self.drop_unexpressed(client, &tables).await?;
        self.report_breadth(&snapshot);
        self.learn_texts(client, &tables).await?;
        tables.retain(|t| in_genome(&config, t));
        self.declined.retain(|_, at| at.elapsed() < DECLINED_FOR);
        let settings = Settings {
            declined: self.declined.keys().cloned().collect(),
            ..settings(&config)
        };
        let (mut found, _) = candidates::generate(&snapshot, &tables, &settings);
        let shaped = self.statement_candidates(&tables, &settings);
        let tenant_column = &settings.tenant_column;
        found.retain(|c| {
            !shaped
                .iter()
                .any(|s| candidates::statement::shadows(s, c, tenant_column))
        });
        found.extend(shaped);
        found.sort_by(|a, b| b.evidence.recent.total_cmp(&a.evidence.recent));
        let hypopg =
            self.ix().hypopg && matches!(whatif::hypopg_version(client).await, Ok(Some(_)));
        let proposals = self.proposals(client, &tables, &found, hypopg).await;
        for p in proposals.iter().filter(|p| !p.worthwhile) {
            if let Some(keys) = candidates::composite_keys(&p.candidate, &settings.tenant_column) {
                let key = (p.candidate.table.clone(), keys.to_vec());
                self.declined.insert(key, Instant::now());
            }
        }
        let pending = self.act(client, &tables, proposals).await?;
        metrics::gauge!(m::RECOMMENDATIONS_PENDING).set(pending as f64);
        metrics::gauge!(m::LAST_DECISION_TIMESTAMP_SECONDS).set(unix_now());
        Ok(())
    }

    /// Metrics: tenants active, fields expressed per table (at most 20
    /// tables by name, the rest summed as "(other)").
    fn report_breadth(&self, snapshot: &Snapshot) {
        let active: std::collections::HashSet<&str> = snapshot
            .columns
            .iter()
            .filter(|c| c.calls > 0)
            .filter_map(|c| c.tenant.as_deref())
            .collect();
        metrics::gauge!(m::TENANTS_ACTIVE).set(active.len() as f64);
        let mut other = 0;
        for (i, (table, n)) in self.profiles.expressed_per_table().into_iter().enumerate() {
            if i < 20 {
                metrics::gauge!(m::FIELDS_EXPRESSED, "table" => table).set(n as f64);
            } else {
                other += n;
            }
        }
        if other > 0 {
            metrics::gauge!(m::FIELDS_EXPRESSED, "table" => "(other)").set(other as f64);
        }
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
            let template = self.stats.template(fp);
            if !self.uses.knows(fp, template.is_some()) {
                let learned = template.is_some();
                local.push((fp, template.unwrap_or_else(|| text.to_string()), learned));
            }
        });
        for (fp, text, template) in local {
            self.uses
                .learn(fp, &text, template, &catalog, &tenant_column);
        }
        let flushed = workload::texts(client, self.schema()).await?;
        if flushed.len() != self.texts_seen {
            self.texts_seen = flushed.len();
            for (fp, text) in flushed {
                if !self.uses.knows(fp, false) {
                    self.uses.learn(fp, &text, false, &catalog, &tenant_column);
                }
            }
        }
        Ok(())
    }

    /// Candidates shaped after single statements (ordered, partial on their
    /// constant predicates): from the statements learned from templates
    /// that ran `indexer.min_calls` times (at most [`TEMPLATE_AFTER`], when
    /// their template is ready) within the lookback.
    ///
    /// [`TEMPLATE_AFTER`]: crate::stats::TEMPLATE_AFTER
    fn statement_candidates(&self, tables: &[TableFacts], settings: &Settings) -> Vec<Candidate> {
        let (span, _) = lookback(&self.config);
        let now = SystemTime::now();
        let mut out: Vec<Candidate> = Vec::new();
        for (fp, l) in self.uses.lookups() {
            // A template exists after TEMPLATE_AFTER executions; the column
            // statistics of the same statement cross min_calls no sooner.
            let calls = self.stats.measured(&[fp], None, now - span, now).calls;
            if calls < settings.min_calls.min(crate::stats::TEMPLATE_AFTER) {
                continue;
            }
            let Some(t) = tables
                .iter()
                .find(|t| l.table == t.label() || l.table == format!("{}.{}", t.schema, t.name))
            else {
                continue;
            };
            if t.rows < settings.min_table_rows {
                continue;
            }
            let Ok(mut c) = candidates::statement::propose(l, t, &settings.tenant_column, calls)
            else {
                continue;
            };
            c.statement = Some(fp);
            let barred = c.keys.iter().any(|k| {
                settings
                    .not_indexable
                    .iter()
                    .any(|(table, col)| *table == c.table && col == k)
            });
            let prefix = &self.ix().index_prefix;
            if !barred
                && !out
                    .iter()
                    .any(|o| o.index_name(prefix) == c.index_name(prefix))
            {
                out.push(c);
            }
        }
        out
    }

    async fn proposals(
        &mut self,
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
        let mut refusals = Vec::new();
        for c in found.iter().take(MAX_PROPOSALS) {
            // This index or a variant of it with another sparse key.
            let names = c.index_names(&self.ix().index_prefix);
            let exists = tables
                .iter()
                .any(|t| t.indexes.iter().any(|i| names.contains(&i.name)));
            let waiting = names.iter().any(|name| {
                self.pending.iter().any(|p| p.index_name == *name)
                    || self
                        .reverted
                        .get(name)
                        .is_some_and(|t| t.elapsed() < RERECORD_AFTER)
                    || self
                        .backoff
                        .get(name)
                        .is_some_and(|t| t.elapsed() < FAILED_BUILD_BACKOFF)
            });
            if exists || waiting {
                continue;
            }
            if let Some(mut p) = plan::propose(&round, c).await {
                if p.worthwhile
                    && p.spec
                        .keys
                        .iter()
                        .any(|k| matches!(k, ddl::IndexKey::Expression(_)))
                {
                    refusals.push(out.len());
                }
                let tenant_column = &self.config.analysis.tenant_column;
                if let Some(field) = c.keys.iter().find(|k| *k != tenant_column) {
                    p.expression = Some(format!(
                        "{}.{field} expressed by {} of {} active tenants \
                         (declared, or >= {} calls of their own: expression.min_calls)",
                        c.table,
                        self.profiles.expressed_by(&c.table, field),
                        c.evidence.tenants_active,
                        self.config.expression.min_calls
                    ));
                }
                out.push(p);
            }
        }
        for i in refusals {
            let p = &mut out[i];
            let refused = match self.refused.get(&p.index_name) {
                Some(known) => known.clone(),
                None => match ddl::refusal(client, &p.spec).await {
                    Ok(r) => {
                        self.refused.insert(p.index_name.clone(), r.clone());
                        r
                    }
                    Err(e) => {
                        warn!(index = %p.index_name, error = %e, "probing an expression index failed");
                        None
                    }
                },
            };
            if let Some(why) = refused {
                p.worthwhile = false;
                p.net_benefit = 0.0;
                p.verdict = why;
            }
        }
        out
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

/// Fingerprints written as hex strings in lineage evidence.
fn hex_fingerprints(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| u64::from_str_radix(f.as_str()?, 16).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Leader {
    /// What an index of ours is worth now: its saving per call times the
    /// calls its statements made over the last verify window, minus upkeep
    /// (planner cost units per second). Measured, not as estimated at its
    /// build: an index built early, on little traffic, is not ranked on it.
    fn value_now(&self, b: &Built) -> f64 {
        let window = self.config.indexer.verify_window;
        let now = SystemTime::now();
        let calls = self
            .stats
            .measured(&b.fingerprints, b.tenant.as_deref(), now - window, now)
            .calls;
        b.saving_per_call * calls as f64 / window.as_secs_f64().max(1.0) - b.upkeep_per_sec
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
