//! Failures and limits: an unreachable or crashing upstream, a terminated
//! neighbour, the connection limit, and the startup and idle timeouts. Every
//! failure must reach the client as an SQLSTATE, promptly.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::common::*;
use crate::support::*;
use crate::wire::*;
use indexpilot::pg::{AuthMethod, PgOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_gives_08001_promptly() {
    let closed = free_port();
    let proxy = start_proxy_to(&format!("127.0.0.1:{closed}"), &[]).await;
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        proxy.port()
    );
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), connect(&conninfo))
        .await
        .expect("connect attempt returns")
        .expect_err("no upstream to connect to");
    let elapsed = started.elapsed();
    assert_eq!(
        code_of(&err),
        Some(SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    wait_for(Duration::from_secs(5), "client slot released", || {
        proxy.clients.load(Ordering::Acquire) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_rejects_with_53300_and_frees_slots() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("max_client_connections", "2")]).await;
    let conninfo = proxy.conninfo(&pg);
    let first = connect(&conninfo).await.unwrap();
    let second = connect(&conninfo).await.unwrap();
    let err = connect(&conninfo)
        .await
        .expect_err("a third client is one too many");
    assert_eq!(code_of(&err), Some(SqlState::TOO_MANY_CONNECTIONS), "{err}");
    assert_alive(&first, "first").await;
    assert_alive(&second, "second").await;

    drop(first);
    wait_for(
        Duration::from_secs(10),
        "the first client's slot is freed",
        || proxy.clients.load(Ordering::Acquire) == 1,
    )
    .await;
    let third = connect(&conninfo).await.expect("a slot is free again");
    assert_alive(&third, "third").await;
    assert_alive(&second, "second, still").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_mid_query_then_recovers() {
    let mut pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let observer = connect_direct(&pg).await;
    let sleeper = tokio::spawn(async move {
        let result = client.simple_query("select pg_sleep(30)").await;
        (Instant::now(), result)
    });
    wait_until_running(&observer, "select pg_sleep(30)").await;
    drop(observer);

    let killed_at = Instant::now();
    pg = tokio::task::spawn_blocking(move || {
        pg.stop_immediate().expect("pg_ctl stop -m immediate");
        pg
    })
    .await
    .unwrap();
    let (ended_at, result) = tokio::time::timeout(Duration::from_secs(15), sleeper)
        .await
        .expect("the query ends when the server dies")
        .unwrap();
    let err = result.expect_err("the server died mid-query");
    let lag = ended_at.saturating_duration_since(killed_at);
    assert!(
        lag < Duration::from_secs(10),
        "error came {lag:?} after the kill"
    );
    pg = tokio::task::spawn_blocking(move || {
        pg.start_again().expect("restart PostgreSQL");
        pg
    })
    .await
    .unwrap();
    let fresh = connect(&proxy.conninfo(&pg))
        .await
        .expect("connect after the restart");
    assert_alive(&fresh, "new session after restart").await;

    // Checked last so that a failure here does not hide the recovery check.
    let code = code_of(&err);
    assert!(
        [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN
        ]
        .iter()
        .any(|c| Some(c) == code.as_ref()),
        "expected a Postgres-shaped error (08006/57P01/57P02), got {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_one_backend_leaves_other_sessions_alone() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (victim, victim_conn) = connect_watched(&proxy.conninfo(&pg)).await;
    let (bystander, bystander_conn) = connect_watched(&proxy.conninfo(&pg)).await;
    // A simple Query: nothing of the victim's stays in flight afterwards.
    let answer = victim
        .simple_query("select pg_backend_pid()")
        .await
        .unwrap();
    let pid: i32 = first_value(&answer).unwrap().parse().unwrap();
    let admin = connect_direct(&pg).await;
    let done: bool = admin
        .query_one("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(done);
    let ended = tokio::time::timeout(Duration::from_secs(10), victim_conn)
        .await
        .expect("the victim's connection ends")
        .unwrap();
    let err = ended.expect_err("the server's FATAL error reaches the victim");
    assert_eq!(code_of(&err), Some(SqlState::ADMIN_SHUTDOWN), "{err}");
    wait_for(
        Duration::from_secs(10),
        "the victim's slot is freed",
        || proxy.clients.load(Ordering::Acquire) == 1,
    )
    .await;
    assert_alive(&bystander, "bystander").await;
    assert!(!bystander_conn.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_idle_sessions_only() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("idle_timeout", "1s")]).await;
    let (_idle, idle_conn) = connect_watched(&proxy.conninfo(&pg)).await;
    let idle_since = Instant::now();
    let busy = connect(&proxy.conninfo(&pg)).await.unwrap();
    let slow = tokio::spawn(async move { busy.simple_query("select pg_sleep(3)").await });

    let ended = tokio::time::timeout(Duration::from_secs(10), idle_conn)
        .await
        .expect("the idle session is closed")
        .unwrap();
    let idle_for = idle_since.elapsed();
    let err = ended.expect_err("an idle timeout is reported as an error");
    assert_eq!(code_of(&err), Some(SqlState::IDLE_SESSION_TIMEOUT), "{err}");
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed after {idle_for:?}"
    );

    let slow = tokio::time::timeout(Duration::from_secs(15), slow)
        .await
        .expect("pg_sleep(3) returns")
        .unwrap();
    slow.expect("a running query is not idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_timeout_closes_a_silent_socket() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("startup_timeout", "1s")]).await;
    let mut silent = connect_raw(proxy.addr).await;
    let started = Instant::now();
    expect_closed(&mut silent, Duration::from_secs(6)).await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    wait_for(
        Duration::from_secs(5),
        "the silent client's slot is freed",
        || proxy.clients.load(Ordering::Acquire) == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_timeout_ends_a_stalled_authentication() {
    let pg = start_pg(PgOptions {
        auth: AuthMethod::Md5,
        ..PgOptions::default()
    });
    let proxy = start_proxy(&pg, &[("startup_timeout", "1s")]).await;
    let mut s = connect_raw(proxy.addr).await;
    login_on(&mut s, PROTOCOL_3_0, &[]).await;
    let challenge = read_msg(&mut s).await.expect("an md5 challenge");
    assert_eq!(
        (challenge.tag, &challenge.body[..4]),
        (b'R', &5u32.to_be_bytes()[..])
    );
    // No password follows; PostgreSQL itself would wait 60 s.
    let e = tokio::time::timeout(Duration::from_secs(6), read_msg(&mut s))
        .await
        .expect("the proxy gives up within startup_timeout")
        .expect("an ErrorResponse before close");
    assert_eq!(e.sqlstate().as_deref(), Some("08006"), "{e:?}");
    expect_closed(&mut s, Duration::from_secs(5)).await;
}
