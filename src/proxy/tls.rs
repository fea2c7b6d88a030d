//! TLS set-up: the acceptor that terminates client TLS (`tls.cert`/`tls.key`)
//! and the connector used towards the upstream (`upstream_tls.*`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{TlsFiles, UpstreamTls, UpstreamTlsMode};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { path: String, what: &'static str },
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: shown.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: shown,
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|source| TlsError::Read {
            path: shown.clone(),
            source,
        })?
        .ok_or(TlsError::Empty {
            path: shown,
            what: "PEM private key",
        })
}

/// The most plaintext PostgreSQL puts in one TLS record: it writes its
/// 8 KiB send buffer at a time. libpq reads into a buffer with 8 KiB free,
/// so the rest of a larger record would wait decrypted inside the client's
/// TLS library, where a client that waits on its socket (psycopg 3) never
/// looks.
const MAX_RECORD_PLAINTEXT: usize = 8192;
/// The TLS record header, which rustls counts in `max_fragment_size`.
const RECORD_HEADER: usize = 5;

/// The acceptor for client connections that ask for TLS.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.max_fragment_size = Some(MAX_RECORD_PLAINTEXT + RECORD_HEADER);
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector towards the upstream, or `None` when `mode = disable`.
pub fn connector(settings: &UpstreamTls) -> Result<Option<TlsConnector>, TlsError> {
    if matches!(settings.mode, UpstreamTlsMode::Disable) {
        return Ok(None);
    }
    Ok(Some(TlsConnector::from(Arc::new(client_config(settings)?))))
}

/// The client side of TLS as `[upstream_tls]` says: the server's
/// certificate is verified (against `ca_file`, which may also pin it) in
/// `verify-full` only; the other modes encrypt without verifying, like
/// libpq's `require`. IndexPilot's own connections use this too.
pub fn client_config(settings: &UpstreamTls) -> Result<rustls::ClientConfig, TlsError> {
    let verifier = match settings.mode {
        UpstreamTlsMode::Disable | UpstreamTlsMode::Prefer | UpstreamTlsMode::Require => Verifier {
            webpki: None,
            trusted: Vec::new(),
            provider: provider(),
        },
        UpstreamTlsMode::VerifyFull => {
            let trusted = match &settings.ca_file {
                Some(ca) => read_certs(ca)?,
                None => Vec::new(),
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in &trusted {
                roots.add(cert.clone())?;
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            Verifier {
                webpki: Some(webpki),
                trusted,
                provider: provider(),
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Checks the upstream's certificate the way libpq's sslmode does. Without
/// `webpki` (prefer/require) any certificate is accepted: encryption without
/// authentication. With it (verify-full): the usual chain and name checks,
/// plus what libpq also accepts and webpki does not, a self-signed server
/// certificate (often marked CA:TRUE) listed in `ca_file` itself, still
/// checked for the name. Handshake signatures are always verified.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    trusted: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        let err = match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(ok) => return Ok(ok),
            Err(e) => e,
        };
        if !self
            .trusted
            .iter()
            .any(|t| t.as_ref() == end_entity.as_ref())
        {
            return Err(err);
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| err.clone())?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|e| rustls::Error::General(format!("pinned certificate: {e}")))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
