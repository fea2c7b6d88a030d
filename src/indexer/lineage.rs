//! The mutation lineage log (`mutation_log`): every decision the indexer
//! takes or declines, with its evidence as JSON. A revert points at the
//! create it undoes through `parent_id`, so history reads as a tree.

use std::time::SystemTime;

use tokio_postgres::Client;

use crate::store::quote_ident;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Advise,
    Create,
    Keep,
    Revert,
    Drop,
    Cleanup,
    Expression,
    Genome,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Advise => "advise",
            Kind::Create => "create",
            Kind::Keep => "keep",
            Kind::Revert => "revert",
            Kind::Drop => "drop",
            Kind::Cleanup => "cleanup",
            Kind::Expression => "expression",
            Kind::Genome => "genome",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [
            Kind::Advise,
            Kind::Create,
            Kind::Keep,
            Kind::Revert,
            Kind::Drop,
            Kind::Cleanup,
            Kind::Expression,
            Kind::Genome,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One entry to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    pub parent_id: Option<i64>,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub table: Option<String>,
    pub columns: Vec<String>,
    pub index_name: Option<String>,
    pub ddl: Option<String>,
    pub reason: String,
    pub evidence: serde_json::Value,
    pub outcome: String,
}

/// A recorded entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub id: i64,
    pub at: SystemTime,
    pub mutation: Mutation,
}

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("unknown mutation kind {0:?} in the log")]
    Kind(String),
}

/// Append an entry; returns its id.
pub async fn record(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
    m: &Mutation,
    proxy: &str,
) -> Result<i64, LineageError> {
    let sql = format!(
        "insert into {}.mutation_log
             (parent_id, kind, tenant, table_name, columns, index_name, ddl, reason, evidence, outcome, proxy)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11)
         returning id",
        quote_ident(schema)
    );
    let evidence = m.evidence.to_string();
    let row = client
        .query_one(
            &sql,
            &[
                &m.parent_id,
                &m.kind.as_str(),
                &m.tenant,
                &m.table,
                &m.columns,
                &m.index_name,
                &m.ddl,
                &m.reason,
                &evidence,
                &m.outcome,
                &proxy,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The most recent `limit` entries, oldest first.
pub async fn history(
    client: &Client,
    schema: &str,
    limit: i64,
) -> Result<Vec<Recorded>, LineageError> {
    let sql = format!(
        "select * from (
             select id, at, parent_id, kind, tenant, table_name, columns, index_name, ddl, reason,
                    evidence::text, outcome
               from {}.mutation_log order by id desc limit $1) recent
         order by id",
        quote_ident(schema)
    );
    let rows = client.query(&sql, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get(3);
            let evidence: String = r.get(10);
            Ok(Recorded {
                id: r.get(0),
                at: r.get(1),
                mutation: Mutation {
                    parent_id: r.get(2),
                    kind: Kind::parse(&kind).ok_or(LineageError::Kind(kind))?,
                    tenant: r.get(4),
                    table: r.get(5),
                    columns: r.get(6),
                    index_name: r.get(7),
                    ddl: r.get(8),
                    reason: r.get(9),
                    evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
                    outcome: r.get(11),
                },
            })
        })
        .collect()
}

/// `indexpilot lineage`: connect, read the last `limit` entries, render them
/// as a timeline or as JSON.
pub async fn show(dsn: &str, schema: &str, limit: i64, json: bool) -> Result<String, LineageError> {
    let client = crate::dbconn::connect(dsn).await?;
    let entries = history(&client, schema, limit).await?;
    Ok(if json {
        format!("{:#}\n", to_json(&entries))
    } else if entries.is_empty() {
        "no mutations recorded yet\n".to_string()
    } else {
        render_timeline(&entries)
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a point in time.
pub fn format_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn line(r: &Recorded) -> String {
    let m = &r.mutation;
    let mut out = format!("{}  #{} {:<10}", format_utc(r.at), r.id, m.kind.as_str());
    if let Some(t) = &m.table {
        out.push_str(&format!(" {t} ({})", m.columns.join(", ")));
    }
    if let Some(i) = &m.index_name {
        out.push_str(&format!(" {i}"));
    }
    if let Some(t) = &m.tenant {
        out.push_str(&format!(" tenant {t}"));
    }
    out.push_str(&format!(" - {} [{}]", m.reason, m.outcome));
    out
}

/// The history as a readable timeline: each entry in time order, the ones
/// that answer an earlier entry (a revert, a keep) indented beneath it.
pub fn render_timeline(entries: &[Recorded]) -> String {
    let ids: std::collections::HashSet<i64> = entries.iter().map(|r| r.id).collect();
    let mut out = String::new();
    for root in entries
        .iter()
        .filter(|r| r.mutation.parent_id.is_none_or(|p| !ids.contains(&p)))
    {
        out.push_str(&line(root));
        out.push('\n');
        render_children(entries, root.id, 1, &mut out);
    }
    out
}

fn render_children(entries: &[Recorded], parent: i64, depth: usize, out: &mut String) {
    // Depth is bounded by the log itself; parent ids always point backwards.
    for child in entries
        .iter()
        .filter(|r| r.mutation.parent_id == Some(parent) && r.id > parent)
    {
        out.push_str(&format!("{}└ {}\n", "  ".repeat(depth), line(child)));
        render_children(entries, child.id, depth + 1, out);
    }
}

/// The history as JSON, one object per entry, for scripts.
pub fn to_json(entries: &[Recorded]) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .map(|r| {
                let m = &r.mutation;
                serde_json::json!({
                    "id": r.id, "parent_id": m.parent_id, "at": format_utc(r.at),
                    "kind": m.kind.as_str(), "tenant": m.tenant, "table": m.table,
                    "columns": m.columns, "index_name": m.index_name, "ddl": m.ddl,
                    "reason": m.reason, "evidence": m.evidence, "outcome": m.outcome,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn rec(id: i64, parent: Option<i64>, kind: Kind) -> Recorded {
        Recorded {
            id,
            at: UNIX_EPOCH + Duration::from_secs(1_795_000_000 + id as u64),
            mutation: Mutation {
                parent_id: parent,
                kind,
                tenant: None,
                table: Some("contacts".into()),
                columns: vec!["email".into()],
                index_name: Some("ip_x".into()),
                ddl: None,
                reason: "r".into(),
                evidence: serde_json::json!({}),
                outcome: "ok".into(),
            },
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00"
        );
        assert_eq!(
            format_utc(UNIX_EPOCH + Duration::from_secs(1_795_000_001)),
            "2026-11-18 11:06:41"
        );
    }

    #[test]
    fn reverts_sit_beneath_their_create() {
        let log = [
            rec(1, None, Kind::Create),
            rec(2, None, Kind::Advise),
            rec(3, Some(1), Kind::Revert),
        ];
        let text = render_timeline(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("#1 create"));
        assert!(
            lines[1].starts_with("  └ ") && lines[1].contains("#3 revert"),
            "{text}"
        );
        assert!(lines[2].contains("#2 advise"));
        let json = to_json(&log);
        assert_eq!(json[2]["parent_id"], 1);
        assert_eq!(json[0]["kind"], "create");
    }
}
