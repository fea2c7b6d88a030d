//! Statement-shaped candidates (a pure core): what a DBA builds for one hot
//! single-table statement that compares columns with parameters, carries a
//! constant predicate and reads the first rows in some order, e.g.
//! `WHERE tenant_id = $1 AND status IN ('new', 'open') ORDER BY due_at
//! LIMIT 50` → `(tenant_id, due_at) WHERE status IN ('new', 'open')`: the
//! equality columns, then the ORDER BY columns (served in index order), and
//! partial on the constant predicates that match few rows (pg_stats), so the
//! index is small and its predicate is implied by every execution's, generic
//! plans included.

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, InTarget, LimitClause, OrderByKind, OrderBySort, SetExpr,
    Statement, TableFactor, UnaryOperator, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{equality_selectivity, Candidate, CandidateKind, Evidence, Partial};
use crate::indexer::model::{ColumnFacts, TableFacts};
use crate::store::quote_ident;

/// A constant predicate matching more than this share of the table is not
/// worth an index predicate: the index would hold most rows anyway (the
/// trap of `status = 'closed'` when most tickets are closed).
const MAX_PARTIAL_SHARE: f64 = 0.3;

/// What one statement looks up.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    /// `schema.table` or `table`, as written (unquoted, folded).
    pub table: String,
    /// Columns compared for equality with a parameter, in text order.
    pub equal: Vec<String>,
    /// Constant conjuncts: (column, how).
    pub constant: Vec<(String, Constant)>,
    /// ORDER BY columns, all in one direction.
    pub order: Vec<String>,
    pub limit: bool,
}

/// A conjunct that compares a column with constants only.
#[derive(Clone, Debug, PartialEq)]
pub enum Constant {
    /// `= v` or `IN (v, ...)`; the values as text (strings unquoted).
    In(Vec<String>),
    /// `<> v` or `NOT IN (v, ...)`.
    NotIn(Vec<String>),
    IsNull,
    IsNotNull,
    /// `col`, `NOT col`, `col = true`, `col IS TRUE`.
    Bool(bool),
}

/// The lookup a statement text makes, when it is a single-table SELECT.
pub fn lookup(text: &str) -> Option<Lookup> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, text).ok()?;
    let [Statement::Query(q)] = statements.as_slice() else {
        return None;
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let [from] = s.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, .. } = &from.relation else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let table = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(fold))
        .collect::<Vec<_>>()
        .join(".");
    let mut out = Lookup {
        table,
        equal: Vec::new(),
        constant: Vec::new(),
        order: Vec::new(),
        limit: matches!(
            &q.limit_clause,
            Some(LimitClause::LimitOffset { limit: Some(_), .. })
        ),
    };
    if let Some(w) = &s.selection {
        for c in conjuncts(w) {
            conjunct(c, &mut out);
        }
    }
    if let Some(OrderByKind::Expressions(items)) = q.order_by.as_ref().map(|o| &o.kind) {
        let desc =
            |i: &sqlparser::ast::OrderByExpr| matches!(i.options.sort, Some(OrderBySort::Desc));
        let columns: Option<Vec<String>> = items.iter().map(|i| column(&i.expr)).collect();
        let uniform = items.windows(2).all(|w| desc(&w[0]) == desc(&w[1]));
        if let (Some(columns), true) = (columns, uniform) {
            out.order = columns;
        }
    }
    Some(out)
}

fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(fold(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(fold),
        Expr::Nested(e) => column(e),
        _ => None,
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        Expr::Nested(inner) => conjuncts(inner),
        _ => vec![e],
    }
}

fn constant_value(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => constant_value(expr),
        _ => None,
    }
}

fn is_param(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(v.value, Value::Placeholder(_)),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_param(expr),
        _ => false,
    }
}

/// The column of a comparison and the other side, whichever side it is on.
fn column_and_value<'a>(left: &'a Expr, right: &'a Expr) -> Option<(String, &'a Expr)> {
    match (column(left), column(right)) {
        (Some(c), None) => Some((c, right)),
        (None, Some(c)) => Some((c, left)),
        _ => None,
    }
}

fn conjunct(e: &Expr, out: &mut Lookup) {
    let mut constant = |col: Option<String>, c: Constant| {
        if let Some(col) = col {
            out.constant.push((col, c));
        }
    };
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let Some((col, other)) = column_and_value(left, right) else {
                return;
            };
            if is_param(other) {
                out.equal.push(col);
            } else if let Some(v) = constant_value(other) {
                match v.as_str() {
                    "true" | "false" => constant(Some(col), Constant::Bool(v == "true")),
                    _ => constant(Some(col), Constant::In(vec![v])),
                }
            }
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::NotEq,
            right,
        } => {
            let Some((col, other)) = column_and_value(left, right) else {
                return;
            };
            if let Some(v) = constant_value(other) {
                constant(Some(col), Constant::NotIn(vec![v]));
            }
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => {
            let values: Option<Vec<String>> = list.iter().map(constant_value).collect();
            if let Some(values) = values {
                let c = if *negated {
                    Constant::NotIn(values)
                } else {
                    Constant::In(values)
                };
                constant(column(expr), c);
            }
        }
        Expr::IsNull(x) => constant(column(x), Constant::IsNull),
        Expr::IsNotNull(x) => constant(column(x), Constant::IsNotNull),
        Expr::IsTrue(x) => constant(column(x), Constant::Bool(true)),
        Expr::IsFalse(x) => constant(column(x), Constant::Bool(false)),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => constant(column(expr), Constant::Bool(false)),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            constant(column(e), Constant::Bool(true))
        }
        _ => {}
    }
}

/// The share of a table's rows a constant conjunct matches, from pg_stats
/// (the most common values, else an even share of the rest).
pub fn constant_share(c: &Constant, col: &ColumnFacts, rows: f64) -> f64 {
    let mcv = |v: &str| {
        col.most_common
            .iter()
            .find(|(m, _)| m == v)
            .map(|(_, f)| *f)
    };
    let mcv_total: f64 = col.most_common.iter().map(|(_, f)| f).sum();
    let rest = {
        let others = (col.distinct(rows) - col.most_common.len() as f64).max(1.0);
        ((1.0 - col.null_frac - mcv_total).max(0.0) / others).min(1.0)
    };
    match c {
        Constant::In(values) => values
            .iter()
            .map(|v| mcv(v).unwrap_or(rest))
            .sum::<f64>()
            .min(1.0),
        Constant::NotIn(values) => {
            let out: f64 = values.iter().map(|v| mcv(v).unwrap_or(rest)).sum();
            (1.0 - col.null_frac - out).max(0.0)
        }
        Constant::IsNull => col.null_frac,
        Constant::IsNotNull => 1.0 - col.null_frac,
        Constant::Bool(b) => {
            let (long, short) = if *b { ("true", "t") } else { ("false", "f") };
            mcv(long).or_else(|| mcv(short)).unwrap_or(0.5)
        }
    }
}

/// An equality key returning at most this many rows per value makes the
/// tenant column useless in front of it (a global id such as an org or an
/// agent): the index goes without it, narrower by a column.
const NEAR_UNIQUE_ROWS: f64 = 10.0;

/// Whether the statement-shaped candidate `shaped` stands for the
/// column-statistics candidate `other` on the same table: the same keys but
/// for the tenant column (the statement's shape knows its order and
/// predicate), or, when `shaped` is not partial, keys that are a prefix of
/// its own (the longer index serves both). The other is not proposed
/// beside it.
pub fn shadows(shaped: &Candidate, other: &Candidate, tenant_column: &str) -> bool {
    let prefix = shaped.partial.is_none() && shaped.keys.starts_with(&other.keys);
    let bare = |c: &Candidate| -> Vec<String> {
        c.keys
            .iter()
            .filter(|k| *k != tenant_column)
            .cloned()
            .collect()
    };
    shaped.kind == CandidateKind::Statement
        && other.kind != CandidateKind::Statement
        && other.tenant.is_none()
        && shaped.table == other.table
        && (prefix || bare(shaped) == bare(other))
}

/// The SQL of a constant conjunct as an index predicate.
fn predicate_sql(column: &str, c: &Constant) -> String {
    let col = quote_ident(column);
    let lit = |v: &String| match v.parse::<f64>() {
        Ok(_) => v.clone(),
        Err(_) => format!("'{}'", v.replace('\'', "''")),
    };
    match c {
        Constant::In(values) if values.len() == 1 => format!("{col} = {}", lit(&values[0])),
        Constant::In(values) => format!(
            "{col} IN ({})",
            values.iter().map(lit).collect::<Vec<_>>().join(", ")
        ),
        Constant::NotIn(values) if values.len() == 1 => format!("{col} <> {}", lit(&values[0])),
        Constant::NotIn(values) => format!(
            "{col} NOT IN ({})",
            values.iter().map(lit).collect::<Vec<_>>().join(", ")
        ),
        Constant::IsNull => format!("{col} IS NULL"),
        Constant::IsNotNull => format!("{col} IS NOT NULL"),
        Constant::Bool(true) => col,
        Constant::Bool(false) => format!("NOT {col}"),
    }
}

/// The index a DBA would build for `l` on `table`, or why none: equality
/// columns (the tenant column first), then the ORDER BY columns when the
/// statement has a LIMIT, partial on the rare constant predicates. Only
/// shapes the column statistics cannot give (an order or a predicate) are
/// proposed here; plain equality lookups are left to them.
pub fn propose(
    l: &Lookup,
    table: &TableFacts,
    tenant_column: &str,
    calls: u64,
) -> Result<Candidate, String> {
    let rows = table.rows.max(1.0);
    let mut equal: Vec<&String> = Vec::new();
    for c in &l.equal {
        if table.column(c).is_none() {
            return Err(format!("column {c} not in catalog"));
        }
        if !equal.contains(&c) {
            equal.push(c);
        }
    }
    let sel = |c: &String| {
        table
            .column(c)
            .and_then(|f| equality_selectivity(f, table.rows))
            .unwrap_or(1.0)
    };
    equal.sort_by(|a, b| {
        (*a != tenant_column)
            .cmp(&(*b != tenant_column))
            .then(sel(a).total_cmp(&sel(b)))
    });
    let near_unique = equal
        .iter()
        .any(|c| *c != tenant_column && sel(c) * rows <= NEAR_UNIQUE_ROWS);
    if near_unique {
        equal.retain(|c| *c != tenant_column);
    }
    let mut keys: Vec<String> = equal.iter().map(|c| (*c).clone()).collect();
    let ordered = l.limit && !l.order.is_empty();
    if ordered {
        for c in &l.order {
            if table.column(c).is_none() {
                return Err(format!("ORDER BY column {c} not in catalog"));
            }
            if !keys.contains(c) {
                keys.push(c.clone());
            }
        }
    }
    let mut parts = Vec::new();
    let mut share = 1.0;
    for (col, c) in &l.constant {
        let Some(facts) = table.column(col) else {
            continue;
        };
        let s = constant_share(c, facts, rows);
        if s <= MAX_PARTIAL_SHARE && !keys.contains(col) {
            parts.push(predicate_sql(col, c));
            share *= s;
        }
    }
    if keys.is_empty() {
        return Err("no column compared with a parameter or ordered".into());
    }
    if !ordered && parts.is_empty() {
        return Err("no order to serve and no rare constant predicate".into());
    }
    let tenant_factor = match table.column(tenant_column) {
        Some(col) if keys.first().is_some_and(|k| k == tenant_column) => {
            equality_selectivity(col, table.rows).unwrap_or(1.0)
        }
        _ => 1.0,
    };
    let others: f64 = keys
        .iter()
        .skip(usize::from(tenant_factor < 1.0))
        .filter(|k| l.equal.contains(k))
        .map(sel)
        .product();
    let selectivity = tenant_factor * others * share;
    let partial = (!parts.is_empty()).then(|| Partial {
        sql: parts.join(" AND "),
        share,
    });
    let mut reason = format!(
        "{calls} calls of one statement: {} equality column(s)",
        equal.len()
    );
    if ordered {
        reason.push_str(&format!(
            ", then ORDER BY {} served in index order (LIMIT)",
            l.order.join(", ")
        ));
    }
    if let Some(p) = &partial {
        reason.push_str(&format!(
            "; partial WHERE {}: {:.2}% of the table's rows (pg_stats)",
            p.sql,
            p.share * 100.0
        ));
    }
    Ok(Candidate {
        table: table.label(),
        keys,
        tenant: None,
        not_null: None,
        partial,
        statement: None,
        kind: CandidateKind::Statement,
        evidence: Evidence {
            calls,
            recent: calls as f64,
            tenants_using: 0,
            tenants_active: 0,
            rows_per_call: selectivity * rows,
            table_rows: table.rows,
            selectivity,
            reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets() -> TableFacts {
        let col = |name: &str, n_distinct: f64, mcv: &[(&str, f64)]| ColumnFacts {
            name: name.into(),
            data_type: "text".into(),
            btree: true,
            n_distinct,
            most_common: mcv.iter().map(|(v, f)| (v.to_string(), *f)).collect(),
            ..ColumnFacts::default()
        };
        TableFacts {
            schema: "public".into(),
            name: "tickets".into(),
            rows: 1e6,
            pages: 1e4,
            columns: vec![
                col("tenant_id", 500.0, &[("1", 0.2)]),
                col(
                    "status",
                    5.0,
                    &[("closed", 0.88), ("new", 0.04), ("open", 0.03)],
                ),
                col("due_at", -1.0, &[]),
                col("updated_at", -1.0, &[]),
                col("assignee_id", 2000.0, &[]),
                col("org_id", 200_000.0, &[]),
                col("created_at", -1.0, &[]),
                col("email", -1.0, &[]),
                col("archived", 2.0, &[("f", 0.97), ("t", 0.03)]),
            ],
            ..TableFacts::default()
        }
    }

    #[test]
    fn lookups_are_read_from_statement_text() {
        let l = lookup(
            "SELECT id FROM tickets t WHERE t.tenant_id = $1 AND status IN ('new', 'open') \
             AND NOT archived ORDER BY due_at LIMIT 50",
        )
        .unwrap();
        assert_eq!(l.table, "tickets");
        assert_eq!(l.equal, vec!["tenant_id"]);
        assert_eq!(
            l.constant,
            vec![
                (
                    "status".into(),
                    Constant::In(vec!["new".into(), "open".into()])
                ),
                ("archived".into(), Constant::Bool(false)),
            ]
        );
        assert_eq!(l.order, vec!["due_at"]);
        assert!(l.limit);
        // Mixed directions cannot be one btree scan; joins are not lookups.
        let mixed = lookup("select * from tickets where a = $1 order by b desc, c asc limit 1");
        assert!(mixed.unwrap().order.is_empty());
        assert!(lookup("select * from a join b on a.id = b.id where a.x = $1").is_none());
    }

    #[test]
    fn dba_shapes_table() {
        let t = tickets();
        // (name, statement, Ok((keys, partial)) or Err(part of the reason))
        type Want = Result<(&'static [&'static str], Option<&'static str>), &'static str>;
        let cases: Vec<(&str, &str, Want)> = vec![
            (
                "work queue: equality, then the order; partial on the rare statuses",
                "select * from tickets where tenant_id = $1 and status in ('new', 'open') \
                 order by due_at limit 50",
                Ok((&["tenant_id", "due_at"], Some("\"status\" IN ('new', 'open')"))),
            ),
            (
                "agent queue: tenant first, then the assignee, then updated_at (DESC is a backward scan)",
                "select * from tickets where assignee_id = $2 and tenant_id = $1 \
                 and status in ('new','open') order by updated_at desc limit 20",
                Ok((
                    &["tenant_id", "assignee_id", "updated_at"],
                    Some("\"status\" IN ('new', 'open')"),
                )),
            ),
            (
                "open work by `<>`: the share left once the closed 88 % are out",
                "select * from tickets where tenant_id = $1 and assignee_id = $2 \
                 and status <> 'closed' order by updated_at desc limit 20",
                Ok((
                    &["tenant_id", "assignee_id", "updated_at"],
                    Some("\"status\" <> 'closed'"),
                )),
            ),
            (
                "a global id (a few rows per value) needs no tenant in front",
                "select * from tickets where tenant_id = $1 and org_id = $2 \
                 order by created_at desc limit 20",
                Ok((&["org_id", "created_at"], None)),
            ),
            (
                "the trap: a status matching most rows is no predicate, and nothing to order",
                "select * from tickets where tenant_id = $1 and status = 'closed'",
                Err("no order to serve"),
            ),
            (
                "a rare boolean makes the index partial",
                "select * from tickets where email = $1 and archived",
                Ok((&["email"], Some("\"archived\""))),
            ),
            (
                "a plain equality lookup is left to the column statistics",
                "select * from tickets where tenant_id = $1 and email = $2",
                Err("no order to serve"),
            ),
            (
                "an ORDER BY without LIMIT is no queue",
                "select * from tickets where tenant_id = $1 order by due_at",
                Err("no order to serve"),
            ),
        ];
        for (name, sql, want) in cases {
            let got = propose(&lookup(sql).unwrap(), &t, "tenant_id", 100);
            match (got, want) {
                (Ok(c), Ok((keys, partial))) => {
                    assert_eq!(c.keys, keys, "{name}");
                    assert_eq!(
                        c.partial.as_ref().map(|p| p.sql.as_str()),
                        partial,
                        "{name}"
                    );
                }
                (Err(e), Err(part)) => assert!(e.contains(part), "{name}: {e}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_statement_shape_shadows_the_same_keys_from_column_statistics() {
        let t = tickets();
        let shaped = propose(
            &lookup("select * from tickets where tenant_id = $1 and org_id = $2 order by created_at limit 5")
                .unwrap(),
            &t,
            "tenant_id",
            100,
        )
        .unwrap();
        let column = |keys: &[&str]| Candidate {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            kind: CandidateKind::TenantComposite,
            partial: None,
            ..shaped.clone()
        };
        assert!(shadows(
            &shaped,
            &column(&["tenant_id", "org_id", "created_at"]),
            "tenant_id"
        ));
        assert!(!shadows(
            &shaped,
            &column(&["tenant_id", "org_id"]),
            "tenant_id"
        ));
        assert!(!shadows(&shaped, &shaped, "tenant_id"));
        // A prefix of a plain statement shape is served by it; not of a
        // partial one.
        let mut plain = shaped.clone();
        plain.keys = vec!["tenant_id".into(), "org_id".into(), "created_at".into()];
        assert!(shadows(
            &plain,
            &column(&["tenant_id", "org_id"]),
            "tenant_id"
        ));
        plain.partial = Some(Partial {
            sql: "x".into(),
            share: 0.1,
        });
        assert!(!shadows(
            &plain,
            &column(&["tenant_id", "org_id"]),
            "tenant_id"
        ));
    }

    #[test]
    fn constant_shares_come_from_the_values_queried() {
        let t = tickets();
        let status = t.column("status").unwrap();
        let share = |c: Constant| constant_share(&c, status, t.rows);
        assert!((share(Constant::In(vec!["closed".into()])) - 0.88).abs() < 1e-9);
        assert!((share(Constant::In(vec!["new".into(), "open".into()])) - 0.07).abs() < 1e-9);
        // A value outside the MCVs: an even share of the rest (5% over 2).
        assert!((share(Constant::In(vec!["spam".into()])) - 0.025).abs() < 1e-9);
    }
}
