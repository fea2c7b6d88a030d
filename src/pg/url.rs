//! `postgres://` connection URLs: building one for a harness server, parsing the
//! one that names an external server, and redacting passwords in error messages.

/// The pieces of a TCP connection that tests need separately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

/// libpq's default when a URL names no port.
const DEFAULT_PORT: u16 = 5432;

pub(super) fn build(c: &ConnInfo) -> String {
    // An IPv6 literal needs brackets, or its colons read as the port separator.
    let host = if c.host.contains(':') {
        format!("[{}]", c.host)
    } else {
        c.host.clone()
    };
    format!(
        "postgres://{}:{}@{host}:{}/{}",
        encode(&c.user),
        encode(&c.password),
        c.port,
        encode(&c.dbname)
    )
}

/// Parses `postgres[ql]://[user[:password]@]host[:port][/dbname][?params]`.
/// Missing user defaults to `postgres`, missing dbname to the user (as libpq does).
pub(super) fn parse(url: &str) -> Result<ConnInfo, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("the URL must start with postgres:// or postgresql://")?;
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (host, port) = split_host_port(hostport)?;
    let user = match decode(user)? {
        u if u.is_empty() => "postgres".to_owned(),
        u => u,
    };
    let dbname = match decode(path)? {
        d if d.is_empty() => user.clone(),
        d => d,
    };
    Ok(ConnInfo {
        host,
        port,
        user,
        password: decode(password)?,
        dbname,
    })
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = match s.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("unclosed '[' in the host")?;
            (host, after.strip_prefix(':'))
        }
        None => match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        },
    };
    if host.is_empty() {
        return Err("no host (unix-socket URLs are not supported)".to_owned());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
    };
    Ok((host.to_owned(), port))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a %-escape decodes to invalid UTF-8".to_owned())
}

/// Hides the password of a `postgres://` argument, so command lines can go into errors and logs.
pub(super) fn redact(arg: &str) -> String {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return arg.to_owned();
    };
    if scheme != "postgres" && scheme != "postgresql" {
        return arg.to_owned();
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return arg.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return arg.to_owned();
    };
    format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> ConnInfo {
        ConnInfo {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            dbname: dbname.into(),
        }
    }

    #[test]
    fn builds_harness_url() {
        let c = info("127.0.0.1", 54321, "postgres", "postgres", "postgres");
        assert_eq!(
            build(&c),
            "postgres://postgres:postgres@127.0.0.1:54321/postgres"
        );
    }

    #[test]
    fn build_encodes_and_brackets() {
        let c = info("::1", 5432, "a b", "p@ss/w:rd", "db");
        assert_eq!(build(&c), "postgres://a%20b:p%40ss%2Fw%3Ard@[::1]:5432/db");
        assert_eq!(parse(&build(&c)).unwrap(), c);
    }

    #[test]
    fn parses_full_url() {
        let c = parse("postgresql://alice:s%40cret@db.example:6543/shop?sslmode=require").unwrap();
        assert_eq!(c, info("db.example", 6543, "alice", "s@cret", "shop"));
    }

    #[test]
    fn parse_applies_libpq_defaults() {
        assert_eq!(
            parse("postgres://bob@h").unwrap(),
            info("h", 5432, "bob", "", "bob")
        );
        assert_eq!(
            parse("postgres://h/").unwrap(),
            info("h", 5432, "postgres", "", "postgres")
        );
    }

    #[test]
    fn parse_rejects_bad_urls() {
        for bad in [
            "mysql://h/db",
            "postgres:///db",
            "postgres://u@h:port/db",
            "postgres://[::1/db",
            "postgres://u:%4@h/db",
            "postgres://u:%ZZ@h/db",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db?x=y"),
            "postgres://u:***@h:1/db?x=y"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgresql://u:p@h"), "postgresql://u:***@h");
        assert_eq!(redact("select 'a://b:c@d'"), "select 'a://b:c@d'");
        assert_eq!(redact("-At"), "-At");
    }
}
