//! Issue 4 end to end: traffic through the proxy makes the leader build,
//! verify, keep, revert or drop indexes, every step in the mutation log.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use indexpilot::pg::{PgOptions, TestPg};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
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
    assert!(log(&pg, "id::text", "'phone' = any(columns)").is_empty());
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
        log(&pg, "id", "kind <> 'advise'").is_empty(),
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

/// Seconds since the entry `id` was recorded (the database's clock).
fn first_seen_elapsed(pg: &TestPg, id: i64) -> f64 {
    field(pg, id, "extract(epoch from now() - at)")
        .parse()
        .unwrap()
}

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
async fn two_proxies_on_one_database_build_exactly_once() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let mut proxies = vec![
        start_proxy(&pg, &fast(&dsn, "apply")).await,
        start_proxy(&pg, &fast(&dsn, "apply")).await,
    ];
    let a = connect(&proxies[0].conninfo(&pg)).await.unwrap();
    let b = connect(&proxies[1].conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    drive(
        &pg,
        &[&a, &b],
        by_email,
        email,
        Duration::from_secs(45),
        || logged(&pg, "kind = 'keep'"),
    )
    .await;
    let built = ids(&pg, "kind = 'create' and outcome = 'built'");
    assert_eq!(built.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(our_indexes(&pg).len(), 1, "{:?}", our_indexes(&pg));
    let deciders = lines(
        &pg,
        "select distinct proxy from indexpilot.mutation_log order by 1",
    );
    assert_eq!(deciders.len(), 1, "{:#?}", dump(&pg));
    let first = deciders[0].clone();
    let leader = proxies
        .iter()
        .position(|p| first.ends_with(&format!(":{}", p.port())))
        .unwrap_or_else(|| panic!("{first} is neither proxy"));

    // Fail over: the leader goes away, the survivor takes the lock.
    let mut gone = proxies.remove(leader);
    gone.shutdown.now();
    tokio::time::timeout(Duration::from_secs(15), &mut gone.task)
        .await
        .expect("leader proxy stops")
        .unwrap();
    let survivor = &proxies[0];
    let client = if leader == 0 { &b } else { &a };
    let by_phone = "select id from contacts where phone = $1";
    let second = drive(
        &pg,
        &[client],
        by_phone,
        phone,
        Duration::from_secs(30),
        || {
            logged(
                &pg,
                "kind = 'create' and outcome = 'built' and columns = array['phone']",
            )
        },
    )
    .await;
    assert_eq!(second.len(), 1, "{:#?}", dump(&pg));
    let proxy = field(&pg, second[0], "proxy");
    assert_ne!(proxy, first);
    assert!(proxy.ends_with(&format!(":{}", survivor.port())), "{proxy}");
    assert_eq!(
        ids(&pg, "kind = 'create' and outcome = 'built'").len(),
        2,
        "{:#?}",
        dump(&pg)
    );
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
