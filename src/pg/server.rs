//! A cluster the harness owns: initdb into a temp dir, start/stop with pg_ctl,
//! and removal of everything on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::conf::{self, ServerConf};
use super::error::PgError;
use super::os::{self, ServerUser};
use super::tls::{self, TlsFiles};
use super::{PgOptions, DBNAME, PASSWORD, PSQL_FLAGS, SUPERUSER};

/// Ports can be taken between probing and binding; a few fresh tries make that harmless.
const START_ATTEMPTS: u32 = 3;
/// Seconds pg_ctl waits for start-up or shutdown.
const PG_CTL_WAIT: &str = "60";
/// How much of server.log a start failure quotes.
const LOG_TAIL_LINES: usize = 40;

pub(super) struct OwnServer {
    bindir: PathBuf,
    /// Temp dir: data/, server.log, the unix socket, TLS files.
    dir: PathBuf,
    user: Option<ServerUser>,
    opts: PgOptions,
    /// postgresql.conf as initdb wrote it; our block is appended on each (re)write.
    base_conf: String,
    tls: Option<TlsFiles>,
    port: u16,
}

impl OwnServer {
    /// Creates, configures and starts a cluster; on error the temp dir is already gone.
    pub(super) fn start(bindir: PathBuf, opts: PgOptions) -> Result<Self, PgError> {
        let user = os::server_user()?;
        let dir = os::create_temp_dir()?;
        // From here on, Drop stops whatever started and removes the dir.
        let mut server = OwnServer {
            bindir,
            dir,
            user,
            opts,
            base_conf: String::new(),
            tls: None,
            port: 0,
        };
        server.init()?;
        server.launch()?;
        if let Some(sql) = conf::password_sql(server.opts.auth) {
            server.psql(&sql)?;
        }
        Ok(server)
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub(super) fn tls_cert(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.cert.as_path())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// initdb, then the files that do not depend on the port.
    fn init(&mut self) -> Result<(), PgError> {
        let pwfile = self.dir.join("pwfile");
        write(&pwfile, PASSWORD)?;
        self.give_to_server_user()?;
        let mut initdb = self.server_tool("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .arg("--auth=trust")
            .arg(format!("--pwfile={}", pwfile.display()));
        os::run(&mut initdb)?;
        let conf_path = self.data_dir().join("postgresql.conf");
        self.base_conf = fs::read_to_string(&conf_path)
            .map_err(PgError::io(format!("reading {}", conf_path.display())))?;
        write(
            &self.data_dir().join("pg_hba.conf"),
            &conf::hba(self.opts.auth),
        )?;
        if self.opts.ssl {
            self.tls = Some(tls::self_signed(&self.dir)?);
        }
        self.give_to_server_user()
    }

    /// Starts on a fresh free port, retrying with another port if start-up fails.
    fn launch(&mut self) -> Result<(), PgError> {
        let mut attempt = 1;
        loop {
            self.port = os::free_port()?;
            self.write_conf()?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= START_ATTEMPTS => return Err(e),
                Err(e) => tracing::debug!(error = %e, attempt, "PostgreSQL start failed; retrying"),
            }
            // A start that timed out may have left a postmaster behind.
            self.stop_if_running();
            attempt += 1;
        }
    }

    fn write_conf(&self) -> Result<(), PgError> {
        let block = conf::settings(&ServerConf {
            port: self.port,
            socket_dir: &self.dir,
            auth: self.opts.auth,
            tls: self.tls.as_ref(),
            extra: &self.opts.settings,
        });
        write(
            &self.data_dir().join("postgresql.conf"),
            &format!("{}{block}", self.base_conf),
        )
    }

    /// `pg_ctl start -w`; on failure the error quotes the end of server.log.
    pub(super) fn pg_ctl_start(&self) -> Result<(), PgError> {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", PG_CTL_WAIT, "start"]);
        os::run(&mut pg_ctl).map(drop).map_err(|e| PgError::Start {
            port: self.port,
            reason: e.to_string(),
            log: self.log_path(),
            tail: os::tail(&self.log_path(), LOG_TAIL_LINES),
        })
    }

    /// `pg_ctl stop -m immediate`: no shutdown checkpoint, as after a crash.
    pub(super) fn stop_immediate(&self) -> Result<(), PgError> {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir()).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_WAIT,
            "stop",
        ]);
        os::run(&mut pg_ctl).map(drop)
    }

    /// Best effort, for cleanup paths: stops the postmaster if its pid file exists.
    fn stop_if_running(&self) {
        if !self.data_dir().join("postmaster.pid").exists() {
            return;
        }
        if let Err(e) = self.stop_immediate() {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not stop test PostgreSQL");
        }
    }

    /// psql as superuser over the unix socket, which pg_hba.conf always trusts.
    pub(super) fn psql(&self, sql: &str) -> Result<String, PgError> {
        let mut psql = os::command(self.bindir.join("psql"), None);
        psql.current_dir(&self.dir)
            .args(PSQL_FLAGS)
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", DBNAME])
            .args(["-c", sql]);
        os::run(&mut psql)
    }

    /// A server tool run as the server user, from a directory it can enter.
    fn server_tool(&self, name: &str) -> Command {
        let mut cmd = os::command(self.bindir.join(name), self.user);
        cmd.current_dir(&self.dir);
        cmd
    }

    fn give_to_server_user(&self) -> Result<(), PgError> {
        match self.user {
            Some(user) => os::chown_tree(&self.dir, user),
            None => Ok(()),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop_if_running();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not remove test PostgreSQL dir");
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), PgError> {
    fs::write(path, contents).map_err(PgError::io(format!("writing {}", path.display())))
}
