//! Pure text the harness writes into a fresh cluster: pg_hba.conf, the block
//! appended to postgresql.conf, and the SQL that re-stores the superuser password.

use std::path::Path;

use super::tls::TlsFiles;
use super::{AuthMethod, PASSWORD, SUPERUSER};

impl AuthMethod {
    /// The pg_hba.conf method keyword.
    pub(super) fn hba_method(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::Md5 => "md5",
            AuthMethod::Scram => "scram-sha-256",
        }
    }

    /// How the password must be stored for the method to work; `None` when unused.
    fn password_encryption(self) -> Option<&'static str> {
        match self {
            AuthMethod::Trust => None,
            AuthMethod::Md5 => Some("md5"),
            AuthMethod::Scram => Some("scram-sha-256"),
        }
    }
}

/// Everything that varies in the appended postgresql.conf block.
pub(super) struct ServerConf<'a> {
    pub port: u16,
    pub socket_dir: &'a Path,
    pub auth: AuthMethod,
    pub tls: Option<&'a TlsFiles>,
    pub extra: &'a [(String, String)],
}

/// Local socket connections are always trusted so the harness itself (psql as
/// superuser) can connect whatever TCP method a test is exercising.
pub(super) fn hba(auth: AuthMethod) -> String {
    let method = auth.hba_method();
    format!(
        "# written by the indexpilot test harness\n\
         local all all trust\n\
         host all all 127.0.0.1/32 {method}\n\
         host all all ::1/128 {method}\n"
    )
}

/// The settings block; caller settings come last so they override ours.
pub(super) fn settings(c: &ServerConf<'_>) -> String {
    let socket_dir = c.socket_dir.to_string_lossy();
    let mut pairs: Vec<(&str, String)> = vec![
        ("listen_addresses", "127.0.0.1".into()),
        ("port", c.port.to_string()),
        ("unix_socket_directories", socket_dir.into_owned()),
        // Durability is worthless for a throwaway cluster and costs test time.
        ("fsync", "off".into()),
        ("synchronous_commit", "off".into()),
        ("full_page_writes", "off".into()),
        ("max_connections", "200".into()),
    ];
    if let Some(enc) = c.auth.password_encryption() {
        // Roles that tests create later get the same password format as the superuser.
        pairs.push(("password_encryption", enc.into()));
    }
    if let Some(tls) = c.tls {
        pairs.push(("ssl", "on".into()));
        pairs.push(("ssl_cert_file", tls.cert.to_string_lossy().into_owned()));
        pairs.push(("ssl_key_file", tls.key.to_string_lossy().into_owned()));
    }
    pairs.extend(c.extra.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let mut out = String::from("\n# appended by the indexpilot test harness\n");
    for (key, value) in pairs {
        out.push_str(&format!("{key} = {}\n", quote(&value)));
    }
    out
}

/// SQL that re-stores the superuser password in the format `auth` needs.
/// initdb hashes `--pwfile` with the server default (SCRAM), so without this an
/// md5 hba line would silently authenticate with SCRAM instead.
pub(super) fn password_sql(auth: AuthMethod) -> Option<String> {
    let enc = auth.password_encryption()?;
    Some(format!(
        "SET password_encryption = {}; ALTER ROLE {SUPERUSER} PASSWORD {};",
        quote(enc),
        quote(PASSWORD)
    ))
}

/// Single-quotes a value; postgresql.conf accepts quoted values for every type.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn hba_trusts_socket_and_uses_method_on_tcp() {
        let text = hba(AuthMethod::Scram);
        let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "local all all trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
            ]
        );
        assert!(hba(AuthMethod::Md5).contains("127.0.0.1/32 md5\n"));
        assert!(hba(AuthMethod::Trust).contains("::1/128 trust\n"));
    }

    #[test]
    fn settings_quote_values_and_put_extras_last() {
        let extra = vec![
            ("work_mem".to_owned(), "64MB".to_owned()),
            ("application_name".to_owned(), "it's".to_owned()),
        ];
        let text = settings(&ServerConf {
            port: 6000,
            socket_dir: Path::new("/tmp/x"),
            auth: AuthMethod::Trust,
            tls: None,
            extra: &extra,
        });
        assert!(text.contains("port = '6000'\n"));
        assert!(text.contains("unix_socket_directories = '/tmp/x'\n"));
        assert!(text.contains("listen_addresses = '127.0.0.1'\n"));
        assert!(text.contains("fsync = 'off'\n"));
        assert!(!text.contains("password_encryption"));
        assert!(!text.contains("ssl"));
        assert!(text.ends_with("work_mem = '64MB'\napplication_name = 'it''s'\n"));
    }

    #[test]
    fn settings_enable_tls_and_password_format() {
        let tls = TlsFiles {
            cert: PathBuf::from("/d/server.crt"),
            key: PathBuf::from("/d/server.key"),
        };
        let text = settings(&ServerConf {
            port: 1,
            socket_dir: Path::new("/d"),
            auth: AuthMethod::Md5,
            tls: Some(&tls),
            extra: &[],
        });
        assert!(text.contains("password_encryption = 'md5'\n"));
        assert!(text.contains(
            "ssl = 'on'\nssl_cert_file = '/d/server.crt'\nssl_key_file = '/d/server.key'\n"
        ));
    }

    #[test]
    fn password_sql_per_method() {
        assert_eq!(password_sql(AuthMethod::Trust), None);
        assert_eq!(
            password_sql(AuthMethod::Md5).unwrap(),
            "SET password_encryption = 'md5'; ALTER ROLE postgres PASSWORD 'postgres';"
        );
        assert!(password_sql(AuthMethod::Scram)
            .unwrap()
            .starts_with("SET password_encryption = 'scram-sha-256';"));
    }
}
