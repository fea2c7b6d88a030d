//! Reads the facts of [`model`](super::model) from the PostgreSQL catalog:
//! one query per kind (tables, columns, indexes), joined here by table oid.

use std::collections::HashMap;

use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use super::model::{ColumnFacts, IndexFacts, TableFacts};

/// Catalog reads failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the catalog ({what}) failed: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// User tables: not system schemas, not temp/toast, not IndexPilot's own
/// schema (default name). Writes per second since the statistics were last
/// reset, or since the server started when they never were.
const TABLES: &str = "
select c.oid, n.nspname, c.relname,
       greatest(c.reltuples, 0)::float8,
       c.relpages::float8,
       coalesce((s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::float8
         / greatest(extract(epoch from now() - coalesce(
             (select stats_reset from pg_stat_database where datname = current_database()),
             pg_postmaster_start_time()))::float8, 1), 0),
       coalesce((s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::float8, 0)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
where c.relkind in ('r', 'p')
  and n.nspname not in ('pg_catalog', 'information_schema', $1)
  and n.nspname !~ '^pg_(toast|temp)'
order by n.nspname, c.relname";

/// A type has a btree opclass when a default one takes it directly, through
/// a binary-coercible cast (varchar → text), or as an array or enum.
const COLUMNS: &str = "
select a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod),
       exists (
         select 1 from pg_opclass o join pg_am am on am.oid = o.opcmethod
         where am.amname = 'btree' and o.opcdefault
           and (o.opcintype = t.oid
             or (o.opcintype = 'anyarray'::regtype and t.typcategory = 'A')
             or (o.opcintype = 'anyenum'::regtype and t.typtype = 'e')
             or exists (select 1 from pg_cast k where k.castsource = t.oid
                          and k.casttarget = o.opcintype and k.castmethod = 'b'))),
       coalesce(s.n_distinct, 0)::float8,
       coalesce(s.null_frac, 0)::float8,
       coalesce(s.most_common_vals::text::text[], '{}'),
       coalesce(s.most_common_freqs::float8[], '{}'),
       coalesce(s.avg_width, 0)::float8,
       not a.attnotnull
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
left join pg_stats s on s.schemaname = n.nspname and s.tablename = c.relname
                    and s.attname = a.attname and not s.inherited
where a.attrelid = any($1) and a.attnum > 0 and not a.attisdropped
order by a.attrelid, a.attnum";

/// Key columns by name; an expression key as `pg_get_indexdef` prints it.
const INDEXES: &str = "
select i.indrelid, c.relname::text,
       array(select case when i.indkey[k - 1] <> 0
                    then (select attname::text from pg_attribute
                          where attrelid = i.indrelid and attnum = i.indkey[k - 1])
                    else pg_get_indexdef(i.indexrelid, k, true) end
             from generate_series(1, i.indnkeyatts) k order by k),
       i.indisunique,
       pg_get_expr(i.indpred, i.indrelid, true),
       i.indisvalid,
       pg_relation_size(i.indexrelid),
       coalesce(s.idx_scan, 0),
       am.amname = 'btree' and not i.indisexclusion
from pg_index i
join pg_class c on c.oid = i.indexrelid
join pg_am am on am.oid = c.relam
left join pg_stat_user_indexes s on s.indexrelid = i.indexrelid
where i.indrelid = any($1)
order by i.indrelid, c.relname";

/// Every user table with its columns and indexes, except IndexPilot's own
/// schema (`admin.schema`); `prefix` marks the indexes IndexPilot created.
pub async fn load(
    client: &Client,
    prefix: &str,
    own_schema: &str,
) -> Result<Vec<TableFacts>, CatalogError> {
    let rows = query(client, "tables", TABLES, &[&own_schema]).await?;
    let mut oids: Vec<Oid> = Vec::with_capacity(rows.len());
    let mut tables: Vec<TableFacts> = Vec::with_capacity(rows.len());
    for r in &rows {
        oids.push(r.get(0));
        tables.push(TableFacts {
            schema: r.get(1),
            name: r.get(2),
            rows: r.get(3),
            pages: r.get(4),
            writes_per_sec: r.get(5),
            writes_total: r.get(6),
            ..TableFacts::default()
        });
    }
    let at: HashMap<Oid, usize> = oids.iter().enumerate().map(|(i, o)| (*o, i)).collect();
    for r in query(client, "columns", COLUMNS, &[&oids]).await? {
        if let Some(&i) = at.get(&r.get::<_, Oid>(0)) {
            tables[i].columns.push(column(&r));
        }
    }
    for r in query(client, "indexes", INDEXES, &[&oids]).await? {
        if let Some(&i) = at.get(&r.get::<_, Oid>(0)) {
            tables[i].indexes.push(index(&r, prefix));
        }
    }
    Ok(tables)
}

async fn query(
    client: &Client,
    what: &'static str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, CatalogError> {
    client
        .query(sql, params)
        .await
        .map_err(|source| CatalogError::Query { what, source })
}

fn column(r: &tokio_postgres::Row) -> ColumnFacts {
    let values: Vec<String> = r.get(6);
    let freqs: Vec<f64> = r.get(7);
    ColumnFacts {
        name: r.get(1),
        data_type: r.get(2),
        btree: r.get(3),
        n_distinct: r.get(4),
        null_frac: r.get(5),
        most_common: values.into_iter().zip(freqs).collect(),
        avg_width: r.get(8),
        nullable: r.get(9),
    }
}

fn index(r: &tokio_postgres::Row, prefix: &str) -> IndexFacts {
    let name: String = r.get(1);
    IndexFacts {
        ours: name.starts_with(prefix),
        name,
        keys: r.get(2),
        unique: r.get(3),
        predicate: r.get(4),
        valid: r.get(5),
        size_bytes: r.get(6),
        scans: r.get(7),
        btree: r.get(8),
    }
}
