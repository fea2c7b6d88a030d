//! Expression profiles (`expression_profile`): per tenant and field, whether
//! the tenant uses it. *Observed* from traffic (a tenant filters or sorts on
//! a field `expression.min_calls` times; it fades after
//! `expression.fade_after` without calls) or *declared* by an operator for
//! one tenant or for all (`*`); declared wins. Every change is an
//! `expression` lineage record. The indexer counts a tenant's traffic on a
//! field only while the field is not disabled for it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::ExpressionConfig;
use crate::indexer::lineage::{self, Kind, Mutation};
use crate::stats::Snapshot;
use crate::store::quote_ident;

/// The tenant of a declaration that applies to every tenant.
pub const ALL_TENANTS: &str = "*";
/// Observed calls and last-seen times are written at most this often.
const PERSIST_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ExpressionError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Lineage(#[from] lineage::LineageError),
    #[error("{0:?} is not TABLE.COLUMN")]
    Field(String),
    #[error("{0}")]
    Connect(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Declared,
    Observed,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Declared => "declared",
            Source::Observed => "observed",
        }
    }
}

/// One tenant × field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expression {
    pub tenant: String,
    pub table: String,
    pub column: String,
    pub enabled: bool,
    pub source: Source,
    #[serde(serialize_with = "unix_secs")]
    pub first_seen: Option<SystemTime>,
    #[serde(serialize_with = "unix_secs")]
    pub last_seen: Option<SystemTime>,
    pub calls: i64,
}

fn unix_secs<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&lineage::format_utc(*t)),
        None => s.serialize_none(),
    }
}

type Key = (String, String, String);

/// Every profile entry, as the leader keeps them between rounds.
#[derive(Debug, Default)]
pub struct Profiles {
    entries: BTreeMap<Key, Expression>,
    /// Calls seen in the previous round, to tell fresh traffic.
    previous: HashMap<Key, u64>,
    /// Entries whose calls/last_seen changed since they were last written.
    dirty: Vec<Key>,
    persisted_at: Option<SystemTime>,
}

impl Profiles {
    pub async fn load(client: &Client, schema: &str) -> Result<Profiles, ExpressionError> {
        let mut p = Profiles::default();
        for e in read(client, schema, None).await? {
            p.entries
                .insert((e.tenant.clone(), e.table.clone(), e.column.clone()), e);
        }
        Ok(p)
    }

    /// Pick up declarations made since (by `indexpilot expression`): every
    /// declared entry in the table replaces the one held.
    pub async fn refresh_declared(
        &mut self,
        client: &Client,
        schema: &str,
    ) -> Result<(), ExpressionError> {
        for e in read(client, schema, None).await? {
            if e.source == Source::Declared {
                self.entries
                    .insert((e.tenant.clone(), e.table.clone(), e.column.clone()), e);
            }
        }
        Ok(())
    }

    /// Whether `tenant`'s use of `table.column` counts: a declaration for
    /// the tenant, else one for all tenants, else not faded.
    pub fn allows(&self, tenant: &str, table: &str, column: &str) -> bool {
        let get = |t: &str| {
            self.entries
                .get(&(t.to_string(), table.to_string(), column.to_string()))
        };
        if let Some(e) = get(tenant).filter(|e| e.source == Source::Declared) {
            return e.enabled;
        }
        if let Some(e) = get(ALL_TENANTS) {
            return e.enabled;
        }
        get(tenant).is_none_or(|e| e.enabled)
    }

    /// Tenants for which `table.column` is expressed (enabled), not counting
    /// the all-tenants default.
    pub fn expressed_by(&self, table: &str, column: &str) -> usize {
        self.entries
            .values()
            .filter(|e| e.table == table && e.column == column && e.tenant != ALL_TENANTS)
            .filter(|e| self.allows(&e.tenant, table, column))
            .count()
    }

    /// Enabled expressions per table (for metrics).
    pub fn expressed_per_table(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.entries.values().filter(|e| e.tenant != ALL_TENANTS) {
            if self.allows(&e.tenant, &e.table, &e.column) {
                *out.entry(e.table.clone()).or_default() += 1;
            }
        }
        out
    }

    /// Remove from `snapshot` the traffic of tenants on fields not allowed
    /// for them, so that no index is proposed for it.
    pub fn filter(&self, snapshot: &mut Snapshot) {
        snapshot.columns.retain(|c| match &c.tenant {
            Some(t) => self.allows(t, &c.table, &c.column),
            None => true,
        });
        snapshot.groups.retain(|g| match &g.tenant {
            Some(t) => g.columns.iter().all(|c| self.allows(t, &g.table, c)),
            None => true,
        });
    }

    /// Fold one round's workload in: new expressions, renewed ones, faded
    /// ones; persists the changes (with lineage) and, at most once a
    /// minute, the calls and last-seen times.
    pub async fn observe(
        &mut self,
        client: &Client,
        schema: &str,
        snapshot: &Snapshot,
        config: &ExpressionConfig,
        tenant_column: &str,
        proxy: &str,
    ) -> Result<usize, ExpressionError> {
        let now = SystemTime::now();
        let mut calls: HashMap<Key, u64> = HashMap::new();
        for c in &snapshot.columns {
            let countable =
                is_field(&c.column) && c.class != "group_by" && *c.column != *tenant_column;
            let (Some(tenant), true) = (&c.tenant, countable) else {
                continue;
            };
            *calls
                .entry((
                    tenant.to_string(),
                    c.table.to_string(),
                    c.column.to_string(),
                ))
                .or_default() += c.calls;
        }
        let mut changes = Vec::new();
        for (key, &n) in &calls {
            let fresh = self.previous.get(key).is_none_or(|&before| n > before);
            let entry = self.entries.get_mut(key);
            match entry {
                None if n >= config.min_calls => {
                    let e = Expression {
                        tenant: key.0.clone(),
                        table: key.1.clone(),
                        column: key.2.clone(),
                        enabled: true,
                        source: Source::Observed,
                        first_seen: Some(now),
                        last_seen: Some(now),
                        calls: n as i64,
                    };
                    let reason = format!(
                        "observed: {n} calls >= expression.min_calls {}",
                        config.min_calls
                    );
                    changes.push((e.clone(), reason));
                    self.entries.insert(key.clone(), e);
                }
                None => {}
                Some(e) => {
                    e.calls = n as i64;
                    if fresh {
                        e.last_seen = Some(now);
                        self.dirty.push(key.clone());
                    }
                    if e.source == Source::Observed && !e.enabled && fresh && n >= config.min_calls
                    {
                        e.enabled = true;
                        let reason = format!("observed again: {n} calls");
                        changes.push((e.clone(), reason));
                    }
                }
            }
        }
        for e in self.entries.values_mut() {
            let idle = e
                .last_seen
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if e.source == Source::Observed && e.enabled && idle >= config.fade_after {
                e.enabled = false;
                let reason = format!(
                    "faded: no calls for {:.0} s (expression.fade_after {:.0} s)",
                    idle.as_secs_f64(),
                    config.fade_after.as_secs_f64()
                );
                changes.push((e.clone(), reason));
            }
        }
        self.previous = calls;
        let changed = changes.len();
        for (e, reason) in changes {
            upsert(client, schema, &e).await?;
            record(client, schema, &e, &reason, proxy).await?;
        }
        if self
            .persisted_at
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= PERSIST_EVERY)
        {
            let dirty = std::mem::take(&mut self.dirty);
            for key in dirty {
                if let Some(e) = self.entries.get(&key) {
                    upsert(client, schema, e).await?;
                }
            }
            self.persisted_at = Some(now);
        }
        Ok(changed)
    }
}

/// A plain column name (not an expression like `lower(email)`).
fn is_field(column: &str) -> bool {
    !column.is_empty()
        && column
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == ' ')
}

async fn upsert(client: &Client, schema: &str, e: &Expression) -> Result<(), ExpressionError> {
    client
        .execute(
            &format!(
                "insert into {}.expression_profile
                     (tenant, table_name, column_name, enabled, source, first_seen, last_seen, calls, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, now())
                 on conflict (tenant, table_name, column_name) do update set
                     enabled = excluded.enabled, source = excluded.source,
                     first_seen = coalesce({0}.expression_profile.first_seen, excluded.first_seen),
                     last_seen = coalesce(excluded.last_seen, {0}.expression_profile.last_seen),
                     calls = excluded.calls, updated_at = now()",
                quote_ident(schema)
            ),
            &[
                &e.tenant,
                &e.table,
                &e.column,
                &e.enabled,
                &e.source.as_str(),
                &e.first_seen,
                &e.last_seen,
                &e.calls,
            ],
        )
        .await?;
    Ok(())
}

async fn record(
    client: &Client,
    schema: &str,
    e: &Expression,
    reason: &str,
    proxy: &str,
) -> Result<i64, ExpressionError> {
    let m = Mutation {
        parent_id: None,
        kind: Kind::Expression,
        tenant: Some(e.tenant.clone()),
        table: Some(e.table.clone()),
        columns: vec![e.column.clone()],
        index_name: None,
        ddl: None,
        reason: reason.to_string(),
        evidence: serde_json::json!({ "source": e.source, "calls": e.calls, "enabled": e.enabled }),
        outcome: if e.enabled { "enabled" } else { "disabled" }.to_string(),
    };
    Ok(lineage::record(client, schema, &m, proxy).await?)
}

/// Profile entries, all or one tenant's (plus the all-tenants defaults).
pub async fn read(
    client: &Client,
    schema: &str,
    tenant: Option<&str>,
) -> Result<Vec<Expression>, ExpressionError> {
    let rows = client
        .query(
            &format!(
                "select tenant, table_name, column_name, enabled, source, first_seen, last_seen, calls
                   from {}.expression_profile
                  where $1::text is null or tenant = $1 or tenant = '*'
                  order by table_name, column_name, tenant",
                quote_ident(schema)
            ),
            &[&tenant],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Expression {
            tenant: r.get(0),
            table: r.get(1),
            column: r.get(2),
            enabled: r.get(3),
            source: if r.get::<_, String>(4) == "declared" {
                Source::Declared
            } else {
                Source::Observed
            },
            first_seen: r.get(5),
            last_seen: r.get(6),
            calls: r.get(7),
        })
        .collect())
}

/// Split `TABLE.COLUMN` at the last dot (the table may be `schema.table`).
pub fn parse_field(text: &str) -> Result<(String, String), ExpressionError> {
    match text.rsplit_once('.') {
        Some((t, c)) if !t.is_empty() && !c.is_empty() => Ok((t.to_string(), c.to_string())),
        _ => Err(ExpressionError::Field(text.to_string())),
    }
}

/// `indexpilot expression enable|disable`: declare a field enabled or
/// disabled for one tenant or all (`*`); recorded in lineage.
pub async fn declare(
    client: &Client,
    schema: &str,
    tenant: &str,
    field: &str,
    enabled: bool,
    proxy: &str,
) -> Result<Expression, ExpressionError> {
    let (table, column) = parse_field(field)?;
    let existing = read(client, schema, Some(tenant))
        .await?
        .into_iter()
        .find(|e| e.tenant == tenant && e.table == table && e.column == column);
    let e = Expression {
        tenant: tenant.to_string(),
        table,
        column,
        enabled,
        source: Source::Declared,
        first_seen: existing.as_ref().and_then(|e| e.first_seen),
        last_seen: existing.as_ref().and_then(|e| e.last_seen),
        calls: existing.as_ref().map_or(0, |e| e.calls),
    };
    upsert(client, schema, &e).await?;
    let who = if tenant == ALL_TENANTS {
        "all tenants".to_string()
    } else {
        format!("tenant {tenant}")
    };
    let reason = format!(
        "declared {} for {who} by an operator",
        if enabled { "enabled" } else { "disabled" }
    );
    record(client, schema, &e, &reason, proxy).await?;
    Ok(e)
}

/// Aligned table of profile entries.
pub fn render(entries: &[Expression]) -> String {
    let header = [
        "tenant",
        "field",
        "enabled",
        "source",
        "calls",
        "last seen (UTC)",
    ];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.tenant.clone(),
                format!("{}.{}", e.table, e.column),
                if e.enabled { "yes" } else { "no" }.to_string(),
                e.source.as_str().to_string(),
                e.calls.to_string(),
                e.last_seen
                    .map(lineage::format_utc)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = super::aligned(header, &rows);
    if rows.is_empty() {
        out.push_str("(no expressions recorded yet)\n");
    }
    out
}

/// `indexpilot expression show [--tenant T]`: the profile as an aligned
/// table, or JSON.
pub async fn show(
    dsn: &str,
    schema: &str,
    tenant: Option<&str>,
    json: bool,
) -> Result<String, ExpressionError> {
    let client = crate::indexer::leader::connect_plain(dsn).await?;
    let entries = read(&client, schema, tenant).await?;
    Ok(if json {
        format!("{:#}\n", serde_json::json!(entries))
    } else {
        render(&entries)
    })
}

/// `indexpilot expression enable|disable`: connect (migrating IndexPilot's
/// schema if needed), declare, and describe what was recorded.
pub async fn set(
    dsn: &str,
    schema: &str,
    tenant: &str,
    field: &str,
    enabled: bool,
) -> Result<String, ExpressionError> {
    parse_field(field)?;
    let client = crate::stats::flush::connect_admin(dsn, schema)
        .await
        .map_err(|e| ExpressionError::Connect(e.to_string()))?;
    let e = declare(&client, schema, tenant, field, enabled, "cli").await?;
    Ok(format!(
        "{} {}.{} for {} (declared; recorded in the mutation log)\n",
        if e.enabled { "enabled" } else { "disabled" },
        e.table,
        e.column,
        if e.tenant == ALL_TENANTS {
            "all tenants".to_string()
        } else {
            format!("tenant {}", e.tenant)
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, column: &str, enabled: bool, source: Source) -> Expression {
        Expression {
            tenant: tenant.into(),
            table: "contacts".into(),
            column: column.into(),
            enabled,
            source,
            first_seen: None,
            last_seen: None,
            calls: 0,
        }
    }

    fn profiles(entries: Vec<Expression>) -> Profiles {
        let mut p = Profiles::default();
        for e in entries {
            p.entries
                .insert((e.tenant.clone(), e.table.clone(), e.column.clone()), e);
        }
        p
    }

    #[test]
    fn declared_wins_then_all_tenants_then_observed() {
        let p = profiles(vec![
            entry("1", "email", false, Source::Observed),
            entry("2", "email", true, Source::Observed),
            entry("3", "email", false, Source::Declared),
            entry("*", "phone", false, Source::Declared),
            entry("4", "phone", true, Source::Declared),
            entry("5", "phone", true, Source::Observed),
        ]);
        assert!(!p.allows("1", "contacts", "email"), "faded");
        assert!(p.allows("2", "contacts", "email"));
        assert!(!p.allows("3", "contacts", "email"), "declared off");
        assert!(p.allows("9", "contacts", "email"), "unknown counts");
        assert!(
            p.allows("4", "contacts", "phone"),
            "own declaration beats *"
        );
        assert!(!p.allows("5", "contacts", "phone"), "* beats observation");
        assert_eq!(p.expressed_by("contacts", "email"), 1);
        assert_eq!(p.expressed_by("contacts", "phone"), 1);
    }

    #[test]
    fn fields_and_rendering() {
        assert_eq!(
            parse_field("ops.jobs.payload").unwrap(),
            ("ops.jobs".to_string(), "payload".to_string())
        );
        assert!(parse_field("payload").is_err());
        let text = render(&[entry("42", "email", true, Source::Declared)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("field"), lines[1].find("contacts.email"));
    }
}
