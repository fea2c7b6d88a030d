//! Connecting to the upstream server: TCP or Unix socket, then, when
//! configured, an SSLRequest and a TLS handshake, all within `connect_timeout`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use super::stream::Stream;
use crate::config::{Config, UpstreamAddr, UpstreamTlsMode};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to upstream server {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to upstream server {addr} after {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("upstream server {addr} does not support TLS, but upstream_tls.mode requires it")]
    TlsRefused { addr: String },
    #[error("TLS handshake with upstream server {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid upstream TLS server name {0:?}")]
    ServerName(String),
}

/// Everything needed to open upstream connections, built once.
pub struct Connector {
    addr: UpstreamAddr,
    shown: String,
    timeout: Duration,
    tls: Option<(TlsConnector, UpstreamTlsMode, ServerName<'static>)>,
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl Connector {
    pub fn new(
        config: &Config,
        tls: Option<TlsConnector>,
    ) -> Result<Arc<Connector>, UpstreamError> {
        let shown = match &config.upstream {
            UpstreamAddr::Tcp { host, port } => format!("{host}:{port}"),
            UpstreamAddr::Unix(path) => path.display().to_string(),
        };
        let tls = match (tls, &config.upstream) {
            (Some(connector), UpstreamAddr::Tcp { host, .. }) => {
                let name = config
                    .upstream_tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host.clone());
                let server_name = ServerName::try_from(name.clone())
                    .map_err(|_| UpstreamError::ServerName(name))?;
                Some((connector, config.upstream_tls.mode, server_name))
            }
            _ => None,
        };
        Ok(Arc::new(Connector {
            addr: config.upstream.clone(),
            shown,
            timeout: config.connect_timeout,
            tls,
        }))
    }

    /// The upstream address, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Open a connection (and negotiate TLS when configured).
    pub async fn connect(&self) -> Result<Stream, UpstreamError> {
        match tokio::time::timeout(self.timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout {
                addr: self.shown.clone(),
                after: self.timeout,
            }),
        }
    }

    async fn connect_inner(&self) -> Result<Stream, UpstreamError> {
        let io_err = |source| UpstreamError::Connect {
            addr: self.shown.clone(),
            source,
        };
        let mut tcp = match &self.addr {
            UpstreamAddr::Unix(path) => {
                return UnixStream::connect(path)
                    .await
                    .map(Stream::Unix)
                    .map_err(io_err)
            }
            UpstreamAddr::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(io_err)?,
        };
        tcp.set_nodelay(true).map_err(io_err)?;
        let Some((connector, mode, name)) = &self.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        tcp.write_all(&SSL_REQUEST).await.map_err(io_err)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.map_err(io_err)?;
        match answer[0] {
            b'S' => connector
                .connect(name.clone(), tcp)
                .await
                .map(|s| Stream::TlsClient(Box::new(s)))
                .map_err(|source| UpstreamError::Tls {
                    addr: self.shown.clone(),
                    source,
                }),
            _ if *mode == UpstreamTlsMode::Prefer => Ok(Stream::Tcp(tcp)),
            _ => Err(UpstreamError::TlsRefused {
                addr: self.shown.clone(),
            }),
        }
    }

    /// Whether a connection can be opened now (for readiness).
    pub async fn probe(&self) -> bool {
        self.connect().await.is_ok()
    }

    /// Forward a CancelRequest packet verbatim on a fresh connection.
    pub async fn cancel(&self, packet: &[u8]) -> Result<(), UpstreamError> {
        let mut stream = self.connect().await?;
        let result = async {
            stream.write_all(packet).await?;
            stream.flush().await?;
            // The server closes without answering; wait for that so the
            // request is processed before we report success.
            let mut sink = [0u8; 16];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(self.timeout, result).await {
            Ok(Err(source)) => Err(UpstreamError::Connect {
                addr: self.shown.clone(),
                source,
            }),
            _ => Ok(()),
        }
    }
}
