//! The genome catalog (`genome_catalog`): every field of every user table,
//! discovered from the database catalog with the `genome.*` overrides
//! applied, kept in sync by [`sync`]; each change of a table is a `genome`
//! lineage record.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use crate::config::{Config, GenomeConfig};
use crate::indexer::catalog::{self, CatalogError};
use crate::indexer::lineage::{self, Kind, LineageError, Mutation};
use crate::indexer::model::TableFacts;
use crate::stats::flush::FlushError;
use crate::store::quote_ident;

/// The proxy id lineage records written from the command line carry.
const CLI_PROXY: &str = "cli";

#[derive(Debug, thiserror::Error)]
pub enum GenomeError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot open the admin connection: {0}")]
    Connect(#[source] FlushError),
}

/// One field of the genome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    pub schema: String,
    /// Table label: `table` in `public`, else `schema.table`.
    pub table: String,
    pub column: String,
    /// 1-based position among the table's live columns.
    pub ordinal: i32,
    /// Type name as `format_type` prints it.
    pub data_type: String,
    pub nullable: bool,
    /// The type has a btree operator class and no override forbids it.
    pub indexable: bool,
    pub feature_group: String,
}

impl Field {
    /// The table's own name (what `genome_catalog.table_name` stores).
    fn relname(&self) -> &str {
        self.table
            .strip_prefix(&self.schema)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|_| self.schema != "public")
            .unwrap_or(&self.table)
    }

    /// What changed between `self` (before) and `now`, e.g. `type text -> integer`.
    fn differences(&self, now: &Field) -> Vec<String> {
        let mut out = Vec::new();
        if self.data_type != now.data_type {
            out.push(format!("type {} -> {}", self.data_type, now.data_type));
        }
        let null = |n: bool| if n { "null" } else { "not null" };
        if self.nullable != now.nullable {
            out.push(format!("{} -> {}", null(self.nullable), null(now.nullable)));
        }
        let idx = |i: bool| if i { "indexable" } else { "not indexable" };
        if self.indexable != now.indexable {
            out.push(format!("{} -> {}", idx(self.indexable), idx(now.indexable)));
        }
        if self.feature_group != now.feature_group {
            out.push(format!(
                "group {} -> {}",
                self.feature_group, now.feature_group
            ));
        }
        out
    }
}

/// How one table's fields changed between two genomes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableChange {
    pub table: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// `column: what changed`, e.g. `notes: type text -> varchar(20)`.
    pub changed: Vec<String>,
}

/// The genome the catalog describes, overrides applied (excluded schemas and
/// tables left out), sorted by (table label, ordinal).
pub fn discover(tables: &[TableFacts], overrides: &GenomeConfig) -> Vec<Field> {
    let mut fields: Vec<Field> = tables
        .iter()
        .filter(|t| !overrides.exclude_schemas.contains(&t.schema))
        .filter(|t| !overrides.exclude_tables.contains(&t.label()))
        .flat_map(|t| table_fields(t, overrides))
        .collect();
    fields.sort_by(|a, b| (&a.table, a.ordinal).cmp(&(&b.table, b.ordinal)));
    fields
}

fn table_fields<'a>(
    t: &'a TableFacts,
    overrides: &'a GenomeConfig,
) -> impl Iterator<Item = Field> + 'a {
    let label = t.label();
    t.columns.iter().zip(1..).map(move |(c, ordinal)| {
        let field = format!("{label}.{}", c.name);
        Field {
            schema: t.schema.clone(),
            table: label.clone(),
            column: c.name.clone(),
            ordinal,
            data_type: c.data_type.clone(),
            nullable: c.nullable,
            indexable: c.btree && !overrides.not_indexable.contains(&field),
            feature_group: feature_group(&field, &c.data_type, &overrides.feature_groups),
        }
    })
}

/// The first declared group whose pattern matches `field` (`table.column`;
/// a trailing `*` matches a prefix), else `document` for JSON, else `core`.
fn feature_group(field: &str, data_type: &str, groups: &[(String, String)]) -> String {
    let matches = |pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => field.starts_with(prefix),
        None => field == pattern,
    };
    if let Some((group, _)) = groups.iter().find(|(_, p)| matches(p)) {
        return group.clone();
    }
    match data_type {
        "json" | "jsonb" => "document",
        _ => "core",
    }
    .to_string()
}

/// What `genome_catalog` holds now, sorted by (table label, ordinal).
pub async fn load(client: &Client, schema: &str) -> Result<Vec<Field>, GenomeError> {
    read(client, schema).await
}

async fn read<C: GenericClient>(client: &C, schema: &str) -> Result<Vec<Field>, GenomeError> {
    let sql = format!(
        "select schema_name, table_name, column_name, ordinal, data_type, nullable, indexable,
                feature_group
           from {}.genome_catalog",
        quote_ident(schema)
    );
    let mut fields: Vec<Field> = client
        .query(&sql, &[])
        .await?
        .iter()
        .map(|r| {
            let schema: String = r.get(0);
            let name: String = r.get(1);
            Field {
                table: label(&schema, &name),
                schema,
                column: r.get(2),
                ordinal: r.get(3),
                data_type: r.get(4),
                nullable: r.get(5),
                indexable: r.get(6),
                feature_group: r.get(7),
            }
        })
        .collect();
    fields.sort_by(|a, b| (&a.table, a.ordinal).cmp(&(&b.table, b.ordinal)));
    Ok(fields)
}

/// Same labelling as [`TableFacts::label`].
fn label(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// A table's change with the reason its lineage record gives.
#[derive(Debug, PartialEq)]
struct Planned {
    change: TableChange,
    reason: String,
}

/// What turns `current` into `desired`: rows to write, rows to delete, and
/// the change of each table.
#[derive(Debug)]
struct Diff<'a> {
    upsert: Vec<&'a Field>,
    remove: Vec<&'a Field>,
    planned: Vec<Planned>,
}

/// A field whose only difference is its ordinal (a column before it was
/// dropped) is rewritten but is no change of the genome.
fn diff<'a>(current: &'a [Field], desired: &'a [Field]) -> Diff<'a> {
    let key = |f: &'a Field| (f.table.as_str(), f.column.as_str());
    let now: BTreeMap<_, &Field> = current.iter().map(|f| (key(f), f)).collect();
    let want: BTreeMap<_, &Field> = desired.iter().map(|f| (key(f), f)).collect();
    let upsert: Vec<&Field> = desired
        .iter()
        .filter(|f| now.get(&key(f)) != Some(f))
        .collect();
    let remove: Vec<&Field> = current
        .iter()
        .filter(|f| !want.contains_key(&key(f)))
        .collect();
    let mut changes: BTreeMap<&str, TableChange> = BTreeMap::new();
    for f in &upsert {
        match now.get(&key(f)) {
            None => of(&mut changes, &f.table).added.push(f.column.clone()),
            Some(before) => {
                let what = before.differences(f);
                if !what.is_empty() {
                    let text = format!("{}: {}", f.column, what.join(", "));
                    of(&mut changes, &f.table).changed.push(text);
                }
            }
        }
    }
    for f in &remove {
        of(&mut changes, &f.table).removed.push(f.column.clone());
    }
    let known: BTreeSet<&str> = current.iter().map(|f| f.table.as_str()).collect();
    let kept: BTreeSet<&str> = desired.iter().map(|f| f.table.as_str()).collect();
    let planned = changes
        .into_values()
        .map(|change| {
            let t = change.table.as_str();
            let reason = reason(&change, known.contains(t), kept.contains(t));
            Planned { change, reason }
        })
        .collect();
    Diff {
        upsert,
        remove,
        planned,
    }
}

/// The change entry of `table`, created empty on first use.
fn of<'m, 'a>(
    changes: &'m mut BTreeMap<&'a str, TableChange>,
    table: &'a str,
) -> &'m mut TableChange {
    changes.entry(table).or_insert_with(|| TableChange {
        table: table.to_string(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    })
}

/// `table discovered (7 fields)`, `table dropped`, or what was added,
/// removed and changed.
fn reason(c: &TableChange, known: bool, kept: bool) -> String {
    if !known {
        return format!("table discovered ({} fields)", c.added.len());
    }
    if !kept {
        return "table dropped".to_string();
    }
    let mut parts = Vec::new();
    if !c.added.is_empty() {
        parts.push(format!("fields added: {}", c.added.join(", ")));
    }
    if !c.removed.is_empty() {
        parts.push(format!("removed: {}", c.removed.join(", ")));
    }
    if !c.changed.is_empty() {
        let changed: Vec<String> = c
            .changed
            .iter()
            .map(|d| match d.split_once(": ") {
                Some((column, what)) => format!("{column} ({what})"),
                None => d.clone(),
            })
            .collect();
        parts.push(format!("changed: {}", changed.join(", ")));
    }
    parts.join("; ")
}

/// Make `genome_catalog` equal `desired` and write one `genome` lineage
/// record per changed table, in one transaction. Returns the changes; when there
/// are none, nothing is written.
pub async fn sync(
    client: &mut Client,
    schema: &str,
    desired: &[Field],
    proxy: &str,
) -> Result<Vec<TableChange>, GenomeError> {
    let tx = client.transaction().await?;
    // Two replicas (or the CLI) syncing at once must not both record a change.
    let lock = format!(
        "lock table {}.genome_catalog in share row exclusive mode",
        quote_ident(schema)
    );
    tx.batch_execute(&lock).await?;
    let current = read(&tx, schema).await?;
    let d = diff(&current, desired);
    if d.upsert.is_empty() && d.remove.is_empty() {
        return Ok(Vec::new());
    }
    write_rows(&tx, schema, &d.upsert).await?;
    delete_rows(&tx, schema, &d.remove).await?;
    // The records commit with the change: both or neither.
    for p in &d.planned {
        lineage::record(&tx, schema, &mutation(p), proxy).await?;
    }
    tx.commit().await?;
    Ok(d.planned.into_iter().map(|p| p.change).collect())
}

fn mutation(p: &Planned) -> Mutation {
    let c = &p.change;
    let columns = c.added.iter().chain(&c.removed).cloned();
    let changed = c
        .changed
        .iter()
        .filter_map(|d| d.split_once(": "))
        .map(|(col, _)| col.to_string());
    Mutation {
        parent_id: None,
        kind: Kind::Genome,
        tenant: None,
        table: Some(c.table.clone()),
        columns: columns.chain(changed).collect(),
        index_name: None,
        ddl: None,
        reason: p.reason.clone(),
        evidence: serde_json::to_value(c).unwrap_or(serde_json::Value::Null),
        outcome: "applied".to_string(),
    }
}

async fn write_rows<C: GenericClient>(
    client: &C,
    schema: &str,
    fields: &[&Field],
) -> Result<(), tokio_postgres::Error> {
    if fields.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "insert into {}.genome_catalog as g
             (schema_name, table_name, column_name, ordinal, data_type, nullable, indexable,
              feature_group)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[],
                              $6::bool[], $7::bool[], $8::text[])
         on conflict (schema_name, table_name, column_name) do update
            set ordinal = excluded.ordinal, data_type = excluded.data_type,
                nullable = excluded.nullable, indexable = excluded.indexable,
                feature_group = excluded.feature_group, updated_at = now()",
        quote_ident(schema)
    );
    let col = |f: fn(&Field) -> String| fields.iter().map(|x| f(x)).collect::<Vec<String>>();
    let ordinals: Vec<i32> = fields.iter().map(|f| f.ordinal).collect();
    let nullable: Vec<bool> = fields.iter().map(|f| f.nullable).collect();
    let indexable: Vec<bool> = fields.iter().map(|f| f.indexable).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &col(|f| f.schema.clone()),
        &col(|f| f.relname().to_string()),
        &col(|f| f.column.clone()),
        &ordinals,
        &col(|f| f.data_type.clone()),
        &nullable,
        &indexable,
        &col(|f| f.feature_group.clone()),
    ];
    client.execute(&sql, &params).await.map(drop)
}

async fn delete_rows<C: GenericClient>(
    client: &C,
    schema: &str,
    fields: &[&Field],
) -> Result<(), tokio_postgres::Error> {
    if fields.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "delete from {}.genome_catalog g
          using unnest($1::text[], $2::text[], $3::text[]) as d(s, t, c)
          where g.schema_name = d.s and g.table_name = d.t and g.column_name = d.c",
        quote_ident(schema)
    );
    let schemas: Vec<&str> = fields.iter().map(|f| f.schema.as_str()).collect();
    let tables: Vec<&str> = fields.iter().map(|f| f.relname()).collect();
    let columns: Vec<&str> = fields.iter().map(|f| f.column.as_str()).collect();
    client
        .execute(&sql, &[&schemas, &tables, &columns])
        .await
        .map(drop)
}

/// `indexpilot genome refresh`: connect (migrating IndexPilot's schema),
/// discover the genome with the configured overrides, sync it, and say what
/// changed.
pub async fn refresh(config: &Config, dsn: &str, json: bool) -> Result<String, GenomeError> {
    let schema = &config.admin.schema;
    let mut client = crate::stats::flush::connect_admin(dsn, schema)
        .await
        .map_err(GenomeError::Connect)?;
    let tables = catalog::load(&client, &config.indexer.index_prefix, schema).await?;
    let desired = discover(&tables, &config.genome);
    let changes = sync(&mut client, schema, &desired, CLI_PROXY).await?;
    let table_count = desired
        .iter()
        .map(|f| &f.table)
        .collect::<BTreeSet<_>>()
        .len();
    if json {
        let summary = serde_json::json!({
            "tables": table_count,
            "fields": desired.len(),
            "indexable": desired.iter().filter(|f| f.indexable).count(),
            "changes": changes,
        });
        return Ok(format!("{summary:#}\n"));
    }
    Ok(summary(&desired, table_count, &changes))
}

fn summary(desired: &[Field], tables: usize, changes: &[TableChange]) -> String {
    let indexable = desired.iter().filter(|f| f.indexable).count();
    let mut out = format!(
        "genome: {tables} tables, {} fields ({indexable} indexable); ",
        desired.len()
    );
    if changes.is_empty() {
        out.push_str("unchanged\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{} tables changed (recorded in the mutation log):",
        changes.len()
    );
    for c in changes {
        let _ = writeln!(
            out,
            "  {}: +{} -{} ~{}",
            c.table,
            c.added.len(),
            c.removed.len(),
            c.changed.len()
        );
    }
    out
}

/// `indexpilot genome show`: the catalog as an aligned table, or JSON.
pub async fn show(config: &Config, dsn: &str, json: bool) -> Result<String, GenomeError> {
    let client = crate::indexer::leader::connect_plain(dsn).await?;
    let fields = match load(&client, &config.admin.schema).await {
        Err(GenomeError::Db(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Vec::new(),
        other => other?,
    };
    Ok(if json {
        format!("{:#}\n", serde_json::json!(fields))
    } else {
        render(&fields)
    })
}

/// Aligned table: table, column, type, null, indexable, group.
pub fn render(fields: &[Field]) -> String {
    let header = ["table", "column", "type", "null", "indexable", "group"];
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows: Vec<[String; 6]> = fields
        .iter()
        .map(|f| {
            [
                f.table.clone(),
                f.column.clone(),
                f.data_type.clone(),
                yes(f.nullable),
                yes(f.indexable),
                f.feature_group.clone(),
            ]
        })
        .collect();
    let mut out = super::aligned(header, &rows);
    if rows.is_empty() {
        out.push_str("(no genome recorded yet: run `indexpilot genome refresh`)\n");
    }
    out
}

#[cfg(test)]
mod tests;
