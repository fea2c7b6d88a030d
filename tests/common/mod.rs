//! Shared set-up for integration tests: a real PostgreSQL from the library's
//! harness, the proxy in-process (or as a child process) in front of it, and
//! condition waits with deadlines.
#![allow(dead_code)]

pub mod tools;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexpilot::config::Config;
use indexpilot::pg::TestPg;
use indexpilot::proxy::observe::ObserveStats;
use indexpilot::proxy::Proxy;
use indexpilot::shutdown::Shutdown;

/// A proxy running in this test's runtime.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ObserveStats>,
    pub clients: Arc<AtomicUsize>,
    pub workload: Arc<indexpilot::stats::Stats>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// libpq-style connection string through the proxy.
    pub fn conninfo(&self, pg: &TestPg) -> String {
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname={}",
            self.port(),
            pg.user(),
            pg.password(),
            pg.dbname()
        )
    }

    pub fn url(&self, pg: &TestPg) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            pg.user(),
            pg.password(),
            self.port(),
            pg.dbname()
        )
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.now();
    }
}

/// Start the proxy in front of `pg` with extra `key=value` overrides.
pub async fn start_proxy(pg: &TestPg, extra: &[(&str, &str)]) -> TestProxy {
    start_proxy_to(&format!("postgres://{}:{}", pg.host(), pg.port()), extra).await
}

/// The proxy as a separate process (for memory and signal tests).
pub struct ProxyProcess {
    pub child: Child,
    pub port: u16,
}

impl ProxyProcess {
    pub fn start(pg: &TestPg, extra: &[&str]) -> ProxyProcess {
        ProxyProcess::start_logging_to(pg, extra, Stdio::null())
    }

    /// As [`ProxyProcess::start`], with stderr a pipe whose reader is gone
    /// before the proxy writes its first line (a log shipper that died):
    /// every log write fails with EPIPE.
    pub fn start_with_closed_stderr(pg: &TestPg, extra: &[&str]) -> ProxyProcess {
        ProxyProcess::start_logging_to(pg, extra, Stdio::piped())
    }

    fn start_logging_to(pg: &TestPg, extra: &[&str], stderr: Stdio) -> ProxyProcess {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_indexpilot"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--upstream",
                &format!("postgres://{}:{}", pg.host(), pg.port()),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn indexpilot");
        drop(child.stderr.take());
        wait_until(Duration::from_secs(20), "proxy process accepts", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        ProxyProcess { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Poll `cond` until it holds; panic with `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async variant of [`wait_until`].
pub async fn wait_for(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connect with tokio-postgres (no TLS) and drive the connection in a task.
pub async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A throwaway server, started in a blocking-friendly way.
pub fn start_pg(opts: indexpilot::pg::PgOptions) -> TestPg {
    TestPg::start(opts).expect("start throwaway PostgreSQL")
}

/// Start the proxy in front of any upstream address (e.g. a closed port),
/// with extra `key=value` overrides.
pub async fn start_proxy_to(upstream: &str, extra: &[(&str, &str)]) -> TestProxy {
    let mut pairs = vec![("listen", "127.0.0.1:0"), ("upstream", upstream)];
    pairs.extend_from_slice(extra);
    let config = Arc::new(Config::from_overrides(&pairs).expect("valid test config"));
    let proxy = Proxy::bind(config).await.expect("proxy binds");
    let addr = proxy.local_addr();
    let stats = proxy.observe_stats();
    let clients = proxy.client_gauge();
    let workload = proxy.workload();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(proxy.run(shutdown.clone()));
    TestProxy {
        addr,
        stats,
        clients,
        workload,
        shutdown,
        task,
    }
}

/// A plain HTTP GET on 127.0.0.1 (the metrics and health endpoint): the
/// whole response, status line and headers included.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
