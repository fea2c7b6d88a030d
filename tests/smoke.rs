//! First end-to-end check: simple and extended queries through the proxy.
mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use indexpilot::pg::PgOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_pass_through() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let client = connect(&proxy.conninfo(&pg)).await.unwrap();
    let rows = client
        .simple_query("select 1 as one; select 'two'")
        .await
        .unwrap();
    let values: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(values, vec!["1", "two"]);
    let row = client
        .query_one("select $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let stmt = client.prepare("select $1::text || 'x'").await.unwrap();
    for i in 0..10 {
        let r = client.query_one(&stmt, &[&i.to_string()]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), format!("{i}x"));
    }
    wait_for(Duration::from_secs(5), "events consumed", || {
        proxy.stats.events_consumed.load(Ordering::Relaxed) >= 12
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relay_threads_share_the_listening_port() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("worker_threads", "3")]).await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(connect(&proxy.conninfo(&pg)).await.unwrap());
    }
    for (i, c) in clients.iter().enumerate() {
        let row = c
            .query_one("select $1::int * 2", &[&(i as i32)])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 2 * i as i32);
    }
    assert_eq!(proxy.clients.load(Ordering::Relaxed), 12);
    drop(clients);
    wait_for(Duration::from_secs(10), "all sessions closed", || {
        proxy.clients.load(Ordering::Relaxed) == 0
    })
    .await;
    proxy.shutdown.drain();
}
