//! From candidates to costed proposals: which statements each candidate
//! serves (by re-analyzing their normalized text), how often they run, what
//! the index would cost and save — by the estimate of [`cost`](super::cost)
//! and, where HypoPG is installed, by the planner itself — and the DDL.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::candidates::statement::{lookup, Lookup};
use super::candidates::{Candidate, CandidateKind};
use super::cost::{self, CostEstimate, CostInputs};
use super::ddl::{self, IndexKey, IndexSpec, Predicate};
use super::model::TableFacts;
use super::whatif;
use crate::sql::{self, Catalog, TableName};

/// Statements a candidate serves that are tried, in turn, until one can be
/// planned with the hypothetical index.
const PLANNED_STATEMENTS: usize = 3;

/// The planner's cost of a statement must drop by at least this share with
/// the index (Dexter's rule of thumb is 50 %): below it, what exists already
/// serves the statement nearly as well, and the index would cost every
/// write for a few percent.
const MIN_PLANNER_SAVING: f64 = 0.3;

/// Width assumed for an expression key (no pg_stats until it is indexed).
const EXPRESSION_WIDTH: f64 = 16.0;

/// Which (table label, column or expression) each statement filters, sorts
/// or groups on, derived once per fingerprint from its normalized text.
#[derive(Default)]
pub struct Uses {
    by_fingerprint: HashMap<u64, Statement>,
}

struct Statement {
    text: String,
    uses: Vec<(String, String)>,
    /// Learned from its template (its constants kept), not from the
    /// normalized text: the lookup it makes, when a single-table SELECT,
    /// read once here rather than every round.
    template: Option<Option<Lookup>>,
}

impl Uses {
    /// Whether `fingerprint` was learned, from a template when `template`.
    pub fn knows(&self, fingerprint: u64, template: bool) -> bool {
        self.by_fingerprint
            .get(&fingerprint)
            .is_some_and(|s| s.template.is_some() || !template)
    }

    /// The lookups of the statements learned from their templates, by
    /// fingerprint.
    pub fn lookups(&self) -> impl Iterator<Item = (u64, &Lookup)> {
        self.by_fingerprint
            .iter()
            .filter_map(|(fp, s)| Some((*fp, s.template.as_ref()?.as_ref()?)))
    }

    /// Analyze `text` (normalized with `?` placeholders, or a template with
    /// `$n` ones and the statement's constants) and remember its uses.
    pub fn learn(
        &mut self,
        fingerprint: u64,
        text: &str,
        template: bool,
        catalog: &Catalog,
        tenant_column: &str,
    ) {
        let prepared = whatif::placeholders(text);
        let uses = sql::analyze(&prepared, catalog, tenant_column)
            .map(|shapes| {
                shapes
                    .iter()
                    .flat_map(|s| s.filters.iter().chain(&s.order_by).chain(&s.group_by))
                    .filter_map(|f| {
                        let table = f.table.as_ref()?.to_string();
                        Some((
                            table,
                            f.expression.clone().unwrap_or_else(|| f.column.clone()),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.by_fingerprint.insert(
            fingerprint,
            Statement {
                template: template.then(|| lookup(&prepared)),
                text: prepared,
                uses,
            },
        );
    }

    /// Fingerprints that use every key of `keys` but `skip` on `table`.
    pub fn serving(&self, table: &str, keys: &[String], skip: &str) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .by_fingerprint
            .iter()
            .filter(|(_, s)| {
                keys.iter()
                    .filter(|k| *k != skip)
                    .all(|k| s.uses.iter().any(|(t, c)| t == table && c == k))
            })
            .map(|(fp, _)| *fp)
            .collect();
        out.sort_unstable();
        out
    }

    /// The text to EXPLAIN for a fingerprint (`$n` placeholders).
    pub fn text(&self, fingerprint: u64) -> Option<&str> {
        self.by_fingerprint
            .get(&fingerprint)
            .map(|s| s.text.as_str())
    }
}

/// A schema catalog for the analyzer, from the indexer's table facts.
pub fn analyzer_catalog(tables: &[TableFacts]) -> Catalog {
    let mut catalog = Catalog::new();
    for t in tables {
        let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        catalog.add_table(TableName::new(Some(&t.schema), &t.name), columns.clone());
        if t.schema == "public" {
            catalog.add_table(TableName::new(None, &t.name), columns);
        }
    }
    catalog
}

/// What the planner said about one candidate on one statement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannerCheck {
    pub fingerprint: String,
    pub statement: String,
    pub cost_before: f64,
    pub cost_after: f64,
    pub uses_index: bool,
    pub estimated_bytes: i64,
}

/// A candidate with its DDL, cost and verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    pub candidate: Candidate,
    pub schema: String,
    pub table_name: String,
    #[serde(skip)]
    pub spec: IndexSpec,
    pub index_name: String,
    pub ddl: String,
    /// Statements the index serves (fingerprints as hex).
    pub fingerprints: Vec<String>,
    #[serde(skip)]
    pub fingerprint_ids: Vec<u64>,
    pub calls_per_sec: f64,
    pub writes_per_sec: f64,
    pub estimate: CostEstimate,
    /// `None`: HypoPG unavailable (or the statement could not be planned).
    pub planner: Option<PlannerCheck>,
    /// Planner cost of the statement as it runs now, when EXPLAIN worked
    /// without HypoPG.
    pub plan_cost_now: Option<f64>,
    pub planner_note: Option<String>,
    /// Expression breadth behind the decision, e.g. "contacts.custom_1
    /// expressed by 2 of 50 active tenants".
    pub expression: Option<String>,
    pub estimated_bytes: i64,
    /// Net benefit over the horizon, in planner cost units, and the verdict.
    pub net_benefit: f64,
    pub worthwhile: bool,
    pub verdict: String,
}

impl Proposal {
    /// Planner cost units saved per call: the planner's what-if when it
    /// costed the index, else the estimate.
    pub fn saving_per_call(&self) -> f64 {
        match &self.planner {
            Some(p) => (p.cost_before - p.cost_after).max(0.0),
            None => self.estimate.saving_per_call,
        }
    }

    /// Net value per second at the measured rate: saving per call × calls
    /// per second − upkeep per second (planner cost units), the figure
    /// proposals and the indexes in place are ranked on.
    pub fn value_per_sec(&self) -> f64 {
        self.saving_per_call() * self.calls_per_sec - self.estimate.write_overhead_per_sec
    }
}

/// Calls per second of some fingerprints (for one tenant or all) measured
/// recently, if known.
pub type RecentRate = dyn Fn(&[u64], Option<&str>) -> Option<f64> + Sync;

/// The inputs shared by all proposals of one round.
pub struct Round<'a> {
    pub tables: &'a [TableFacts],
    pub uses: &'a Uses,
    pub tenant_column: &'a str,
    pub prefix: &'a str,
    pub horizon: Duration,
    /// Seconds of traffic the candidates' call counts cover.
    pub observed_secs: f64,
    /// Calls per second measured recently, by fingerprint (may be empty).
    pub recent_rate: &'a RecentRate,
    /// A connection for EXPLAIN; `hypopg` says whether what-if is possible.
    pub client: Option<&'a Client>,
    pub hypopg: bool,
}

/// Turn a candidate into a costed proposal.
pub async fn propose(round: &Round<'_>, c: &Candidate) -> Option<Proposal> {
    let table = round.tables.iter().find(|t| t.label() == c.table)?;
    let keys: Vec<IndexKey> = c
        .keys
        .iter()
        .map(|k| match table.column(k) {
            Some(_) => IndexKey::Column(k.clone()),
            None => IndexKey::Expression(k.clone()),
        })
        .collect();
    let spec = IndexSpec {
        schema: table.schema.clone(),
        table: table.name.clone(),
        keys,
        predicate: match (&c.tenant, &c.not_null, &c.partial) {
            (Some(t), _, _) => Some(Predicate::Equals {
                column: round.tenant_column.to_string(),
                value: t.clone(),
            }),
            (None, Some(column), _) => Some(Predicate::NotNull {
                column: column.clone(),
            }),
            (None, None, Some(p)) => Some(Predicate::Sql(p.sql.clone())),
            (None, None, None) => None,
        },
    };
    let index_name = c.index_name(round.prefix);
    let ddl_text = ddl::create_sql(&spec, &index_name);
    let mut fingerprints = round.uses.serving(&c.table, &c.keys, round.tenant_column);
    if let Some(origin) = c.statement {
        // The statement it was shaped after is the one to plan; a partial
        // index serves only statements that imply its predicate.
        fingerprints.retain(|fp| *fp != origin && c.partial.is_none());
        fingerprints.insert(0, origin);
    }
    let averaged = c.evidence.calls as f64 / round.observed_secs.max(1.0);
    let recent = (round.recent_rate)(&fingerprints, c.tenant.as_deref()).unwrap_or(0.0);
    let calls_per_sec = averaged.max(recent);
    let width: f64 = c
        .keys
        .iter()
        .map(|k| {
            table
                .column(k)
                .map_or(EXPRESSION_WIDTH, |col| col.avg_width.max(4.0))
        })
        .sum();
    let partial_share = match (&c.tenant, &c.not_null, &c.partial) {
        (Some(t), _, _) => tenant_share(table, round.tenant_column, t),
        (None, Some(col), _) => table.column(col).map_or(1.0, |f| 1.0 - f.null_frac),
        (None, None, Some(p)) => p.share,
        (None, None, None) => 1.0,
    };
    let inputs = CostInputs {
        table_rows: table.rows,
        table_pages: table.pages,
        selectivity: c.evidence.selectivity,
        calls_per_sec,
        writes_per_sec: table.writes_per_sec * partial_share,
        index_width_bytes: width,
    };
    let estimate = cost::estimate(&inputs, round.horizon.as_secs_f64());
    let mut estimated_bytes =
        (table.rows * partial_share * (width + 16.0) / 0.9).round() as i64 + 8192;
    let mut planner = None;
    let mut plan_cost_now = None;
    let mut planner_note = None;
    let statements: Vec<(u64, String)> = fingerprints
        .iter()
        .filter_map(|fp| {
            let text = round.uses.text(*fp)?;
            let costed = heaviest_tenant(text, round.tenant_column, table)
                .unwrap_or_else(|| text.to_string());
            Some((*fp, costed))
        })
        .take(PLANNED_STATEMENTS)
        .collect();
    // With HypoPG, nothing is built unless the planner costed it.
    let mut unchecked = false;
    if let (Some(client), false) = (round.client, statements.is_empty()) {
        // A partial index's predicate (tenant = X) cannot be proven from a
        // generic plan's `tenant = $n`: those are left to the estimate.
        if round.hypopg && c.tenant.is_some() {
            planner_note = Some(
                "per-tenant partial index: the planner check needs the tenant's value; estimate used"
                    .into(),
            );
        } else if round.hypopg {
            unchecked = true;
            for (fp, text) in &statements {
                match whatif::what_if(client, text, &spec).await {
                    Ok(w) => {
                        estimated_bytes = w.estimated_bytes.max(8192);
                        planner = Some(PlannerCheck {
                            fingerprint: format!("{fp:016x}"),
                            statement: text.clone(),
                            cost_before: w.before,
                            cost_after: w.after,
                            uses_index: w.uses_index,
                            estimated_bytes: w.estimated_bytes,
                        });
                        unchecked = false;
                        break;
                    }
                    Err(e) => planner_note = Some(format!("what-if failed: {e}")),
                }
            }
        } else if let Some((_, text)) = statements.first() {
            match whatif::plan(client, text).await {
                Ok(p) => plan_cost_now = Some(p.total),
                Err(e) => planner_note = Some(format!("EXPLAIN failed: {e}")),
            }
        }
    } else if round.hypopg && c.tenant.is_none() {
        unchecked = true;
        planner_note = Some("no statement it serves could be planned".into());
    }
    let horizon = round.horizon.as_secs_f64();
    let (net_benefit, worthwhile, verdict) = judge(
        planner.as_ref(),
        unchecked.then(|| planner_note.as_deref().unwrap_or("no plan")),
        &estimate,
        calls_per_sec,
        horizon,
    );
    Some(Proposal {
        candidate: c.clone(),
        schema: table.schema.clone(),
        table_name: table.name.clone(),
        spec,
        index_name,
        ddl: ddl_text,
        fingerprints: fingerprints.iter().map(|f| format!("{f:016x}")).collect(),
        fingerprint_ids: fingerprints,
        calls_per_sec,
        writes_per_sec: inputs.writes_per_sec,
        estimate,
        planner,
        plan_cost_now,
        planner_note,
        expression: None,
        estimated_bytes,
        net_benefit,
        worthwhile,
        verdict,
    })
}

/// The net benefit over the horizon, whether it is worth building, and the
/// verdict's text: the planner's figures when it costed the index (it must
/// use it, and cut the statement's cost by [`MIN_PLANNER_SAVING`]); none
/// when HypoPG is there but could not cost it (`unchecked`: why); the
/// estimate otherwise.
fn judge(
    planner: Option<&PlannerCheck>,
    unchecked: Option<&str>,
    estimate: &CostEstimate,
    calls_per_sec: f64,
    horizon: f64,
) -> (f64, bool, String) {
    match planner {
        Some(p) if !p.uses_index => (
            0.0,
            false,
            "the planner would not use this index (HypoPG what-if)".to_string(),
        ),
        Some(p) if p.cost_after > p.cost_before * (1.0 - MIN_PLANNER_SAVING) => (
            0.0,
            false,
            format!(
                "the planner's cost per call drops only {:.0}% ({:.1} -> {:.1}; needs {:.0}%): \
                 what exists serves it nearly as well (HypoPG what-if)",
                (1.0 - p.cost_after / p.cost_before.max(f64::MIN_POSITIVE)) * 100.0,
                p.cost_before,
                p.cost_after,
                MIN_PLANNER_SAVING * 100.0
            ),
        ),
        Some(p) => {
            let saving = cost::planner_saving(p.cost_before, p.cost_after, calls_per_sec, horizon);
            let net = saving - estimate.write_overhead_per_sec * horizon - estimate.build_cost;
            (net, net > 0.0, verdict_text(net, "planner (HypoPG)"))
        }
        None if unchecked.is_some() => (
            0.0,
            false,
            format!(
                "HypoPG is installed but the planner could not cost this index ({}): \
                 not built on the estimate alone",
                unchecked.unwrap_or_default()
            ),
        ),
        None => (
            estimate.net_benefit,
            estimate.worthwhile,
            verdict_text(estimate.net_benefit, "estimate"),
        ),
    }
}

fn verdict_text(net: f64, source: &str) -> String {
    if net > 0.0 {
        format!("worth it: saves {net:.0} cost units net over the horizon ({source})")
    } else {
        format!(
            "not worth it: build + write overhead exceed the saving by {:.0} cost units ({source})",
            -net
        )
    }
}

/// The share of a table's rows belonging to `tenant`, from the tenant
/// column's most common values (else one over its distinct count).
fn tenant_share(table: &TableFacts, tenant_column: &str, tenant: &str) -> f64 {
    let Some(col) = table.column(tenant_column) else {
        return 1.0;
    };
    if let Some((_, f)) = col.most_common.iter().find(|(v, _)| v == tenant) {
        return *f;
    }
    let distinct = col.distinct(table.rows);
    if distinct > 0.0 {
        1.0 / distinct
    } else {
        1.0
    }
}

/// `text` with its tenant parameter (`tenant_column = $n`) replaced by the
/// table's most common tenant, later parameters renumbered. A generic plan
/// costs a lookup for an average tenant; with skewed tenants the lookups
/// that hurt are the big tenants', so that is the one to ask the planner
/// about. `None` when the statement has no tenant parameter or the tenant
/// column no most-common values.
pub fn heaviest_tenant(text: &str, tenant_column: &str, table: &TableFacts) -> Option<String> {
    let shapes = sql::analyze(text, &Catalog::new(), tenant_column).ok()?;
    let n = shapes.iter().find_map(|s| match s.tenant {
        Some(sql::TenantValue::Param(n)) => Some(n),
        _ => None,
    })?;
    let (value, _) = table.column(tenant_column)?.most_common.first()?;
    let literal = format!("'{}'", value.replace('\'', "''"));
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + literal.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if let Ok(k) = text[i + 1..i + 1 + digits].parse::<u16>() {
                if k == n {
                    out.push_str(&literal);
                } else {
                    out.push_str(&format!("${}", if k > n { k - 1 } else { k }));
                }
                i += 1 + digits;
                continue;
            }
        }
        let ch = text[i..].chars().next()?;
        out.push(ch);
        i += ch.len_utf8();
    }
    Some(out)
}

/// The label a [`CandidateKind`] gets in evidence and output.
pub fn kind_label(kind: CandidateKind) -> &'static str {
    match kind {
        CandidateKind::Single => "single",
        CandidateKind::TenantComposite => "tenant_composite",
        CandidateKind::TenantPartial => "tenant_partial",
        CandidateKind::Expression => "expression",
        CandidateKind::Statement => "statement",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexer::model::ColumnFacts;

    #[test]
    fn verdicts_need_the_planner_when_it_can_be_asked() {
        let estimate = cost::estimate(
            &CostInputs {
                table_rows: 1e6,
                table_pages: 1e4,
                selectivity: 1e-6,
                calls_per_sec: 10.0,
                writes_per_sec: 0.0,
                index_width_bytes: 8.0,
            },
            3600.0,
        );
        assert!(estimate.worthwhile, "{estimate:?}");
        let check = |before: f64, after: f64, uses_index: bool| PlannerCheck {
            fingerprint: String::new(),
            statement: String::new(),
            cost_before: before,
            cost_after: after,
            uses_index,
            estimated_bytes: 1 << 20,
        };
        // (planner, unchecked, worthwhile, part of the verdict)
        let cases = [
            (Some(check(1000.0, 10.0, true)), None, true, "worth it"),
            (
                Some(check(1000.0, 10.0, false)),
                None,
                false,
                "would not use",
            ),
            (Some(check(2.6, 2.3, true)), None, false, "drops only 12%"),
            (Some(check(10.0, 6.9, true)), None, true, "worth it"),
            (
                None,
                Some("what-if failed: x"),
                false,
                "not built on the estimate alone",
            ),
            (None, None, true, "(estimate)"),
        ];
        for (planner, unchecked, worthwhile, part) in cases {
            let (_, w, verdict) = judge(planner.as_ref(), unchecked, &estimate, 10.0, 3600.0);
            assert_eq!(w, worthwhile, "{verdict}");
            assert!(verdict.contains(part), "{verdict}");
        }
    }

    #[test]
    fn the_tenant_parameter_becomes_the_heaviest_tenant() {
        let table = TableFacts {
            name: "organizations".into(),
            schema: "public".into(),
            columns: vec![ColumnFacts {
                name: "tenant_id".into(),
                most_common: vec![("0".into(), 0.17), ("1".into(), 0.09)],
                ..ColumnFacts::default()
            }],
            ..TableFacts::default()
        };
        let text = "select id from organizations where industry = $1 and tenant_id = $2 \
                    order by created_at desc limit $3";
        assert_eq!(
            heaviest_tenant(text, "tenant_id", &table).unwrap(),
            "select id from organizations where industry = $1 and tenant_id = '0' \
             order by created_at desc limit $2"
        );
        assert!(heaviest_tenant(
            "select 1 from organizations where id = $1",
            "tenant_id",
            &table
        )
        .is_none());
    }
}
