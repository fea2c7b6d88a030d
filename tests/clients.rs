//! Real external clients through the proxy against a real server: psql (COPY
//! in every format, errors during COPY, large objects over FunctionCall),
//! pgbench in every query mode, md5/SCRAM authentication, TLS on both sides,
//! a large result with bounded proxy memory, and the psycopg 3 / asyncpg
//! drivers (scripts in `tests/py/`).
mod common;

#[path = "clients/auth_tls.rs"]
mod auth_tls;
#[path = "clients/psql.rs"]
mod psql;

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use common::tools::*;
use common::*;
use indexpilot::pg::{PgOptions, TestPg};

/// pgbench: initialisation (COPY), then simple, extended and prepared query
/// modes, and a new connection per transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_all_query_modes() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    run_ok(
        libpq_tool(&pg, "pgbench", proxy.port()).args(["-i", "-s", "1"]),
        "pgbench -i",
    )
    .await;
    let runs: [(&[&str], &str); 4] = [
        (
            &["-M", "simple", "-t", "200", "-c", "4", "-j", "2"],
            "800/800",
        ),
        (
            &["-M", "extended", "-t", "200", "-c", "4", "-j", "2"],
            "800/800",
        ),
        (
            &["-M", "prepared", "-t", "200", "-c", "4", "-j", "2"],
            "800/800",
        ),
        (&["-C", "-t", "50", "-c", "2"], "100/100"),
    ];
    for (args, processed) in runs {
        let what = format!("pgbench {}", args.join(" "));
        let out = run_ok(libpq_tool(&pg, "pgbench", proxy.port()).args(args), &what).await;
        assert!(
            out.contains(&format!(
                "number of transactions actually processed: {processed}"
            )),
            "{what}:\n{out}"
        );
        assert!(
            out.contains("number of failed transactions: 0 "),
            "{what}:\n{out}"
        );
    }
}

/// More than 200 MB through a proxy process: a COPY of many small CopyData
/// messages whose reader stalls for a while (the proxy must stop reading
/// from the server rather than buffer what the client cannot take yet),
/// then 20 MB DataRows (streamed, never buffered whole). The proxy's peak
/// RSS may grow by a few buffers, not by the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_stream_with_bounded_memory() {
    const GROWTH_LIMIT_KIB: u64 = 16 * 1024;
    let pg = start_pg(PgOptions::default());
    let proxy = ProxyProcess::start(&pg, &[]);
    let before = vm_hwm_kib(proxy.pid());
    let started = Instant::now();
    let copied = count_psql_stdout(
        &pg,
        proxy.port,
        "copy (select repeat('x', 1000) from generate_series(1, 220000)) to stdout",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(copied, 220_000 * 1001, "COPY bytes received");
    let rows = count_psql_stdout(
        &pg,
        proxy.port,
        "select repeat('x', 20 << 20) from generate_series(1, 3)",
        Duration::ZERO,
    )
    .await;
    assert_eq!(rows, 3 * ((20 << 20) + 1), "DataRow bytes received");
    let peak = vm_hwm_kib(proxy.pid());
    println!(
        "proxy peak RSS (VmHWM): {before} KiB before, {peak} KiB after {} MB in {:?}",
        (copied + rows) / 1_000_000,
        started.elapsed()
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_LIMIT_KIB,
        "proxy peak RSS grew from {before} KiB to {peak} KiB (limit: +{GROWTH_LIMIT_KIB} KiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_driver() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let out = run_python("psycopg_driver.py", &[&proxy.url(&pg)]).await;
    for check in [
        "ok: plain queries",
        "ok: transactions",
        "ok: pipeline with an error in the middle",
        "ok: copy and CopyFail",
        "all checks passed",
    ] {
        assert!(
            out.lines().any(|l| l == check),
            "missing {check:?} in:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_driver() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let out = run_python("asyncpg_driver.py", &[&proxy.url(&pg)]).await;
    for check in [
        "ok: server_version and ParameterStatus",
        "ok: prepared statements",
        "ok: fetch with parameters",
        "ok: copy_records_to_table and executemany",
        "ok: cursors with prefetch",
        "all checks passed",
    ] {
        assert!(
            out.lines().any(|l| l == check),
            "missing {check:?} in:\n{out}"
        );
    }
}

/// Run `sql` with psql through `port` and count its stdout bytes without
/// keeping them; stop reading for `stall` after the first MiB.
async fn count_psql_stdout(pg: &TestPg, port: u16, sql: &str, stall: Duration) -> u64 {
    let mut child = psql(pg, port)
        .args(["-c", sql])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start psql");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let count = async {
        let mut sink = tokio::io::sink();
        let head = tokio::io::copy(&mut (&mut stdout).take(1 << 20), &mut sink).await?;
        tokio::time::sleep(stall).await;
        Ok::<_, std::io::Error>(head + tokio::io::copy(&mut stdout, &mut sink).await?)
    };
    let bytes = tokio::time::timeout(TOOL_DEADLINE, count)
        .await
        .expect("psql output within the deadline")
        .expect("read psql output");
    let out = child.wait_with_output().await.expect("wait for psql");
    assert!(out.status.success(), "psql -c {sql}: {}", describe(&out));
    bytes
}

/// Peak resident set size of a process, from /proc/<pid>/status.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}
