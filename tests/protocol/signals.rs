//! The proxy as a process: SIGTERM drains (no new clients, open sessions go
//! on, exit 0 when the last one closes); SIGINT stops at once.

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
