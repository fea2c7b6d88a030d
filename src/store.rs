//! IndexPilot's own tables, in their own schema (`admin.schema`, default
//! `indexpilot`), created and upgraded by versioned migrations. Replicas
//! migrate under an advisory lock, so concurrent starts are safe.

use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// Quote an identifier for SQL (`"` doubled), whatever it contains.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Migrations in order; `{s}` stands for the quoted schema name. Never edit
/// a released one: append a new version.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "query and filter statistics",
        "create table {s}.query_text (
         fingerprint bigint primary key,
         query text not null,
         first_seen timestamptz not null default now());
     create table {s}.query_stats (
         window_start timestamptz not null,
         window_seconds integer not null,
         fingerprint bigint not null,
         tenant text,
         calls bigint not null,
         errors bigint not null,
         total_ms double precision not null,
         p95_ms double precision not null,
         rows bigint not null,
         proxy text not null);
     create index on {s}.query_stats (window_start);
     create index on {s}.query_stats (fingerprint, window_start);
     create table {s}.filter_stats (
         window_start timestamptz not null,
         window_seconds integer not null,
         tenant text,
         table_name text not null,
         column_name text not null,
         predicate text not null,
         calls bigint not null,
         rows bigint not null,
         proxy text not null);
     create index on {s}.filter_stats (window_start);
     create index on {s}.filter_stats (table_name, column_name, window_start);",
    ),
    (
        "mutation lineage log",
        "create table {s}.mutation_log (
         id bigserial primary key,
         parent_id bigint references {s}.mutation_log (id),
         at timestamptz not null default now(),
         kind text not null check (kind in
             ('advise', 'create', 'keep', 'revert', 'drop', 'cleanup', 'expression', 'genome')),
         tenant text,
         table_name text,
         columns text[] not null default '{}',
         index_name text,
         ddl text,
         reason text not null,
         evidence jsonb not null default '{}',
         outcome text not null,
         proxy text);
     create index on {s}.mutation_log (index_name);
     create index on {s}.mutation_log (at);",
    ),
    (
        "AND-group statistics and index bookkeeping",
        "create table {s}.group_stats (
         window_start timestamptz not null,
         window_seconds integer not null,
         tenant text,
         table_name text not null,
         columns text[] not null,
         calls bigint not null,
         proxy text not null);
     create index on {s}.group_stats (window_start);
     create index on {s}.filter_stats (proxy, window_start);
     create index on {s}.query_stats (proxy, window_start);",
    ),
    (
        "genome catalog and expression profiles",
        "create table {s}.genome_catalog (
         schema_name text not null,
         table_name text not null,
         column_name text not null,
         ordinal integer not null,
         data_type text not null,
         nullable boolean not null,
         indexable boolean not null,
         feature_group text not null,
         first_seen timestamptz not null default now(),
         updated_at timestamptz not null default now(),
         primary key (schema_name, table_name, column_name));
     create table {s}.expression_profile (
         tenant text not null,
         table_name text not null,
         column_name text not null,
         enabled boolean not null,
         source text not null check (source in ('declared', 'observed')),
         first_seen timestamptz,
         last_seen timestamptz,
         calls bigint not null default 0,
         updated_at timestamptz not null default now(),
         primary key (tenant, table_name, column_name));",
    ),
    (
        "simulation runs",
        "create table {s}.simulation_run (
         id bigserial primary key,
         mode text not null check (mode in ('baseline', 'auto')),
         started_at timestamptz not null,
         finished_at timestamptz not null default now(),
         scenario jsonb not null,
         phase jsonb not null,
         config jsonb not null default '[]',
         notes jsonb not null default '[]');",
    ),
    (
        "group statistics by replica",
        // The leader reads the other replicas' rows as two ranges around
        // its own name (indexer::workload::flushed), as for filter_stats.
        "create index on {s}.group_stats (proxy, window_start);",
    ),
];

/// Bring the schema up to date; returns the version now in place.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<u32, StoreError> {
    let s = quote_ident(schema);
    let tx = client.transaction().await?;
    // One migrator at a time across replicas (key: hash of the schema name).
    tx.execute(
        "select pg_advisory_xact_lock(hashtext('indexpilot.migrate:' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "create schema if not exists {s};
         create table if not exists {s}.schema_version (
             version integer primary key,
             description text not null,
             applied_at timestamptz not null default now());"
    ))
    .await?;
    let row = tx
        .query_one(
            &format!("select coalesce(max(version), 0) from {s}.schema_version"),
            &[],
        )
        .await?;
    let mut version: i32 = row.get(0);
    for (i, (description, sql)) in MIGRATIONS.iter().enumerate() {
        let v = i as i32 + 1;
        if v <= version {
            continue;
        }
        tx.batch_execute(&sql.replace("{s}", &s)).await?;
        tx.execute(
            &format!("insert into {s}.schema_version (version, description) values ($1, $2)"),
            &[&v, description],
        )
        .await?;
        version = v;
    }
    tx.commit().await?;
    Ok(version as u32)
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("indexpilot"), "\"indexpilot\"");
        assert_eq!(quote_ident("we\"ird; drop"), "\"we\"\"ird; drop\"");
    }
}
