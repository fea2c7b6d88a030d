//! `indexpilot advise`: the decision the leader would take now, computed
//! from the statistics every replica flushed, printed with its evidence and
//! DDL (text, or JSON for scripts).

use std::time::{Duration, Instant};

use serde_json::json;

use super::{dsn, lookback, settings, IndexerError, MAX_PROPOSALS};
use crate::config::Config;
use crate::indexer::candidates::{self, Rejected};
use crate::indexer::plan::{self, Proposal, Round, Uses};
use crate::indexer::{catalog, whatif, workload};

/// How long `indexpilot advise` samples the tables' write counters.
const ADVISE_WRITE_SAMPLE: Duration = Duration::from_secs(2);

/// `indexpilot advise`: what the leader would decide now from the
/// statistics every replica flushed, with write rates sampled over two
/// seconds, as text or JSON.
pub async fn advise(config: &Config, json_out: bool) -> Result<String, IndexerError> {
    let dsn = dsn(config).ok_or(IndexerError::NoDsn)?;
    let client = crate::indexer::leader::connect_plain(&dsn).await?;
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
        uses.learn(fp, &text, false, &catalog, &config.analysis.tenant_column);
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
            let names = c.index_names(&ix.index_prefix);
            t.indexes.iter().any(|i| names.contains(&i.name))
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
