//! Index DDL: pure builders for names and statements, and an executor that
//! builds concurrently under timeouts and never leaves an INVALID index.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::store::quote_ident;

/// PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;
/// Hex digits of the hash suffix (48 bits).
const HASH_DIGITS: usize = 12;

/// One index to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    pub schema: String,
    pub table: String,
    pub keys: Vec<IndexKey>,
    pub predicate: Option<Predicate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexKey {
    Column(String),
    /// Trusted SQL text produced by our analyzer, e.g. `lower("email")`.
    Expression(String),
}

/// The rows a partial index holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Predicate {
    /// One tenant's rows: `WHERE "column" = 'value'`.
    Equals { column: String, value: String },
    /// A sparse field's filled rows: `WHERE "column" IS NOT NULL`.
    NotNull { column: String },
    /// A statement's constant conjuncts, as SQL built by the candidate
    /// generator with identifiers quoted and constants escaped.
    Sql(String),
}

/// The marker key that gives an `IS NOT NULL` partial index a name of its
/// own (`…_not_null_<hash>`); no identifier starts with U+0001.
const NOT_NULL_MARKER: &str = "\u{1}not_null";

/// [`index_name`] for an index that is partial `WHERE sparse IS NOT NULL`
/// when `sparse` is set.
pub fn scoped_index_name(
    prefix: &str,
    table: &str,
    keys: &[String],
    tenant: Option<&str>,
    sparse: Option<&str>,
) -> String {
    match sparse {
        None => index_name(prefix, table, keys, tenant),
        Some(column) => {
            let mut marked = keys.to_vec();
            marked.push(format!("{NOT_NULL_MARKER} {column}"));
            index_name(prefix, table, &marked, tenant)
        }
    }
}

/// A build that finished with a valid index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOutcome {
    pub duration: Duration,
    pub size_bytes: i64,
}

/// Why a build failed, from the SQLSTATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildFailure {
    /// `lock_timeout` expired (55P03).
    LockTimeout,
    /// `statement_timeout` expired or the build was cancelled (57014).
    Canceled,
    /// `IF NOT EXISTS` found an INVALID index of that name left by an
    /// earlier build.
    LeftInvalid,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    #[error("refusing to drop index {name:?}: it does not carry our prefix {prefix:?}")]
    NotOurs { name: String, prefix: String },
    #[error(
        "building index {name:?} failed ({failure:?}); invalid index cleaned up: {cleaned_up}"
    )]
    Build {
        name: String,
        failure: BuildFailure,
        /// An INVALID index was left behind and has been dropped.
        cleaned_up: bool,
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    #[error("index DDL failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl DdlError {
    /// A bounded label for metrics and the lineage log.
    pub fn kind(&self) -> &'static str {
        match self {
            DdlError::NotOurs { .. } => "not_ours",
            DdlError::Build { failure, .. } => match failure {
                BuildFailure::LockTimeout => "lock_timeout",
                BuildFailure::Canceled => "canceled",
                BuildFailure::LeftInvalid => "left_invalid",
                BuildFailure::Other => "build_failed",
            },
            DdlError::Postgres(_) => "postgres",
        }
    }
}

/// A deterministic index name of at most 63 bytes: `prefix`, the table and
/// keys sanitized to `[a-z0-9_]` (truncated to fit), then a hash of the raw
/// spec so that specs differing only in dropped characters never collide.
pub fn index_name(prefix: &str, table: &str, keys: &[String], tenant: Option<&str>) -> String {
    let mut raw = Vec::new();
    for part in std::iter::once(table).chain(keys.iter().map(String::as_str)) {
        raw.extend_from_slice(part.as_bytes());
        raw.push(0);
    }
    if let Some(t) = tenant {
        raw.push(1);
        raw.extend_from_slice(t.as_bytes());
    }
    let mut body = sanitize(table);
    for k in keys {
        body.push('_');
        body.push_str(&sanitize(k));
    }
    if let Some(t) = tenant {
        body.push_str("_t_");
        body.push_str(&sanitize(t));
    }
    let room = MAX_NAME_BYTES.saturating_sub(prefix.len() + 1 + HASH_DIGITS);
    body.truncate(room); // ASCII only, so any byte offset is a char boundary
    let hash = format!("{:016x}", fnv1a(&raw));
    format!("{prefix}{body}_{}", &hash[..HASH_DIGITS])
}

/// Lower-case ASCII letters, digits and single underscores.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// FNV-1a, 64-bit: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A string literal; with `standard_conforming_strings` (on since 9.1)
/// doubling quotes is the only escaping needed.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn create_sql(spec: &IndexSpec, name: &str) -> String {
    format!(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} {}",
        quote_ident(name),
        target_sql(spec)
    )
}

/// `ON "schema"."table" (keys) [WHERE "column" = 'value']`: everything of
/// a `CREATE INDEX` after the name, also what HypoPG's
/// `hypopg_create_index('CREATE INDEX ' || target)` takes.
pub fn target_sql(spec: &IndexSpec) -> String {
    let keys: Vec<String> = spec
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(c) => quote_ident(c),
            IndexKey::Expression(e) => format!("({e})"),
        })
        .collect();
    let mut sql = format!(
        "ON {}.{} ({})",
        quote_ident(&spec.schema),
        quote_ident(&spec.table),
        keys.join(", ")
    );
    match &spec.predicate {
        Some(Predicate::Equals { column, value }) => {
            sql.push_str(&format!(
                " WHERE {} = {}",
                quote_ident(column),
                literal(value)
            ));
        }
        Some(Predicate::NotNull { column }) => {
            sql.push_str(&format!(" WHERE {} IS NOT NULL", quote_ident(column)));
        }
        Some(Predicate::Sql(text)) => {
            sql.push_str(&format!(" WHERE {text}"));
        }
        None => {}
    }
    sql
}

/// Why PostgreSQL would refuse `spec`, or `None` when it accepts it. An
/// expression or predicate whose functions or operators are not IMMUTABLE
/// (`date_trunc('day', timestamptz)`), or that needs a collation it cannot
/// use, is refused by `CREATE INDEX` itself; so ask it, on an empty
/// temporary copy of the table's columns inside a transaction that is
/// rolled back: nothing is built and nothing stays. When the probe itself
/// cannot run (no TEMP privilege), the build decides as before.
pub async fn refusal(client: &Client, spec: &IndexSpec) -> Result<Option<String>, DdlError> {
    client.batch_execute("BEGIN").await?;
    let copy = format!(
        "CREATE TEMP TABLE indexpilot_probe (LIKE {}.{}) ON COMMIT DROP",
        quote_ident(&spec.schema),
        quote_ident(&spec.table)
    );
    let probe = IndexSpec {
        schema: "pg_temp".into(),
        table: "indexpilot_probe".into(),
        ..spec.clone()
    };
    let verdict = match client.batch_execute(&copy).await {
        Err(_) => None,
        Ok(()) => match client
            .batch_execute(&format!("CREATE INDEX {}", target_sql(&probe)))
            .await
        {
            Ok(()) => None,
            Err(e) => e.as_db_error().map(|db| {
                format!(
                    "PostgreSQL refuses this index: {} (SQLSTATE {})",
                    db.message(),
                    db.code().code()
                )
            }),
        },
    };
    client.batch_execute("ROLLBACK").await?;
    Ok(verdict)
}

pub fn drop_sql(schema: &str, name: &str) -> String {
    format!(
        "DROP INDEX CONCURRENTLY IF EXISTS {}.{}",
        quote_ident(schema),
        quote_ident(name)
    )
}

/// Builds `spec` as `name` on this dedicated connection with session-level
/// timeouts (reset afterwards). A failure that leaves an INVALID index
/// drops it, still under the timeouts so the cleanup cannot hang; what is
/// not dropped is left to [`cleanup_invalid`].
pub async fn build(
    client: &Client,
    spec: &IndexSpec,
    name: &str,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> Result<BuildOutcome, DdlError> {
    let work = build_under_timeouts(client, spec, name);
    under_timeouts(client, lock_timeout, statement_timeout, work).await
}

/// Run `work` with session-level `lock_timeout` and `statement_timeout`
/// set on `client`, and reset them afterwards whatever `work` returned.
async fn under_timeouts<T>(
    client: &Client,
    lock_timeout: Duration,
    statement_timeout: Duration,
    work: impl std::future::Future<Output = Result<T, DdlError>>,
) -> Result<T, DdlError> {
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            millis(lock_timeout),
            millis(statement_timeout)
        ))
        .await?;
    let result = work.await;
    let reset = client
        .batch_execute("RESET lock_timeout; RESET statement_timeout")
        .await;
    let value = result?;
    reset?;
    Ok(value)
}

/// Milliseconds for `SET`, at least 1 (0 would mean "no timeout").
fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

async fn build_under_timeouts(
    client: &Client,
    spec: &IndexSpec,
    name: &str,
) -> Result<BuildOutcome, DdlError> {
    let started = Instant::now();
    let created = client.batch_execute(&create_sql(spec, name)).await;
    let state = index_state(client, &spec.schema, name).await?;
    let (failure, source) = match (created, state) {
        (Ok(()), Some((true, size_bytes))) => {
            return Ok(BuildOutcome {
                duration: started.elapsed(),
                size_bytes,
            })
        }
        (Ok(()), _) => (BuildFailure::LeftInvalid, None),
        (Err(e), _) => (failure_of(&e), Some(e)),
    };
    let cleaned_up = match state {
        Some((false, _)) => drop_invalid(client, &spec.schema, name).await,
        _ => false,
    };
    Err(DdlError::Build {
        name: name.to_owned(),
        failure,
        cleaned_up,
        source,
    })
}

fn failure_of(e: &tokio_postgres::Error) -> BuildFailure {
    match e.code() {
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => BuildFailure::LockTimeout,
        Some(c) if *c == SqlState::QUERY_CANCELED => BuildFailure::Canceled,
        _ => BuildFailure::Other,
    }
}

/// `(indisvalid, size)` of the index `schema.name`, if it exists.
async fn index_state(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<Option<(bool, i64)>, DdlError> {
    let row = client
        .query_opt(
            "select i.indisvalid, pg_relation_size(c.oid)
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             join pg_index i on i.indexrelid = c.oid
             where n.nspname = $1 and c.relname = $2",
            &[&schema, &name],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

async fn drop_invalid(client: &Client, schema: &str, name: &str) -> bool {
    match client.batch_execute(&drop_sql(schema, name)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(index = name, error = %e, "could not drop invalid index; left for cleanup");
            false
        }
    }
}

/// Drops `schema.name`, but only an index whose name carries our prefix.
pub async fn drop_ours(
    client: &Client,
    schema: &str,
    name: &str,
    prefix: &str,
) -> Result<(), DdlError> {
    if prefix.is_empty() || !name.starts_with(prefix) {
        return Err(DdlError::NotOurs {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
        });
    }
    client.batch_execute(&drop_sql(schema, name)).await?;
    Ok(())
}

/// [`drop_ours`] under `lock_timeout` and `statement_timeout` (reset
/// afterwards), so that a drop never queues behind application locks for
/// long: `DROP INDEX CONCURRENTLY` waits for transactions using the table.
pub async fn drop_index(
    client: &Client,
    schema: &str,
    name: &str,
    prefix: &str,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> Result<(), DdlError> {
    let work = drop_ours(client, schema, name, prefix);
    under_timeouts(client, lock_timeout, statement_timeout, work).await
}

/// Drops every INVALID index carrying our prefix and returns their names.
/// An index being built concurrently is INVALID too: call this only when no
/// build of ours is in flight (the leader, before its first build).
pub async fn cleanup_invalid(client: &Client, prefix: &str) -> Result<Vec<String>, DdlError> {
    let rows = client
        .query(
            "select n.nspname::text, c.relname::text
             from pg_index i
             join pg_class c on c.oid = i.indexrelid
             join pg_namespace n on n.oid = c.relnamespace
             where not i.indisvalid and left(c.relname, length($1)) = $1
             order by 1, 2",
            &[&prefix],
        )
        .await?;
    let mut dropped = Vec::with_capacity(rows.len());
    for r in rows {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        drop_ours(client, &schema, &name, prefix).await?;
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_prefixed_bounded_sanitized_and_distinct() {
        let a = index_name(
            "ip_",
            "Weird \"Table\"; x",
            &keys(&["E-mail Address"]),
            None,
        );
        assert!(a.starts_with("ip_weird_table_x_e_mail_address_"), "{a}");
        assert!(a.len() <= 63);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert_eq!(
            a,
            index_name(
                "ip_",
                "Weird \"Table\"; x",
                &keys(&["E-mail Address"]),
                None
            )
        );
        // Same sanitized text, different specs.
        let names = [
            index_name("ip_", "t", &keys(&["a b"]), None),
            index_name("ip_", "t", &keys(&["a_b"]), None),
            index_name("ip_", "t", &keys(&["a", "b"]), None),
            index_name("ip_", "t_a", &keys(&["b"]), None),
            index_name("ip_", "t", &keys(&["a_b"]), Some("1")),
            index_name("ip_", "t", &keys(&["a_b"]), Some("2")),
            index_name("ip_", "t", &keys(&["lower(\"email\")"]), None),
            scoped_index_name("ip_", "t", &keys(&["a_b"]), None, Some("a_b")),
            scoped_index_name("ip_", "t", &keys(&["a_b"]), Some("1"), Some("a_b")),
        ];
        let sparse = scoped_index_name(
            "ip_",
            "contacts",
            &keys(&["tenant_id", "c1"]),
            None,
            Some("c1"),
        );
        assert!(
            sparse.starts_with("ip_contacts_tenant_id_c1_not_null_c1_"),
            "{sparse}"
        );
        assert_eq!(
            scoped_index_name("ip_", "t", &keys(&["a"]), None, None),
            index_name("ip_", "t", &keys(&["a"]), None)
        );
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(x, y);
            }
        }
        let long = index_name(
            "ip_",
            &"x".repeat(200),
            &keys(&[&"y".repeat(200)]),
            Some("é"),
        );
        assert_eq!(long.len(), 63);
        assert!(long.starts_with("ip_xxx"));
    }

    #[test]
    fn create_sql_quotes_identifiers_and_literals() {
        let spec = IndexSpec {
            schema: "My Schema".into(),
            table: "Weird \"Table\"; x".into(),
            keys: vec![
                IndexKey::Column("E-mail Address".into()),
                IndexKey::Expression("lower(\"email\")".into()),
            ],
            predicate: Some(Predicate::Equals {
                column: "Tenant".into(),
                value: "o'brien'; drop table t; --".into(),
            }),
        };
        assert_eq!(
            create_sql(&spec, "ip_x"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"ip_x\" ON \"My Schema\".\"Weird \"\"Table\"\"; x\" \
             (\"E-mail Address\", (lower(\"email\"))) WHERE \"Tenant\" = 'o''brien''; drop table t; --'"
        );
        let plain = IndexSpec {
            schema: "public".into(),
            table: "t".into(),
            keys: vec![IndexKey::Column("tenant_id".into())],
            predicate: None,
        };
        assert_eq!(
            create_sql(&plain, "ip_t"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"ip_t\" ON \"public\".\"t\" (\"tenant_id\")"
        );
        let sparse = IndexSpec {
            predicate: Some(Predicate::NotNull {
                column: "Custom \"1\"".into(),
            }),
            ..plain
        };
        assert_eq!(
            create_sql(&sparse, "ip_t"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"ip_t\" ON \"public\".\"t\" (\"tenant_id\") \
             WHERE \"Custom \"\"1\"\"\" IS NOT NULL"
        );
    }

    #[test]
    fn drop_sql_quotes() {
        assert_eq!(
            drop_sql("a\"b", "ip_1"),
            "DROP INDEX CONCURRENTLY IF EXISTS \"a\"\"b\".\"ip_1\""
        );
    }

    #[test]
    fn failures_map_to_bounded_kinds() {
        let e = DdlError::Build {
            name: "ip_x".into(),
            failure: BuildFailure::LockTimeout,
            cleaned_up: false,
            source: None,
        };
        assert_eq!(e.kind(), "lock_timeout");
        let refused = DdlError::NotOurs {
            name: "users_pkey".into(),
            prefix: "ip_".into(),
        };
        assert_eq!(refused.kind(), "not_ours");
    }
}
