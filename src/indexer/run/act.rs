//! Acting on proposals: record them (`advise`), or build the best one
//! inside build windows and budgets (`apply`); declined and deferred
//! proposals are recorded too, at most once a day each.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio_postgres::Client;
use tracing::{info, warn};

use super::{proposal_mutation, unix_now, IndexerError, Leader, Pending, RERECORD_AFTER};
use crate::config::IndexerMode;
use crate::indexer::ddl;
use crate::indexer::lineage::Kind;
use crate::indexer::model::TableFacts;
use crate::indexer::plan::Proposal;
use crate::metrics as m;
use crate::store::quote_ident;

impl Leader {
    /// Record or build; returns how many worthwhile proposals wait.
    pub(super) async fn act(
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
        if self.recorded_recently(client, &key).await? {
            return Ok(());
        }
        let m = proposal_mutation(p, Kind::Advise, outcome, reason, json!({ "proposal": p }));
        self.record(client, m).await?;
        self.recorded.insert(key, Instant::now());
        Ok(())
    }

    /// Whether an advise entry for (index name, outcome) was recorded
    /// within [`RERECORD_AFTER`] (by this leader or, after a takeover, a
    /// previous one).
    pub(super) async fn recorded_recently(
        &mut self,
        client: &Client,
        key: &(String, String),
    ) -> Result<bool, IndexerError> {
        if self.recorded.is_empty() {
            self.load_recorded(client).await?;
        }
        Ok(self
            .recorded
            .get(key)
            .is_some_and(|t| t.elapsed() < RERECORD_AFTER))
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
                let reason = match &p.expression {
                    Some(breadth) => {
                        format!("{}; {breadth}; {}", p.candidate.evidence.reason, p.verdict)
                    }
                    None => format!("{}; {}", p.candidate.evidence.reason, p.verdict),
                };
                let m = proposal_mutation(p, Kind::Create, "built", &reason, evidence);
                let id = self.record(client, m).await?;
                self.creates.insert(p.index_name.clone(), id);
                self.created_meta.insert(
                    p.index_name.clone(),
                    (
                        p.candidate.tenant.clone(),
                        p.candidate.table.clone(),
                        p.candidate.keys.clone(),
                    ),
                );
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
}
