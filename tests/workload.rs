//! Issue 3 end to end: known traffic through the proxy shows up in the live
//! counters, in `indexpilot.query_stats` / `filter_stats`, and in /metrics.
mod common;

use std::time::Duration;

use common::*;
use indexpilot::pg::PgOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_reaches_counters_tables_and_metrics() {
    let pg = start_pg(PgOptions::default());
    pg.psql(
        "create table contacts (id serial primary key, tenant_id int not null, email text,
                                created_at timestamptz default now(), data jsonb);",
    )
    .unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let dsn = pg.url();
    let proxy = start_proxy(
        &pg,
        &[
            ("admin.dsn", dsn.as_str()),
            ("stats.window", "1s"),
            ("stats.flush_interval", "200ms"),
            ("metrics_listen", metrics_addr.as_str()),
        ],
    )
    .await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    for i in 0..5 {
        let sql = format!("select id from contacts where tenant_id = 7 and email = 'u{i}@x.org'");
        client.simple_query(&sql).await.unwrap();
    }
    let since = std::time::SystemTime::now() - Duration::from_secs(3600);
    for _ in 0..3 {
        client
            .query(
                "select id from contacts c where c.tenant_id = $1 and c.created_at > $2 order by c.created_at limit 10",
                &[&8i32, &since],
            )
            .await
            .unwrap();
    }
    client
        .simple_query("select id from contacts where tenant_id = 9 and lower(email) = 'x' and data->>'plan' = 'pro'")
        .await
        .unwrap();
    client.simple_query("this is not sql").await.unwrap_err();

    let stats = proxy.workload.clone();
    let find = |tenant: &str, column: &str, class: &str| {
        stats
            .snapshot()
            .columns
            .iter()
            .find(|c| {
                c.tenant.as_deref() == Some(tenant) && &*c.column == column && c.class == class
            })
            .map(|c| c.calls)
    };
    // Events are analyzed in order: once the last one is counted, all are.
    wait_for(Duration::from_secs(10), "live counters", || {
        find("9", "lower(email)", "expression") == Some(1)
    })
    .await;
    assert_eq!(find("7", "email", "equality"), Some(5));
    assert_eq!(find("8", "created_at", "range"), Some(3));
    assert_eq!(find("8", "created_at", "order_by"), Some(3));
    assert!(find("7", "created_at", "range").is_none());

    // Persisted by the flush, on IndexPilot's own connection.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = pg
            .psql(
                "select coalesce(sum(calls), 0) from indexpilot.query_stats where tenant = '7';
                 select coalesce(sum(calls), 0) from indexpilot.filter_stats
                  where tenant = '8' and column_name = 'created_at' and predicate = 'range';
                 select count(*) from indexpilot.query_text where query like '%email = ?%';",
            )
            .unwrap_or_default();
        if out.lines().collect::<Vec<_>>() == ["5", "3", "1"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rows not flushed: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for needle in [
        "indexpilot_statements_total{kind=\"select\"}",
        "indexpilot_parse_cache_hits_total",
        "indexpilot_parse_failures_total",
        "indexpilot_statement_duration_seconds_bucket",
        "indexpilot_stats_flush_batches_total",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    assert!(http_get(metrics_port, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    wait_for_ready(metrics_port).await;
}

async fn wait_for_ready(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !http_get(port, "/readyz").await.starts_with("HTTP/1.1 200") {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tenants under which the `email` filter was counted.
fn tenants_seen(proxy: &TestProxy) -> Vec<String> {
    let mut t: Vec<String> = proxy
        .workload
        .snapshot()
        .columns
        .iter()
        .filter(|c| &*c.column == "email")
        .filter_map(|c| c.tenant.as_deref().map(str::to_string))
        .collect();
    t.sort();
    t.dedup();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_from_startup_parameter_session_variable_and_user() {
    let pg = start_pg(PgOptions::default());
    pg.psql("create table contacts (tenant_id int, email text); create role acme login; grant select on contacts to acme;")
        .unwrap();
    let query = "select * from contacts where email = 'a'";

    let proxy = start_proxy(&pg, &[("analysis.tenant_source", "startup_parameter")]).await;
    let conninfo = format!(
        "{} options='-c indexpilot.tenant=acme'",
        proxy.conninfo(&pg)
    );
    connect(&conninfo)
        .await
        .unwrap()
        .simple_query(query)
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "startup-parameter tenant", || {
        tenants_seen(&proxy) == ["acme"]
    })
    .await;

    let proxy = start_proxy(&pg, &[("analysis.tenant_source", "session_variable")]).await;
    let c = connect(&proxy.conninfo(&pg)).await.unwrap();
    c.simple_query("set indexpilot.tenant = 'globex'")
        .await
        .unwrap();
    c.simple_query(query).await.unwrap();
    wait_for(Duration::from_secs(10), "session-variable tenant", || {
        tenants_seen(&proxy) == ["globex"]
    })
    .await;

    let proxy = start_proxy(&pg, &[("analysis.tenant_source", "user")]).await;
    let conninfo = proxy.conninfo(&pg).replace("user=postgres", "user=acme");
    connect(&conninfo)
        .await
        .unwrap()
        .simple_query(query)
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "user tenant", || {
        tenants_seen(&proxy) == ["acme"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_from_text_format_bind_parameter() {
    let pg = start_pg(PgOptions::default());
    pg.psql("create table contacts (tenant_id int, email text);")
        .unwrap();
    let proxy = start_proxy(&pg, &[]).await;
    // psycopg 3 binds parameters in text format by default.
    let script = "import sys, psycopg\n\
        with psycopg.connect(sys.argv[1]) as c:\n\
        \x20   c.execute('select * from contacts where tenant_id = %s and email = %s', [31, 'x']).fetchall()\n";
    python(script, &proxy.conninfo(&pg));
    wait_for(Duration::from_secs(10), "text-format tenant", || {
        tenants_seen(&proxy) == ["31"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_stats_database_loses_counted_rows_not_queries() {
    let pg = start_pg(PgOptions::default());
    pg.psql("create table t (tenant_id int, a int, b int, c int);")
        .unwrap();
    let dead = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        free_port()
    );
    let proxy = start_proxy(
        &pg,
        &[
            ("admin.dsn", dead.as_str()),
            ("stats.window", "1s"),
            ("stats.flush_interval", "100ms"),
            ("stats.max_pending_rows", "4"),
        ],
    )
    .await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let started = std::time::Instant::now();
    let mut i = 0;
    // Several windows of several distinct statements: more rows than the bound.
    while proxy
        .workload
        .rows_dropped
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no rows were dropped"
        );
        for col in ["a", "b", "c"] {
            let sql = format!("select * from t where tenant_id = {i} and {col} = 1");
            client
                .simple_query(&sql)
                .await
                .expect("queries never fail because of stats");
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(proxy.workload.pending_len() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_client_encoding_passes_untouched() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    // In LATIN1, 'é' travels as the single byte 0xE9: not valid UTF-8.
    let script = "import sys, psycopg\n\
        with psycopg.connect(sys.argv[1]) as c:\n\
        \x20   c.execute(\"set client_encoding to 'LATIN1'\")\n\
        \x20   r = c.execute(\"select 'caf\u{e9}' as v, length('caf\u{e9}')\").fetchone()\n\
        \x20   assert r == ('caf\u{e9}', 4), r\n\
        \x20   print('ok')\n";
    assert_eq!(python(script, &proxy.conninfo(&pg)).trim(), "ok");
    wait_for(
        Duration::from_secs(10),
        "the statements were observed",
        || {
            proxy
                .stats
                .events_consumed
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2
        },
    )
    .await;
}

/// Run a Python snippet with the connection string as argv[1]; its stdout.
fn python(script: &str, conninfo: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", script, conninfo])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
