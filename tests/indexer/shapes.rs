//! Shapes a DBA builds and budgets that bind: a work queue gets an index on
//! its equality column and its ORDER BY, partial on its rare statuses (and
//! the generic plan uses it); a clearly better candidate replaces the
//! weakest index of ours on a full table, both linked in the lineage.

use std::time::{Duration, Instant};

use indexpilot::pg::PgOptions;

use crate::common::*;
use crate::{
    drive, dump, email, evidence, fast, field, ids, init_tracing, lines, logged, our_indexes,
    phone, seed, ROWS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_gets_an_ordered_index_partial_on_its_statuses() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    // 90 % closed, 5 % new, 5 % open, in every one of 20 tenants.
    pg.psql(
        "create table tickets (id serial primary key, tenant_id text not null, status text not null,
                               due_at timestamptz not null, note text);
         insert into tickets (tenant_id, status, due_at, note)
           select (g % 20)::text,
                  case when (g / 20) % 10 < 9 then 'closed'
                       when (g / 200) % 2 = 0 then 'new' else 'open' end,
                  now() + (g % 997) * interval '1 minute', repeat('x', 60)
             from generate_series(1, 60000) g;
         analyze tickets;",
    )
    .unwrap();
    let open = lines(
        &pg,
        "select count(distinct tenant_id) from tickets where status in ('new', 'open')",
    );
    assert_eq!(open, ["20"], "every tenant has open tickets");
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    // A statement on the same columns without the queue's predicate: it
    // must not be the one the partial index is planned or verified on.
    for t in 0..5 {
        client
            .query(
                "select id from tickets where tenant_id = $1 order by due_at desc limit 1",
                &[&t.to_string()],
            )
            .await
            .unwrap();
    }
    let queue = "select id, due_at from tickets where tenant_id = $1 \
                 and status in ('new', 'open') order by due_at limit 1";
    let created = drive(
        &pg,
        &[&client],
        queue,
        |i| (i % 20).to_string(),
        Duration::from_secs(60),
        || logged(&pg, "kind = 'create' and outcome = 'built'"),
    )
    .await;
    let ddl = field(&pg, created[0], "ddl");
    assert!(
        ddl.contains(r#"("tenant_id", "due_at") WHERE "status" IN ('new', 'open')"#),
        "the first build is not the queue's index: {ddl}\n{:#?}",
        dump(&pg)
    );
    let name = field(&pg, created[0], "index_name");
    let plan = lines(
        &pg,
        &format!(
            "set plan_cache_mode = force_generic_plan;
             prepare q(text) as {};
             explain execute q('3')",
            queue.replace("$1", "$1::text")
        ),
    )
    .join("\n");
    assert!(
        plan.contains(&name),
        "the generic plan does not use {name}:\n{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clearly_better_candidate_replaces_the_weakest_index_of_a_full_table() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.max_indexes_per_table", "1"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    // A slow trickle of phone lookups: their index is worth little.
    let by_phone = client
        .prepare("select id from contacts where phone = $1")
        .await
        .unwrap();
    let started = Instant::now();
    let mut i = 0u32;
    let weak = loop {
        client.query(&by_phone, &[&phone(i)]).await.unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
        if let Some(keep) = logged(&pg, "kind = 'keep'") {
            break keep[0];
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:#?}",
            dump(&pg)
        );
    };
    let weak_name = field(&pg, weak, "index_name");
    // A flood of email lookups: worth far more per byte, and the table is full.
    let by_email = "select id, note from contacts where email = $1";
    let drops = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(60),
        || logged(&pg, "kind = 'drop' and evidence ? 'replaced_by'"),
    )
    .await;
    let drop = drops[0];
    assert_eq!(
        field(&pg, drop, "index_name"),
        weak_name,
        "{:#?}",
        dump(&pg)
    );
    assert_eq!(field(&pg, drop, "outcome"), "dropped");
    let weak_create = ids(
        &pg,
        &format!("kind = 'create' and index_name = '{weak_name}'"),
    );
    assert_eq!(field(&pg, drop, "parent_id"), weak_create[0].to_string());
    let replaced_by = evidence(&pg, drop)["replaced_by"].clone();
    let new_create = replaced_by["create_id"].as_i64().unwrap();
    assert_eq!(
        field(&pg, new_create, "index_name"),
        replaced_by["index_name"].as_str().unwrap()
    );
    assert!(
        field(&pg, new_create, "columns").contains("email"),
        "{:#?}",
        dump(&pg)
    );
    assert!(field(&pg, drop, "reason").contains("replaced by"));
    let ours = our_indexes(&pg);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].contains("email"), "{ours:?}");
}
