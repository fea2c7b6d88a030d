//! Real external clients for integration tests: libpq tools (psql, pgbench)
//! pointed at a port through `PG*` variables only, Python driver scripts
//! under `tests/py/`, and scratch directories removed on drop. Every run has
//! a deadline, so a hanging client fails the test instead of stalling it.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indexpilot::pg::TestPg;
use tokio::process::Command;

/// Long enough for pgbench on a loaded 2-core machine, short enough to
/// turn a hang into a failure.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(180);

/// A private temporary directory, deleted with everything in it on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ip-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write `contents` to `name` and return its path as a string (for
    /// embedding in psql scripts).
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path.to_str().expect("UTF-8 scratch path").to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for localhost/127.0.0.1, for the proxy's
/// `tls.cert` and `tls.key`; returns the PEM files' paths.
pub fn proxy_certificate(dir: &Scratch) -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let generated = rcgen::generate_simple_self_signed(names).expect("generate certificate");
    let cert = dir.write("proxy.crt", generated.cert.pem());
    let key = dir.write("proxy.key", generated.key_pair.serialize_pem());
    (cert, key)
}

/// A libpq tool of `pg`'s installation (`psql`, `pgbench`) that connects to
/// `127.0.0.1:port` as `pg`'s superuser. Inherited `PG*` variables are
/// removed so that nothing but these settings (plus what the test adds)
/// decides how the tool connects.
pub fn libpq_tool(pg: &TestPg, tool: &str, port: u16) -> Command {
    let mut cmd = Command::new(pg.bin(tool));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&name);
        }
    }
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", pg.user())
        .env("PGPASSWORD", pg.password())
        .env("PGDATABASE", pg.dbname())
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// `psql -X -q -v ON_ERROR_STOP=1 -At` through `port`; add `-c`/`-f` args.
pub fn psql(pg: &TestPg, port: u16) -> Command {
    let mut cmd = libpq_tool(pg, "psql", port);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"]);
    cmd
}

/// Run `cmd` to completion, capturing its output; panic after `deadline`.
pub async fn run_within(cmd: &mut Command, deadline: Duration, what: &str) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {what}: {e}")),
        // Dropping the future drops the child, which kills it (kill_on_drop).
        Err(_) => panic!("{what} did not finish within {deadline:?}"),
    }
}

/// Run `cmd` within [`TOOL_DEADLINE`], insist on exit status 0, return stdout.
pub async fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = run_within(cmd, TOOL_DEADLINE, what).await;
    assert!(out.status.success(), "{what} failed: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what}: non-UTF-8 stdout: {e}"))
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `python3 tests/py/<script> <args...>`: insist on exit status 0 and
/// return stdout. A missing driver module makes the script exit non-zero
/// with an install hint, which fails the test.
pub async fn run_python(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    run_ok(&mut cmd, &format!("python3 {script}")).await
}
