//! The inspection hook's accounting: one event per round trip that ends in
//! ReadyForQuery (each Query, each Sync), none for the startup's; a full
//! queue drops and counts but never slows or breaks the relay.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::types::Type;

use crate::common::*;
use crate::wire::*;
use indexpilot::pg::PgOptions;

/// Wait until exactly `n` events were consumed. A stray event emitted before
/// the last expected one would be counted with it and overshoot `n`.
async fn assert_consumed(proxy: &TestProxy, n: u64) {
    let stats = &proxy.stats;
    wait_for(
        Duration::from_secs(10),
        &format!("{n} events consumed"),
        || stats.events_consumed.load(Ordering::Acquire) >= n,
    )
    .await;
    assert_eq!(stats.events_consumed.load(Ordering::Acquire), n);
    assert_eq!(stats.events_sent.load(Ordering::Acquire), n);
    assert_eq!(stats.events_dropped.load(Ordering::Acquire), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_query_and_per_sync() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let (mut raw, _) = login(proxy.addr).await;
    // Two logins, no statements yet.
    assert_consumed(&proxy, 0).await;

    let mut n = 0;
    // One Query each, however many statements it holds.
    client.simple_query("select 1").await.unwrap();
    client
        .batch_execute("create table t(x int); insert into t values (1), (2)")
        .await
        .unwrap();
    client.simple_query("select 1/0").await.unwrap_err();
    n += 3;
    // prepare: Parse/Describe/Sync; each execution: Bind/Execute/Sync.
    let stmt = client
        .prepare("select x from t where x = $1")
        .await
        .unwrap();
    for i in 0..5i32 {
        client.query(&stmt, &[&i]).await.unwrap();
    }
    n += 1 + 5;
    // Unnamed statement in one round trip: Parse/Bind/Describe/Execute/Sync.
    client
        .query_typed("select $1::int", &[(&1i32, Type::INT4)])
        .await
        .unwrap();
    n += 1;
    // Dropping a named statement sends Close/Sync.
    drop(stmt);
    n += 1;
    // Three Syncs in one raw pipeline, the second failing.
    send(
        &mut raw,
        &pipeline("p", "select 10 / $1::int", &["1", "0", "2"]),
    )
    .await;
    for _ in 0..3 {
        read_until_ready(&mut raw).await;
    }
    n += 3;
    // Sent after everything above, so its event is counted last.
    client.simple_query("select 'last'").await.unwrap();
    n += 1;
    assert_consumed(&proxy, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_event_queue_drops_without_hurting_queries() {
    const BURST: usize = 2000;
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("event_queue_capacity", "1")]).await;
    let (mut s, _) = login(proxy.addr).await;
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| query(&format!("select {i}")))
        .collect();
    send(&mut s, &burst).await;
    for i in 0..BURST {
        let msgs = read_until_ready(&mut s).await;
        assert_no_error(&msgs);
        let row = msgs.iter().find(|m| m.tag == b'D').expect("a DataRow");
        assert_eq!(row.first_column(), Some(i.to_string()));
    }
    let stats = &proxy.stats;
    let dropped = stats.events_dropped.load(Ordering::Acquire);
    let sent = stats.events_sent.load(Ordering::Acquire);
    assert!(
        dropped > 0,
        "a queue of one cannot keep up with {BURST} queries"
    );
    assert_eq!(sent + dropped, BURST as u64);
    wait_for(Duration::from_secs(10), "sent events consumed", || {
        stats.events_consumed.load(Ordering::Acquire) == sent
    })
    .await;
}
