//! A real driver (tokio-postgres) through the proxy: simple and extended
//! queries, transactions, a pipeline with an error in the middle,
//! cancellation, and asynchronous messages (NOTIFY, NOTICE).

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

use crate::common::*;
use crate::support::*;
use indexpilot::pg::PgOptions;

fn simple_values(messages: &[SimpleQueryMessage]) -> Vec<Option<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

fn command_counts(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_rows_nulls_and_command_tags() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let out = client
        .simple_query(
            "create temp table t(x int, y text); \
             insert into t values (1, 'a'), (2, null), (3, 'ü'); \
             select y from t order by x",
        )
        .await
        .unwrap();
    assert_eq!(
        simple_values(&out),
        vec![Some("a".into()), None, Some("ü".into())]
    );
    assert_eq!(command_counts(&out), vec![0, 3, 3]);
    let empty = client.simple_query("").await.unwrap();
    assert!(simple_values(&empty).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_unnamed_and_named_statements() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    // Unnamed statement: Parse "" + Bind + Describe + Execute + Sync.
    for i in 0..5i32 {
        let rows = client
            .query_typed("select $1::int * 2", &[(&i, Type::INT4)])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), i * 2);
    }
    // Named statements, prepared once and executed many times, interleaved.
    let concat = client.prepare("select $1::text || '!'").await.unwrap();
    let series = client
        .prepare("select g from generate_series(1, $1::int) g")
        .await
        .unwrap();
    for i in 0..50i32 {
        let r = client.query_one(&concat, &[&i.to_string()]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), format!("{i}!"));
        let rows = client.query(&series, &[&(i % 7)]).await.unwrap();
        let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, (1..=i % 7).collect::<Vec<_>>());
    }
    // A statement closed by the driver is gone on the server too.
    drop(concat);
    let left = client
        .query_one("select count(*) from pg_prepared_statements", &[])
        .await
        .unwrap();
    // `series` and the statement prepared for this very query remain.
    assert_eq!(left.get::<_, i64>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_and_rollback() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let mut writer = connect(&proxy.conninfo(&pg)).await.unwrap();
    let reader = connect(&proxy.conninfo(&pg)).await.unwrap();
    writer
        .batch_execute("create table items(id int primary key)")
        .await
        .unwrap();
    let count = || async {
        reader
            .query_one("select count(*) from items", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    writer
        .batch_execute("begin; insert into items values (1), (2)")
        .await
        .unwrap();
    assert_eq!(count().await, 0, "uncommitted rows are invisible");
    writer.batch_execute("commit").await.unwrap();
    assert_eq!(count().await, 2, "committed rows are visible");

    let tx = writer.transaction().await.unwrap();
    tx.execute("insert into items values (3)", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count().await, 2, "rolled-back row is gone");

    // A failed statement aborts the transaction until ROLLBACK.
    writer.batch_execute("begin").await.unwrap();
    let dup = writer
        .execute("insert into items values (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(code_of(&dup), Some(SqlState::UNIQUE_VIOLATION));
    let aborted = writer.execute("select 1", &[]).await.unwrap_err();
    assert_eq!(code_of(&aborted), Some(SqlState::IN_FAILED_SQL_TRANSACTION));
    writer.batch_execute("rollback").await.unwrap();
    assert_alive(&writer, "writer after rollback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_with_error_in_the_middle() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let div = client.prepare("select 10 / $1::int").await.unwrap();
    // Polled together, the requests are written before any answer is read.
    let (a, b, c, d) = tokio::join!(
        client.query_one(&div, &[&2i32]),
        client.query_one(&div, &[&0i32]),
        client.query_one(&div, &[&5i32]),
        client.simple_query("select 'after'"),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 5);
    assert_eq!(code_of(&b.unwrap_err()), Some(SqlState::DIVISION_BY_ZERO));
    assert_eq!(c.unwrap().get::<_, i32>(0), 2);
    assert_eq!(simple_values(&d.unwrap()), vec![Some("after".into())]);
    assert_alive(&client, "client after pipeline error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_reaches_the_backend() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let observer = connect_direct(&pg).await;
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let result = client.simple_query("select pg_sleep(30)").await;
        (client, result)
    });
    wait_until_running(&observer, "select pg_sleep(30)").await;
    token.cancel_query(NoTls).await.expect("send CancelRequest");
    let (client, result) = tokio::time::timeout(Duration::from_secs(15), sleeper)
        .await
        .expect("cancelled query returns")
        .unwrap();
    let err = result.expect_err("pg_sleep(30) was cancelled");
    assert_eq!(code_of(&err), Some(SqlState::QUERY_CANCELED), "{err}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(12), "took {elapsed:?}");
    assert_alive(&client, "client after cancel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_is_delivered() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (listener, mut messages) = connect_with_messages(&proxy.conninfo(&pg)).await;
    let notifier = connect(&proxy.conninfo(&pg)).await.unwrap();
    listener.batch_execute("listen jobs").await.unwrap();
    notifier
        .batch_execute("notify jobs, 'payload-1'; select pg_notify('jobs', 'payload-2')")
        .await
        .unwrap();
    // The listener is idle: the notifications arrive unprompted.
    for want in ["payload-1", "payload-2"] {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .expect("notification arrives while idle")
            .expect("connection still open");
        match message {
            AsyncMessage::Notification(n) => {
                assert_eq!((n.channel(), n.payload()), ("jobs", want));
            }
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_alive(&listener, "listener").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_reaches_the_client() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (client, mut messages) = connect_with_messages(&proxy.conninfo(&pg)).await;
    client
        .batch_execute("do $$ begin raise notice 'hello %', 42; end $$")
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), messages.recv())
        .await
        .expect("notice arrives")
        .expect("connection still open");
    match message {
        AsyncMessage::Notice(n) => {
            assert_eq!(n.message(), "hello 42");
            assert_eq!(n.severity(), "NOTICE");
        }
        other => panic!("expected a notice, got {other:?}"),
    }
}
