//! Client TLS terminated at the proxy, seen on the wire: the size of the
//! records it writes, and how it closes a cancel request's connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::common::tools::{proxy_certificate, Scratch};
use crate::common::*;
use crate::support::*;
use crate::wire::*;
use indexpilot::config::{UpstreamTls, UpstreamTlsMode};
use indexpilot::pg::PgOptions;

/// The most plaintext PostgreSQL puts in a TLS record (its send buffer).
const MAX_PLAINTEXT: usize = 8192;
/// What TLS 1.3 adds to a record's plaintext: the content type and the
/// AEAD tag.
const TLS13_OVERHEAD: usize = 1 + 16;
const CANCEL_REQUEST: u32 = 80877102;
const APPLICATION_DATA: u8 = 23;

/// A socket that keeps a copy of every byte read from it: the raw records.
struct Tap {
    inner: TcpStream,
    seen: Vec<u8>,
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.seen.extend_from_slice(&buf.filled()[before..]);
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A proxy with a certificate in front of a fresh server.
async fn tls_proxy(dir: &Scratch) -> (indexpilot::pg::TestPg, TestProxy) {
    let pg = start_pg(PgOptions::default());
    let (cert, key) = proxy_certificate(dir);
    let proxy = start_proxy(&pg, &[("tls.cert", &cert), ("tls.key", &key)]).await;
    (pg, proxy)
}

/// SSLRequest, `S`, then a TLS handshake (rustls, no verification).
async fn tls_connect(proxy: &TestProxy) -> TlsStream<Tap> {
    let mut tcp = connect_raw(proxy.addr).await;
    send(&mut tcp, &special_request(SSL_REQUEST)).await;
    assert_eq!(read_byte(&mut tcp).await, b'S');
    let settings = UpstreamTls {
        mode: UpstreamTlsMode::Require,
        ca_file: None,
        server_name: None,
    };
    let config = indexpilot::proxy::tls::client_config(&settings).expect("client TLS config");
    let name = ServerName::try_from("localhost").expect("server name");
    let tap = Tap {
        inner: tcp,
        seen: Vec::new(),
    };
    tokio::time::timeout(
        IO_DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tap),
    )
    .await
    .expect("TLS handshake within the deadline")
    .expect("TLS handshake with the proxy")
}

/// Content type and length of each TLS record in `raw`.
fn records(raw: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        out.push((rest[0], len));
        rest = &rest[(5 + len).min(rest.len())..];
    }
    assert!(rest.is_empty(), "a partial record header at the end");
    out
}

/// libpq reads into a buffer with 8 KiB free; a larger record leaves the
/// rest decrypted inside the client's TLS library, where a client that
/// waits on its socket (psycopg 3) never looks: it hangs. PostgreSQL never
/// puts more than 8 KiB of plaintext in a record, and neither may the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_records_to_the_client_carry_at_most_8_kib() {
    let dir = Scratch::new("records");
    let (_pg, proxy) = tls_proxy(&dir).await;
    let mut tls = tls_connect(&proxy).await;
    login_on(&mut tls, PROTOCOL_3_0, &[]).await;
    assert_no_error(&read_until_ready(&mut tls).await);
    send(&mut tls, &query("select repeat('x', 300000)")).await;
    let msgs = read_until_ready(&mut tls).await;
    assert_no_error(&msgs);
    let row = msgs.iter().find(|m| m.tag == b'D').expect("a DataRow");
    assert_eq!(row.first_column().map(|c| c.len()), Some(300_000));

    let (tap, connection) = tls.get_ref();
    assert_eq!(
        connection.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let data: Vec<usize> = records(&tap.seen)
        .into_iter()
        .filter(|&(kind, _)| kind == APPLICATION_DATA)
        .map(|(_, len)| len)
        .collect();
    let largest = data.iter().copied().max().unwrap_or(0);
    assert!(
        largest <= MAX_PLAINTEXT + TLS13_OVERHEAD,
        "a TLS record of {largest} bytes (at most {MAX_PLAINTEXT} of plaintext allowed)"
    );
    assert!(data.len() > 300_000 / MAX_PLAINTEXT, "{data:?}");
}

/// libpq 17+ sends a CancelRequest over TLS too and then waits for the
/// server to close; PostgreSQL closes TLS with close_notify. A bare TCP
/// close makes libpq report the cancel as failed although it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_over_tls_is_forwarded_then_tls_closes_cleanly() {
    let dir = Scratch::new("tls-cancel");
    let (pg, proxy) = tls_proxy(&dir).await;
    let (mut session, startup) = login(proxy.addr).await;
    let key = startup
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData");
    send(&mut session, &query("select pg_sleep(60)")).await;
    let observer = connect_direct(&pg).await;
    wait_until_running(&observer, "select pg_sleep(60)").await;

    let mut tls = tls_connect(&proxy).await;
    let mut cancel = 16u32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    cancel.extend_from_slice(&key.body);
    send(&mut tls, &cancel).await;
    // A clean close reads as end of stream; a bare FIN is an error.
    expect_closed(&mut tls, Duration::from_secs(10)).await;

    let answer = read_until_ready(&mut session).await;
    let error = answer.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(error.sqlstate().as_deref(), Some("57014"), "{answer:?}");
}
