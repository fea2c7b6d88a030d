//! Issue 6 against an existing deployment: `indexpilot simulate` through a
//! running proxy binary (baseline with indexing off, then auto with the
//! proxy restarted in apply mode) and `indexpilot report` rebuilding the
//! before/after report from IndexPilot's tables alone. Also: simulate never
//! touches tables it did not create, and refuses a dataset of another
//! scenario instead of silently measuring the wrong data.

mod common;

use std::process::{Command, Output};

use common::{connect, start_pg, ProxyProcess};
use indexpilot::pg::{PgOptions, TestPg};
use serde_json::Value;

/// A scenario small enough for CI; the same flags on every call, so the
/// second call reuses the dataset the first one seeded.
const SCENARIO: &[&str] = &[
    "--scenario",
    "tiny",
    "--tenants",
    "10",
    "--contacts",
    "20000",
    "--queries",
    "400",
    "--trials",
    "1",
];

fn indexpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(args)
        .output()
        .expect("run indexpilot")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn proxy_url(pg: &TestPg, port: u16, db: &str) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/{db}",
        pg.user(),
        pg.password()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_both_phases_through_a_running_proxy_then_report_from_the_tables() {
    let pg = start_pg(PgOptions::default());
    let direct = connect(&pg.url()).await.unwrap();
    direct.batch_execute("create database other").await.unwrap();

    // Baseline: the proxy binary with indexing off.
    let baseline_proxy = ProxyProcess::start(
        &pg,
        &["--set", "indexer.mode=off", "--set", "metrics_listen=off"],
    );
    let through = proxy_url(&pg, baseline_proxy.port, pg.dbname());
    let mut args = vec!["simulate", "--dsn", &through, "--mode", "baseline"];
    args.extend_from_slice(SCENARIO);
    let run = indexpilot(&args);
    assert!(run.status.success(), "{}", text(&run));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("baseline: filtered queries p95"),
        "{}",
        text(&run)
    );
    assert!(out.contains("recorded as simulation run"), "{}", text(&run));

    // Tables someone else owns are never replaced.
    let other = connect(&format!(
        "host={} port={} user={} password={} dbname=other",
        pg.host(),
        pg.port(),
        pg.user(),
        pg.password()
    ))
    .await
    .unwrap();
    other
        .batch_execute("create table contacts (id int); insert into contacts values (7)")
        .await
        .unwrap();
    let other_url = proxy_url(&pg, baseline_proxy.port, "other");
    let mut args = vec!["simulate", "--dsn", &other_url, "--mode", "baseline"];
    args.extend_from_slice(SCENARIO);
    let refused = indexpilot(&args);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("contacts") && text(&refused).contains("refusing"),
        "{}",
        text(&refused)
    );
    let kept: i64 = other
        .query_one("select count(*) from contacts where id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "simulate touched a table it did not create");

    // Another scenario's sizes on the seeded database: refused, not mixed.
    let mismatch = indexpilot(&[
        "simulate",
        "--dsn",
        &through,
        "--mode",
        "baseline",
        "--tenants",
        "11",
    ]);
    assert!(!mismatch.status.success(), "{}", text(&mismatch));
    assert!(
        text(&mismatch).contains("another simulation dataset"),
        "{}",
        text(&mismatch)
    );
    drop(baseline_proxy);

    // Auto: the proxy restarted in apply mode, with a configuration file
    // whose password must not reach the report.
    let dir = tempfile_dir();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\ndsn = \"{}\"\n\n[indexer]\nmode = \"apply\"\ninterval = \"1s\"\n\
             verify_window = \"10s\"\nunused_after = \"20s\"\n\n[stats]\nwindow = \"5s\"\n\
             flush_interval = \"1s\"\n",
            pg.url()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let auto_proxy = ProxyProcess::start(
        &pg,
        &["--config", config_arg, "--set", "metrics_listen=off"],
    );
    let through = proxy_url(&pg, auto_proxy.port, pg.dbname());
    let mut args = vec![
        "simulate",
        "--dsn",
        &through,
        "--mode",
        "auto",
        "--config",
        config_arg,
        "--min-learn",
        "15s",
        "--learn-limit",
        "90s",
    ];
    args.extend_from_slice(SCENARIO);
    let run = indexpilot(&args);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("reusing the dataset"), "{}", text(&run));
    drop(auto_proxy);

    // The report, from the tables alone.
    let out_dir = dir.join("report");
    let report = indexpilot(&[
        "report",
        "--dsn",
        &pg.url(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(report.status.success(), "{}", text(&report));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    for phase in ["baseline", "auto"] {
        assert!(
            json[phase]["queries"].as_u64().unwrap_or(0) > 0,
            "{phase} missing: {json:#}"
        );
        assert!(json[phase]["write_throughput"].as_f64().unwrap_or(0.0) > 0.0);
        assert_eq!(json[phase]["spike"]["errors"], 0, "{json:#}");
    }
    let indexes = json["indexes"].as_array().unwrap();
    assert!(
        indexes.iter().any(|i| i["action"] == "create"
            && i["table"].as_str().unwrap_or("").ends_with("contacts")
            && i["columns"].to_string().contains("email")),
        "no email index in the report: {indexes:#?}"
    );
    assert!(
        !json["index_sizes"].as_array().unwrap().is_empty(),
        "{json:#}"
    );
    let before = json["baseline"]["filtered"]["p95_ms"].as_f64().unwrap();
    let after = json["auto"]["filtered"]["p95_ms"].as_f64().unwrap();
    assert!(after < before, "filtered p95 {before} -> {after}");
    let config_text = json["config"].to_string();
    assert!(config_text.contains("indexer.mode"), "{config_text}");
    assert!(
        !config_text.contains(&format!(":{}@", pg.password())) && config_text.contains(":***@"),
        "password in the report: {config_text}"
    );
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("## Indexes in place"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("indexpilot-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
