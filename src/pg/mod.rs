//! Throwaway PostgreSQL for integration tests and the `demo` command: starts a
//! private cluster on a free port (or names an external one) and removes it on drop.
//!
//! # Layout
//!
//! - `locate`: finding the server binaries
//! - `server`: the owned cluster's life cycle (initdb, pg_ctl, cleanup)
//! - `conf`: pure text of pg_hba.conf and postgresql.conf settings
//! - `tls`: a self-signed certificate via the `openssl` CLI
//! - `os`: server OS user, temp dirs, ports, running tools
//! - `url`: building and parsing `postgres://` URLs
//!
//! ```no_run
//! use indexpilot::pg::{AuthMethod, PgOptions, TestPg};
//!
//! let pg = TestPg::start(PgOptions { auth: AuthMethod::Md5, ..PgOptions::default() })?;
//! assert_eq!(pg.psql("select 1")?, "1\n");
//! println!("connect to {}", pg.url());
//! # Ok::<(), indexpilot::pg::PgError>(())
//! ```

mod conf;
mod error;
mod locate;
mod os;
mod server;
mod tls;
mod url;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::PgError;
use server::OwnServer;
use url::ConnInfo;

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const PASSWORD: &str = "postgres";
const DBNAME: &str = "postgres";
/// No psqlrc, quiet, stop at the first error, unaligned tuples only.
const PSQL_FLAGS: [&str; 5] = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"];
/// Names an existing server that tests should use instead of starting their own.
const EXTERNAL_URL_ENV: &str = "INDEXPILOT_TEST_DATABASE_URL";

/// How TCP clients authenticate; unix-socket connections are always trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    #[default]
    Trust,
    /// The superuser's password is stored as an md5 hash, so md5 really is used.
    Md5,
    Scram,
}

#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// TCP authentication method. Default: `Trust`.
    pub auth: AuthMethod,
    /// Serve TLS with a self-signed certificate for `localhost`/127.0.0.1. Default: off.
    pub ssl: bool,
    /// Extra postgresql.conf settings as raw, unquoted values (the harness quotes
    /// them); applied after the harness's own, so they win. Default: none.
    pub settings: Vec<(String, String)>,
}

/// A PostgreSQL server for a test: one this harness started (stopped and deleted
/// on drop) or an external one named by `INDEXPILOT_TEST_DATABASE_URL` (left alone).
pub struct TestPg {
    conn: ConnInfo,
    server: Server,
}

enum Server {
    Own(OwnServer),
    External { url: String },
}

impl TestPg {
    /// Starts a private cluster; blocks until it accepts connections.
    pub fn start(opts: PgOptions) -> Result<TestPg, PgError> {
        let server = OwnServer::start(locate::server_bindir()?, opts)?;
        let conn = ConnInfo {
            host: HOST.to_owned(),
            port: server.port(),
            user: SUPERUSER.to_owned(),
            password: PASSWORD.to_owned(),
            dbname: DBNAME.to_owned(),
        };
        Ok(TestPg {
            conn,
            server: Server::Own(server),
        })
    }

    /// An existing server named by env INDEXPILOT_TEST_DATABASE_URL (a postgres:// URL: user,
    /// password, host, port, dbname) if set, else start(PgOptions::default()). An external
    /// server is never stopped or removed.
    pub fn shared_or_start() -> Result<TestPg, PgError> {
        match std::env::var(EXTERNAL_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => TestPg::external(url.trim()),
            _ => TestPg::start(PgOptions::default()),
        }
    }

    fn external(url: &str) -> Result<TestPg, PgError> {
        let conn = url::parse(url).map_err(|reason| PgError::BadUrl { reason })?;
        Ok(TestPg {
            conn,
            server: Server::External {
                url: url.to_owned(),
            },
        })
    }

    pub fn host(&self) -> &str {
        &self.conn.host
    }

    pub fn port(&self) -> u16 {
        self.conn.port
    }

    /// The unix-socket directory of an owned server.
    pub fn socket_dir(&self) -> Option<&Path> {
        match &self.server {
            Server::Own(s) => Some(s.dir()),
            Server::External { .. } => None,
        }
    }

    pub fn user(&self) -> &str {
        &self.conn.user
    }

    pub fn password(&self) -> &str {
        &self.conn.password
    }

    pub fn dbname(&self) -> &str {
        &self.conn.dbname
    }

    /// `postgres://user:password@host:port/dbname`; an external server's URL verbatim.
    pub fn url(&self) -> String {
        match &self.server {
            Server::Own(_) => url::build(&self.conn),
            Server::External { url } => url.clone(),
        }
    }

    /// A PostgreSQL tool, e.g. `bin("pgbench")`. For an external server: the tool
    /// in the located bindir, else the bare name for PATH to resolve.
    pub fn bin(&self, tool: &str) -> PathBuf {
        match &self.server {
            Server::Own(s) => s.bindir().join(tool),
            Server::External { .. } => locate::tool(tool),
        }
    }

    pub fn log_path(&self) -> Option<PathBuf> {
        match &self.server {
            Server::Own(s) => Some(s.log_path()),
            Server::External { .. } => None,
        }
    }

    /// The self-signed certificate an owned server started with `ssl: true` serves;
    /// clients that verify can trust it.
    pub fn ssl_cert_path(&self) -> Option<&Path> {
        match &self.server {
            Server::Own(s) => s.tls_cert(),
            Server::External { .. } => None,
        }
    }

    /// `pg_ctl stop -m immediate`, which simulates a crash. No-op for an external server.
    /// The harness runs with `synchronous_commit=off`, so commits from the last moments
    /// before the crash may be lost; use `SET synchronous_commit = on` for data that must survive.
    pub fn stop_immediate(&mut self) -> Result<(), PgError> {
        match &self.server {
            Server::Own(s) => s.stop_immediate(),
            Server::External { .. } => Ok(()),
        }
    }

    /// Restarts on the same port after `stop_immediate` (with crash recovery).
    pub fn start_again(&mut self) -> Result<(), PgError> {
        match &self.server {
            Server::Own(s) => s.pg_ctl_start(),
            Server::External { .. } => Ok(()),
        }
    }

    /// Run SQL via psql over the unix socket as superuser (-X -q -v ON_ERROR_STOP=1 -At);
    /// returns stdout. An external server is reached through its URL instead.
    pub fn psql(&self, sql: &str) -> Result<String, PgError> {
        match &self.server {
            Server::Own(s) => s.psql(sql),
            Server::External { url } => {
                let mut psql = os::command(locate::tool("psql"), None);
                psql.args(PSQL_FLAGS).args(["-d", url, "-c", sql]);
                os::run(&mut psql)
            }
        }
    }
}
