//! tokio-postgres helpers shared by these tests: connections whose
//! asynchronous messages or final error the test can see, and waits on
//! conditions that need a query to check.

use std::future::{poll_fn, Future};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

use indexpilot::pg::TestPg;

/// A client whose connection is driven here, forwarding every notice and
/// notification to the returned channel.
pub async fn connect_with_messages(
    conninfo: &str,
) -> (Client, mpsc::UnboundedReceiver<AsyncMessage>) {
    let (client, mut conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .expect("connect through the proxy");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = poll_fn(|cx| conn.poll_message(cx)).await {
            // Keep driving the connection even if the test stopped listening.
            let _ = tx.send(message);
        }
    });
    (client, rx)
}

/// A client plus the handle of its connection task, whose result says how
/// the connection ended (e.g. an unsolicited FATAL error from the server).
pub async fn connect_watched(
    conninfo: &str,
) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .expect("connect through the proxy");
    (client, tokio::spawn(conn))
}

/// A direct connection to the server, bypassing the proxy, for observing it.
pub async fn connect_direct(pg: &TestPg) -> Client {
    crate::common::connect(&pg.url())
        .await
        .expect("direct connection to PostgreSQL")
}

/// Poll an async condition until it holds; panic with `what` after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until some other backend is running exactly `sql`.
pub async fn wait_until_running(observer: &Client, sql: &str) {
    eventually(
        Duration::from_secs(15),
        &format!("backend running {sql:?}"),
        || async {
            let row = observer
                .query_one(
                    "select count(*) from pg_stat_activity \
                     where state = 'active' and query = $1 and pid <> pg_backend_pid()",
                    &[&sql],
                )
                .await
                .expect("query pg_stat_activity");
            row.get::<_, i64>(0) > 0
        },
    )
    .await;
}

/// The SQLSTATE of a database error, for assertion messages.
pub fn code_of(err: &tokio_postgres::Error) -> Option<SqlState> {
    err.as_db_error().map(|e| e.code().clone())
}

/// Assert `client` still answers a trivial query. A simple Query leaves
/// nothing in flight afterwards (a driver-prepared statement would send a
/// Close when dropped), so an unsolicited error after this is seen as such.
pub async fn assert_alive(client: &Client, who: &str) {
    let answer = tokio::time::timeout(Duration::from_secs(10), client.simple_query("select 7"))
        .await
        .unwrap_or_else(|_| panic!("{who}: query timed out"))
        .unwrap_or_else(|e| panic!("{who}: query failed: {e}"));
    assert_eq!(first_value(&answer).as_deref(), Some("7"), "{who}");
}

/// The first column of the first row of a simple-query answer.
pub fn first_value(answer: &[SimpleQueryMessage]) -> Option<String> {
    answer.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}
