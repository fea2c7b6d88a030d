//! The workload the indexer decides from: what the replicas flushed to
//! `filter_stats` / `group_stats` / `query_text`, read back as a
//! [`Snapshot`] and merged with the leader's own live counters.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::sql::PredicateClass;
use crate::stats::{ColumnStat, GroupStat, Snapshot};
use crate::store::quote_ident;

/// Every class the analysis counts, as `&'static str` like the live counters.
const CLASSES: &[&str] = &[
    PredicateClass::Equality.as_str(),
    PredicateClass::InList.as_str(),
    PredicateClass::Range.as_str(),
    PredicateClass::Between.as_str(),
    PredicateClass::LikePrefix.as_str(),
    PredicateClass::IsNull.as_str(),
    PredicateClass::IsNotNull.as_str(),
    PredicateClass::Join.as_str(),
    PredicateClass::Expression.as_str(),
    "order_by",
    "group_by",
];

fn class(text: &str) -> Option<&'static str> {
    CLASSES.iter().copied().find(|c| *c == text)
}

/// Flushed statistics of the last `span`, from every replica but
/// `exclude_proxy` (the caller's own, which it has live). `recent` decays
/// like the live counters: half-life `half_life` windows.
pub async fn flushed(
    client: &Client,
    schema: &str,
    exclude_proxy: Option<&str>,
    span: Duration,
    half_life: f64,
) -> Result<Snapshot, tokio_postgres::Error> {
    let s = quote_ident(schema);
    let exclude = exclude_proxy.unwrap_or("");
    // `proxy <> $1` cannot use the (proxy, window_start) index: the leader
    // would scan every row its own replica flushed within the span, every
    // round (tens of ms per round at 1,000 tenants, growing with the
    // span). Two ranges around its own name read only the others' rows.
    let secs = span.as_secs_f64();
    let decay =
        "sum(calls * power(0.5::float8, extract(epoch from now() - window_start)::float8 / window_seconds / $3::float8))";
    let columns = client
        .query(
            &format!(
                "select tenant, table_name, column_name, predicate,
                        sum(calls)::int8, sum(rows)::int8, {decay}::float8
                   from {s}.filter_stats
                  where (proxy < $1 or proxy > $1) and window_start >= now() - make_interval(secs => $2::float8)
                  group by 1, 2, 3, 4"
            ),
            &[&exclude, &secs, &half_life],
        )
        .await?;
    let groups = client
        .query(
            &format!(
                "select tenant, table_name, columns, sum(calls)::int8, {decay}::float8
                   from {s}.group_stats
                  where (proxy < $1 or proxy > $1) and window_start >= now() - make_interval(secs => $2::float8)
                  group by 1, 2, 3"
            ),
            &[&exclude, &secs, &half_life],
        )
        .await?;
    let text = |t: Option<String>| t.map(Arc::from);
    Ok(Snapshot {
        columns: columns
            .iter()
            .filter_map(|r| {
                let calls: i64 = r.get(4);
                Some(ColumnStat {
                    tenant: text(r.get(0)),
                    table: Arc::from(r.get::<_, String>(1)),
                    column: Arc::from(r.get::<_, String>(2)),
                    class: class(r.get(3))?,
                    calls: calls as u64,
                    rows: r.get::<_, i64>(5) as u64,
                    recent: r.get(6),
                    total_calls: calls as u64,
                })
            })
            .collect(),
        groups: groups
            .iter()
            .map(|r| GroupStat {
                tenant: text(r.get(0)),
                table: Arc::from(r.get::<_, String>(1)),
                columns: r
                    .get::<_, Vec<String>>(2)
                    .into_iter()
                    .map(Arc::from)
                    .collect(),
                calls: r.get::<_, i64>(3) as u64,
                recent: r.get(4),
            })
            .collect(),
        statements: Vec::new(),
    })
}

/// Seconds of traffic the flushed statistics of the last `span` cover:
/// from the oldest window's start to now (at least one window).
pub async fn flushed_secs(
    client: &Client,
    schema: &str,
    span: Duration,
) -> Result<Option<f64>, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "select greatest(extract(epoch from now() - min(window_start))::float8,
                                 max(window_seconds)::float8)
                   from {}.filter_stats
                  where window_start >= now() - make_interval(secs => $1::float8)",
                quote_ident(schema)
            ),
            &[&span.as_secs_f64()],
        )
        .await?;
    Ok(row.get(0))
}

/// Statement texts (normalized) by fingerprint, every one ever flushed.
pub async fn texts(
    client: &Client,
    schema: &str,
) -> Result<Vec<(u64, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "select fingerprint, query from {}.query_text",
                quote_ident(schema)
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .collect())
}

/// Append `other`'s counters to `into` (the candidate generator sums
/// entries that share a key).
pub fn merge(into: &mut Snapshot, other: Snapshot) {
    into.columns.extend(other.columns);
    into.groups.extend(other.groups);
    into.statements.extend(other.statements);
}
