//! After a build: a useless index is reverted under its create (and the
//! lineage shows it), an unused one is dropped, one another index took
//! over from is dropped sooner, and the metrics report it.

use std::time::Duration;

use indexpilot::pg::PgOptions;
use serde_json::Value;

use crate::common::*;
use crate::{
    cli, drive, dump, email, evidence, fast, field, first_seen_elapsed, ids, init_tracing, logged,
    metric, our_indexes, seed, wait_log, wait_metric, ROWS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn useless_index_is_reverted_with_a_record_pointing_at_its_create() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.verify_min_gain", "1.5"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    // The sleep dwarfs the scan (1-2 ms idle, up to ~20 ms on a loaded
    // machine), so the index cannot reach 1.5x.
    let slow = "select id, pg_sleep(0.05)::text from contacts where email = $1";
    let reverts = drive(
        &pg,
        &[&client],
        slow,
        email,
        Duration::from_secs(45),
        || logged(&pg, "kind = 'revert'"),
    )
    .await;
    assert_eq!(reverts.len(), 1, "{:#?}", dump(&pg));
    let revert = reverts[0];
    let creates = ids(&pg, "kind = 'create' and outcome = 'built'");
    assert_eq!(creates.len(), 1, "{:#?}", dump(&pg));
    let create = creates[0];
    assert_eq!(field(&pg, revert, "parent_id"), create.to_string());
    assert_eq!(field(&pg, revert, "outcome"), "dropped");
    let name = field(&pg, create, "index_name");
    assert_eq!(field(&pg, revert, "index_name"), name);
    assert!(
        field(&pg, revert, "ddl").starts_with("DROP INDEX CONCURRENTLY"),
        "{:#?}",
        dump(&pg)
    );
    let verdict = evidence(&pg, revert);
    assert!(
        verdict["measured_gain"].as_f64().unwrap() < 1.5,
        "{verdict:#}"
    );
    assert!(ids(&pg, "kind = 'keep'").is_empty(), "{:#?}", dump(&pg));
    assert!(our_indexes(&pg).is_empty(), "{:?}", our_indexes(&pg));

    let timeline = cli(&["lineage", "--dsn", &dsn]);
    let lines: Vec<&str> = timeline.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("#{create} create")))
        .unwrap_or_else(|| panic!("no create #{create}:\n{timeline}"));
    let child = lines.get(at + 1).copied().unwrap_or_default();
    assert!(
        child.starts_with("  └ ") && child.contains(&format!("#{revert} revert")),
        "the revert is not beneath its create:\n{timeline}"
    );
    assert!(
        child.contains(&name) && child.contains("[dropped]"),
        "{timeline}"
    );
    let json: Value = serde_json::from_str(&cli(&["lineage", "--dsn", &dsn, "--json"])).unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == revert)
        .unwrap();
    assert_eq!(entry["parent_id"], create);
    assert_eq!(entry["kind"], "revert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_index_is_dropped() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.unused_after", "3s"));
    settings.push(("metrics_listen", &metrics_addr));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'keep'"),
    )
    .await;
    let create = ids(&pg, "kind = 'create' and outcome = 'built'");
    assert_eq!(create.len(), 1, "{:#?}", dump(&pg));
    let name = field(&pg, create[0], "index_name");
    // No more traffic: the index stops being scanned.
    let dropped = wait_log(&pg, "kind = 'drop'", Duration::from_secs(30)).await;
    assert_eq!(dropped.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(field(&pg, dropped[0], "parent_id"), create[0].to_string());
    assert_eq!(field(&pg, dropped[0], "outcome"), "dropped");
    assert_eq!(field(&pg, dropped[0], "index_name"), name);
    assert!(evidence(&pg, dropped[0])["idle_s"].as_f64().unwrap() >= 3.0);
    wait_metric(metrics_port, "indexpilot_indexes_dropped_total", |v| {
        v >= 1.0
    })
    .await;
    // Several rounds later, with no traffic since, it has not come back
    // from the statistics that justified it before.
    while first_seen_elapsed(&pg, dropped[0]) < 2.0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        our_indexes(&pg).is_empty(),
        "{:?} {:#?}",
        our_indexes(&pg),
        dump(&pg)
    );
    assert_eq!(ids(&pg, "kind = 'create'"), create, "{:#?}", dump(&pg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_index_is_dropped_long_before_unused_after() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let mut settings = fast(&dsn, "apply");
    settings.push(("indexer.unused_after", "1h"));
    let proxy = start_proxy(&pg, &settings).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    let keep = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'keep'"),
    )
    .await;
    let create = ids(&pg, "kind = 'create' and outcome = 'built'");
    assert_eq!(create.len(), 1, "{:#?}", dump(&pg));
    let ours = field(&pg, create[0], "index_name");
    // The application adds a covering index: with every page all-visible
    // the planner answers the lookup from it alone, and ours goes idle.
    pg.psql("create index app_email_covering on contacts (email) include (id, note)")
        .unwrap();
    pg.psql("vacuum analyze contacts").unwrap();
    let dropped = drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(40),
        || logged(&pg, "kind = 'drop'"),
    )
    .await;
    assert_eq!(dropped.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(field(&pg, dropped[0], "parent_id"), create[0].to_string());
    assert_eq!(field(&pg, dropped[0], "index_name"), ours);
    assert_eq!(field(&pg, dropped[0], "outcome"), "dropped");
    let reason = field(&pg, dropped[0], "reason");
    assert!(reason.starts_with("superseded:"), "{reason}");
    assert!(reason.contains("app_email_covering"), "{reason}");
    let verdict = evidence(&pg, dropped[0]);
    assert_eq!(
        verdict["served_by"],
        serde_json::json!(["app_email_covering"])
    );
    assert!(verdict["calls"].as_u64().unwrap() >= 10, "{verdict:#}");
    assert!(our_indexes(&pg).is_empty(), "{:?}", our_indexes(&pg));
    let theirs = pg
        .psql("select count(*) from pg_indexes where indexname = 'app_email_covering'")
        .unwrap();
    assert_eq!(theirs.trim(), "1", "the application's index must stay");
    assert!(keep.len() == 1, "{:#?}", dump(&pg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_builds_and_leadership() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    // A child process: the gauges are not shared with this binary's other tests.
    let metrics_port = free_port();
    let sets: Vec<String> = fast(&dsn, "apply")
        .into_iter()
        .chain([(
            "metrics_listen",
            format!("127.0.0.1:{metrics_port}").as_str(),
        )])
        .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
        .collect();
    let args: Vec<&str> = sets.iter().map(String::as_str).collect();
    let process = ProxyProcess::start(&pg, &args);
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} password={} dbname={}",
        process.port,
        pg.user(),
        pg.password(),
        pg.dbname()
    );
    let client = connect(&conninfo).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    drive(
        &pg,
        &[&client],
        by_email,
        email,
        Duration::from_secs(30),
        || logged(&pg, "kind = 'create' and outcome = 'built'"),
    )
    .await;
    let body = wait_metric(metrics_port, "indexpilot_indexes_created_total", |v| {
        v >= 1.0
    })
    .await;
    assert_eq!(
        metric(&body, "indexpilot_indexer_leader"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "indexpilot_indexes_reverted_total").unwrap_or(0.0),
        0.0
    );
    assert!(
        metric(&body, "indexpilot_last_decision_timestamp_seconds").unwrap() > 1.7e9,
        "{body}"
    );
    assert_eq!(
        metric(&body, "indexpilot_index_builds_failed_total").unwrap_or(0.0),
        0.0,
        "{body}"
    );
}
