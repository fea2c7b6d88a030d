//! Hand-built bytes through the proxy: encryption requests, protocol 3.2 and
//! `_pq_` options, ParameterStatus after SET, a raw pipeline, frames the
//! proxy must refuse (bad length, too long) or pass on (unknown type), and
//! input after Terminate.

use std::time::Duration;

use crate::common::*;
use crate::wire::*;
use indexpilot::pg::PgOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_request_without_certificate_is_refused_then_startup_works() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let mut s = connect_raw(proxy.addr).await;
    send(&mut s, &special_request(SSL_REQUEST)).await;
    assert_eq!(read_byte(&mut s).await, b'N');
    login_on(&mut s, PROTOCOL_3_0, &[]).await;
    let msgs = read_until_ready(&mut s).await;
    assert_no_error(&msgs);
    assert_eq!(msgs[0].tag, b'R', "authentication comes first: {msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gssenc_request_is_refused_then_ssl_request_then_startup_works() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let mut s = connect_raw(proxy.addr).await;
    send(&mut s, &special_request(GSSENC_REQUEST)).await;
    assert_eq!(read_byte(&mut s).await, b'N');
    // libpq with gssencmode=prefer and sslmode=prefer tries both in turn.
    send(&mut s, &special_request(SSL_REQUEST)).await;
    assert_eq!(read_byte(&mut s).await, b'N');
    login_on(&mut s, PROTOCOL_3_0, &[]).await;
    assert_no_error(&read_until_ready(&mut s).await);
    send(&mut s, &query("select 1")).await;
    assert_no_error(&read_until_ready(&mut s).await);
}

/// PostgreSQL 15 speaks 3.0: asked for 3.2 with an unknown `_pq_` option, it
/// answers NegotiateProtocolVersion and carries on. That answer must arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_and_pq_option_get_negotiate_protocol_version() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (_s, msgs) = login_with(proxy.addr, PROTOCOL_3_2, &[("_pq_.foo", "bar")]).await;
    let v = msgs
        .iter()
        .find(|m| m.tag == b'v')
        .unwrap_or_else(|| panic!("no NegotiateProtocolVersion in {msgs:?}"));
    // The spec says "newest minor version"; PostgreSQL sends the whole
    // version number (3 << 16 | minor).
    let newest = u32::from_be_bytes(v.body[0..4].try_into().unwrap());
    let unrecognized = u32::from_be_bytes(v.body[4..8].try_into().unwrap());
    assert_eq!(newest >> 16, 3, "server offers {newest:#x}");
    assert!(newest & 0xffff <= 2, "server offers {newest:#x}");
    assert_eq!(unrecognized, 1);
    assert_eq!(&v.body[8..], b"_pq_.foo\0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_status_at_startup_and_after_set() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (mut s, msgs) = login_with(proxy.addr, PROTOCOL_3_0, &[("application_name", "a1")]).await;
    let startup = parameter_statuses(&msgs);
    let names: Vec<&str> = startup.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        "server_version",
        "client_encoding",
        "DateStyle",
        "integer_datetimes",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(startup.contains(&("application_name".into(), "a1".into())));
    send(&mut s, &query("set application_name = 'ip_test'")).await;
    let after = read_until_ready(&mut s).await;
    assert_no_error(&after);
    assert_eq!(
        parameter_statuses(&after),
        vec![("application_name".to_string(), "ip_test".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pipeline_with_error_in_the_middle() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (mut s, _) = login(proxy.addr).await;
    send(
        &mut s,
        &pipeline("div", "select 10 / $1::int", &["2", "0", "5"]),
    )
    .await;
    let first = read_until_ready(&mut s).await;
    let tags: Vec<u8> = first.iter().map(|m| m.tag).collect();
    assert_eq!(tags, b"12DCZ", "{first:?}");
    assert_eq!(first[2].first_column().as_deref(), Some("5"));
    // 10 / 0 fails at Bind (a custom plan folds the constant) or at Execute;
    // either way the error ends the batch and nothing else is returned.
    let second = read_until_ready(&mut s).await;
    let tags: Vec<u8> = second.iter().map(|m| m.tag).collect();
    assert!(tags == b"EZ" || tags == b"2EZ", "{second:?}");
    let error = &second[second.len() - 2];
    assert_eq!(error.sqlstate().as_deref(), Some("22012"));
    // The server skipped to the Sync; the next batch runs normally.
    let third = read_until_ready(&mut s).await;
    let tags: Vec<u8> = third.iter().map(|m| m.tag).collect();
    assert_eq!(tags, b"2DCZ", "{third:?}");
    assert_eq!(third[1].first_column().as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_below_four_gets_08p01_then_close() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (mut s, _) = login(proxy.addr).await;
    send(&mut s, &[b'Q', 0, 0, 0, 3]).await;
    let e = read_msg(&mut s)
        .await
        .expect("an ErrorResponse before close");
    assert_eq!(e.tag, b'E', "{e:?}");
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"));
    assert_eq!(e.field(b'V').as_deref(), Some("FATAL"));
    expect_closed(&mut s, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_refused_and_message_at_limit_works() {
    const MAX: usize = 65536;
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[("max_message_bytes", "65536")]).await;

    // A Query of exactly max_message_bytes (type byte included) passes.
    let (mut s, _) = login(proxy.addr).await;
    let overhead = query("select length('')").len();
    let filler = "x".repeat(MAX - overhead);
    let at_limit = query(&format!("select length('{filler}')"));
    assert_eq!(at_limit.len(), MAX);
    send(&mut s, &at_limit).await;
    let msgs = read_until_ready(&mut s).await;
    assert_no_error(&msgs);
    let row = msgs.iter().find(|m| m.tag == b'D').expect("a DataRow");
    assert_eq!(row.first_column(), Some(filler.len().to_string()));

    // Only headers are sent: the proxy must refuse before buffering the body.
    for declared in [1 << 20, MAX as u32] {
        let (mut s, _) = login(proxy.addr).await;
        send(&mut s, &[&[b'Q'][..], &declared.to_be_bytes()].concat()).await;
        let e = read_msg(&mut s)
            .await
            .expect("an ErrorResponse before close");
        assert_eq!(e.sqlstate().as_deref(), Some("08P01"), "{e:?}");
        let text = e.field(b'M').unwrap_or_default();
        assert!(text.contains("max_message_bytes"), "{text}");
        expect_closed(&mut s, Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_type_reaches_the_server() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let (mut s, _) = login(proxy.addr).await;
    send(&mut s, &message(b'y', b"")).await;
    let e = read_msg(&mut s).await.expect("the server's ErrorResponse");
    assert_eq!(e.tag, b'E', "{e:?}");
    assert_eq!(e.sqlstate().as_deref(), Some("08P01"));
    // The server's own wording, not the proxy's.
    let text = e.field(b'M').unwrap_or_default();
    assert!(text.contains("invalid frontend message type 121"), "{text}");
    expect_closed(&mut s, Duration::from_secs(5)).await;
}

/// After Terminate PostgreSQL reads nothing more and closes without a word
/// (with a reset when more input is waiting). A client that sends more
/// after it (node-postgres' end() with a query in flight) must see the
/// same through the proxy: the answers owed, then the close, and no error
/// of the proxy's making.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_the_close_after_terminate() {
    let pg = start_pg(PgOptions::default());
    let proxy = start_proxy(&pg, &[]).await;
    let direct = tokio::net::TcpStream::connect((pg.host(), pg.port()))
        .await
        .expect("TCP connect to PostgreSQL");
    let through = connect_raw(proxy.addr).await;
    for (who, mut s) in [("PostgreSQL", direct), ("the proxy", through)] {
        login_on(&mut s, PROTOCOL_3_0, &[]).await;
        assert_no_error(&read_until_ready(&mut s).await);
        // The server reads the query and Terminate together; the next
        // query arrives while it sleeps, so it exits with input unread.
        let mut batch = query("select pg_sleep(0.3)");
        batch.extend(message(b'X', b""));
        send(&mut s, &batch).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&mut s, &query("select 2")).await;
        let msgs = read_until_closed(&mut s).await;
        let tags: Vec<u8> = msgs.iter().map(|m| m.tag).collect();
        assert_eq!(tags, b"TDCZ", "from {who}: {msgs:?}");
    }
}
