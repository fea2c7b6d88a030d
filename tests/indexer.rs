//! Issue 4 end to end: traffic through the proxy makes the leader build,
//! verify, keep, revert or drop indexes, every step in the mutation log.
mod common;

#[path = "indexer/decisions.rs"]
mod decisions;
#[path = "indexer/lifecycle.rs"]
mod lifecycle;
#[path = "indexer/replicas.rs"]
mod replicas;
#[path = "indexer/safety.rs"]
mod safety;
#[path = "indexer/shapes.rs"]
mod shapes;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http_get;
use indexpilot::pg::TestPg;
use serde_json::Value;
use tokio_postgres::Client;

/// Rows `seed` puts in `contacts`; the traffic helpers look up existing ones.
const ROWS: u32 = 20_000;

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

/// `RUST_LOG=indexpilot=info` shows the indexer's decisions.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
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

/// The i-th lookup value of a column `seed` filled (always an existing row).
fn email(i: u32) -> String {
    format!("user{}@example.org", i.wrapping_mul(7919) % ROWS + 1)
}

fn phone(i: u32) -> String {
    format!("+1555{}", i.wrapping_mul(7919) % ROWS + 1)
}

/// Our indexes as `name|indexdef` lines.
fn our_indexes(pg: &TestPg) -> Vec<String> {
    lines(
        pg,
        "select indexname || '|' || indexdef from pg_indexes
          where indexname like 'indexpilot\\_%' order by 1",
    )
}

fn lines(pg: &TestPg, sql: &str) -> Vec<String> {
    pg.psql(sql)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn log(pg: &TestPg, columns: &str, filter: &str) -> Vec<String> {
    lines(
        pg,
        &format!("select {columns} from indexpilot.mutation_log where {filter} order by id"),
    )
}

/// The whole log, one readable line per entry, for failure messages.
fn dump(pg: &TestPg) -> Vec<String> {
    log(
        pg,
        "id || ' ' || kind || ' parent=' || coalesce(parent_id::text, '-') || ' '
           || coalesce(index_name, '') || ' [' || outcome || '] ' || reason || ' proxy=' || proxy",
        "true",
    )
}

/// Ids of the entries matching `filter`, oldest first.
fn ids(pg: &TestPg, filter: &str) -> Vec<i64> {
    log(pg, "id", filter)
        .iter()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// One column of the entry `id`.
fn field(pg: &TestPg, id: i64, column: &str) -> String {
    log(
        pg,
        &format!("coalesce({column}::text, '')"),
        &format!("id = {id}"),
    )
    .pop()
    .unwrap_or_default()
}

fn evidence(pg: &TestPg, id: i64) -> Value {
    serde_json::from_str(&field(pg, id, "evidence")).unwrap()
}

/// Runs `sql` (one text parameter, the i-th from `value`) round-robin over
/// `clients` until `done` yields; panics with the mutation log after
/// `deadline`.
async fn drive<T>(
    pg: &TestPg,
    clients: &[&Client],
    sql: &str,
    value: fn(u32) -> String,
    deadline: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let mut statements = Vec::new();
    for c in clients {
        statements.push(c.prepare(sql).await.unwrap());
    }
    let started = Instant::now();
    let mut checked = Instant::now();
    for i in 0u32.. {
        let n = i as usize % clients.len();
        let rows = clients[n]
            .query(&statements[n], &[&value(i)])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{sql}");
        if checked.elapsed() < Duration::from_millis(150) {
            continue;
        }
        checked = Instant::now();
        if let Some(t) = done() {
            return t;
        }
        assert!(
            started.elapsed() < deadline,
            "still waiting after {deadline:?} of `{sql}`; log: {:#?}",
            dump(pg)
        );
    }
    unreachable!("u32 traffic exhausted")
}

/// `Some(ids)` once the log has an entry matching `filter`.
fn logged(pg: &TestPg, filter: &str) -> Option<Vec<i64>> {
    Some(ids(pg, filter)).filter(|ids| !ids.is_empty())
}

/// Polls the log without traffic.
async fn wait_log(pg: &TestPg, filter: &str, deadline: Duration) -> Vec<i64> {
    let started = Instant::now();
    loop {
        if let Some(found) = logged(pg, filter) {
            return found;
        }
        assert!(
            started.elapsed() < deadline,
            "nothing matching {filter} after {deadline:?}; log: {:#?}",
            dump(pg)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the `indexpilot` binary; its stdout, asserting success.
fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(args)
        .output()
        .expect("run indexpilot");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "indexpilot {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The sum of a metric's samples over all its label sets, if present.
fn metric(exposition: &str, name: &str) -> Option<f64> {
    let samples: Vec<f64> = exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

/// Polls /metrics until `metric` satisfies `ok`.
async fn wait_metric(port: u16, name: &str, ok: impl Fn(f64) -> bool) -> String {
    let started = Instant::now();
    loop {
        let body = http_get(port, "/metrics").await;
        if metric(&body, name).is_some_and(&ok) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} never reached the expected value; /metrics: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Seconds since the entry `id` was recorded (the database's clock).
fn first_seen_elapsed(pg: &TestPg, id: i64) -> f64 {
    field(pg, id, "extract(epoch from now() - at)")
        .parse()
        .unwrap()
}
