//! Operating-system plumbing for the harness: the unprivileged server user when
//! running as root, temp dirs, free ports, and running tools with captured output.

use std::ffi::CString;
use std::fs::{self, DirBuilder};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{lchown, DirBuilderExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::PgError;
use super::url;

/// The OS account PostgreSQL runs as when we are root (it refuses to run as root).
#[derive(Clone, Copy, Debug)]
pub(super) struct ServerUser {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

const SERVER_OS_USER: &str = "postgres";

/// `Some` when running as root: the server tools must then switch to `postgres`.
pub(super) fn server_user() -> Result<Option<ServerUser>, PgError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user(SERVER_OS_USER)?
        .map(Some)
        .ok_or(PgError::NoServerUser)
}

/// getpwnam_r rather than getpwnam: tests start servers from several threads at once.
fn lookup_user(name: &str) -> Result<Option<ServerUser>, PgError> {
    let cname = CString::new(name).map_err(|_| PgError::NoServerUser)?;
    let mut buf_len = 16 * 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; buf_len];
        // SAFETY: an all-zero passwd is a valid value of the plain C struct.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf_len` is the buffer's length.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf_len,
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => {
                return Ok(Some(ServerUser {
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }))
            }
            libc::ERANGE if buf_len < 1 << 20 => buf_len *= 2,
            errno => {
                let source = std::io::Error::from_raw_os_error(errno);
                return Err(PgError::io(format!("looking up OS user {name}"))(source));
            }
        }
    }
}

/// Gives `path` and everything below it to the server user.
pub(super) fn chown_tree(path: &Path, user: ServerUser) -> Result<(), PgError> {
    let what = || format!("giving {} to OS user {SERVER_OS_USER}", path.display());
    lchown(path, Some(user.uid), Some(user.gid)).map_err(PgError::io(what()))?;
    if fs::symlink_metadata(path)
        .map_err(PgError::io(what()))?
        .is_dir()
    {
        for entry in fs::read_dir(path).map_err(PgError::io(what()))? {
            chown_tree(&entry.map_err(PgError::io(what()))?.path(), user)?;
        }
    }
    Ok(())
}

/// A fresh, private (0700) directory under the system temp dir.
pub(super) fn create_temp_dir() -> Result<PathBuf, PgError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("indexpilot-pg-{}-{n}-{nanos}", std::process::id());
    let dir = std::env::temp_dir().join(name);
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(PgError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// A port that was free a moment ago; the caller retries if it is taken by the time it binds.
pub(super) fn free_port() -> Result<u16, PgError> {
    let probe = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr();
    probe()
        .map(|addr| addr.port())
        .map_err(PgError::io("finding a free TCP port"))
}

/// A command whose environment has no `PG*` variables, so a developer's PGHOST,
/// PGPORT, PGSSLMODE... cannot redirect or break the harness's tools.
pub(super) fn command(
    program: impl AsRef<std::ffi::OsStr>,
    as_user: Option<ServerUser>,
) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"PG") {
            cmd.env_remove(key);
        }
    }
    if let Some(user) = as_user {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Runs `cmd` to completion; returns its stdout, or an error carrying its stderr.
pub(super) fn run(cmd: &mut Command) -> Result<String, PgError> {
    let command = describe(cmd);
    tracing::debug!(%command, "running");
    let out = cmd.output().map_err(|source| PgError::Spawn {
        command: command.clone(),
        source,
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let output = if stderr.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        stderr
    };
    Err(PgError::Command {
        command,
        status: out.status,
        output,
    })
}

/// The command line for messages, with URL passwords hidden.
fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&url::redact(&arg.to_string_lossy()));
    }
    line
}

/// The last `lines` lines of a (log) file, or a note saying why there are none.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_unique_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let a = create_temp_dir().unwrap();
        let b = create_temp_dir().unwrap();
        assert_ne!(a, b);
        let mode = fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::remove_dir(&a).unwrap();
        fs::remove_dir(&b).unwrap();
    }

    #[test]
    fn run_reports_failure_with_stderr() {
        let err = run(command("sh", None).args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`sh -c echo oops >&2; exit 3` failed"),
            "{msg}"
        );
        assert!(msg.ends_with(": oops"), "{msg}");
        assert_eq!(
            run(command("sh", None).args(["-c", "echo hi"])).unwrap(),
            "hi\n"
        );
    }

    #[test]
    fn describe_redacts_urls() {
        let mut cmd = Command::new("psql");
        cmd.args(["-d", "postgres://u:pw@h/db"]);
        assert_eq!(describe(&cmd), "psql -d postgres://u:***@h/db");
    }

    #[test]
    fn tail_keeps_last_lines() {
        let dir = create_temp_dir().unwrap();
        let file = dir.join("log");
        fs::write(&file, "1\n2\n3\n").unwrap();
        assert_eq!(tail(&file, 2), "2\n3");
        assert_eq!(tail(&file, 10), "1\n2\n3");
        fs::remove_dir_all(&dir).unwrap();
        assert!(tail(&file, 2).starts_with("(could not read"));
    }
}
