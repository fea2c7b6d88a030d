//! Views over the few messages the proxy decodes (message bodies, without the
//! 5-byte header), and the messages the proxy writes itself.
//! Formats: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

use bytes::{Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message;

use super::codec::put_message;

/// Split a NUL-terminated string off the front of `buf`.
fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = buf.iter().position(|&b| b == 0)?;
    Some((&buf[..end], &buf[end + 1..]))
}

/// Query ('Q'): the SQL text.
pub fn query_text(body: &[u8]) -> Option<&[u8]> {
    cstr(body).map(|(sql, _)| sql)
}

/// Parse ('P'): statement name and SQL text.
pub fn parse_stmt(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (sql, _) = cstr(rest)?;
    Some((name, sql))
}

/// Bind ('B'): the statement name (after the portal name).
pub fn bind_statement(body: &[u8]) -> Option<&[u8]> {
    let (_portal, rest) = cstr(body)?;
    cstr(rest).map(|(stmt, _)| stmt)
}

/// Close ('C', client side): `Some(name)` when a prepared statement is closed.
pub fn close_statement(body: &[u8]) -> Option<&[u8]> {
    let (&kind, rest) = body.split_first()?;
    if kind != b'S' {
        return None;
    }
    cstr(rest).map(|(name, _)| name)
}

/// ErrorResponse ('E', server side): true when its severity is FATAL or PANIC,
/// i.e. the server is about to close the connection.
pub fn error_is_fatal(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let Some((value, tail)) = cstr(tail) else {
            break;
        };
        // 'V' is the non-localized severity (9.6+); 'S' may be localized.
        if code == b'V' || code == b'S' {
            return value == b"FATAL" || value == b"PANIC";
        }
        rest = tail;
    }
    false
}

/// CommandComplete ('C', server side): the row count at the end of the
/// tag ("SELECT 5", "INSERT 0 3", "UPDATE 2"); 0 when there is none.
pub fn command_rows(body: &[u8]) -> u64 {
    let tag = cstr(body).map_or(body, |(t, _)| t);
    let last = tag.rsplit(|&b| b == b' ').next().unwrap_or_default();
    std::str::from_utf8(last)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

const AUTH_SASL: u32 = 10;
const SCRAM_PLUS: &[u8] = b"SCRAM-SHA-256-PLUS";

/// AuthenticationSASL ('R', code 10) without `SCRAM-SHA-256-PLUS`: returns
/// the rewritten whole message, or `None` when nothing needs to change.
/// Channel binding would bind to the proxy's certificate, not the server's.
pub fn strip_scram_plus(body: &[u8]) -> Option<BytesMut> {
    if body.len() < 4 || u32::from_be_bytes([body[0], body[1], body[2], body[3]]) != AUTH_SASL {
        return None;
    }
    let mut mechs = Vec::new();
    let mut rest = &body[4..];
    while let Some((name, tail)) = cstr(rest) {
        if name.is_empty() {
            break;
        }
        mechs.push(name);
        rest = tail;
    }
    if !mechs.contains(&SCRAM_PLUS) {
        return None;
    }
    let mut new_body = AUTH_SASL.to_be_bytes().to_vec();
    for m in mechs.into_iter().filter(|m| *m != SCRAM_PLUS) {
        new_body.extend_from_slice(m);
        new_body.push(0);
    }
    new_body.push(0);
    let mut out = BytesMut::new();
    put_message(&mut out, b'R', &new_body);
    Some(out)
}

/// An ErrorResponse the proxy sends on its own behalf.
pub fn error_response(severity: &str, sqlstate: &str, message: &str) -> Bytes {
    let fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', sqlstate.to_string()),
        (b'M', message.to_string()),
    ];
    let mut buf = BytesMut::new();
    // Encoding into a BytesMut cannot fail for these field types.
    ErrorResponse::new(fields)
        .encode(&mut buf)
        .expect("encoding an ErrorResponse into memory");
    buf.freeze()
}

/// A FATAL ErrorResponse: the proxy closes the connection after sending it.
pub fn fatal(sqlstate: &str, message: &str) -> Bytes {
    error_response("FATAL", sqlstate, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_parse_bind_close() {
        assert_eq!(query_text(b"select 1\0"), Some(&b"select 1"[..]));
        assert_eq!(
            parse_stmt(b"s1\0select $1\0\0\0"),
            Some((&b"s1"[..], &b"select $1"[..]))
        );
        assert_eq!(bind_statement(b"\0s1\0\0\0"), Some(&b"s1"[..]));
        assert_eq!(close_statement(b"Ss1\0"), Some(&b"s1"[..]));
        assert_eq!(close_statement(b"Pp1\0"), None);
        assert_eq!(query_text(b"no terminator"), None);
    }

    #[test]
    fn command_complete_rows() {
        assert_eq!(command_rows(b"SELECT 5\0"), 5);
        assert_eq!(command_rows(b"INSERT 0 3\0"), 3);
        assert_eq!(command_rows(b"CREATE TABLE\0"), 0);
    }

    #[test]
    fn fatal_severity() {
        assert!(error_is_fatal(b"SFATAL\0VFATAL\0C57P01\0Mbye\0\0"));
        assert!(!error_is_fatal(b"SERROR\0VERROR\0C42P01\0Mno\0\0"));
        assert!(!error_is_fatal(b""));
    }

    #[test]
    fn strips_plus_only_when_present() {
        let mut body = AUTH_SASL.to_be_bytes().to_vec();
        body.extend_from_slice(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let out = strip_scram_plus(&body).unwrap();
        let mut want_body = AUTH_SASL.to_be_bytes().to_vec();
        want_body.extend_from_slice(b"SCRAM-SHA-256\0\0");
        let mut want = BytesMut::new();
        put_message(&mut want, b'R', &want_body);
        assert_eq!(out, want);
        assert!(strip_scram_plus(&want_body).is_none());
        assert!(strip_scram_plus(&5u32.to_be_bytes()).is_none());
    }

    #[test]
    fn error_response_layout() {
        let e = fatal("08006", "gone");
        assert_eq!(e[0], b'E');
        let len = u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize;
        assert_eq!(len + 1, e.len());
        assert!(error_is_fatal(&e[5..]));
        assert!(e.windows(6).any(|w| w == b"C08006"));
    }
}
