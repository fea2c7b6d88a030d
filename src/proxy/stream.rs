//! One stream type for both sides of a session: plain TCP, a Unix socket
//! (upstream only), or TLS (terminated for the client, originated upstream).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Client TLS terminated by the proxy.
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS from the proxy to the upstream server.
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::TlsServer(_) | Stream::TlsClient(_))
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Tcp(_) => "Stream::Tcp",
            Stream::Unix(_) => "Stream::Unix",
            Stream::TlsServer(_) => "Stream::TlsServer",
            Stream::TlsClient(_) => "Stream::TlsClient",
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).$method($($arg),*),
            Stream::Unix(s) => Pin::new(s).$method($($arg),*),
            Stream::TlsServer(s) => Pin::new(s.as_mut()).$method($($arg),*),
            Stream::TlsClient(s) => Pin::new(s.as_mut()).$method($($arg),*),
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, poll_shutdown(cx))
    }
}
