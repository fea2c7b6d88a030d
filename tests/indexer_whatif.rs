//! What-if planning against a real PostgreSQL with the HypoPG extension.

use indexpilot::indexer::ddl::{IndexKey, IndexSpec};
use indexpilot::indexer::whatif::{self, WhatIfError};
use indexpilot::pg::{PgOptions, TestPg};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn connect(pg: &TestPg, dbname: &str) -> Client {
    let mut config: tokio_postgres::Config = pg.url().parse().unwrap();
    config.dbname(dbname);
    let (client, conn) = config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A server whose default database holds `t` (100k rows: 10 tenants, a
/// distinct email per row, a two-valued flag) and, if asked, hypopg.
async fn setup(hypopg: bool) -> (TestPg, Client) {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg, pg.dbname()).await;
    client
        .batch_execute(
            "create table t (tenant_id int not null, email text not null, flag boolean not null);
             insert into t select g % 10, 'u' || g || '@x.io', g % 2 = 0
               from generate_series(1, 100000) g;
             analyze t;",
        )
        .await
        .unwrap();
    if hypopg {
        client
            .batch_execute("create extension hypopg")
            .await
            .unwrap();
    }
    (pg, client)
}

fn spec(column: &str) -> IndexSpec {
    IndexSpec {
        schema: "public".into(),
        table: "t".into(),
        keys: vec![IndexKey::Column(column.into())],
        predicate: None,
    }
}

/// A count over the simple protocol, which leaves no prepared statement.
async fn count(client: &Client, sql: &str) -> i64 {
    let messages = client.simple_query(sql).await.unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .unwrap();
    row.parse().unwrap()
}

#[tokio::test]
async fn plans_without_hypopg_and_refuses_what_it_cannot_plan() {
    let (_pg, client) = setup(false).await;
    let pages = count(
        &client,
        "select relpages::int8 from pg_class where relname = 't'",
    )
    .await;
    assert!(pages > 100, "{pages} pages");

    let seq = whatif::plan(&client, "select * from t where email = $1")
        .await
        .unwrap();
    assert!(seq.indexes.is_empty(), "{seq:?}");
    assert!(
        seq.total >= pages as f64,
        "a seq scan reads every page: {seq:?}"
    );

    let sql = whatif::placeholders("select * from t where email = ? and tenant_id in (?)");
    assert_eq!(
        sql,
        "select * from t where email = $1 and tenant_id in ($2)"
    );
    let cost = whatif::plan(&client, &sql).await.unwrap();
    assert!(cost.total >= pages as f64, "{cost:?}");

    let err = whatif::plan(&client, "insert into t values (1, 'a', true)")
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::NotPlannable(_)), "{err:?}");
    let err = whatif::plan(&client, "select 1; delete from t")
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::NotPlannable(_)), "{err:?}");
    let err = whatif::what_if(&client, "select * from t where email = $1", &spec("email"))
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::NoHypoPg), "{err:?}");

    // Never executed: nextval would survive the rollback, the rows would not.
    client.batch_execute("create sequence s").await.unwrap();
    whatif::plan(&client, "select nextval('s')").await.unwrap();
    let called = "select is_called::int::int8 from s";
    assert_eq!(count(&client, called).await, 0);
    whatif::plan(&client, "delete from t where tenant_id = $1")
        .await
        .unwrap();
    assert_eq!(count(&client, "select count(*) from t").await, 100_000);
}

#[tokio::test]
async fn hypothetical_index_on_a_selective_column_is_used() {
    let (_pg, client) = setup(true).await;
    let sql = "select * from t where email = $1";
    let w = whatif::what_if(&client, sql, &spec("email")).await.unwrap();
    assert!(w.uses_index, "{w:?}");
    assert!(w.after < w.before / 10.0, "{w:?}");
    assert!(w.estimated_bytes > 0, "{w:?}");
    assert_eq!(
        count(&client, "select count(*) from hypopg_list_indexes").await,
        0
    );
    // Reset: planning again is back to the scan.
    let again = whatif::plan(&client, sql).await.unwrap();
    assert_eq!(again.total, w.before);

    let w = whatif::what_if(&client, "select * from t where flag = $1", &spec("flag"))
        .await
        .unwrap();
    assert!(!w.uses_index, "half the table matches: {w:?}");
    assert!(w.after >= w.before * 0.99, "{w:?}");
}

#[tokio::test]
async fn errors_leave_no_prepared_statement_or_hypothetical_index() {
    let (_pg, client) = setup(true).await;
    let prepared = "select count(*) from pg_prepared_statements";

    let err = whatif::plan(&client, "select * from t where nope = $1")
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::Db(_)), "{err:?}");
    assert_eq!(count(&client, prepared).await, 0);

    // Prepares fine; fails when planning folds 1/0, after PREPARE.
    let err = whatif::plan(&client, "select * from t where tenant_id = 1/0")
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::Db(_)), "{err:?}");
    assert_eq!(count(&client, prepared).await, 0);

    // A hypothetical index made beforehand goes too: reset runs on error.
    client
        .batch_execute("select hypopg_create_index('create index on t (tenant_id)')")
        .await
        .unwrap();
    assert_eq!(
        count(&client, "select count(*) from hypopg_list_indexes").await,
        1
    );
    let err = whatif::what_if(&client, "select * from t where nope = $1", &spec("email"))
        .await
        .unwrap_err();
    assert!(matches!(err, WhatIfError::Db(_)), "{err:?}");
    assert_eq!(
        count(&client, "select count(*) from hypopg_list_indexes").await,
        0
    );
    assert_eq!(count(&client, prepared).await, 0);
    // Not left inside a transaction: only outside one does each statement
    // start its own, so that now() is the statement's start.
    let own = "select (now() = statement_timestamp())::int::int8";
    assert_eq!(count(&client, own).await, 1);
}

#[tokio::test]
async fn hypopg_version_is_per_database() {
    let (pg, client) = setup(true).await;
    let version = whatif::hypopg_version(&client).await.unwrap();
    assert!(version.is_some_and(|v| !v.is_empty()));
    client.batch_execute("create database bare").await.unwrap();
    let bare = connect(&pg, "bare").await;
    assert_eq!(whatif::hypopg_version(&bare).await.unwrap(), None);
}

/// The demo's `industry_filter` shape: equality on the tenant and a
/// low-cardinality column, ORDER BY ... DESC LIMIT $3, with an index on
/// the tenant alone already there.
#[tokio::test]
async fn composite_for_an_ordered_limited_lookup_is_used() {
    let (_pg, client) = setup(true).await;
    client
        .batch_execute(
            "create table organizations (id bigint primary key, tenant_id int not null,
                 name text, industry text, size int, created_at timestamptz);
             insert into organizations
               select g, g % 200, 'o' || g, 'ind' || (g % 30), g % 1000,
                      now() - (g || ' minutes')::interval
               from generate_series(1, 100000) g;
             create index on organizations (tenant_id);
             analyze organizations;",
        )
        .await
        .unwrap();
    let spec = IndexSpec {
        schema: "public".into(),
        table: "organizations".into(),
        keys: vec![
            IndexKey::Column("tenant_id".into()),
            IndexKey::Column("industry".into()),
        ],
        predicate: None,
    };
    let sql = whatif::placeholders(
        "select id, name, size from organizations where tenant_id = ? and industry = ? \
         order by created_at desc limit ?",
    );
    let w = whatif::what_if(&client, &sql, &spec).await.unwrap();
    assert!(w.uses_index && w.after < w.before, "{w:?} for {sql}");
}
