//! Finding PostgreSQL binaries: PG_BIN, then `pg_config --bindir`, then the
//! newest Debian-style `/usr/lib/postgresql/<version>/bin`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::PgError;

const VERSIONED_ROOT: &str = "/usr/lib/postgresql";

/// The directory holding initdb, pg_ctl and postgres.
pub(super) fn server_bindir() -> Result<PathBuf, PgError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_initdb(&dir) {
            Ok(dir)
        } else {
            Err(PgError::BadPgBin { dir })
        };
    }
    // On Debian, pg_config may come from libpq-dev without the server next to it.
    if let Some(dir) = pg_config_bindir().filter(|d| has_initdb(d)) {
        return Ok(dir);
    }
    newest_versioned_bindir().ok_or(PgError::BinariesNotFound)
}

/// A client tool (psql, pgbench...) for use against an external server: the
/// first known bindir that has it, else the bare name so PATH decides.
pub(super) fn tool(name: &str) -> PathBuf {
    let dirs = [
        std::env::var_os("PG_BIN").map(PathBuf::from),
        pg_config_bindir(),
        newest_versioned_bindir(),
    ];
    dirs.into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

fn newest_versioned_bindir() -> Option<PathBuf> {
    let root = Path::new(VERSIONED_ROOT);
    let names = fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| has_initdb(&root.join(name).join("bin")));
    Some(root.join(newest_version(names)?).join("bin"))
}

/// The name with the highest numeric version ("9.6" < "15" < "16.1"); other names are ignored.
fn newest_version(names: impl IntoIterator<Item = String>) -> Option<String> {
    names
        .into_iter()
        .filter_map(|name| version_key(&name).map(|key| (key, name)))
        .max()
        .map(|(_, name)| name)
}

fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn newest_version_compares_numerically() {
        assert_eq!(
            newest_version(names(&["9.6", "15", "10"])).as_deref(),
            Some("15")
        );
        assert_eq!(
            newest_version(names(&["16", "16.1", "common"])).as_deref(),
            Some("16.1")
        );
        assert_eq!(newest_version(names(&["common", "x.1"])), None);
        assert_eq!(newest_version(names(&[])), None);
    }

    #[test]
    fn finds_server_binaries_on_this_machine() {
        let dir = server_bindir().unwrap();
        assert!(dir.join("pg_ctl").is_file(), "{}", dir.display());
        assert!(tool("psql").is_absolute());
        assert_eq!(tool("no-such-tool-xyz"), PathBuf::from("no-such-tool-xyz"));
    }
}
