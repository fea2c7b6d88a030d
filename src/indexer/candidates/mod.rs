//! Candidate generation (DESIGN decision 8): a pure function from what the
//! proxy measured ([`Snapshot`]) and what the catalog says ([`TableFacts`])
//! to proposed btree indexes, and to the patterns not proposed, with why.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{ColumnFacts, TableFacts};
use crate::stats::Snapshot;

/// Above this share of a table's rows per looked-up value, an index is not
/// worth having: the planner would scan the table anyway.
const MAX_SELECTIVITY: f64 = 0.1;

/// An equality key whose lookups match more than this share of the rows
/// (for the values looked up, [`equality_selectivity`]) filters out too
/// little to be worth a key, even behind the tenant column: the trap of
/// `status = 'closed'` when most rows are closed.
const MAJORITY: f64 = 0.5;

/// A key column that at least this share of rows leave NULL, and that every
/// lookup compares with a strict operator (`=`, `IN`, `<`, `BETWEEN`,
/// `LIKE 'x%'`: none matches NULL), gets an index partial `WHERE column IS
/// NOT NULL`: a custom field few tenants fill costs the others' writes
/// nothing and the index a fraction of the size.
const SPARSE_NULL_FRAC: f64 = 0.5;

/// The knobs of candidate generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// A pattern needs this many calls within the kept windows. Default 50.
    pub min_calls: u64,
    /// Tables with fewer rows (`reltuples`) get no index. Default 10 000.
    pub min_table_rows: f64,
    /// The column that scopes rows to a tenant. Default `tenant_id`.
    pub tenant_column: String,
    /// At most this many tenants get per-tenant partial indexes for one
    /// field. Default 3.
    pub max_partial_tenants: usize,
    /// A field used by at most this share of a table's active tenants gets
    /// per-tenant partial indexes instead of a tenant composite. Default 0.2.
    pub partial_share: f64,
    /// (table label, column) the genome marks not indexable.
    pub not_indexable: Vec<(String, String)>,
    /// (table label, keys without the tenant column) of composites the
    /// planner recently declined: not proposed again for a while, and their
    /// calls count for the single columns instead.
    pub declined: Vec<(String, Vec<String>)>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            min_calls: 50,
            min_table_rows: 10_000.0,
            tenant_column: "tenant_id".to_string(),
            max_partial_tenants: 3,
            partial_share: 0.2,
            not_indexable: Vec::new(),
            declined: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CandidateKind {
    Single,
    TenantComposite,
    TenantPartial,
    Expression,
    /// Shaped after one statement: equality columns, then its ORDER BY,
    /// partial on its rare constant predicates ([`statement`]).
    Statement,
}

/// An index predicate made of a statement's constant conjuncts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Partial {
    /// Trusted SQL built by [`statement`] (identifiers quoted).
    pub sql: String,
    /// The share of the table's rows it holds (pg_stats).
    pub share: f64,
}

/// The numbers behind a proposal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub calls: u64,
    pub recent: f64,
    pub tenants_using: usize,
    pub tenants_active: usize,
    pub rows_per_call: f64,
    pub table_rows: f64,
    /// Estimated fraction of the table one lookup returns.
    pub selectivity: f64,
    pub reason: String,
}

/// A proposed index.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// Table label (`table` or `schema.table`).
    pub table: String,
    /// Columns or expression texts, in index order.
    pub keys: Vec<String>,
    /// Some: a partial index `WHERE <tenant_column> = tenant`.
    pub tenant: Option<String>,
    /// Some: a partial index `WHERE column IS NOT NULL` (a sparse key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_null: Option<String>,
    /// Some: a partial index on a statement's constant predicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// The statement a [`CandidateKind::Statement`] candidate was shaped
    /// after (its fingerprint): asked of the planner first, and the only one
    /// a partial candidate is verified on (others may not imply its
    /// predicate).
    #[serde(skip)]
    pub statement: Option<u64>,
    pub kind: CandidateKind,
    pub evidence: Evidence,
}

impl Candidate {
    /// The name IndexPilot gives this candidate's index.
    pub fn index_name(&self, prefix: &str) -> String {
        super::ddl::scoped_index_name(
            prefix,
            &self.table,
            &self.named_keys(),
            self.tenant.as_deref(),
            self.not_null.as_deref(),
        )
    }

    /// The keys a name is made of: a statement predicate marks them, so the
    /// partial index gets a name of its own.
    fn named_keys(&self) -> Vec<String> {
        let mut keys = self.keys.clone();
        if let Some(p) = &self.partial {
            keys.push(format!("\u{1}where {}", p.sql));
        }
        keys
    }

    /// The names of this index and of its variants with another choice of
    /// sparse key (or none): a column whose NULL share crosses
    /// [`SPARSE_NULL_FRAC`] must not get a second index on the same keys.
    pub fn index_names(&self, prefix: &str) -> Vec<String> {
        let sparse = std::iter::once(None).chain(self.keys.iter().map(|k| Some(k.as_str())));
        sparse
            .map(|s| {
                super::ddl::scoped_index_name(
                    prefix,
                    &self.table,
                    &self.named_keys(),
                    self.tenant.as_deref(),
                    s,
                )
            })
            .collect()
    }
}

/// A pattern that was seen but not proposed, and why (with its numbers).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub table: String,
    pub keys: Vec<String>,
    pub reason: String,
}

/// How a filtered column or expression can lead or end an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Equality,
    Range,
    Expression,
    /// Filtered, but no plain btree serves it (`<>`, `IS NOT NULL`, ...).
    Unindexable,
}

/// Traffic on one column, or one AND-group of columns, summed over tenants.
#[derive(Clone, Debug, Default)]
struct Usage {
    calls: u64,
    rows: u64,
    recent: f64,
    per_tenant: BTreeMap<String, u64>,
}

impl Usage {
    fn add(&mut self, tenant: Option<&str>, calls: u64, rows: u64, recent: f64) {
        self.calls += calls;
        self.rows += rows;
        self.recent += recent;
        if let Some(t) = tenant {
            *self.per_tenant.entry(t.to_string()).or_default() += calls;
        }
    }

    fn rows_per_call(&self) -> f64 {
        self.rows as f64 / self.calls.max(1) as f64
    }
}

/// One column's traffic and its best role.
#[derive(Clone, Debug)]
struct ColumnUsage {
    role: Role,
    /// Every use compared it with a strict operator (never matches NULL).
    strict: bool,
    usage: Usage,
}

fn role_of(class: &str, column: &str) -> Role {
    match class {
        // An expression in a GROUP BY or ORDER BY alone is no reason for an
        // expression index: only a filter on it is (DESIGN: shapes).
        "order_by" | "group_by" if !is_identifier(column) => Role::Unindexable,
        "equality" | "in_list" | "is_null" | "join" => Role::Equality,
        "range" | "between" | "like_prefix" | "order_by" | "group_by" => Role::Range,
        "expression" if !is_identifier(column) => Role::Expression,
        _ => Role::Unindexable,
    }
}

fn is_strict(class: &str) -> bool {
    matches!(
        class,
        "equality" | "in_list" | "range" | "between" | "like_prefix"
    )
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '"')
}

/// What one table saw: its columns, AND-groups and active tenants.
#[derive(Debug, Default)]
struct TableUsage {
    columns: BTreeMap<String, ColumnUsage>,
    groups: BTreeMap<Vec<String>, Usage>,
    tenants: BTreeSet<String>,
}

fn aggregate(snapshot: &Snapshot) -> BTreeMap<String, TableUsage> {
    let mut tables: BTreeMap<String, TableUsage> = BTreeMap::new();
    for c in &snapshot.columns {
        let t = tables.entry(c.table.to_string()).or_default();
        let tenant = c.tenant.as_deref();
        if let Some(name) = tenant {
            t.tenants.insert(name.to_string());
        }
        let role = role_of(c.class, &c.column);
        let entry = t
            .columns
            .entry(c.column.to_string())
            .or_insert_with(|| ColumnUsage {
                role,
                strict: true,
                usage: Usage::default(),
            });
        // The most index-friendly role a column was used with wins.
        entry.role = entry.role.min(role);
        entry.strict &= is_strict(c.class);
        entry.usage.add(tenant, c.calls, c.rows, c.recent);
    }
    for g in &snapshot.groups {
        let t = tables.entry(g.table.to_string()).or_default();
        let mut cols: Vec<String> = g.columns.iter().map(|c| c.to_string()).collect();
        cols.sort();
        t.groups
            .entry(cols)
            .or_default()
            .add(g.tenant.as_deref(), g.calls, 0, g.recent);
    }
    tables
}

/// Estimated fraction of rows one equality lookup on `col` returns, for
/// values looked up as often as they occur: the sum of the squared most
/// common frequencies plus the rest spread evenly. A column whose most
/// common value holds 88 % of the rows is no key for most lookups, however
/// many distinct values it has (the average `1 / n_distinct` would say
/// otherwise). Without most common values, `(1 - null_frac) / n_distinct`.
fn equality_selectivity(col: &ColumnFacts, rows: f64) -> Option<f64> {
    let distinct = col.distinct(rows);
    if col.most_common.is_empty() {
        return (distinct > 0.0).then(|| (1.0 - col.null_frac) / distinct);
    }
    let common: f64 = col.most_common.iter().map(|(_, f)| f * f).sum();
    let mcv_total: f64 = col.most_common.iter().map(|(_, f)| f).sum();
    let rest = (1.0 - col.null_frac - mcv_total).max(0.0);
    let others = (distinct - col.most_common.len() as f64).max(1.0);
    Some(common + rest * rest / others)
}

/// One key set being considered on one table.
struct Pattern<'a> {
    table: &'a TableFacts,
    label: &'a str,
    keys: Vec<String>,
    usage: Usage,
    tenants_active: usize,
    /// The last key is a range (its n_distinct says nothing of a lookup).
    range: bool,
    /// Observed rows per call when a single column's rows are known.
    observed_rows: Option<f64>,
    /// The sparsest key column every lookup compares strictly, if at least
    /// [`SPARSE_NULL_FRAC`] of rows leave it NULL.
    sparse: Option<String>,
}

/// The accumulating result of [`generate`].
#[derive(Default)]
struct Outcome {
    candidates: Vec<Candidate>,
    rejected: Vec<Rejected>,
}

impl Outcome {
    fn reject(&mut self, table: &str, keys: &[String], reason: String) {
        self.rejected.push(Rejected {
            table: table.to_string(),
            keys: keys.to_vec(),
            reason,
        });
    }
}

/// Propose indexes for the hot, selective, uncovered patterns of `snapshot`
/// on the tables of `tables`; everything else seen is rejected with its
/// reason. Deterministic: output is sorted by decayed call count.
pub fn generate(
    snapshot: &Snapshot,
    tables: &[TableFacts],
    settings: &Settings,
) -> (Vec<Candidate>, Vec<Rejected>) {
    let mut out = Outcome::default();
    for (label, usage) in aggregate(snapshot) {
        let Some(table) = tables.iter().find(|t| t.label() == label) else {
            for col in usage.columns.keys() {
                out.reject(
                    &label,
                    std::slice::from_ref(col),
                    "no catalog facts for table".into(),
                );
            }
            continue;
        };
        // Composites first: only those proposed (or already covered)
        // claim their columns' calls from the single-column patterns.
        let mut claimed: BTreeMap<String, u64> = BTreeMap::new();
        for p in composite_patterns(table, &label, &usage, settings, &mut out) {
            let calls = p.usage.calls;
            let keys = p.keys.clone();
            if propose(p, settings, &mut out) {
                for k in keys {
                    *claimed.entry(k).or_default() += calls;
                }
            }
        }
        for p in single_patterns(table, &label, &usage, settings, &claimed, &mut out) {
            propose(p, settings, &mut out);
        }
    }
    dedup(&mut out);
    out.candidates.sort_by(|a, b| {
        b.evidence
            .recent
            .total_cmp(&a.evidence.recent)
            .then_with(|| (&a.table, &a.keys, &a.tenant).cmp(&(&b.table, &b.keys, &b.tenant)))
    });
    (out.candidates, out.rejected)
}

fn pattern<'a>(
    table: &'a TableFacts,
    label: &'a str,
    usage: &TableUsage,
    keys: Vec<String>,
    u: &Usage,
    range: bool,
    observed_rows: Option<f64>,
) -> Pattern<'a> {
    let sparse = keys
        .iter()
        .filter(|k| usage.columns.get(*k).is_some_and(|cu| cu.strict))
        .filter_map(|k| table.column(k).map(|c| (k, c.null_frac)))
        .filter(|(_, f)| *f >= SPARSE_NULL_FRAC)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k.clone());
    Pattern {
        table,
        label,
        keys,
        usage: u.clone(),
        tenants_active: usage.tenants.len(),
        range,
        observed_rows,
        sparse,
    }
}

/// Hot AND-groups of one table as composite patterns, except those the
/// planner declined recently (`Settings::declined`).
fn composite_patterns<'a>(
    table: &'a TableFacts,
    label: &'a str,
    usage: &TableUsage,
    settings: &Settings,
    out: &mut Outcome,
) -> Vec<Pattern<'a>> {
    let mut found = Vec::new();
    for (keys, range, gu) in composites(table, usage, settings) {
        if settings
            .declined
            .iter()
            .any(|(t, k)| t == label && *k == keys)
        {
            let reason = "the planner declined this composite recently; \
                          its columns are considered on their own"
                .to_string();
            out.reject(label, &keys, reason);
            continue;
        }
        found.push(pattern(table, label, usage, keys, &gu, range, None));
    }
    found
}

/// Hot single columns and expressions of one table, counting only the calls
/// not `claimed` by a composite proposed from the same traffic.
fn single_patterns<'a>(
    table: &'a TableFacts,
    label: &'a str,
    usage: &TableUsage,
    settings: &Settings,
    claimed: &BTreeMap<String, u64>,
    out: &mut Outcome,
) -> Vec<Pattern<'a>> {
    let mut found = Vec::new();
    let tenant_col = &settings.tenant_column;
    for (col, cu) in &usage.columns {
        let keys = vec![col.clone()];
        let alone = cu
            .usage
            .calls
            .saturating_sub(claimed.get(col).copied().unwrap_or(0));
        if cu.usage.calls < settings.min_calls {
            let reason = format!(
                "cold: {} calls < min_calls {}",
                cu.usage.calls, settings.min_calls
            );
            out.reject(label, &keys, reason);
        } else if alone < settings.min_calls {
            let reason = format!(
                "{} calls, only {alone} outside composite candidates (< min_calls {})",
                cu.usage.calls, settings.min_calls
            );
            out.reject(label, &keys, reason);
        } else if cu.role == Role::Unindexable
            || (cu.role == Role::Expression && table.column(col).is_some())
        {
            let reason = format!(
                "{} calls, but only with operators no btree serves (<>, NOT, IS NOT NULL, %x), \
                 or an expression only grouped or sorted by",
                cu.usage.calls
            );
            out.reject(label, &keys, reason);
        } else if col == tenant_col && has_other_hot(usage, tenant_col, settings) {
            // Leads the tenant composites of the other columns instead.
        } else {
            let observed = Some(cu.usage.rows_per_call());
            let range = cu.role == Role::Range;
            found.push(pattern(
                table, label, usage, keys, &cu.usage, range, observed,
            ));
        }
    }
    found
}

/// Hot AND-groups as key lists: equality columns (not the tenant column),
/// most selective first, then the most used range column. Only groups that
/// give two or more keys; the bool says whether the last key is a range.
fn composites(
    table: &TableFacts,
    usage: &TableUsage,
    settings: &Settings,
) -> Vec<(Vec<String>, bool, Usage)> {
    let role = |c: &String| usage.columns.get(c).map(|cu| cu.role);
    let sel = |c: &String| {
        table
            .column(c)
            .and_then(|f| equality_selectivity(f, table.rows))
            .unwrap_or(1.0)
    };
    let mut found = Vec::new();
    for (cols, gu) in &usage.groups {
        if gu.calls < settings.min_calls {
            continue;
        }
        let mut eq: Vec<&String> = cols
            .iter()
            .filter(|c| **c != settings.tenant_column && role(c) == Some(Role::Equality))
            .filter(|c| sel(c) <= MAJORITY)
            .collect();
        eq.sort_by(|a, b| sel(a).total_cmp(&sel(b)).then(a.cmp(b)));
        let range = cols
            .iter()
            .filter(|c| role(c) == Some(Role::Range))
            .max_by_key(|c| usage.columns[*c].usage.calls);
        let mut keys: Vec<String> = eq.into_iter().cloned().collect();
        keys.extend(range.cloned());
        if keys.len() >= 2 {
            // Groups count no rows: the most selective key's rows per call
            // bound what the whole group returns.
            let mut gu = gu.clone();
            let per_call = keys
                .iter()
                .filter_map(|k| usage.columns.get(k))
                .map(|cu| cu.usage.rows_per_call())
                .fold(f64::INFINITY, f64::min);
            gu.rows = (per_call * gu.calls as f64) as u64;
            found.push((keys, range.is_some(), gu));
        }
    }
    found
}

fn has_other_hot(usage: &TableUsage, tenant_col: &str, settings: &Settings) -> bool {
    usage
        .columns
        .iter()
        .any(|(c, cu)| c != tenant_col && cu.usage.calls >= settings.min_calls)
}

/// The keys of the composite pattern `c` came from (without the tenant
/// column), or `None` when it came from a single column or expression.
pub fn composite_keys<'a>(c: &'a Candidate, tenant_column: &str) -> Option<&'a [String]> {
    let keys = match c.keys.split_first() {
        Some((first, rest)) if first == tenant_column && c.tenant.is_none() => rest,
        _ => &c.keys[..],
    };
    (keys.len() >= 2).then_some(keys)
}

/// Check one pattern against the table's facts and turn it into candidates
/// (a tenant composite, per-tenant partials, or a plain index). True when
/// the pattern's lookups are served: a candidate proposed, or an existing
/// index covering it.
fn propose(p: Pattern<'_>, settings: &Settings, out: &mut Outcome) -> bool {
    let using = p.usage.per_tenant.len();
    let tenant_col = &settings.tenant_column;
    let scoped = using > 0 && p.table.column(tenant_col).is_some() && !p.keys.contains(tenant_col);
    // A tenant-scoped lookup also filters on the tenant: `type = $2` alone
    // may match 1/8 of a table, `tenant_id = $1 AND type = $2` far fewer.
    let tenant_factor = match p.table.column(tenant_col) {
        Some(col) if scoped => equality_selectivity(col, p.table.rows).unwrap_or(1.0),
        _ => 1.0,
    };
    let selectivity = match admit(&p, settings, tenant_factor) {
        Ok(s) => s,
        Err(reason) => {
            out.reject(p.label, &p.keys, reason);
            return false;
        }
    };
    if !scoped {
        if p.covered(&p.keys) {
            out.reject(p.label, &p.keys, COVERED.into());
            return true;
        }
        let reason = format!(
            "{} calls, {:.3}% per lookup",
            p.usage.calls,
            selectivity * 100.0
        );
        let ev = p.evidence(&p.usage, selectivity, reason);
        out.candidates
            .push(p.candidate(p.keys.clone(), None, CandidateKind::Single, ev));
        return true;
    }
    let few = using as f64 <= settings.partial_share * p.tenants_active as f64
        && using <= settings.max_partial_tenants;
    let large = p
        .usage
        .per_tenant
        .values()
        .any(|&c| c >= settings.min_calls);
    if few && large {
        return partials(&p, selectivity, settings, out);
    }
    let keys: Vec<String> = std::iter::once(tenant_col.clone())
        .chain(p.keys.iter().cloned())
        .collect();
    if few {
        // A composite now would be joined by the partial indexes as soon
        // as one of these tenants crosses min_calls: both, for one field.
        let reason = format!(
            "used by {using} of {} tenants, none with indexer.min_calls ({}) calls of its \
             own yet: per-tenant partial indexes wait for one",
            p.tenants_active, settings.min_calls
        );
        out.reject(p.label, &keys, reason);
        return false;
    }
    if p.covered(&keys) || p.covered(&p.keys) {
        out.reject(p.label, &keys, COVERED.into());
        return true;
    }
    let reason = format!(
        "{} calls from {using} of {} tenants, {:.3}% per lookup",
        p.usage.calls,
        p.tenants_active,
        selectivity * 100.0
    );
    let ev = p.evidence(&p.usage, selectivity, reason);
    out.candidates
        .push(p.candidate(keys, None, CandidateKind::TenantComposite, ev));
    true
}

const COVERED: &str = "covered by an existing index prefix";

/// The table is large enough and the keys indexable and selective: the
/// estimated selectivity, or why not.
fn admit(p: &Pattern<'_>, settings: &Settings, tenant_factor: f64) -> Result<f64, String> {
    if let Some(key) = p.keys.iter().find(|k| {
        settings
            .not_indexable
            .iter()
            .any(|(t, c)| t == p.label && c == *k)
    }) {
        return Err(format!(
            "genome: {}.{key} is marked not indexable (genome.not_indexable)",
            p.label
        ));
    }
    let rows = p.table.rows;
    if rows < settings.min_table_rows {
        return Err(format!(
            "table too small: {rows:.0} rows < min_table_rows {:.0}",
            settings.min_table_rows
        ));
    }
    let eq_keys = p.keys.len() - usize::from(p.range);
    for key in &p.keys[..eq_keys] {
        let own = p
            .table
            .column(key)
            .and_then(|c| equality_selectivity(c, rows));
        if let Some(own) = own.filter(|s| *s > MAJORITY) {
            return Err(format!(
                "unselective: {key} = value matches ~{:.0}% of the rows for the values looked up \
                 (pg_stats most common values)",
                own * 100.0
            ));
        }
    }
    let selectivity = selectivity(p)? * tenant_factor;
    if selectivity > MAX_SELECTIVITY {
        return Err(format!(
            "unselective: ~{:.0} rows per lookup = {:.1}% of {rows:.0} > {:.0}%",
            selectivity * rows,
            selectivity * 100.0,
            MAX_SELECTIVITY * 100.0
        ));
    }
    Ok(selectivity)
}

impl Pattern<'_> {
    fn evidence(&self, usage: &Usage, selectivity: f64, reason: String) -> Evidence {
        Evidence {
            calls: usage.calls,
            recent: usage.recent,
            tenants_using: self.usage.per_tenant.len(),
            tenants_active: self.tenants_active,
            rows_per_call: usage.rows_per_call(),
            table_rows: self.table.rows,
            selectivity,
            reason,
        }
    }

    /// An existing index already serves these keys: one that starts with
    /// them, or for a sparse pattern also one partial on the same
    /// `IS NOT NULL` as the index [`candidate`](Self::candidate) would make.
    fn covered(&self, keys: &[String]) -> bool {
        match &self.sparse {
            Some(col) => self.table.covered_where_not_null(keys, col),
            None => self.table.covered_by_prefix(keys),
        }
    }

    /// A candidate; any key that is not a column makes it an expression index.
    fn candidate(
        &self,
        keys: Vec<String>,
        tenant: Option<String>,
        kind: CandidateKind,
        evidence: Evidence,
    ) -> Candidate {
        let expression = keys.iter().any(|k| self.table.column(k).is_none());
        let mut evidence = evidence;
        // A tenant's partial index is narrow already.
        let not_null = self.sparse.clone().filter(|_| tenant.is_none());
        if let Some(col) = &not_null {
            let nulls = self.table.column(col).map_or(0.0, |c| c.null_frac);
            evidence.reason.push_str(&format!(
                "; sparse: {col} is NULL in {:.0}% of rows, so the index holds only the \
                 others (WHERE {col} IS NOT NULL)",
                nulls * 100.0
            ));
        }
        Candidate {
            table: self.label.to_string(),
            keys,
            tenant,
            not_null,
            partial: None,
            statement: None,
            kind: if expression {
                CandidateKind::Expression
            } else {
                kind
            },
            evidence,
        }
    }
}

/// Per-tenant partial indexes for the few tenants using a field, each only
/// when that tenant's own traffic crosses `min_calls`.
fn partials(p: &Pattern<'_>, selectivity: f64, settings: &Settings, out: &mut Outcome) -> bool {
    if p.table.covered_by_prefix(&p.keys) {
        out.reject(p.label, &p.keys, COVERED.into());
        return true;
    }
    let before = out.candidates.len();
    for (tenant, &calls) in &p.usage.per_tenant {
        if calls < settings.min_calls {
            let reason = format!(
                "tenant {tenant}: {calls} calls < min_calls {} for a partial index",
                settings.min_calls
            );
            out.reject(p.label, &p.keys, reason);
            continue;
        }
        let mut usage = p.usage.clone();
        usage.recent *= calls as f64 / p.usage.calls.max(1) as f64;
        usage.rows = (usage.rows_per_call() * calls as f64) as u64;
        usage.calls = calls;
        let reason = format!(
            "used by {} of {} tenants; tenant {tenant}: {calls} calls",
            p.usage.per_tenant.len(),
            p.tenants_active
        );
        let ev = p.evidence(&usage, selectivity, reason);
        let kind = CandidateKind::TenantPartial;
        out.candidates
            .push(p.candidate(p.keys.clone(), Some(tenant.clone()), kind, ev));
    }
    out.candidates.len() > before
}

/// Estimated fraction of the table one lookup on all keys returns (keys
/// assumed independent); errors name a key no btree index can hold.
fn selectivity(p: &Pattern<'_>) -> Result<f64, String> {
    let rows = p.table.rows.max(1.0);
    let observed = p.observed_rows.map(|r| (r / rows).min(1.0));
    let mut product = 1.0;
    let mut known = false;
    let eq_keys = p.keys.len() - usize::from(p.range);
    for (i, key) in p.keys.iter().enumerate() {
        let Some(col) = p.table.column(key) else {
            if is_identifier(key) {
                return Err(format!("column {key} not in catalog"));
            }
            continue; // an expression: no pg_stats until it is indexed
        };
        if !col.btree {
            return Err(format!(
                "type {} of {key} has no btree opclass",
                col.data_type
            ));
        }
        if i >= eq_keys {
            continue;
        }
        if let Some(s) = equality_selectivity(col, rows) {
            product *= s;
            known = true;
        }
    }
    Ok(match (known, observed) {
        (true, _) => product,
        (false, Some(o)) => o,
        (false, None) => 0.0,
    })
}

/// Drop duplicates and candidates whose keys are a prefix of another
/// candidate's on the same table and tenant scope (the longer one serves
/// both).
fn dedup(out: &mut Outcome) {
    let all = std::mem::take(&mut out.candidates);
    let mut kept: Vec<Candidate> = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let longer = all.iter().enumerate().find(|(j, o)| {
            *j != i
                && o.table == c.table
                && o.tenant == c.tenant
                && o.keys.len() >= c.keys.len()
                && o.keys[..c.keys.len()] == c.keys[..]
                && (o.keys.len() > c.keys.len() || *j < i)
        });
        match longer {
            Some((_, o)) => {
                let reason = format!("served by candidate ({})", o.keys.join(", "));
                out.reject(&c.table, &c.keys, reason);
            }
            None => kept.push(c.clone()),
        }
    }
    out.candidates = kept;
}

pub mod statement;

#[cfg(test)]
mod tests;
