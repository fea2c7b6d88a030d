//! Issue 5 end to end through the proxy: DDL passing through updates the
//! genome (with lineage); expression profiles are observed from traffic
//! (appearing and fading) and declared by the CLI; and they steer the
//! indexer: a field used by 2 of 50 tenants gets partial indexes for those
//! two, one used by 45 of 50 a single `(tenant_id, field)` composite, and a
//! declared disable keeps (or takes) a tenant's index away.
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use indexpilot::pg::{PgOptions, TestPg};

const TENANTS: u32 = 50;
const PER_TENANT: u32 = 400;

fn settings<'a>(dsn: &'a str, mode: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("admin.dsn", dsn),
        ("indexer.mode", mode),
        ("indexer.interval", "300ms"),
        ("indexer.min_calls", "20"),
        ("indexer.verify_window", "2s"),
        ("indexer.verify_min_calls", "5"),
        ("expression.min_calls", "10"),
        ("stats.window", "1s"),
        ("stats.flush_interval", "300ms"),
        ("metrics_listen", "off"),
    ]
}

/// 50 tenants × 400 contacts; `custom_1` values distinct per row.
fn seed(pg: &TestPg) {
    pg.psql(&format!(
        "create table contacts (id serial primary key, tenant_id int not null, email text not null,
                                custom_1 text, note text);
         insert into contacts (tenant_id, email, custom_1, note)
           select g % {TENANTS}, 'user' || g || '@example.org', 'c' || g, repeat('x', 60)
           from generate_series(0, {} - 1) g;
         analyze contacts;",
        TENANTS * PER_TENANT
    ))
    .unwrap();
}

/// The row id `g` of tenant `t` with index `i` (g % 50 = t).
fn row(t: u32, i: u32) -> u32 {
    (i % PER_TENANT) * TENANTS + t
}

fn lines(pg: &TestPg, sql: &str) -> Vec<String> {
    pg.psql(sql)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn dump(pg: &TestPg) -> Vec<String> {
    lines(
        pg,
        "select id || ' ' || kind || ' ' || coalesce(tenant, '-') || ' ' || coalesce(table_name, '')
                || ' ' || array_to_string(columns, ',') || ' ' || coalesce(index_name, '') || ' '
                || outcome || ' | ' || reason
           from indexpilot.mutation_log order by id",
    )
}

/// Our indexes: `indexdef` lines.
fn ours(pg: &TestPg) -> Vec<String> {
    lines(
        pg,
        "select indexdef from pg_indexes where indexname like 'indexpilot\\_%' order by 1",
    )
}

/// One round of traffic: every tenant in `email_tenants` looks up an email,
/// every tenant in `custom_tenants` looks up custom_1 (three times).
async fn traffic(
    client: &tokio_postgres::Client,
    email_tenants: &[u32],
    custom_tenants: &[u32],
    i: u32,
) {
    for &t in email_tenants {
        let email = format!("user{}@example.org", row(t, i));
        let rows = client
            .query(
                "select id from contacts where tenant_id = $1 and email = $2",
                &[&(t as i32), &email],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
    }
    for &t in custom_tenants {
        for k in 0..3 {
            let value = format!("c{}", row(t, i * 3 + k));
            let rows = client
                .query(
                    "select id, note from contacts where tenant_id = $1 and custom_1 = $2",
                    &[&(t as i32), &value],
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
        }
    }
}

/// Traffic until `done` holds; panics with the mutation log after `deadline`.
async fn until(
    pg: &TestPg,
    client: &tokio_postgres::Client,
    email_tenants: &[u32],
    custom_tenants: &[u32],
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) {
    let started = Instant::now();
    for i in 0u32.. {
        traffic(client, email_tenants, custom_tenants, i).await;
        if done() {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "condition not met after {deadline:?}; indexes {:#?}; log {:#?}",
            ours(pg),
            dump(pg)
        );
    }
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_indexpilot"))
        .args(args)
        .output()
        .expect("run indexpilot");
    assert!(
        out.status.success(),
        "indexpilot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_expression_appears_and_fades() {
    let pg = start_pg(PgOptions::default());
    seed(&pg);
    let dsn = pg.url();
    let mut s = settings(&dsn, "advise");
    s.push(("expression.fade_after", "2s"));
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    s.retain(|(k, _)| *k != "metrics_listen");
    s.push(("metrics_listen", &metrics_addr));
    let proxy = start_proxy(&pg, &s).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let profile = "select tenant || ' ' || column_name || ' ' || enabled || ' ' || source
                     from indexpilot.expression_profile order by 1";
    until(&pg, &client, &[], &[7], Duration::from_secs(30), || {
        lines(&pg, profile) == ["7 custom_1 true observed"]
    })
    .await;
    let enabled = lines(
        &pg,
        "select reason from indexpilot.mutation_log
          where kind = 'expression' and tenant = '7' and outcome = 'enabled'",
    );
    assert_eq!(enabled.len(), 1, "{:#?}", dump(&pg));
    assert!(enabled[0].contains("observed"), "{enabled:?}");
    // The leader's breadth gauges, as /metrics exports them.
    let started = Instant::now();
    loop {
        let body = http_get(metrics_port, "/metrics").await;
        let expressed = body.contains("indexpilot_fields_expressed{table=\"contacts\"} 1");
        let active = body.contains("indexpilot_tenants_active 1");
        if expressed && active {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "breadth gauges missing: {}",
            body.lines()
                .filter(|l| l.contains("tenants_active") || l.contains("fields_expressed"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No more traffic: the expression fades after expression.fade_after.
    let started = Instant::now();
    while lines(&pg, profile) != ["7 custom_1 false observed"] {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not faded: {:?}; {:#?}",
            lines(&pg, profile),
            dump(&pg)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let faded = lines(
        &pg,
        "select reason from indexpilot.mutation_log
          where kind = 'expression' and tenant = '7' and outcome = 'disabled'",
    );
    assert_eq!(faded.len(), 1, "{:#?}", dump(&pg));
    assert!(faded[0].starts_with("faded"), "{faded:?}");
    let shown = cli(&["expression", "show", "--dsn", &dsn, "--tenant", "7"]);
    assert!(
        shown.contains("contacts.custom_1") && shown.contains("observed"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breadth_decides_partial_or_composite_and_a_declared_disable_wins() {
    let pg = start_pg(PgOptions::default());
    seed(&pg);
    let dsn = pg.url();
    // Tenant 5 is declared not to use custom_1 before any traffic: of the
    // three tenants that query it, two count.
    let out = cli(&[
        "expression",
        "disable",
        "--dsn",
        &dsn,
        "--tenant",
        "5",
        "contacts.custom_1",
    ]);
    assert!(
        out.contains("disabled contacts.custom_1 for tenant 5"),
        "{out}"
    );
    let proxy = start_proxy(&pg, &settings(&dsn, "apply")).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let email_tenants: Vec<u32> = (0..45).collect();
    let custom_tenants = [3, 4, 5];
    until(
        &pg,
        &client,
        &email_tenants,
        &custom_tenants,
        Duration::from_secs(60),
        || {
            let defs = ours(&pg);
            defs.iter().any(|d| d.contains("(tenant_id, email)"))
                && defs
                    .iter()
                    .any(|d| d.contains("(custom_1) WHERE (tenant_id = 3)"))
                && defs
                    .iter()
                    .any(|d| d.contains("(custom_1) WHERE (tenant_id = 4)"))
        },
    )
    .await;
    // A little more traffic: nothing else appears.
    for i in 0..20 {
        traffic(&client, &email_tenants, &custom_tenants, 1000 + i).await;
    }
    let defs = ours(&pg);
    assert_eq!(defs.len(), 3, "{defs:#?}; {:#?}", dump(&pg));
    assert!(
        !defs.iter().any(|d| d.contains("tenant_id = 5")),
        "declared disable ignored: {defs:#?}"
    );
    let reasons = lines(
        &pg,
        "select reason from indexpilot.mutation_log where kind = 'create' and outcome = 'built' order by id",
    );
    assert!(
        reasons.iter().any(|r| r.contains("expressed by")),
        "evidence names the expression breadth: {reasons:#?}"
    );

    // Tenant 3 stops using custom_1 (declared): its partial index goes.
    cli(&[
        "expression",
        "disable",
        "--dsn",
        &dsn,
        "--tenant",
        "3",
        "contacts.custom_1",
    ]);
    let started = Instant::now();
    while ours(&pg).iter().any(|d| d.contains("tenant_id = 3")) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "partial index of tenant 3 not dropped; {:#?}",
            dump(&pg)
        );
        traffic(&client, &email_tenants, &[], 2000).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dropped = lines(
        &pg,
        "select d.reason from indexpilot.mutation_log d
           join indexpilot.mutation_log c on c.id = d.parent_id
          where d.kind = 'drop' and c.kind = 'create' and d.tenant = '3'",
    );
    assert_eq!(dropped.len(), 1, "{:#?}", dump(&pg));
    assert!(dropped[0].contains("no longer expresses"), "{dropped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_through_the_proxy_updates_the_genome() {
    let pg = start_pg(PgOptions::default());
    seed(&pg);
    let dsn = pg.url();
    let proxy = start_proxy(&pg, &settings(&dsn, "advise")).await;
    let fields = "select table_name || '.' || column_name || ' ' || data_type || ' ' || indexable
                    from indexpilot.genome_catalog order by table_name, ordinal";
    let started = Instant::now();
    while !lines(&pg, fields).contains(&"contacts.custom_1 text true".to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "genome not discovered: {:#?}",
            lines(&pg, fields)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    client
        .batch_execute(
            "alter table contacts add column custom_2 jsonb;
             create table deals (id serial primary key, amount numeric(12, 2) not null);",
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let now = lines(&pg, fields);
        if now.contains(&"contacts.custom_2 jsonb true".to_string())
            && now.contains(&"deals.amount numeric(12,2) true".to_string())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "DDL not in the genome: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = lines(
        &pg,
        "select coalesce(table_name, '') || ' ' || array_to_string(columns, ',') || ' | ' || reason
           from indexpilot.mutation_log where kind = 'genome' order by id",
    );
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("contacts custom_2 |") && r.contains("added")),
        "{records:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("deals ") && r.contains("discovered")),
        "{records:#?}"
    );
}
