//! What the indexer decides from traffic: a hot column gets an index and
//! a cold one does not, advise mode records and builds nothing, and the
//! evidence with HypoPG absent and present.

use std::time::Duration;

use indexpilot::pg::PgOptions;
use serde_json::Value;

use crate::common::*;
use crate::{
    cli, drive, dump, email, evidence, fast, field, first_seen_elapsed, ids, init_tracing, lines,
    log, logged, our_indexes, phone, seed, ROWS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_column_gets_an_index_cold_one_does_not_and_it_is_kept() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, 60_000);
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    for i in 0..5 {
        client
            .simple_query(&format!("select id from contacts where phone = '+1555{i}'"))
            .await
            .unwrap();
    }
    let hot = client
        .prepare("select id, note from contacts where email = $1")
        .await
        .unwrap();
    let mut i = 0u32;
    let started = std::time::Instant::now();
    // Traffic until the index exists and verification has had its window.
    let kept = loop {
        i += 1;
        let email = format!("user{}@example.org", (i * 7919) % 60_000 + 1);
        let rows = client.query(&hot, &[&email]).await.unwrap();
        assert_eq!(rows.len(), 1);
        let kept = log(&pg, "id::text", "kind = 'keep'");
        if !kept.is_empty() {
            break kept;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no keep after 90 s; log: {:#?}",
            log(
                &pg,
                "kind || ' ' || coalesce(index_name, '') || ' ' || outcome || ' ' || reason",
                "true"
            )
        );
    };
    assert_eq!(kept.len(), 1);
    let ours = our_indexes(&pg);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].contains("(email)"), "{ours:?}");
    let creates = log(
        &pg,
        "id || '|' || ddl",
        "kind = 'create' and outcome = 'built'",
    );
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(
        creates[0].contains("CREATE INDEX CONCURRENTLY"),
        "{creates:?}"
    );
    let create_id = creates[0].split('|').next().unwrap().to_string();
    let keep_parent = log(&pg, "parent_id::text", "kind = 'keep'");
    assert_eq!(keep_parent, [create_id]);
    // The cold column: seen, never proposed, never built.
    assert!(log(
        &pg,
        "id::text",
        "kind <> 'genome' and 'phone' = any(columns)"
    )
    .is_empty());
    let evidence = log(
        &pg,
        "(evidence->'proposal'->'candidate'->'evidence'->>'calls')",
        "kind = 'create'",
    );
    assert!(evidence[0].parse::<u64>().unwrap() >= 30, "{evidence:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advise_records_a_recommendation_and_builds_nothing() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "advise")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let recommended = |column: &str| {
        format!("kind = 'advise' and outcome = 'recommended' and columns = array['{column}']")
    };
    let by_email = "select id, note from contacts where email = $1";
    let first = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, &recommended("email")),
    )
    .await;
    assert_eq!(first.len(), 1, "{:#?}", dump(&pg));
    let ddl = field(&pg, first[0], "ddl");
    assert!(
        ddl.starts_with("CREATE INDEX CONCURRENTLY")
            && ddl.contains(r#"ON "public"."contacts" ("email")"#),
        "{ddl}"
    );
    let proposal = &evidence(&pg, first[0])["proposal"];
    assert_eq!(proposal["worthwhile"], true, "{proposal:#}");
    assert_eq!(proposal["ddl"].as_str(), Some(ddl.as_str()), "{proposal:#}");
    assert!(proposal["candidate"]["evidence"]["calls"].as_u64().unwrap() >= 30);
    assert!(!proposal["fingerprints"].as_array().unwrap().is_empty());
    // A second hot pattern proves more rounds ran; neither is recorded twice.
    let by_phone = "select id from contacts where phone = $1";
    drive(
        &pg,
        &[&client],
        by_phone,
        phone,
        Duration::from_secs(30),
        || logged(&pg, &recommended("phone")),
    )
    .await;
    drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || {
            let more = ids(&pg, "kind = 'advise'");
            assert_eq!(more.len(), 2, "duplicated advice: {:#?}", dump(&pg));
            // About six rounds at indexer.interval = 300ms.
            (first_seen_elapsed(&pg, first[0]) > 2.0).then_some(())
        },
    )
    .await;
    assert!(our_indexes(&pg).is_empty(), "{:?}", our_indexes(&pg));
    assert!(
        log(&pg, "id", "kind not in ('advise', 'genome', 'expression')").is_empty(),
        "{:#?}",
        dump(&pg)
    );
    assert_eq!(
        lines(
            &pg,
            "select count(*) from pg_indexes where tablename = 'contacts'"
        ),
        ["1"]
    );

    // The command weighs writes averaged since the statistics reset; on this
    // fresh server that average is the seeding burst, which would outweigh
    // any saving. Production tables do not start with one.
    let reset = "select pg_stat_reset();
                 select n_tup_ins from pg_stat_user_tables where relname = 'contacts'";
    wait_for(Duration::from_secs(10), "write counters reset", || {
        lines(&pg, reset) == ["", "0"]
    })
    .await;
    let text = cli(&["advise", "--dsn", &dsn, "--set", "indexer.min_calls=30"]);
    assert!(text.contains("RECOMMEND contacts (email)"), "{text}");
    assert!(text.contains("RECOMMEND contacts (phone)"), "{text}");
    assert!(text.contains(&format!("ddl:      {ddl};")), "{text}");
    let json = cli(&[
        "advise",
        "--dsn",
        &dsn,
        "--set",
        "indexer.min_calls=30",
        "--json",
    ]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["hypopg"], false);
    let proposals = json["proposals"].as_array().unwrap();
    let emails: Vec<&Value> = proposals
        .iter()
        .filter(|p| p["candidate"]["keys"] == serde_json::json!(["email"]))
        .collect();
    assert_eq!(emails.len(), 1, "{json:#}");
    assert_eq!(emails[0]["ddl"].as_str(), Some(ddl.as_str()));
    assert_eq!(emails[0]["worthwhile"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypopg_present_and_absent() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "advise")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    let absent = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'advise' and columns = array['email']"),
    )
    .await;
    let proposal = &evidence(&pg, absent[0])["proposal"];
    assert!(proposal["planner"].is_null(), "{proposal:#}");
    assert!(proposal["estimate"]["cost_before"].as_f64().unwrap() > 0.0);
    assert!(
        proposal["estimate"]["cost_after"].as_f64() < proposal["estimate"]["cost_before"].as_f64(),
        "{proposal:#}"
    );
    // Without HypoPG the statement is still planned as it runs now.
    assert!(
        proposal["plan_cost_now"].as_f64().unwrap() > 0.0,
        "{proposal:#}"
    );

    // With the extension, before any traffic on the next pattern.
    pg.psql("create extension hypopg").unwrap();
    let by_phone = "select id, note from contacts where phone = $1";
    let present = drive(
        &pg,
        &[&client],
        by_phone,
        phone,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'advise' and columns = array['phone']"),
    )
    .await;
    let proposal = &evidence(&pg, present[0])["proposal"];
    let planner = &proposal["planner"];
    assert_eq!(planner["uses_index"], true, "{proposal:#}");
    let (before, after) = (
        planner["cost_before"].as_f64().unwrap(),
        planner["cost_after"].as_f64().unwrap(),
    );
    assert!(after < before, "{proposal:#}");
    assert!(planner["statement"].as_str().unwrap().contains("phone"));
    assert_eq!(field(&pg, present[0], "outcome"), "recommended");
    assert!(
        field(&pg, present[0], "reason").contains("HypoPG"),
        "{proposal:#}"
    );
    // The what-if left no hypothetical index behind and built nothing.
    assert!(our_indexes(&pg).is_empty());
}

/// A field most rows leave NULL (a custom field few tenants fill) gets an
/// index on the filled rows only, and the planner uses it: it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_field_gets_a_partial_index_that_is_kept() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, 60_000);
    pg.psql(
        "alter table contacts add column custom text;
         update contacts set custom = 'c' || id where id % 20 = 0;
         analyze contacts;",
    )
    .unwrap();
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let lookup = client
        .prepare("select id from contacts where custom = $1")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut i = 0u32;
    loop {
        i += 1;
        let value = format!("c{}", (i * 7919) % 3_000 * 20 + 20);
        let rows = client.query(&lookup, &[&value]).await.unwrap();
        assert_eq!(rows.len(), 1, "{value}");
        if !log(&pg, "id::text", "kind = 'keep'").is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no keep after 90 s; log: {:#?}",
            dump(&pg)
        );
    }
    let ours = our_indexes(&pg);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0].contains("(custom) WHERE (custom IS NOT NULL)"),
        "{ours:?}"
    );
    let reasons = log(&pg, "reason", "kind = 'create'");
    assert!(reasons[0].contains("NULL in 95% of rows"), "{reasons:?}");
}

/// The application's own `(tenant_id)` index is a prefix of the composite
/// IndexPilot builds: advised as redundant (once), never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_index_made_redundant_is_advised_never_dropped() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, 60_000);
    pg.psql("create index app_contacts_tenant on contacts (tenant_id); analyze contacts;")
        .unwrap();
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &fast(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let lookup = client
        .prepare("select id from contacts where tenant_id = $1 and email = $2")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut i = 0u32;
    let advice = loop {
        i += 1;
        let id = (i * 7919) % ROWS + 1;
        let tenant = (id % 50) as i32;
        let rows = client
            .query(&lookup, &[&tenant, &format!("user{id}@example.org")])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let advice = log(
            &pg,
            "index_name || '|' || reason",
            "kind = 'advise' and outcome = 'redundant'",
        );
        if !advice.is_empty() {
            break advice;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no advice after 90 s; log: {:#?}",
            dump(&pg)
        );
    };
    let ours = our_indexes(&pg);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].contains("(tenant_id, email)"), "{ours:?}");
    assert!(advice[0].starts_with("app_contacts_tenant|"), "{advice:?}");
    assert!(
        advice[0].contains("never drops an index it did not create"),
        "{advice:?}"
    );
    assert!(
        advice[0].contains("DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"app_contacts_tenant\""),
        "{advice:?}"
    );
    // Rounds go on until verification keeps the build (a 2 s window, many
    // 300 ms rounds later): the index is still there, advised once.
    let started = std::time::Instant::now();
    while log(&pg, "id::text", "kind = 'keep'").is_empty() {
        i += 1;
        let id = (i * 7919) % ROWS + 1;
        let email = format!("user{id}@example.org");
        client
            .query(&lookup, &[&((id % 50) as i32), &email])
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(60), "no keep");
    }
    let still = lines(
        &pg,
        "select count(*) from pg_indexes where indexname = 'app_contacts_tenant'",
    );
    assert_eq!(still, ["1"]);
    let advised = log(&pg, "id::text", "kind = 'advise' and outcome = 'redundant'");
    assert_eq!(advised.len(), 1, "{advised:?}");
}
