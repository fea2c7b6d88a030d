//! What-if planning: the planner's cost of a captured statement as it is and
//! with a hypothetical index (HypoPG), from `EXPLAIN` of a generic plan. The
//! statement is prepared and explained, never executed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::indexer::ddl::{target_sql, IndexSpec};

#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error("what-if planning failed: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("statement not planned: {0}")]
    NotPlannable(String),
    #[error("unexpected EXPLAIN output: {0}")]
    NoPlan(String),
    #[error("the hypopg extension is not installed in this database")]
    NoHypoPg,
}

impl WhatIfError {
    /// A bounded label for metrics and the lineage log.
    pub fn kind(&self) -> &'static str {
        match self {
            WhatIfError::Db(_) => "postgres",
            WhatIfError::NotPlannable(_) => "not_plannable",
            WhatIfError::NoPlan(_) => "no_plan",
            WhatIfError::NoHypoPg => "no_hypopg",
        }
    }
}

/// A generic plan's total cost and the names of the indexes it uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlanCost {
    pub total: f64,
    /// Each index once, in plan-tree order.
    pub indexes: Vec<String>,
}

/// What one hypothetical index would do for one statement.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WhatIf {
    /// Total cost without the index.
    pub before: f64,
    /// Total cost with the hypothetical index.
    pub after: f64,
    /// The plan with the index uses it.
    pub uses_index: bool,
    /// HypoPG's estimate of the index's size.
    pub estimated_bytes: i64,
}

/// Statements are prepared under `ip_whatif_<n>`: unique within the process,
/// so within every session.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// `?` placeholders of normalized statement text (the proxy's fingerprint
/// text, e.g. `select * from t where a = ? and b in (?)`) turned into `$1`,
/// `$2`, ... in order, so the text can be PREPAREd. `?` inside constants,
/// quoted identifiers and comments stays; numbering continues after the
/// highest `$n` already in the text.
pub fn placeholders(normalized: &str) -> String {
    let s = normalized.as_bytes();
    let code = code_mask(normalized);
    let mut next = params(normalized, &code).max().unwrap_or(0);
    let mut out = String::with_capacity(normalized.len() + 8);
    let mut copied = 0;
    for i in (0..s.len()).filter(|&i| code[i] && s[i] == b'?') {
        next += 1;
        out.push_str(&normalized[copied..i]);
        let _ = write!(out, "${next}");
        copied = i + 1;
    }
    out.push_str(&normalized[copied..]);
    out
}

/// The installed HypoPG version in the connected database, or None.
pub async fn hypopg_version(client: &Client) -> Result<Option<String>, WhatIfError> {
    let row = client
        .query_opt(
            "select extversion::text from pg_extension where extname = 'hypopg'",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Plan `sql` (may contain `$n` parameters) without executing it, as a
/// generic plan. The connection must not be inside a transaction: this one
/// opens and rolls back its own.
pub async fn plan(client: &Client, sql: &str) -> Result<PlanCost, WhatIfError> {
    let body = plannable(sql)?;
    let name = format!("ip_whatif_{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
    client.batch_execute("begin").await?;
    let planned = explain_prepared(client, &name, body).await;
    // Prepared statements outlive ROLLBACK, so deallocate explicitly; after
    // the rollback, since an error has aborted the transaction.
    let cleanup = match client
        .batch_execute(&format!("rollback; deallocate {name}"))
        .await
    {
        Err(e) if e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) => Ok(()),
        other => other,
    };
    let cost = planned?;
    cleanup?;
    Ok(cost)
}

/// Inside [`plan`]'s transaction: PREPARE, then EXPLAIN EXECUTE with a NULL
/// per parameter (a generic plan never looks at them).
async fn explain_prepared(
    client: &Client,
    name: &str,
    body: &str,
) -> Result<PlanCost, WhatIfError> {
    client
        .batch_execute(
            "set local plan_cache_mode = force_generic_plan;
             set local statement_timeout = '5s';
             set local lock_timeout = '1s'",
        )
        .await?;
    // The extended protocol lets the server refuse a second statement.
    client
        .execute(&format!("prepare {name} as {body}"), &[])
        .await?;
    let params: i32 = client
        .query_one(
            "select cardinality(parameter_types) from pg_prepared_statements where name = $1",
            &[&name],
        )
        .await?
        .get(0);
    let args = match usize::try_from(params).unwrap_or(0) {
        0 => String::new(),
        n => format!("({})", vec!["null"; n].join(", ")),
    };
    // Simple query: the plan comes back as text, and `json` has no FromSql.
    let messages = client
        .simple_query(&format!("explain (format json) execute {name}{args}"))
        .await?;
    let json = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        })
        .ok_or_else(|| WhatIfError::NoPlan("EXPLAIN returned no row".into()))?;
    parse_plan(json)
}

/// Cost `sql` before and with a hypothetical index for `spec`. Resets all of
/// the session's hypothetical indexes afterwards, also on error.
pub async fn what_if(client: &Client, sql: &str, spec: &IndexSpec) -> Result<WhatIf, WhatIfError> {
    plannable(sql)?;
    if hypopg_version(client).await?.is_none() {
        return Err(WhatIfError::NoHypoPg);
    }
    let result = with_hypothetical(client, sql, spec).await;
    let reset = client.batch_execute("select hypopg_reset()").await;
    let what_if = result?;
    reset?;
    Ok(what_if)
}

async fn with_hypothetical(
    client: &Client,
    sql: &str,
    spec: &IndexSpec,
) -> Result<WhatIf, WhatIfError> {
    let before = plan(client, sql).await?;
    let row = client
        .query_one(
            "select indexname::text, hypopg_relation_size(indexrelid)
             from hypopg_create_index($1)",
            &[&format!("CREATE INDEX {}", target_sql(spec))],
        )
        .await?;
    let name: String = row.get(0);
    let after = plan(client, sql).await?;
    Ok(WhatIf {
        before: before.total,
        after: after.total,
        uses_index: after.indexes.contains(&name),
        estimated_bytes: row.get(1),
    })
}

/// `sql` without its final `;`, if its first keyword (after comments and
/// opening parentheses) is one we plan and no second statement follows.
fn plannable(sql: &str) -> Result<&str, WhatIfError> {
    let s = sql.as_bytes();
    let code = code_mask(sql);
    let is_code = |i: &usize| code[*i];
    let end = (0..s.len())
        .filter(is_code)
        .find(|&i| s[i] == b';')
        .unwrap_or(s.len());
    if (end..s.len())
        .filter(is_code)
        .any(|i| !(s[i] == b';' || s[i].is_ascii_whitespace()))
    {
        return Err(WhatIfError::NotPlannable("more than one statement".into()));
    }
    let keyword: Vec<u8> = (0..end)
        .filter(is_code)
        .skip_while(|&i| s[i] == b'(' || s[i].is_ascii_whitespace())
        .map_while(|i| is_ident(s[i]).then(|| s[i].to_ascii_lowercase()))
        .collect();
    let keyword = String::from_utf8_lossy(&keyword);
    match keyword.as_ref() {
        "select" | "with" | "update" | "delete" => Ok(&sql[..end]),
        "" => Err(WhatIfError::NotPlannable("no statement".into())),
        _ => Err(WhatIfError::NotPlannable(format!("{keyword} statement"))),
    }
}

/// The numbers of the `$n` parameters in `sql`.
fn params<'a>(sql: &'a str, code: &'a [bool]) -> impl Iterator<Item = u32> + 'a {
    let s = sql.as_bytes();
    (0..s.len())
        .filter(move |&i| code[i] && s[i] == b'$' && (i == 0 || !is_ident(s[i - 1])))
        .filter_map(move |i| {
            let digits = s[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            sql[i + 1..i + 1 + digits].parse().ok()
        })
}

/// Per byte of `sql`: is it code, i.e. outside string constants, quoted
/// identifiers, dollar quotes and comments? Follows the lexical rules of
/// <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>.
fn code_mask(sql: &str) -> Vec<bool> {
    let s = sql.as_bytes();
    let mut code = vec![false; s.len()];
    let mut i = 0;
    while i < s.len() {
        let word_start = i == 0 || !(code[i - 1] && is_ident(s[i - 1]));
        let end = match (s[i], s.get(i + 1)) {
            (b'\'', _) => quoted_end(s, i + 1, b'\'', false),
            (b'"', _) => quoted_end(s, i + 1, b'"', false),
            (b'e' | b'E', Some(b'\'')) if word_start => quoted_end(s, i + 2, b'\'', true),
            (b'-', Some(b'-')) => s[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(s.len(), |p| i + p + 1),
            (b'/', Some(b'*')) => block_comment_end(s, i + 2),
            (b'$', _) if word_start => dollar_quote_end(s, i).unwrap_or(i),
            _ => i,
        };
        if end == i {
            code[i] = true;
            i += 1;
        } else {
            i = end;
        }
    }
    code
}

/// Letters, digits, `_`, `$` and non-ASCII: the bytes that continue a word.
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// End of a quoted token whose body starts at `i`: a doubled quote is an
/// escaped quote; with `backslash`, so is `\` + any byte.
fn quoted_end(s: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    while i < s.len() {
        if s[i] == quote {
            if s.get(i + 1) != Some(&quote) {
                return i + 1;
            }
            i += 2;
        } else {
            i += if backslash && s[i] == b'\\' { 2 } else { 1 };
        }
    }
    s.len()
}

/// Block comments nest in PostgreSQL; the body starts at `i`.
fn block_comment_end(s: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < s.len() {
        match (s[i], s.get(i + 1)) {
            (b'*', Some(b'/')) => depth -= 1,
            (b'/', Some(b'*')) => depth += 1,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
        if depth == 0 {
            return i;
        }
    }
    s.len()
}

/// End of the `$tag$...$tag$` constant starting at `start`; None for `$n`
/// or a lone `$`.
fn dollar_quote_end(s: &[u8], start: usize) -> Option<usize> {
    let tag_len = s[start + 1..]
        .iter()
        .take_while(|&&b| is_ident(b) && b != b'$')
        .count();
    let close = start + 1 + tag_len;
    if s.get(start + 1).is_some_and(u8::is_ascii_digit) || s.get(close) != Some(&b'$') {
        return None;
    }
    let delimiter = &s[start..=close];
    let end = s[close + 1..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map_or(s.len(), |p| close + 1 + p + delimiter.len());
    Some(end)
}

/// Total cost of the top plan and every `Index Name` in the tree of
/// `EXPLAIN (FORMAT JSON)` output.
fn parse_plan(json: &str) -> Result<PlanCost, WhatIfError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| WhatIfError::NoPlan(e.to_string()))?;
    let top = value
        .get(0)
        .and_then(|v| v.get("Plan"))
        .ok_or_else(|| WhatIfError::NoPlan("no top-level \"Plan\"".into()))?;
    let total = top
        .get("Total Cost")
        .and_then(Value::as_f64)
        .ok_or_else(|| WhatIfError::NoPlan("no \"Total Cost\"".into()))?;
    let mut indexes = Vec::new();
    index_names(top, &mut indexes);
    Ok(PlanCost { total, indexes })
}

fn index_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("Index Name", Some(name)) if !out.iter().any(|n| n == name) => {
                        out.push(name.to_owned())
                    }
                    _ => index_names(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| index_names(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes_and_comments() {
        let cases = [
            ("select 1", "select 1"),
            (
                "select * from t where a = ? and b in (?)",
                "select * from t where a = $1 and b in ($2)",
            ),
            ("select '?', ? from t", "select '?', $1 from t"),
            ("select 'it''s ?', ?", "select 'it''s ?', $1"),
            (r"select E'\' ?', ?", r"select E'\' ?', $1"),
            (
                r#"select "a?""b" from t where c = ?"#,
                r#"select "a?""b" from t where c = $1"#,
            ),
            ("select $$ ? $$, $q$?$q$, ?", "select $$ ? $$, $q$?$q$, $1"),
            ("select ? -- ?\n, ?", "select $1 -- ?\n, $2"),
            ("select /* ? /* ? */ ? */ ?", "select /* ? /* ? */ ? */ $1"),
            ("select $2, ?, $1, ?", "select $2, $3, $1, $4"),
            ("select a$1, ?", "select a$1, $1"),
            ("select 'é?', ?", "select 'é?', $1"),
            ("select '?", "select '?"),
        ];
        for (normalized, want) in cases {
            assert_eq!(placeholders(normalized), want, "{normalized:?}");
        }
    }

    #[test]
    fn only_single_select_with_update_delete_are_plannable() {
        let cases: [(&str, Option<&str>); 13] = [
            ("select 1", Some("select 1")),
            ("  SELECT 1;", Some("  SELECT 1")),
            ("select 1;  ;\n -- done", Some("select 1")),
            (
                "/* c */ -- c\n With x as (select 1) select * from x",
                Some("/* c */ -- c\n With x as (select 1) select * from x"),
            ),
            (
                "(select 1) union (select 2)",
                Some("(select 1) union (select 2)"),
            ),
            ("update t set a = 1", Some("update t set a = 1")),
            ("delete from t", Some("delete from t")),
            ("select ';'", Some("select ';'")),
            ("insert into t values (1)", None),
            ("select 1; delete from t", None),
            ("selectx 1", None),
            ("select1", None),
            ("  -- nothing", None),
        ];
        for (sql, want) in cases {
            match (plannable(sql), want) {
                (Ok(body), Some(want)) => assert_eq!(body, want, "{sql:?}"),
                (Err(WhatIfError::NotPlannable(_)), None) => {}
                (got, _) => panic!("{sql:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn plan_json_gives_cost_and_nested_index_names() {
        let json = r#"[{"Plan": {"Node Type": "Nested Loop", "Total Cost": 42.5, "Plans": [
            {"Node Type": "Index Scan", "Index Name": "a_idx", "Total Cost": 8.3},
            {"Node Type": "Bitmap Heap Scan", "Plans": [
                {"Node Type": "Bitmap Index Scan", "Index Name": "<13>btree_t_b"}]},
            {"Node Type": "Index Scan", "Index Name": "a_idx"}]}}]"#;
        let plan = parse_plan(json).unwrap();
        assert_eq!(plan.total, 42.5);
        assert_eq!(plan.indexes, ["a_idx", "<13>btree_t_b"]);
        assert!(matches!(parse_plan("[]"), Err(WhatIfError::NoPlan(_))));
        assert!(matches!(
            parse_plan("not json"),
            Err(WhatIfError::NoPlan(_))
        ));
    }
}
