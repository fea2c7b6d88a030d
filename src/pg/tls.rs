//! A self-signed server certificate for a harness cluster, made with the
//! `openssl` CLI so the library needs no certificate-generation dependency.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::PgError;
use super::os;

/// Certificate and private key, both PEM.
#[derive(Clone, Debug)]
pub(super) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `server.crt` and `server.key` into `dir`. The key is mode 0600, which
/// PostgreSQL insists on; the caller gives both files to the server user.
pub(super) fn self_signed(dir: &Path) -> Result<TlsFiles, PgError> {
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    let mut cmd = os::command("openssl", None);
    cmd.current_dir(dir)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        // Clients that verify (rustls) match names against the SAN, never the CN.
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert);
    os::run(&mut cmd)?;
    fs::set_permissions(&files.key, fs::Permissions::from_mode(0o600))
        .map_err(PgError::io(format!("restricting {}", files.key.display())))?;
    Ok(files)
}
