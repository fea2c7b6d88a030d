//! Issue 4 end to end: traffic through the proxy makes the leader build,
//! verify, keep or revert indexes, every step in the mutation log.
mod common;

use std::time::Duration;

use common::*;
use indexpilot::pg::{PgOptions, TestPg};

/// Settings that make the indexer decide within seconds in tests.
fn fast<'a>(dsn: &'a str, mode: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("admin.dsn", dsn),
        ("indexer.mode", mode),
        ("indexer.interval", "300ms"),
        ("indexer.min_calls", "30"),
        ("indexer.verify_window", "2s"),
        ("indexer.verify_min_calls", "10"),
        ("stats.window", "1s"),
        ("stats.flush_interval", "300ms"),
        ("metrics_listen", "off"),
    ]
}

fn seed(pg: &TestPg, rows: u32) {
    pg.psql(&format!(
        "create table contacts (id serial primary key, tenant_id int not null, email text,
                                phone text, note text);
         insert into contacts (tenant_id, email, phone, note)
           select g % 50, 'user' || g || '@example.org', '+1555' || g, repeat('x', 40)
           from generate_series(1, {rows}) g;
         analyze contacts;"
    ))
    .unwrap();
}

/// Our indexes as `name|indexdef` lines.
fn our_indexes(pg: &TestPg) -> Vec<String> {
    pg.psql(
        "select indexname || '|' || indexdef from pg_indexes
          where indexname like 'indexpilot\\_%' order by 1",
    )
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

fn log(pg: &TestPg, columns: &str, filter: &str) -> Vec<String> {
    pg.psql(&format!(
        "select {columns} from indexpilot.mutation_log where {filter} order by id"
    ))
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

async fn wait_log(pg: &TestPg, what: &str, filter: &str, deadline: Duration) -> Vec<String> {
    let end = std::time::Instant::now() + deadline;
    loop {
        let rows = log(
            pg,
            "id || '|' || coalesce(parent_id::text, '') || '|' || outcome || '|' || reason",
            filter,
        );
        if !rows.is_empty() {
            return rows;
        }
        assert!(
            std::time::Instant::now() < end,
            "{what}: nothing in the mutation log matching {filter}; log: {:#?}",
            log(
                pg,
                "kind || ' ' || coalesce(index_name, '') || ' ' || outcome || ' ' || reason",
                "true"
            )
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_column_gets_an_index_cold_one_does_not_and_it_is_kept() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
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
    assert!(log(&pg, "id::text", "'phone' = any(columns)").is_empty());
    let evidence = log(
        &pg,
        "(evidence->'proposal'->'candidate'->'evidence'->>'calls')",
        "kind = 'create'",
    );
    assert!(evidence[0].parse::<u64>().unwrap() >= 30, "{evidence:?}");
    let _ = wait_log;
}
