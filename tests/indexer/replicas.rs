//! Two proxies on one database: one leader builds exactly once, and the
//! survivor takes over when the leader stops.

use std::time::Duration;

use indexpilot::pg::PgOptions;

use crate::common::*;
use crate::{
    drive, dump, email, fast, field, ids, init_tracing, lines, logged, our_indexes, phone, seed,
    ROWS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_database_build_exactly_once() {
    init_tracing();
    let pg = start_pg(PgOptions::default());
    seed(&pg, ROWS);
    let dsn = pg.url();
    let mut proxies = vec![
        start_proxy(&pg, &fast(&dsn, "apply")).await,
        start_proxy(&pg, &fast(&dsn, "apply")).await,
    ];
    let a = connect(&proxies[0].conninfo(&pg)).await.unwrap();
    let b = connect(&proxies[1].conninfo(&pg)).await.unwrap();
    let by_email = "select id, note from contacts where email = $1";
    drive(
        &pg,
        &[&a, &b],
        by_email,
        email,
        Duration::from_secs(45),
        || logged(&pg, "kind = 'keep'"),
    )
    .await;
    let built = ids(&pg, "kind = 'create' and outcome = 'built'");
    assert_eq!(built.len(), 1, "{:#?}", dump(&pg));
    assert_eq!(our_indexes(&pg).len(), 1, "{:?}", our_indexes(&pg));
    let deciders = lines(
        &pg,
        "select distinct proxy from indexpilot.mutation_log order by 1",
    );
    assert_eq!(deciders.len(), 1, "{:#?}", dump(&pg));
    let first = deciders[0].clone();
    let leader = proxies
        .iter()
        .position(|p| first.ends_with(&format!(":{}", p.port())))
        .unwrap_or_else(|| panic!("{first} is neither proxy"));

    // Fail over: the leader goes away, the survivor takes the lock.
    let mut gone = proxies.remove(leader);
    gone.shutdown.now();
    tokio::time::timeout(Duration::from_secs(15), &mut gone.task)
        .await
        .expect("leader proxy stops")
        .unwrap();
    let survivor = &proxies[0];
    let client = if leader == 0 { &b } else { &a };
    let by_phone = "select id from contacts where phone = $1";
    let second = drive(
        &pg,
        &[client],
        by_phone,
        phone,
        Duration::from_secs(30),
        || {
            logged(
                &pg,
                "kind = 'create' and outcome = 'built' and columns = array['phone']",
            )
        },
    )
    .await;
    assert_eq!(second.len(), 1, "{:#?}", dump(&pg));
    let proxy = field(&pg, second[0], "proxy");
    assert_ne!(proxy, first);
    assert!(proxy.ends_with(&format!(":{}", survivor.port())), "{proxy}");
    assert_eq!(
        ids(&pg, "kind = 'create' and outcome = 'built'").len(),
        2,
        "{:#?}",
        dump(&pg)
    );
}
