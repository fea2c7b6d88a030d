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
    client: &Client,
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
