//! Builds that must not harm the database: a lock_timeout or an open writer
//! leaves no INVALID index behind, identifiers that need quoting, and no
//! build outside the build windows or over budget.

use std::time::Duration;

use indexpilot::pg::PgOptions;

use crate::common::*;
use crate::{
    drive, dump, email, evidence, fast, field, first_seen_elapsed, ids, init_tracing, lines,
    logged, our_indexes, seed, wait_log, ROWS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_hitting_lock_timeout_leaves_no_invalid_index() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    // Direct to PostgreSQL: conflicts with CREATE INDEX CONCURRENTLY, not
    // with the SELECTs relayed by the proxy.
    let holder = connect(&dsn).await.unwrap();
    holder
        .batch_execute("begin; lock table contacts in share update exclusive mode")
        .await
        .unwrap();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.lock_timeout", "200ms"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    let failed = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'create'"),
    )
    .await;
    assert_eq!(failed.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(field(&pg, failed[0], "outcome"), "failed: lock_timeout");
    let evidence = evidence(&pg, failed[0]);
    assert!(evidence["error"].as_str().is_some(), "{evidence:#}");
    assert_eq!(
        lines(&pg, "select count(*) from pg_index where not indisvalid"),
        ["0"]
    );
    assert!(our_indexes(&pg).is_empty(), "{:?}", our_indexes(&pg));
    // Backed off: a few more rounds of traffic build nothing.
    drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(10),
        || (first_seen_elapsed(&pg, failed[0]) > 1.5).then_some(()),
    )
    .await;
    assert_eq!(ids(&pg, "kind = 'create'"), failed, "{:#?}", dump(&pg));
    holder.batch_execute("rollback").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_blocked_by_an_open_writer_leaves_no_invalid_index() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    // An open write transaction: CREATE INDEX CONCURRENTLY gets its lock,
    // creates the (INVALID) index, then times out waiting for this writer.
    let writer = connect(&dsn).await.unwrap();
    writer
        .batch_execute("begin; insert into contacts (tenant_id, email) values (1, 'w@x.org')")
        .await
        .unwrap();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.lock_timeout", "200ms"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    let failed = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'create'"),
    )
    .await;
    assert_eq!(field(&pg, failed[0], "outcome"), "failed: lock_timeout");
    writer.batch_execute("rollback").await.unwrap();
    // The drop of the INVALID index may itself time out behind the writer;
    // once the writer is gone, the leader must not leave it behind.
    let cleanups = wait_log(
        &pg,
        "kind = 'cleanup' and outcome = 'dropped'",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(cleanups.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(
        lines(&pg, "select count(*) from pg_index where not indisvalid"),
        ["0"]
    );
    assert_eq!(field(&pg, cleanups[0], "parent_id"), failed[0].to_string());
    assert!(our_indexes(&pg).is_empty(), "{:?}", our_indexes(&pg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_that_need_quoting_are_indexed() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    pg.psql(&format!(
        r#"create schema "Sales ""EU""; Dept";
           create table "Sales ""EU""; Dept"."Weird ""Table""; x"
             (id serial primary key, tenant_id int not null, "E-mail Address" text, note text);
           insert into "Sales ""EU""; Dept"."Weird ""Table""; x" (tenant_id, "E-mail Address", note)
             select g % 50, 'user' || g || '@example.org', repeat('x', 40)
             from generate_series(1, {ROWS}) g;
           analyze "Sales ""EU""; Dept"."Weird ""Table""; x";"#
    ))
    .unwrap();
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let weird = r#"select id, note from "Sales ""EU""; Dept"."Weird ""Table""; x" where "E-mail Address" = $1"#;
    let built = drive(
        &pg,
        &[&client],
        weird,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'create' and outcome = 'built'"),
    )
    .await;
    assert_eq!(built.len(), 1, "{:#?}", dump(&pg));
    let ddl = field(&pg, built[0], "ddl");
    assert!(
        ddl.ends_with(r#" ON "Sales ""EU""; Dept"."Weird ""Table""; x" ("E-mail Address")"#),
        "{ddl}"
    );
    let name = field(&pg, built[0], "index_name");
    assert!(
        name.starts_with("indexpilot_")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{name}"
    );
    let index = lines(
        &pg,
        &format!(
            "select n.nspname || '|' || t.relname || '|' || i.indisvalid || '|'
                    || pg_get_indexdef(i.indexrelid)
               from pg_index i join pg_class c on c.oid = i.indexrelid
               join pg_class t on t.oid = i.indrelid
               join pg_namespace n on n.oid = t.relnamespace
              where c.relname = '{name}'"
        ),
    );
    assert_eq!(index.len(), 1, "{index:?}");
    let parts: Vec<&str> = index[0].splitn(4, '|').collect();
    assert_eq!(
        parts[..3],
        [r#"Sales "EU"; Dept"#, r#"Weird "Table"; x"#, "true"]
    );
    assert!(parts[3].contains(r#"("E-mail Address")"#), "{}", parts[3]);
}

/// A daily UTC range that starts an hour from now and lasts an hour: now is
/// outside it.
fn window_not_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = (now % 86_400 / 60) as u32;
    let at = |m: u32| format!("{:02}:{:02}", m % 1440 / 60, m % 60);
    format!("{}-{}", at(minute + 60), at(minute + 120))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_windows_and_budgets_defer_builds() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let by_email = "select id, note from contacts where email = $1";
    let window = window_not_now();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.build_windows", &window));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let deferred = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || {
            logged(
                &pg,
                "kind = 'advise' and outcome = 'deferred: build window'",
            )
        },
    )
    .await;
    assert!(field(&pg, deferred[0], "reason").contains("indexer.build_windows"));
    assert!(our_indexes(&pg).is_empty(), "{:#?}", dump(&pg));
    assert!(ids(&pg, "kind = 'create'").is_empty(), "{:#?}", dump(&pg));
    drop(client);
    drop(proxy);

    // Inside the window but over budget: no index of ours allowed per table.
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.max_indexes_per_table", "0"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let over = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'advise' and outcome = 'deferred: budget'"),
    )
    .await;
    assert!(
        field(&pg, over[0], "reason").contains("indexer.max_indexes_per_table"),
        "{:#?}",
        dump(&pg)
    );
    assert!(our_indexes(&pg).is_empty(), "{:#?}", dump(&pg));
    assert!(ids(&pg, "kind = 'create'").is_empty(), "{:#?}", dump(&pg));
}
