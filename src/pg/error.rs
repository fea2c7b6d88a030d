//! Errors of the throwaway-PostgreSQL harness: each names the command or file
//! that failed and carries what the tool printed, so a failing test explains itself.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found via PG_BIN, `pg_config --bindir` \
         or /usr/lib/postgresql/*/bin: install the PostgreSQL server package, \
         e.g. `apt-get install postgresql-15`, or set PG_BIN to its bin directory"
    )]
    BinariesNotFound,

    #[error("PG_BIN={} has no initdb; point PG_BIN at the PostgreSQL server bin directory", .dir.display())]
    BadPgBin { dir: PathBuf },

    #[error(
        "running as root, but OS user `postgres` does not exist (PostgreSQL refuses to run as \
         root); create it, e.g. `useradd --system postgres`"
    )]
    NoServerUser,

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: ExitStatus,
        /// stderr, or stdout when stderr was empty.
        output: String,
    },

    #[error("PostgreSQL did not start on port {port}: {reason}\n--- tail of {} ---\n{tail}", .log.display())]
    Start {
        port: u16,
        reason: String,
        log: PathBuf,
        tail: String,
    },

    #[error("INDEXPILOT_TEST_DATABASE_URL is unusable ({reason}); expected postgres://user:password@host:port/dbname")]
    BadUrl { reason: String },
}

impl PgError {
    /// Adapter for `map_err` that says what was being attempted.
    pub(super) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> PgError {
        let what = what.into();
        move |source| PgError::Io { what, source }
    }
}
