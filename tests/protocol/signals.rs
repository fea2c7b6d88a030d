//! The proxy as a process: SIGTERM drains (no new clients, open sessions go
//! on, exit 0 when the last one closes); SIGINT stops at once; a closed
//! stderr costs log lines, nothing else.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::common::*;
use crate::support::*;
use indexpilot::pg::{PgOptions, TestPg};

fn conninfo(proxy: &ProxyProcess, pg: &TestPg) -> String {
    format!(
        "host=127.0.0.1 port={} user={} password={} dbname={}",
        proxy.port,
        pg.user(),
        pg.password(),
        pg.dbname()
    )
}

fn signal(proxy: &ProxyProcess, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(proxy.pid()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Wait for the child to exit; panic after `deadline`.
async fn wait_exit(proxy: &mut ProxyProcess, deadline: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = proxy.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn refuses_connections(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_zero() {
    let pg = start_pg(PgOptions::default());
    let mut proxy = ProxyProcess::start(&pg, &[]);
    let (client, conn) = connect_watched(&conninfo(&proxy, &pg)).await;
    assert_alive(&client, "before SIGTERM").await;

    signal(&proxy, libc::SIGTERM);
    let port = proxy.port;
    eventually(Duration::from_secs(10), "new connections refused", || {
        refuses_connections(port)
    })
    .await;
    assert_alive(&client, "open session while draining").await;
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "the proxy must wait for the open session"
    );

    drop(client);
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the client's connection ends")
        .unwrap()
        .expect("a clean close");
    let status = wait_exit(&mut proxy, Duration::from_secs(10), "exit after drain").await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_at_once_with_an_open_session() {
    let pg = start_pg(PgOptions::default());
    let mut proxy = ProxyProcess::start(&pg, &[]);
    let (client, conn) = connect_watched(&conninfo(&proxy, &pg)).await;
    assert_alive(&client, "before SIGINT").await;

    signal(&proxy, libc::SIGINT);
    // The default shutdown_timeout is 30 s: exiting sooner means no draining.
    let status = wait_exit(&mut proxy, Duration::from_secs(8), "exit on SIGINT").await;
    assert!(
        status.code().is_some(),
        "the proxy handles SIGINT and exits itself: {status:?}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the client's connection ends")
        .unwrap();
    let err = ended.expect_err("the client is told the proxy stopped");
    assert_eq!(code_of(&err), Some(SqlState::ADMIN_SHUTDOWN), "{err}");
}

/// The reader of the proxy's logs goes away (a log shipper restarts,
/// `| head`): log writes fail with EPIPE. At debug level, with the indexer
/// applying, sessions must still be relayed, `/healthz` must say the truth
/// (every part alive), and SIGTERM must still stop the proxy with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_costs_log_lines_only() {
    let pg = start_pg(PgOptions::default());
    let metrics = free_port();
    let mut proxy = ProxyProcess::start_with_closed_stderr(
        &pg,
        &[
            "--set",
            "log.level=debug",
            "--set",
            "indexer.mode=apply",
            "--set",
            &format!("admin.dsn={}", pg.url()),
            "--set",
            &format!("metrics_listen=127.0.0.1:{metrics}"),
            "--set",
            "stats.flush_interval=1s",
        ],
    );
    for i in 0..20 {
        let (client, _conn) = connect_watched(&conninfo(&proxy, &pg)).await;
        assert_alive(&client, &format!("session {i}")).await;
    }
    // Long enough for the indexer and the flush to have logged a round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = http_get(metrics, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");

    signal(&proxy, libc::SIGTERM);
    let status = wait_exit(&mut proxy, Duration::from_secs(15), "exit on SIGTERM").await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
