//! Acting on proposals: record them (`advise`), or build the best one
//! inside build windows and budgets (`apply`); declined and deferred
//! proposals are recorded too, at most once a day each.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio_postgres::Client;
use tracing::{info, warn};

use super::{proposal_mutation, unix_now, Built, IndexerError, Leader, Pending, RERECORD_AFTER};
use crate::config::IndexerMode;
use crate::indexer::ddl;
use crate::indexer::lineage::{Kind, Mutation};
use crate::indexer::model::{IndexFacts, TableFacts};
use crate::indexer::plan::Proposal;
use crate::indexer::select::{self, Budgets, Decision, Defer, Held, Offer};
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
        let mut offers = Vec::new();
        for (id, p) in proposals.iter().enumerate() {
            if !p.worthwhile {
                self.note(client, p, "declined", &p.verdict).await?;
            } else if self.ix().mode == IndexerMode::Advise {
                waiting += 1;
                self.note(client, p, "recommended", &p.verdict).await?;
            } else {
                offers.push(Offer {
                    id,
                    table: p.candidate.table.clone(),
                    family: p
                        .candidate
                        .tenant
                        .as_ref()
                        .map(|_| family(&p.candidate.table, &p.candidate.keys)),
                    net_per_sec: p.value_per_sec(),
                    bytes: p.estimated_bytes,
                });
            }
        }
        if offers.is_empty() {
            return Ok(waiting);
        }
        if self.outside_build_windows() {
            for o in &offers {
                let why = "outside the build windows (indexer.build_windows)";
                self.note(client, &proposals[o.id], "deferred: build window", why)
                    .await?;
            }
            return Ok(waiting + offers.len());
        }
        let held = self.held(tables);
        let budgets = self.budgets(tables);
        let mut built = false;
        for d in select::select(&offers, &held, &budgets) {
            match d {
                Decision::Build { .. } | Decision::Replace { .. } if built => {
                    // One build at a time: the rest wait for the next round.
                    waiting += 1;
                }
                Decision::Build { id } => {
                    built = true;
                    self.build(client, tables, &proposals[id], None).await?;
                }
                Decision::Replace { id, victim } => {
                    built = true;
                    let victim = held.iter().find(|h| h.name == victim).cloned();
                    self.build(client, tables, &proposals[id], victim).await?;
                }
                Decision::Defer { id, why } => {
                    waiting += 1;
                    let p = &proposals[id];
                    let reason = self.deferred_reason(why, tables, p, &held, &budgets);
                    // One bounded outcome; the reason names the key that binds.
                    self.note(client, p, "deferred: budget", &reason).await?;
                }
            }
        }
        Ok(waiting)
    }

    fn outside_build_windows(&self) -> bool {
        let windows = &self.config.indexer.build_windows;
        let minute = ((unix_now() as u64 % 86_400) / 60) as u16;
        !windows.is_empty() && !windows.iter().any(|w| w.contains(minute))
    }

    /// The indexes of ours in place, as the selector ranks them.
    fn held(&self, tables: &[TableFacts]) -> Vec<Held> {
        let mut out = Vec::new();
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && i.valid) {
                let built = self.book.get(&i.name);
                out.push(Held {
                    name: i.name.clone(),
                    table: t.label(),
                    family: built
                        .filter(|b| b.tenant.is_some())
                        .map(|b| family(&b.table, &b.keys)),
                    net_per_sec: built.map_or(0.0, |b| self.value_now(b)),
                    bytes: i.size_bytes,
                    pinned: built.is_none() || self.pending.iter().any(|p| p.index_name == i.name),
                });
            }
        }
        out
    }

    /// The room left: builds of the last hour count only while their index
    /// is in place (a failed or since-dropped build does not use the hour).
    fn budgets(&self, tables: &[TableFacts]) -> Budgets {
        let ix = &self.config.indexer;
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let present = |name: &str| {
            tables
                .iter()
                .any(|t| t.indexes.iter().any(|i| i.valid && i.name == name))
        };
        let kept = self
            .book
            .iter()
            .filter(|(name, b)| b.built_at >= hour_ago && present(name))
            .count();
        let total = ours_bytes(tables);
        Budgets {
            per_table: ix.max_indexes_per_table,
            builds_left: (ix.max_builds_per_hour as usize).saturating_sub(kept),
            bytes_left: (ix.max_total_index_bytes > 0)
                .then(|| ix.max_total_index_bytes as i64 - total),
        }
    }

    /// The lineage reason of a deferral, with the figures that decided it.
    fn deferred_reason(
        &self,
        why: Defer,
        tables: &[TableFacts],
        p: &Proposal,
        held: &[Held],
        budgets: &Budgets,
    ) -> String {
        let ix = &self.config.indexer;
        let mine = select::density(p.value_per_sec(), p.estimated_bytes);
        match why {
            Defer::Hourly => format!(
                "budget: {} builds kept in the last hour (indexer.max_builds_per_hour)",
                ix.max_builds_per_hour as usize - budgets.builds_left
            ),
            Defer::Table => {
                let weakest = held
                    .iter()
                    .filter(|h| h.table == p.candidate.table && !h.pinned)
                    .map(|h| (h, select::density(h.net_per_sec, h.bytes)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let count = held.iter().filter(|h| h.table == p.candidate.table).count();
                match weakest {
                    Some((h, d)) => format!(
                        "budget: {count} indexes of ours on {} (indexer.max_indexes_per_table); \
                         net benefit {} per MiB, the weakest of ours ({}) {} per MiB: a \
                         replacement needs {:.0}x",
                        p.candidate.table,
                        per_mib(mine),
                        h.name,
                        per_mib(d),
                        select::REPLACE_MARGIN
                    ),
                    None => format!(
                        "budget: {count} indexes of ours on {} (indexer.max_indexes_per_table), \
                         none verified yet to compare with",
                        p.candidate.table
                    ),
                }
            }
            Defer::Bytes => {
                let total = ours_bytes(tables);
                format!(
                    "budget: {total} bytes of ours + ~{} would exceed indexer.max_total_index_bytes",
                    p.estimated_bytes
                )
            }
        }
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

    /// Build `p`; when it replaces `victim` (a full table's weakest index of
    /// ours), drop that one once the new one is in place.
    async fn build(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
        p: &Proposal,
        victim: Option<Held>,
    ) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        let now = SystemTime::now();
        let tenant = p.candidate.tenant.as_deref();
        let before = self
            .stats
            .measured(&p.fingerprint_ids, tenant, now - ix.verify_window, now);
        let control_before =
            self.stats
                .measured_except(&p.fingerprint_ids, now - ix.verify_window, now);
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
            "control_calls": control_before.calls,
            "control_total_us": control_before.total_us,
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
                let built = Built {
                    create_id: id,
                    tenant: p.candidate.tenant.clone(),
                    table: p.candidate.table.clone(),
                    keys: p.candidate.keys.clone(),
                    saving_per_call: p.saving_per_call(),
                    upkeep_per_sec: p.estimate.write_overhead_per_sec,
                    fingerprints: p.fingerprint_ids.clone(),
                    built_at: now,
                };
                self.book.insert(p.index_name.clone(), built);
                self.pending.push(Pending {
                    create_id: id,
                    schema: p.schema.clone(),
                    table: p.candidate.table.clone(),
                    index_name: p.index_name.clone(),
                    tenant: p.candidate.tenant.clone(),
                    fingerprints: p.fingerprint_ids.clone(),
                    before,
                    control_before,
                    built_at: SystemTime::now(),
                });
                if let Some(victim) = victim {
                    self.replace(client, p, id, outcome.size_bytes, &victim)
                        .await?;
                }
                self.consolidate(client, tables, p, id).await?;
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

    /// Drop the plain indexes of ours that the plain index `p` just built
    /// (create record `create_id`) extends: one index serves both sets of
    /// lookups, and every write paid for two. Not while one of them is
    /// still being verified (should the new one be reverted, it is needed).
    async fn consolidate(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
        p: &Proposal,
        create_id: i64,
    ) -> Result<(), IndexerError> {
        let c = &p.candidate;
        if c.tenant.is_some() || c.not_null.is_some() || c.partial.is_some() {
            return Ok(());
        }
        let Some(t) = tables.iter().find(|t| t.label() == c.table) else {
            return Ok(());
        };
        let started = self.round_started;
        for old in t.indexes.iter().filter(|i| consolidated(&c.keys, i)) {
            let Some(built) = self.book.get(&old.name).cloned() else {
                continue; // not provably ours
            };
            let just_dropped = self
                .reverted
                .get(&old.name)
                .is_some_and(|at| *at >= started);
            if just_dropped || self.pending.iter().any(|q| q.index_name == old.name) {
                continue; // the replaced victim, or still being verified
            }
            let outcome = self
                .undo(client, &t.schema, &old.name, m::INDEXES_DROPPED_TOTAL)
                .await;
            let m = Mutation {
                parent_id: Some(built.create_id),
                kind: Kind::Drop,
                tenant: None,
                table: Some(t.label()),
                columns: old.keys.clone(),
                index_name: Some(old.name.clone()),
                ddl: Some(ddl::drop_sql(&t.schema, &old.name)),
                reason: format!(
                    "consolidated into {} ({}): its keys ({}) are a prefix, so it serves every \
                     lookup this one did, and each write maintained both",
                    p.index_name,
                    c.keys.join(", "),
                    old.keys.join(", ")
                ),
                evidence: json!({
                    "consolidated_into": { "index_name": p.index_name, "create_id": create_id,
                                           "keys": c.keys },
                    "size_bytes": old.size_bytes, "idx_scan": old.scans,
                }),
                outcome,
            };
            self.record(client, m).await?;
        }
        Ok(())
    }

    /// Drop `victim` now that `p` (create record `create_id`) replaced it,
    /// linked both ways in the lineage: the drop's parent is the victim's
    /// create record, its evidence names the replacement.
    async fn replace(
        &mut self,
        client: &Client,
        p: &Proposal,
        create_id: i64,
        size_bytes: i64,
        victim: &Held,
    ) -> Result<(), IndexerError> {
        let Some(old) = self.book.get(&victim.name).cloned() else {
            return Ok(());
        };
        let new_density = select::density(p.value_per_sec(), size_bytes);
        let old_density = select::density(victim.net_per_sec, victim.bytes);
        let schema = p.schema.clone();
        let outcome = self
            .undo(client, &schema, &victim.name, m::INDEXES_DROPPED_TOTAL)
            .await;
        let reason = format!(
            "replaced by {} ({}) under indexer.max_indexes_per_table: net benefit {} per MiB \
             against {} per MiB (needs {:.0}x)",
            p.index_name,
            p.candidate.keys.join(", "),
            per_mib(new_density),
            per_mib(old_density),
            select::REPLACE_MARGIN
        );
        let m = Mutation {
            parent_id: Some(old.create_id),
            kind: Kind::Drop,
            tenant: old.tenant.clone(),
            table: Some(old.table.clone()),
            columns: old.keys.clone(),
            index_name: Some(victim.name.clone()),
            ddl: Some(ddl::drop_sql(&schema, &victim.name)),
            reason,
            evidence: json!({
                "replaced_by": { "index_name": p.index_name, "create_id": create_id,
                                 "keys": p.candidate.keys, "net_per_sec": p.value_per_sec(),
                                 "size_bytes": size_bytes },
                "replaced": { "net_per_sec": victim.net_per_sec, "size_bytes": victim.bytes },
                "margin": select::REPLACE_MARGIN,
            }),
            outcome,
        };
        self.record(client, m).await?;
        Ok(())
    }
}

/// Whether `new_keys` (a plain index just built) makes `old` redundant: a
/// plain btree index of ours whose keys are a strict prefix of them, so
/// every lookup it served the new one serves too.
fn consolidated(new_keys: &[String], old: &IndexFacts) -> bool {
    old.ours
        && old.valid
        && old.btree
        && !old.unique
        && old.predicate.is_none()
        && old.keys.len() < new_keys.len()
        && new_keys.starts_with(&old.keys)
}

/// Bytes of every index of ours in place.
fn ours_bytes(tables: &[TableFacts]) -> i64 {
    tables
        .iter()
        .flat_map(|t| &t.indexes)
        .filter(|i| i.ours)
        .map(|i| i.size_bytes)
        .sum()
}

/// The budget family of per-tenant partial indexes on `keys` of `table`.
fn family(table: &str, keys: &[String]) -> String {
    format!("{table} ({})", keys.join(", "))
}

/// Net benefit per byte as cost units per second per MiB, for reasons.
fn per_mib(density: f64) -> String {
    format!("{:.3} cost units/s", density * (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_ours_that_a_new_one_extends_is_consolidated() {
        let k = |keys: &[&str]| keys.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ours = |keys: &[&str]| IndexFacts {
            name: "indexpilot_x".into(),
            keys: k(keys),
            valid: true,
            ours: true,
            btree: true,
            ..IndexFacts::default()
        };
        let new = k(&["tenant_id", "status", "due_at"]);
        // (existing index, consolidated into the new one)
        let cases = [
            (ours(&["tenant_id", "status"]), true),
            (ours(&["tenant_id"]), true),
            (ours(&["tenant_id", "status", "due_at"]), false), // the same keys
            (ours(&["tenant_id", "due_at"]), false),           // not a prefix
            (
                IndexFacts {
                    ours: false,
                    ..ours(&["tenant_id"])
                },
                false,
            ),
            (
                IndexFacts {
                    predicate: Some("x > 0".into()),
                    ..ours(&["tenant_id"])
                },
                false,
            ),
            (
                IndexFacts {
                    unique: true,
                    ..ours(&["tenant_id"])
                },
                false,
            ),
        ];
        for (old, want) in cases {
            assert_eq!(consolidated(&new, &old), want, "{old:?}");
        }
    }
}
