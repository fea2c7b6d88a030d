//! The leader's upkeep between decisions: drop INVALID indexes a failed
//! build left, keep or revert verified builds, drop indexes of ours that
//! are long unused or superseded by another (each outcome a lineage record
//! pointing at its create), and advise on the application's indexes one of
//! ours makes redundant.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio_postgres::Client;
use tracing::warn;

use super::{IndexerError, Leader, Pending, Watched, VERIFY_PATIENCE};
use crate::indexer::ddl;
use crate::indexer::lineage::{Kind, Mutation};
use crate::indexer::model::{IndexFacts, TableFacts};
use crate::indexer::{plan, whatif};
use crate::metrics as m;
use crate::stats::latency::Measured;

/// The outcome of an advice on a redundant index of the application's.
const REDUNDANT: &str = "redundant";

impl Leader {
    /// Advise (never act) on the application's indexes that one of ours
    /// makes redundant: every write maintains both, and lookups on the
    /// shorter keys can use ours. Recorded at most once a day each.
    pub(super) async fn advise_redundant(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        for t in tables {
            for (theirs, ours) in t.redundant_with_ours() {
                let key = (theirs.name.clone(), REDUNDANT.to_string());
                if self.recorded_recently(client, &key).await? {
                    continue;
                }
                let drop = ddl::drop_sql(&t.schema, &theirs.name);
                let reason = format!(
                    "{} ({}) is a prefix of IndexPilot's {} ({}): lookups on its keys can use \
                     that one, and every write to {} maintains both ({:.0} writes/s). \
                     IndexPilot never drops an index it did not create; if nothing else \
                     needs it (pg_stat_user_indexes.idx_scan: {} scans), {drop}",
                    theirs.name,
                    theirs.keys.join(", "),
                    ours.name,
                    ours.keys.join(", "),
                    t.label(),
                    t.writes_per_sec,
                    theirs.scans
                );
                let m = Mutation {
                    parent_id: self.book.get(&ours.name).map(|b| b.create_id),
                    kind: Kind::Advise,
                    tenant: None,
                    table: Some(t.label()),
                    columns: theirs.keys.clone(),
                    index_name: Some(theirs.name.clone()),
                    ddl: None,
                    reason,
                    evidence: json!({
                        "redundant": { "name": theirs.name, "keys": theirs.keys,
                                       "size_bytes": theirs.size_bytes, "scans": theirs.scans },
                        "covered_by": { "name": ours.name, "keys": ours.keys },
                        "writes_per_sec": t.writes_per_sec,
                        "suggested": drop,
                    }),
                    outcome: REDUNDANT.into(),
                };
                self.record(client, m).await?;
                self.recorded.insert(key, Instant::now());
            }
        }
        Ok(())
    }

    /// Drop INVALID indexes of ours (no build is in flight between rounds):
    /// those a failed build could not drop at once, because the same
    /// transaction that made it time out still held the table.
    pub(super) async fn sweep_invalid(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && !i.valid) {
                if self.drop_ours(client, &t.schema, &i.name).await.is_err() {
                    continue; // the writer still holds the table: next round
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

    /// Keep or revert the builds whose verification window has passed.
    pub(super) async fn verify(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
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
            let control_after =
                self.stats
                    .measured_except(&p.fingerprints, now - ix.verify_window, now);
            let v = Verdict::of(
                &p.before,
                &after,
                &p.control_before,
                &control_after,
                ix.verify_min_gain,
                ix.verify_min_calls,
            );
            let (scans, plan) = self.in_use(client, tables, &p).await;
            let columns = self
                .book
                .get(&p.index_name)
                .map(|b| b.keys.clone())
                .unwrap_or_default();
            let evidence = json!({
                "index": { "name": p.index_name, "columns": columns, "tenant": p.tenant },
                "before": { "calls": p.before.calls, "mean_ms": p.before.mean_ms() },
                "after": { "calls": after.calls, "mean_ms": after.mean_ms() },
                "measured_gain": v.gain,
                "control": { "calls_before": p.control_before.calls, "mean_ms_before": p.control_before.mean_ms(),
                             "calls_after": control_after.calls, "mean_ms_after": control_after.mean_ms(),
                             "machine_drift": v.drift },
                "adjusted_gain": v.adjusted,
                "idx_scan": scans,
                "generic_plan_uses_it": plan,
                "min_gain": ix.verify_min_gain,
                "window_s": ix.verify_window.as_secs_f64(),
                "fingerprints": p.fingerprints.iter().map(|f| format!("{f:016x}")).collect::<Vec<_>>(),
            });
            let figures = format!(
                "{} ({}): mean latency {:.3} ms -> {:.3} ms ({:.2}x; {:.2}x after the control group's \
                 drift {:.2}), {} scans, generic plan {}",
                p.index_name,
                columns.join(", "),
                p.before.mean_ms(),
                after.mean_ms(),
                v.gain,
                v.adjusted,
                v.drift,
                scans.map_or("?".into(), |n| n.to_string()),
                match plan {
                    Some(true) => "uses it",
                    Some(false) => "does not use it",
                    None => "not checked",
                }
            );
            let base = Mutation {
                parent_id: Some(p.create_id),
                kind: Kind::Keep,
                tenant: p.tenant.clone(),
                table: Some(p.table.clone()),
                columns,
                index_name: Some(p.index_name.clone()),
                ddl: None,
                reason: String::new(),
                evidence,
                outcome: "kept".into(),
            };
            match v.outcome {
                Outcome::Unverified => {
                    let reason = format!(
                        "not enough traffic to compare ({} calls before, {} after; need {}): kept, \
                         the unused check still applies; {figures}",
                        p.before.calls, after.calls, ix.verify_min_calls
                    );
                    let m = Mutation {
                        reason,
                        outcome: "unverified".into(),
                        ..base
                    };
                    self.record(client, m).await?;
                }
                Outcome::Keep => {
                    let reason = format!("{figures} >= {:.2}x", ix.verify_min_gain);
                    self.record(client, Mutation { reason, ..base }).await?;
                }
                Outcome::Revert => {
                    let what = if v.adjusted < 1.0 {
                        "regression"
                    } else {
                        "no significant gain"
                    };
                    let reason = format!("{what}: {figures} < {:.2}x", ix.verify_min_gain);
                    // A failed drop is retried as an unused index later.
                    let outcome = self
                        .undo(client, &p.schema, &p.index_name, m::INDEXES_REVERTED_TOTAL)
                        .await;
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
        }
        Ok(())
    }

    /// Whether the index is in use: its scans so far, and whether the
    /// generic plan of the first statement it was built for (for the
    /// heaviest tenant) uses it. Per-tenant partial indexes get no plan
    /// check: a generic plan cannot prove their predicate.
    async fn in_use(
        &self,
        client: &Client,
        tables: &[TableFacts],
        p: &Pending,
    ) -> (Option<i64>, Option<bool>) {
        let table = tables.iter().find(|t| t.label() == p.table);
        let scans = table
            .and_then(|t| t.indexes.iter().find(|i| i.name == p.index_name))
            .map(|i| i.scans);
        if p.tenant.is_some() {
            return (scans, None);
        }
        let tenant_column = &self.config.analysis.tenant_column;
        let text = p.fingerprints.iter().find_map(|fp| {
            let text = self.uses.text(*fp)?;
            Some(
                table
                    .and_then(|t| plan::heaviest_tenant(text, tenant_column, t))
                    .unwrap_or_else(|| text.to_string()),
            )
        });
        let plan = match text {
            Some(text) => whatif::plan(client, &text)
                .await
                .ok()
                .map(|c| c.indexes.contains(&p.index_name)),
            None => None,
        };
        (scans, plan)
    }

    /// Drop indexes of ours nobody has scanned for `indexer.unused_after`,
    /// and, sooner, idle ones another index has taken over from
    /// ([`Leader::superseded`]).
    pub(super) async fn drop_unused(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        let ix = self.config.indexer.clone();
        let verifying: Vec<String> = self.pending.iter().map(|p| p.table.clone()).collect();
        let mut present = Vec::new();
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && i.valid) {
                present.push(i.name.clone());
                let Some(create_id) = self.book.get(&i.name).map(|b| b.create_id) else {
                    continue; // no create record: not provably ours
                };
                if self.pending.iter().any(|p| p.index_name == i.name) {
                    continue;
                }
                let w = self.watched.entry(i.name.clone()).or_insert(Watched {
                    create_id,
                    scans: i.scans,
                    since: Instant::now(),
                    checked: None,
                });
                let Some(idle) = w.idle(i.scans, verifying.contains(&t.label()), Instant::now())
                else {
                    continue;
                };
                let parent = w.create_id;
                let unused_for = ix.unused_after.filter(|after| idle >= *after);
                let check_due = unused_for.is_none()
                    && ix.drop_superseded
                    && idle >= ix.verify_window
                    && w.checked.is_none_or(|c| c.elapsed() >= ix.verify_window);
                if check_due {
                    w.checked = Some(Instant::now());
                }
                let verdict = match unused_for {
                    Some(after) => Some(unused(i, idle, after)),
                    None if write_hot_idle(idle, ix.verify_window, t.writes_per_sec) => {
                        Some(idle_on_write_hot(i, idle, t.writes_per_sec))
                    }
                    None if check_due => self.superseded(client, t, i, idle).await,
                    None => None,
                };
                let Some((reason, evidence)) = verdict else {
                    continue;
                };
                self.watched.remove(&i.name);
                let outcome = self
                    .undo(client, &t.schema, &i.name, m::INDEXES_DROPPED_TOTAL)
                    .await;
                let m = Mutation {
                    parent_id: Some(parent),
                    kind: Kind::Drop,
                    tenant: None,
                    table: Some(t.label()),
                    columns: i.keys.clone(),
                    index_name: Some(i.name.clone()),
                    ddl: Some(ddl::drop_sql(&t.schema, &i.name)),
                    reason,
                    evidence,
                    outcome,
                };
                self.record(client, m).await?;
            }
        }
        self.watched.retain(|name, _| present.contains(name));
        Ok(())
    }

    /// Whether the work of an idle index of ours has moved to another
    /// index: the statements it serves ran (at least
    /// `indexer.verify_min_calls` times while it sat idle) and the generic
    /// plan of each of them uses another index of the table and not this
    /// one (for the heaviest tenant, when the statement is tenant-scoped).
    /// Live scans already rule out custom plans that still use it.
    /// Partial indexes are left to `unused_after`: a generic plan cannot
    /// prove a per-tenant predicate, so it never shows them in use.
    async fn superseded(
        &self,
        client: &Client,
        t: &TableFacts,
        i: &IndexFacts,
        idle: Duration,
    ) -> Option<(String, Value)> {
        if i.predicate.is_some() {
            return None;
        }
        let tenant_column = &self.config.analysis.tenant_column;
        let fingerprints = self.uses.serving(&t.label(), &i.keys, tenant_column);
        let now = SystemTime::now();
        let calls = self
            .stats
            .measured(&fingerprints, None, now - idle, now)
            .calls;
        if fingerprints.is_empty() || calls < self.config.indexer.verify_min_calls {
            return None;
        }
        let mut instead = BTreeSet::new();
        let mut planned = 0;
        for fp in fingerprints.iter().take(SUPERSEDED_PLANS) {
            let text = self.uses.text(*fp)?;
            // As candidates are costed: for the heaviest tenant, whose
            // lookups an average tenant's generic plan misjudges.
            let costed = plan::heaviest_tenant(text, tenant_column, t);
            let plan = whatif::plan(client, costed.as_deref().unwrap_or(text))
                .await
                .ok()?;
            let others: Vec<&String> = plan
                .indexes
                .iter()
                .filter(|n| **n != i.name && t.indexes.iter().any(|x| x.name == **n))
                .collect();
            if plan.indexes.contains(&i.name) || others.is_empty() {
                return None; // still chosen, or nothing chosen: not superseded
            }
            instead.extend(others.into_iter().cloned());
            planned += 1;
        }
        let instead: Vec<String> = instead.into_iter().collect();
        let reason = format!(
            "superseded: no scans for {:.0} s while the statements it was built for ran {calls} \
             times; the planner now serves {} with {}",
            idle.as_secs_f64(),
            if planned == 1 {
                "it".to_string()
            } else {
                format!("all {planned}")
            },
            instead.join(", ")
        );
        let evidence = json!({
            "idx_scan": i.scans, "size_bytes": i.size_bytes, "idle_s": idle.as_secs_f64(),
            "calls": calls, "served_by": instead,
            "fingerprints": fingerprints.iter().take(SUPERSEDED_PLANS)
                .map(|f| format!("{f:016x}")).collect::<Vec<_>>(),
        });
        Some((reason, evidence))
    }

    /// Drop per-tenant partial indexes of ours whose tenant no longer
    /// expresses the field they serve (faded, or declared disabled).
    pub(super) async fn drop_unexpressed(
        &mut self,
        client: &Client,
        tables: &[TableFacts],
    ) -> Result<(), IndexerError> {
        let tenant_column = self.config.analysis.tenant_column.clone();
        for t in tables {
            for i in t.indexes.iter().filter(|i| i.ours && i.valid) {
                let Some(built) = self.book.get(&i.name).cloned() else {
                    continue;
                };
                let (Some(tenant), table, keys) = (built.tenant, built.table, built.keys) else {
                    continue;
                };
                let Some(field) = keys.iter().find(|k| **k != tenant_column) else {
                    continue;
                };
                if self.profiles.allows(&tenant, &table, field) {
                    continue;
                }
                let parent = Some(built.create_id);
                let outcome = self
                    .undo(client, &t.schema, &i.name, m::INDEXES_DROPPED_TOTAL)
                    .await;
                let m = Mutation {
                    parent_id: parent,
                    kind: Kind::Drop,
                    tenant: Some(tenant.clone()),
                    table: Some(table.clone()),
                    columns: keys.clone(),
                    index_name: Some(i.name.clone()),
                    ddl: Some(ddl::drop_sql(&t.schema, &i.name)),
                    reason: format!(
                        "tenant {tenant} no longer expresses {table}.{field}: the partial index served only it"
                    ),
                    evidence: json!({ "idx_scan": i.scans, "size_bytes": i.size_bytes }),
                    outcome,
                };
                self.record(client, m).await?;
            }
        }
        Ok(())
    }

    /// `DROP INDEX CONCURRENTLY` of an index of ours under the configured
    /// timeouts.
    async fn drop_ours(
        &self,
        client: &Client,
        schema: &str,
        name: &str,
    ) -> Result<(), ddl::DdlError> {
        let ix = &self.config.indexer;
        let dropped = ddl::drop_index(
            client,
            schema,
            name,
            &ix.index_prefix,
            ix.lock_timeout,
            ix.statement_timeout,
        )
        .await;
        if let Err(e) = &dropped {
            warn!(index = name, error = %e, "dropping an index of ours failed; retried later");
        }
        dropped
    }

    /// Drop an index this leader decided against: counted in `metric`, not
    /// proposed again for a day. Returns the lineage outcome.
    pub(super) async fn undo(
        &mut self,
        client: &Client,
        schema: &str,
        name: &str,
        metric: &'static str,
    ) -> String {
        match self.drop_ours(client, schema, name).await {
            Ok(()) => {
                metrics::counter!(metric).increment(1);
                self.reverted.insert(name.to_string(), Instant::now());
                DROPPED.to_string()
            }
            Err(e) => format!("drop failed: {}", e.kind()),
        }
    }
}

/// The control group's slowdown is trusted up to this factor: beyond it the
/// machine changed too much for any latency verdict to mean much. A control
/// that got faster is not held against the index: other builds of the same
/// minutes speed up their own statements, which sit in the control group.
const MAX_DRIFT: f64 = 2.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Keep,
    Revert,
    Unverified,
}

/// The latency signals of a verification.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Verdict {
    /// Mean latency before ÷ after, of the statements the index serves.
    gain: f64,
    /// Mean latency after ÷ before of the control group (every other
    /// statement), between 1 and [`MAX_DRIFT`]; 1 when it ran too little to
    /// say.
    drift: f64,
    /// `gain × drift`: the gain with the machine's own change taken out.
    adjusted: f64,
    outcome: Outcome,
}

impl Verdict {
    fn of(
        before: &Measured,
        after: &Measured,
        control_before: &Measured,
        control_after: &Measured,
        min_gain: f64,
        min_calls: u64,
    ) -> Verdict {
        let ratio = |a: &Measured, b: &Measured| {
            if a.calls > 0 && b.calls > 0 && a.total_us > 0 && b.total_us > 0 {
                Some(a.mean_ms() / b.mean_ms())
            } else {
                None
            }
        };
        let gain = ratio(before, after).unwrap_or(0.0);
        let drift = if control_before.calls >= min_calls && control_after.calls >= min_calls {
            ratio(control_after, control_before)
                .unwrap_or(1.0)
                .clamp(1.0, MAX_DRIFT)
        } else {
            1.0
        };
        let adjusted = gain * drift;
        let outcome = if before.calls < min_calls || after.calls < min_calls {
            Outcome::Unverified
        } else if adjusted >= min_gain {
            Outcome::Keep
        } else {
            Outcome::Revert
        };
        Verdict {
            gain,
            drift,
            adjusted,
            outcome,
        }
    }
}

/// Statements whose plans are checked before an index is called superseded.
const SUPERSEDED_PLANS: usize = 8;

/// Reason and evidence of a drop for being unused.
fn unused(i: &IndexFacts, idle: Duration, after: Duration) -> (String, Value) {
    let reason = format!(
        "unused: no scans for {:.0} s (indexer.unused_after = {:.0} s)",
        idle.as_secs_f64(),
        after.as_secs_f64()
    );
    let evidence =
        json!({ "idx_scan": i.scans, "size_bytes": i.size_bytes, "idle_s": idle.as_secs_f64() });
    (reason, evidence)
}

/// A table taking at least this many writes per second is write-hot: every
/// index on it costs each insert, so one of ours that goes unscanned for a
/// whole verify window is dropped then, not after `indexer.unused_after`.
const WRITE_HOT_PER_SEC: f64 = 5.0;

/// Whether an index idle for `idle` on a table taking `writes_per_sec`
/// should go now (write-hot and unscanned for a verify window).
fn write_hot_idle(idle: Duration, verify_window: Duration, writes_per_sec: f64) -> bool {
    writes_per_sec >= WRITE_HOT_PER_SEC && idle >= verify_window
}

/// Reason and evidence of a drop for sitting idle on a write-hot table.
fn idle_on_write_hot(i: &IndexFacts, idle: Duration, writes_per_sec: f64) -> (String, Value) {
    let reason = format!(
        "unused on a write-hot table: no scans for {:.0} s while the table took {writes_per_sec:.0} \
         writes/s (>= {WRITE_HOT_PER_SEC:.0}), each of which maintained it",
        idle.as_secs_f64()
    );
    let evidence = json!({ "idx_scan": i.scans, "size_bytes": i.size_bytes,
                           "idle_s": idle.as_secs_f64(), "writes_per_sec": writes_per_sec });
    (reason, evidence)
}

/// The lineage outcome of a successful drop.
const DROPPED: &str = "dropped";

impl Watched {
    /// How long the index has gone unscanned, given its scan count now;
    /// `None` while it is in use. While a build on the same table is being
    /// verified the clock stays at zero: the planner may prefer the new
    /// index for now, and should that be reverted this one is needed again.
    fn idle(&mut self, scans: i64, table_verifying: bool, now: Instant) -> Option<Duration> {
        if scans != self.scans || table_verifying {
            self.scans = scans;
            self.since = now;
            return None;
        }
        Some(now.saturating_duration_since(self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_take_the_machine_drift_out_of_the_gain() {
        let m = |calls: u64, mean_ms: u64| Measured {
            calls,
            total_us: calls * mean_ms * 1000,
        };
        // (before, after, control before, control after) -> (adjusted, outcome)
        let cases = [
            // 4x faster on a quiet machine.
            (
                (m(100, 8), m(100, 2)),
                (m(100, 1), m(100, 1)),
                4.0,
                Outcome::Keep,
            ),
            // 1.5x faster while the machine got 2x slower: really 3x.
            (
                (m(100, 6), m(100, 4)),
                (m(100, 1), m(100, 2)),
                3.0,
                Outcome::Keep,
            ),
            // Slower only because everything got slower: not a regression.
            (
                (m(100, 4), m(100, 5)),
                (m(100, 2), m(100, 4)),
                1.6,
                Outcome::Keep,
            ),
            // No gain on a steady machine: reverted.
            (
                (m(100, 4), m(100, 4)),
                (m(100, 1), m(100, 1)),
                1.0,
                Outcome::Revert,
            ),
            // The control ran too little: no adjustment.
            (
                (m(100, 4), m(100, 4)),
                (m(3, 1), m(3, 9)),
                1.0,
                Outcome::Revert,
            ),
            // A control that got faster (another build sped it up) is not
            // held against the index.
            (
                (m(100, 4), m(100, 2)),
                (m(100, 4), m(100, 2)),
                2.0,
                Outcome::Keep,
            ),
            // A wild control is capped at 2x.
            (
                (m(100, 4), m(100, 4)),
                (m(100, 1), m(100, 50)),
                2.0,
                Outcome::Keep,
            ),
            // Too little traffic on the statements themselves.
            (
                (m(5, 8), m(100, 2)),
                (m(100, 1), m(100, 1)),
                4.0,
                Outcome::Unverified,
            ),
        ];
        for ((b, a), (cb, ca), adjusted, outcome) in cases {
            let v = Verdict::of(&b, &a, &cb, &ca, 1.2, 20);
            assert!(
                (v.adjusted - adjusted).abs() < 1e-9,
                "{v:?} want {adjusted}"
            );
            assert_eq!(v.outcome, outcome, "{v:?}");
        }
    }

    #[test]
    fn write_hot_tables_drop_idle_indexes_after_one_verify_window() {
        let s = Duration::from_secs;
        let cases = [
            // (idle, verify window, writes/s, drop now)
            (s(59), s(60), 100.0, false),
            (s(60), s(60), 100.0, true),
            (s(600), s(60), 1.0, false), // not write-hot: unused_after decides
            (s(60), s(60), WRITE_HOT_PER_SEC, true),
        ];
        for (idle, window, writes, want) in cases {
            assert_eq!(
                write_hot_idle(idle, window, writes),
                want,
                "{idle:?} {writes}"
            );
        }
    }

    #[test]
    fn idle_clock_restarts_on_scans_and_while_the_table_has_a_build_in_verification() {
        let t0 = Instant::now();
        let mut w = Watched {
            create_id: 1,
            scans: 5,
            since: t0,
            checked: None,
        };
        let s = Duration::from_secs;
        assert_eq!(w.idle(5, false, t0 + s(30)), Some(s(30)));
        assert_eq!(w.idle(6, false, t0 + s(40)), None, "scanned: in use");
        assert_eq!(w.idle(6, false, t0 + s(50)), Some(s(10)));
        // A newer index on the table is being verified: not idle meanwhile.
        assert_eq!(w.idle(6, true, t0 + s(60)), None);
        assert_eq!(w.idle(6, true, t0 + s(120)), None);
        assert_eq!(w.idle(6, false, t0 + s(125)), Some(s(5)));
    }
}
