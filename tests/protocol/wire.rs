//! Hand-built protocol messages over a socket (plain TCP or TLS), for what
//! no driver will send. Every read has a deadline, so a proxy that hangs fails the test.
//! Formats: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read may take before the test fails.
pub const IO_DEADLINE: Duration = Duration::from_secs(10);

pub const PROTOCOL_3_0: u32 = 196608;
pub const PROTOCOL_3_2: u32 = 196610;
pub const SSL_REQUEST: u32 = 80877103;
pub const GSSENC_REQUEST: u32 = 80877104;

/// One backend message: type byte and body (without the length).
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// A field of an ErrorResponse or NoticeResponse (`b'C'` = SQLSTATE).
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }

    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// The NUL-separated strings of the body (ParameterStatus, DataRow text…).
    pub fn cstrings(&self) -> Vec<String> {
        self.body
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// The first column of a DataRow, as text.
    pub fn first_column(&self) -> Option<String> {
        assert_eq!(self.tag, b'D', "not a DataRow: {self:?}");
        let len = i32::from_be_bytes(self.body.get(2..6)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        Some(String::from_utf8_lossy(self.body.get(6..6 + len)?).into_owned())
    }
}

/// A typed message: tag, i32 length counting itself, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A simple Query ('Q').
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &[sql.as_bytes(), b"\0"].concat())
}

/// A StartupMessage with the given protocol version and parameters.
pub fn startup_packet(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// An 8-byte SSLRequest / GSSENCRequest.
pub fn special_request(code: u32) -> Vec<u8> {
    [8u32.to_be_bytes(), code.to_be_bytes()].concat()
}

/// Parse/Bind/Execute/Sync with one text parameter per execution: an
/// extended-protocol pipeline, all written at once.
pub fn pipeline(stmt: &str, sql: &str, params: &[&str]) -> Vec<u8> {
    let mut out = message(
        b'P',
        &[stmt.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat(),
    );
    for p in params {
        let mut bind = vec![0u8]; // unnamed portal
        bind.extend_from_slice(stmt.as_bytes());
        bind.push(0);
        bind.extend_from_slice(&0u16.to_be_bytes()); // parameters in text
        bind.extend_from_slice(&1u16.to_be_bytes());
        bind.extend_from_slice(&(p.len() as u32).to_be_bytes());
        bind.extend_from_slice(p.as_bytes());
        bind.extend_from_slice(&0u16.to_be_bytes()); // results in text
        out.extend(message(b'B', &bind));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
        out.extend(message(b'S', &[]));
    }
    out
}

pub async fn connect_raw(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .expect("TCP connect to proxy")
}

pub async fn send(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write to proxy");
}

/// The next message, or `None` at a clean end of stream between messages.
pub async fn read_msg(stream: &mut (impl AsyncRead + Unpin)) -> Option<Msg> {
    let read = async {
        let mut tag = [0u8; 1];
        if stream.read(&mut tag).await.expect("read from proxy") == 0 {
            return None;
        }
        let len = stream.read_u32().await.expect("message length") as usize;
        assert!(len >= 4, "server sent length {len}");
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).await.expect("message body");
        Some(Msg { tag: tag[0], body })
    };
    tokio::time::timeout(IO_DEADLINE, read)
        .await
        .expect("timed out reading a message from the proxy")
}

/// Messages up to and including the next ReadyForQuery.
pub async fn read_until_ready(stream: &mut (impl AsyncRead + Unpin)) -> Vec<Msg> {
    let mut out = Vec::new();
    loop {
        let m = read_msg(stream)
            .await
            .unwrap_or_else(|| panic!("connection closed before ReadyForQuery; got {out:?}"));
        let done = m.tag == b'Z';
        out.push(m);
        if done {
            return out;
        }
    }
}

/// One byte answering an SSLRequest or GSSENCRequest.
pub async fn read_byte(stream: &mut (impl AsyncRead + Unpin)) -> u8 {
    tokio::time::timeout(IO_DEADLINE, stream.read_u8())
        .await
        .expect("timed out waiting for a one-byte answer")
        .expect("one-byte answer")
}

/// Assert the peer closes within `deadline` without sending anything more.
pub async fn expect_closed(stream: &mut (impl AsyncRead + Unpin), deadline: Duration) {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(deadline, stream.read(&mut buf)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => panic!("expected the connection to close, got {:?}", &buf[..n]),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("expected a clean close, got {e}"),
        Err(_) => panic!("connection still open after {deadline:?}"),
    }
}

/// Every message until the peer closes, with a FIN or with a reset (as
/// PostgreSQL's close does when input it never read is waiting).
pub async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<Msg> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(IO_DEADLINE, stream.read(&mut buf))
            .await
            .expect("timed out waiting for the close");
        match read {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading until the close: {e}"),
        }
    }
    let mut rest = &raw[..];
    let mut out = Vec::new();
    while let Some(m) = read_msg(&mut rest).await {
        out.push(m);
    }
    out
}

/// Startup with `version` and `params` plus user and database; returns the
/// stream after ReadyForQuery and everything the server sent up to it.
pub async fn login_with(
    addr: SocketAddr,
    version: u32,
    params: &[(&str, &str)],
) -> (TcpStream, Vec<Msg>) {
    let mut stream = connect_raw(addr).await;
    login_on(&mut stream, version, params).await;
    let msgs = read_until_ready(&mut stream).await;
    assert_no_error(&msgs);
    (stream, msgs)
}

/// Send a StartupMessage for the harness's trust-authenticated superuser.
pub async fn login_on(
    stream: &mut (impl AsyncWrite + Unpin),
    version: u32,
    params: &[(&str, &str)],
) {
    let mut all = vec![("user", "postgres"), ("database", "postgres")];
    all.extend_from_slice(params);
    send(stream, &startup_packet(version, &all)).await;
}

/// Plain protocol-3.0 login.
pub async fn login(addr: SocketAddr) -> (TcpStream, Vec<Msg>) {
    login_with(addr, PROTOCOL_3_0, &[]).await
}

pub fn assert_no_error(msgs: &[Msg]) {
    if let Some(e) = msgs.iter().find(|m| m.tag == b'E') {
        panic!("unexpected ErrorResponse {:?}", e.field(b'M'));
    }
}

/// ParameterStatus messages as (name, value).
pub fn parameter_statuses(msgs: &[Msg]) -> Vec<(String, String)> {
    msgs.iter()
        .filter(|m| m.tag == b'S')
        .map(|m| {
            let s = m.cstrings();
            (s[0].clone(), s.get(1).cloned().unwrap_or_default())
        })
        .collect()
}
