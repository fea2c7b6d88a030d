//! The metrics listener: a minimal HTTP/1.1 server for `/metrics`, `/healthz`
//! and `/readyz`. One request per connection, then `Connection: close`; the
//! three routes do not justify a web framework.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Health;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest request head accepted; a scrape's head is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to accept the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long unread request bytes are drained after responding, so closing
/// with them still queued does not send a reset that destroys the response.
const LINGER: Duration = Duration::from_secs(1);
/// Histograms are drained into their buckets at least this often, so samples
/// recorded between scrapes do not pile up.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (such as running out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The readiness probe behind `/readyz`.
pub type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

/// Bind the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `stop` is
/// cancelled, then wait for the connections in flight to end (they end at
/// once: each also watches `stop`). Also runs the recorder's upkeep.
/// `/healthz` fails once a part in `health` died; `/readyz` then too.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    ready: Ready,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let routes = Arc::new(Routes {
        handle,
        ready,
        health,
    });
    accept_loop(listener, routes, READ_TIMEOUT, stop).await;
}

/// [`serve`] with the head read timeout as a parameter, for tests.
async fn accept_loop(
    listener: TcpListener,
    routes: Arc<Routes>,
    read_timeout: Duration,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let mut upkeep = tokio::time::interval(UPKEEP_PERIOD);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = upkeep.tick() => routes.handle.run_upkeep(),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let routes = Arc::clone(&routes);
                    let stop = stop.clone();
                    tracker.spawn(async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = connection(stream, &routes, read_timeout) => {}
                        }
                        tracing::trace!(%peer, "metrics connection closed");
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics listener: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// What the routes answer from.
struct Routes {
    handle: PrometheusHandle,
    ready: Ready,
    health: Arc<Health>,
}

/// One connection: read a head, answer it, close.
async fn connection(mut stream: TcpStream, routes: &Routes, read_timeout: Duration) {
    let response = match tokio::time::timeout(read_timeout, read_head(&mut stream)).await {
        Err(_) => Response::text(Status::RequestTimeout, "request timeout\n"),
        Ok(Err(error)) => {
            tracing::debug!(%error, "metrics connection: read failed");
            return;
        }
        Ok(Ok(Head::Closed)) => return,
        Ok(Ok(Head::Malformed)) => Response::text(Status::BadRequest, "bad request\n"),
        Ok(Ok(Head::Complete(head))) => match parse_head(&head) {
            Ok(request) => routes.answer(&request),
            Err(Malformed) => Response::text(Status::BadRequest, "bad request\n"),
        },
    };
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response.encode()).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        linger(&mut stream).await;
    }
}

/// The outcome of reading a request head.
enum Head {
    /// The head, through its terminating empty line.
    Complete(Vec<u8>),
    /// The head was too long, or the client stopped sending mid-head.
    Malformed,
    /// The client closed without sending anything.
    Closed,
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(if buf.is_empty() {
                Head::Closed
            } else {
                Head::Malformed
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = head_len(&buf) {
            buf.truncate(len);
            return Ok(Head::Complete(buf));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::Malformed);
        }
    }
}

/// The length of the head through its first empty line, if `buf` holds one.
/// Bare LF line ends are accepted too (RFC 9112 §2.2).
fn head_len(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if byte == b'\n' {
            if matches!(&buf[start..i], b"" | b"\r") {
                return Some(i + 1);
            }
            start = i + 1;
        }
    }
    None
}

/// Drain what the client still sends until it closes, briefly and boundedly.
async fn linger(stream: &mut TcpStream) {
    let mut scratch = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        let mut drained = 0;
        while drained < 16 * MAX_HEAD {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The parts of a request the routes look at.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
}

/// The head is not an HTTP/1.x request.
#[derive(Debug, PartialEq, Eq)]
struct Malformed;

/// Parse a request line and check the header lines' syntax
/// (RFC 9112 §3 and §5); header values are not needed.
fn parse_head(head: &[u8]) -> Result<Request<'_>, Malformed> {
    let text = std::str::from_utf8(head).map_err(|_| Malformed)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next().ok_or(Malformed)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let method_ok = !method.is_empty() && method.bytes().all(is_token_byte);
    let target_ok = target.starts_with('/') && target.bytes().all(|b| b.is_ascii_graphic());
    if !method_ok || !target_ok || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(Malformed);
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, _value) = line.split_once(':').ok_or(Malformed)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Malformed);
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Ok(Request { method, path })
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl Routes {
    fn answer(&self, request: &Request<'_>) -> Response {
        let route = match request.path {
            "/metrics" | "/healthz" | "/readyz" => request.path,
            _ => return Response::text(Status::NotFound, "not found\n"),
        };
        if request.method != "GET" {
            return Response::text(Status::MethodNotAllowed, "method not allowed\n");
        }
        let dead = self.health.dead();
        match route {
            "/metrics" => Response {
                status: Status::Ok,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.handle.render(),
            },
            _ if !dead.is_empty() => {
                let body = format!("stopped: {}\n", dead.join(", "));
                Response::text(Status::ServiceUnavailable, &body)
            }
            "/healthz" => Response::text(Status::Ok, "ok\n"),
            _ if (self.ready)() => Response::text(Status::Ok, "ready\n"),
            _ => Response::text(Status::ServiceUnavailable, "upstream unreachable\n"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    ServiceUnavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::ServiceUnavailable => "503 Service Unavailable",
        }
    }
}

struct Response {
    status: Status,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: Status, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let allow = if self.status == Status::MethodNotAllowed {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status.line(),
            self.content_type,
            self.body.len(),
        );
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::task::JoinHandle;

    use super::*;
    use crate::metrics::{install, PARSE_FAILURES_TOTAL};

    struct Server {
        addr: SocketAddr,
        ready: Arc<AtomicBool>,
        health: Arc<Health>,
        stop: CancellationToken,
        task: JoinHandle<()>,
    }

    async fn start() -> Server {
        start_with(READ_TIMEOUT).await
    }

    async fn start_with(read_timeout: Duration) -> Server {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(true));
        let probe = Arc::clone(&ready);
        let stop = CancellationToken::new();
        let health = Arc::new(Health::default());
        let routes = Arc::new(Routes {
            handle: install().unwrap(),
            ready: Arc::new(move || probe.load(Ordering::SeqCst)),
            health: Arc::clone(&health),
        });
        let task = tokio::spawn(accept_loop(listener, routes, read_timeout, stop.clone()));
        Server {
            addr,
            ready,
            health,
            stop,
            task,
        }
    }

    /// Send `raw`, then read until the server closes the connection.
    async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await
    }

    fn body(response: &str) -> &str {
        response.split_once("\r\n\r\n").unwrap().1
    }

    #[tokio::test]
    async fn metrics_renders_an_incremented_counter() {
        let server = start().await;
        ::metrics::counter!(PARSE_FAILURES_TOTAL).increment(1);
        let response = get(server.addr, "/metrics?name=x").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(response.contains("Connection: close\r\n"));
        let count = body(&response)
            .lines()
            .find_map(|l| l.strip_prefix("indexpilot_parse_failures_total "))
            .expect("the counter is exported");
        assert!(count.parse::<u64>().unwrap() >= 1);
    }

    #[tokio::test]
    async fn healthz_and_readyz_follow_the_probe() {
        let server = start().await;
        let health = get(server.addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(body(&health), "ok\n");
        let ready = get(server.addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(body(&ready), "ready\n");
        server.ready.store(false, Ordering::SeqCst);
        let unready = get(server.addr, "/readyz").await;
        assert!(unready.starts_with("HTTP/1.1 503 "), "{unready}");
        assert_eq!(body(&unready), "upstream unreachable\n");
    }

    #[tokio::test]
    async fn healthz_and_readyz_fail_once_a_part_died() {
        let server = start().await;
        server.health.fail("indexer");
        for path in ["/healthz", "/readyz"] {
            let response = get(server.addr, path).await;
            assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
            assert_eq!(body(&response), "stopped: indexer\n");
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let server = start().await;
        assert!(get(server.addr, "/nope").await.starts_with("HTTP/1.1 404 "));
        let post = exchange(
            server.addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET\r\n"));
        let head = exchange(server.addr, b"HEAD /healthz HTTP/1.0\n\n").await;
        assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    }

    #[tokio::test]
    async fn malformed_requests_get_400_and_a_close() {
        let server = start().await;
        let oversized = [b"GET /".as_slice(), &[b'a'; 3 * MAX_HEAD]].concat();
        let cases: [&[u8]; 5] = [
            &oversized,
            b"\x00\x01\xff garbage\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/2\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        ];
        for raw in cases {
            let response = exchange(server.addr, raw).await;
            assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        }
    }

    #[tokio::test]
    async fn a_head_cut_short_gets_400() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let server = start_with(Duration::from_millis(100)).await;
        let response = exchange(server.addr, b"").await;
        assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    }

    #[tokio::test]
    async fn stop_ends_serve_and_open_connections() {
        let server = start().await;
        let _idle = TcpStream::connect(server.addr).await.unwrap();
        // Let the accept loop pick the idle connection up before stopping.
        assert!(get(server.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200"));
        server.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("serve returns once stopped")
            .unwrap();
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[test]
    fn heads_parse_strictly() {
        let ok = parse_head(b"GET /readyz?x=1 HTTP/1.0\r\nHost: a:1\r\n\r\n");
        assert_eq!(
            ok,
            Ok(Request {
                method: "GET",
                path: "/readyz"
            })
        );
        for bad in [
            &b"GET  /metrics HTTP/1.1\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"G\xc3\xa9T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
            b"\r\n",
        ] {
            assert_eq!(
                parse_head(bad),
                Err(Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_len(b"GET / HTTP/1.1\nA: b\n\n"), Some(21));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
