//! The client's first packets, before any message has a type byte:
//! SSLRequest, GSSENCRequest, CancelRequest and the StartupMessage.
//! See <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP>.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::stream::Stream;

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
/// Postgres refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
const MAX_STARTUP_LEN: usize = 10_000;

/// What the client asked for.
pub enum Handshake {
    /// A StartupMessage (protocol 3.x), to be relayed verbatim.
    Startup {
        stream: Stream,
        packet: BytesMut,
        params: Vec<(String, String)>,
    },
    /// A CancelRequest, to be forwarded verbatim to the upstream; the
    /// stream it came on (TLS with libpq 17+) is then closed cleanly.
    Cancel { stream: Stream, packet: BytesMut },
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("client I/O error during startup: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid startup packet length {0}")]
    BadLength(usize),
    #[error("unsupported frontend protocol {major}.{minor}")]
    Protocol {
        major: u32,
        minor: u32,
        stream: Stream,
    },
    #[error("client sent a second SSLRequest or GSSENCRequest after encryption was set up")]
    Renegotiate,
}

impl StartupError {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StartupError::Io(_) => "client_io",
            StartupError::BadLength(_) | StartupError::Renegotiate => "client_protocol",
            StartupError::Protocol { .. } => "client_protocol_version",
        }
    }
}

/// Read the client's first packets, answering encryption requests, until a
/// StartupMessage or CancelRequest arrives.
pub async fn handshake(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
) -> Result<Handshake, StartupError> {
    let mut stream = Stream::Tcp(tcp);
    loop {
        let packet = read_packet(&mut stream).await?;
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST if stream.is_tls() => {
                return Err(StartupError::Renegotiate)
            }
            SSL_REQUEST => match (tls, stream) {
                (Some(acceptor), Stream::Tcp(mut tcp)) => {
                    tcp.write_all(b"S").await?;
                    let tls = acceptor.accept(tcp).await?;
                    stream = Stream::TlsServer(Box::new(tls));
                }
                (_, mut other) => {
                    other.write_all(b"N").await?;
                    stream = other;
                }
            },
            GSSENC_REQUEST => stream.write_all(b"N").await?,
            CANCEL_REQUEST => return Ok(Handshake::Cancel { stream, packet }),
            _ if code >> 16 == 3 => {
                let params = startup_params(&packet[8..]);
                return Ok(Handshake::Startup {
                    stream,
                    packet,
                    params,
                });
            }
            _ => {
                return Err(StartupError::Protocol {
                    major: code >> 16,
                    minor: code & 0xffff,
                    stream,
                })
            }
        }
    }
}

/// Read one length-prefixed startup-phase packet (length includes itself).
async fn read_packet(stream: &mut Stream) -> Result<BytesMut, StartupError> {
    let len = stream.read_u32().await? as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    let mut packet = BytesMut::with_capacity(len);
    packet.put_u32(len as u32);
    packet.resize(len, 0);
    stream.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}

/// The `name\0value\0` pairs of a StartupMessage body (after the version).
pub fn startup_params(mut body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let next = |buf: &mut &[u8]| -> Option<String> {
        let end = buf.iter().position(|&b| b == 0)?;
        let s = String::from_utf8_lossy(&buf[..end]).into_owned();
        *buf = &buf[end + 1..];
        Some(s)
    };
    while let Some(name) = next(&mut body) {
        if name.is_empty() {
            break;
        }
        let Some(value) = next(&mut body) else { break };
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded() {
        let p = startup_params(b"user\0alice\0database\0app\0_pq_.x\0y\0\0");
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], ("user".into(), "alice".into()));
        assert_eq!(p[2], ("_pq_.x".into(), "y".into()));
        assert!(startup_params(b"user\0").is_empty());
    }
}
