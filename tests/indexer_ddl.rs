//! The index executor and catalog reader against a real PostgreSQL.

use std::time::Duration;

use indexpilot::indexer::catalog;
use indexpilot::indexer::ddl::{self, BuildFailure, DdlError, IndexKey, IndexSpec};
use indexpilot::pg::{PgOptions, TestPg};
use tokio_postgres::{Client, NoTls};

async fn connect(pg: &TestPg) -> Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn index_names(client: &Client, name: &str) -> Vec<(String, bool)> {
    client
        .query(
            "select c.relname::text, i.indisvalid from pg_index i
             join pg_class c on c.oid = i.indexrelid where c.relname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn catalog_sees_rows_columns_and_indexes() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    client
        .batch_execute(
            "create table accounts (id int primary key, tenant_id int not null,
                                    email text, industry varchar(20), meta json);
             insert into accounts
               select g, g % 10, 'u' || g || '@x.io', 'ind' || (g % 3), '{}'
               from generate_series(1, 5000) g;
             create index ip_partial on accounts (industry) where tenant_id = 3;
             create index acc_lower on accounts (lower(email));
             analyze accounts;",
        )
        .await
        .unwrap();
    // Backends flush their write counters to shared statistics lazily.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let t = loop {
        let tables = catalog::load(&client, "ip_", "indexpilot").await.unwrap();
        let t = tables.into_iter().find(|t| t.name == "accounts").unwrap();
        if t.writes_per_sec > 0.0 || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t.schema, "public");
    assert_eq!(t.rows, 5000.0);
    assert!(t.pages > 0.0);
    assert!(t.writes_per_sec > 0.0);
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "tenant_id", "email", "industry", "meta"]);
    let tenant = t.column("tenant_id").unwrap();
    assert_eq!(tenant.data_type, "integer");
    assert!(tenant.btree);
    assert_eq!(tenant.n_distinct, 10.0);
    assert_eq!(tenant.most_common.len(), 10);
    assert!(t.column("industry").unwrap().btree, "varchar uses text_ops");
    assert!(
        !t.column("meta").unwrap().btree,
        "json has no btree opclass"
    );
    assert_eq!(
        t.column("industry").unwrap().data_type,
        "character varying(20)"
    );

    let pkey = t
        .indexes
        .iter()
        .find(|i| i.name == "accounts_pkey")
        .unwrap();
    assert_eq!(pkey.keys, ["id"]);
    assert!(pkey.unique && pkey.valid && !pkey.ours && pkey.size_bytes > 0);
    let partial = t.indexes.iter().find(|i| i.name == "ip_partial").unwrap();
    assert_eq!(partial.keys, ["industry"]);
    assert_eq!(partial.predicate.as_deref(), Some("tenant_id = 3"));
    assert!(partial.ours && !partial.unique);
    let expr = t.indexes.iter().find(|i| i.name == "acc_lower").unwrap();
    assert_eq!(expr.keys, ["lower(email)"]);
    assert!(!t.covered_by_prefix(&["email".to_string()]));
    assert!(t.covered_by_prefix(&["id".to_string()]));
}

fn weird_spec() -> IndexSpec {
    IndexSpec {
        schema: "public".into(),
        table: "Weird \"Table\"; x".into(),
        keys: vec![IndexKey::Column("E-mail Address".into())],
        predicate: None,
    }
}

#[tokio::test]
async fn build_quotes_names_and_the_planner_uses_the_index() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    client
        .batch_execute(
            r#"create table "Weird ""Table""; x" (id int, "E-mail Address" text);
               insert into "Weird ""Table""; x"
                 select g, 'user' || g || '@example.com' from generate_series(1, 20000) g;
               analyze "Weird ""Table""; x";"#,
        )
        .await
        .unwrap();
    let spec = weird_spec();
    let name = ddl::index_name("ip_", &spec.table, &["E-mail Address".into()], None);
    let out = ddl::build(
        &client,
        &spec,
        &name,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(out.size_bytes > 0);
    assert_eq!(index_names(&client, &name).await, [(name.clone(), true)]);
    // Timeouts were reset.
    let lt: String = client
        .query_one("show lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lt, "0");

    let plan: Vec<String> = client
        .query(
            r#"explain select * from "Weird ""Table""; x" where "E-mail Address" = 'user77@example.com'"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.join("\n").contains(&name), "{plan:?}");

    // A second build of the same spec is a no-op that still succeeds.
    ddl::build(
        &client,
        &spec,
        &name,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    ddl::drop_ours(&client, "public", &name, "ip_")
        .await
        .unwrap();
    assert!(index_names(&client, &name).await.is_empty());
}

#[tokio::test]
async fn lock_timeout_leaves_no_index_behind() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    let holder = connect(&pg).await;
    client
        .batch_execute(
            r#"create table "Weird ""Table""; x" (id int, "E-mail Address" text);
               insert into "Weird ""Table""; x" select g, g::text from generate_series(1, 1000) g;"#,
        )
        .await
        .unwrap();
    holder
        .batch_execute(r#"begin; lock table "Weird ""Table""; x" in access exclusive mode"#)
        .await
        .unwrap();
    let spec = weird_spec();
    let name = ddl::index_name("ip_", &spec.table, &["E-mail Address".into()], None);
    let err = ddl::build(
        &client,
        &spec,
        &name,
        Duration::from_millis(200),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    match &err {
        DdlError::Build { failure, .. } => assert_eq!(*failure, BuildFailure::LockTimeout),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.kind(), "lock_timeout");
    assert!(index_names(&client, &name).await.is_empty());
    holder.batch_execute("rollback").await.unwrap();
    assert!(ddl::cleanup_invalid(&client, "ip_")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn drop_refuses_foreign_indexes_and_cleanup_drops_invalid_ones() {
    let pg = TestPg::start(PgOptions::default()).unwrap();
    let client = connect(&pg).await;
    client
        .batch_execute(
            "create table t (a int, b int);
             insert into t values (1, 1), (1, 1);
             create index app_idx on t (b);",
        )
        .await
        .unwrap();
    let err = ddl::drop_ours(&client, "public", "app_idx", "ip_")
        .await
        .unwrap_err();
    assert!(matches!(err, DdlError::NotOurs { .. }));
    assert_eq!(index_names(&client, "app_idx").await.len(), 1);

    // A failed unique build leaves an INVALID index; build() drops it.
    let err = client
        .batch_execute("create unique index concurrently ip_dup on t (a)")
        .await
        .unwrap_err();
    assert!(err.code().is_some());
    assert_eq!(
        index_names(&client, "ip_dup").await,
        [("ip_dup".into(), false)]
    );
    let spec = IndexSpec {
        schema: "public".into(),
        table: "t".into(),
        keys: vec![IndexKey::Column("a".into())],
        predicate: None,
    };
    let long = Duration::from_secs(30);
    match ddl::build(&client, &spec, "ip_dup", long, long).await {
        Err(DdlError::Build {
            failure: BuildFailure::LeftInvalid,
            cleaned_up: true,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(index_names(&client, "ip_dup").await.is_empty());

    // cleanup_invalid drops ours only.
    for name in ["ip_dup", "app_dup"] {
        let sql = format!("create unique index concurrently {name} on t (a)");
        client.batch_execute(&sql).await.unwrap_err();
    }
    assert_eq!(
        ddl::cleanup_invalid(&client, "ip_").await.unwrap(),
        ["ip_dup"]
    );
    assert!(index_names(&client, "ip_dup").await.is_empty());
    assert_eq!(index_names(&client, "app_dup").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_records_a_create_and_its_revert() {
    use indexpilot::indexer::lineage::{history, record, Kind, Mutation};
    let pg = indexpilot::pg::TestPg::start(indexpilot::pg::PgOptions::default()).unwrap();
    let (mut client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        indexpilot::store::migrate(&mut client, "indexpilot")
            .await
            .unwrap(),
        6
    );
    // Migrating again is a no-op.
    assert_eq!(
        indexpilot::store::migrate(&mut client, "indexpilot")
            .await
            .unwrap(),
        6
    );
    let create = Mutation {
        parent_id: None,
        kind: Kind::Create,
        tenant: Some("42".into()),
        table: Some("app.contacts".into()),
        columns: vec!["tenant_id".into(), "email".into()],
        index_name: Some("ip_contacts_email_0123".into()),
        ddl: Some("CREATE INDEX CONCURRENTLY ...".into()),
        reason: "hot equality filter".into(),
        evidence: serde_json::json!({"calls": 1200, "cost_before": 18334.0, "cost_after": 8.4}),
        outcome: "built".into(),
    };
    let id = record(&client, "indexpilot", &create, "test")
        .await
        .unwrap();
    let revert = Mutation {
        parent_id: Some(id),
        kind: Kind::Revert,
        reason: "no measured gain".into(),
        evidence: serde_json::json!({"p95_before_ms": 3.1, "p95_after_ms": 3.0}),
        outcome: "dropped".into(),
        ..create.clone()
    };
    let rid = record(&client, "indexpilot", &revert, "test")
        .await
        .unwrap();
    let log = history(&client, "indexpilot", 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].mutation, create);
    assert_eq!((log[1].id, log[1].mutation.parent_id), (rid, Some(id)));
    assert_eq!(log[1].mutation.evidence["p95_after_ms"], 3.0);

    // `indexpilot lineage`: the revert is printed beneath its create.
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_indexpilot"))
            .args(["lineage", "--dsn", &pg.url()])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("create") && lines[0].contains("app.contacts (tenant_id, email)"),
        "{text}"
    );
    assert!(
        lines[1].trim_start().starts_with("└") && lines[1].contains("revert"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(json[1]["parent_id"], id);
    assert_eq!(json[0]["evidence"]["calls"], 1200);
}
