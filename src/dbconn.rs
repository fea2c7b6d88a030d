//! IndexPilot's own connections to the database (`admin.dsn`,
//! `indexer.dsn`, and the CLI commands that read its tables). They speak TLS
//! whenever the DSN's `sslmode` asks for it (`require`) or the server offers
//! it (`prefer`, the default), so a managed database that refuses plain
//! connections accepts IndexPilot's too; `sslmode=disable` keeps them plain.
//! The server's certificate is checked as `[upstream_tls]` says (in
//! `verify-full`: against `ca_file`), the same policy as the relayed
//! sessions. The policy is process-wide: [`init`] sets it once from the
//! configuration; until then connections encrypt without verifying.

use std::sync::OnceLock;

use tokio_postgres::{Client, Error};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::debug;

use crate::config::{UpstreamTls, UpstreamTlsMode};
use crate::proxy::tls::{client_config, TlsError};

static TLS: OnceLock<MakeRustlsConnect> = OnceLock::new();

/// Set the TLS policy of every later connection (the first call wins).
pub fn init(settings: &UpstreamTls) -> Result<(), TlsError> {
    let make = MakeRustlsConnect::new(client_config(settings)?);
    let _ = TLS.set(make);
    Ok(())
}

fn tls() -> MakeRustlsConnect {
    TLS.get_or_init(|| {
        let unverified = UpstreamTls {
            mode: UpstreamTlsMode::Require,
            ca_file: None,
            server_name: None,
        };
        // Without files to read, building the configuration cannot fail.
        MakeRustlsConnect::new(
            client_config(&unverified).expect("a TLS client configuration without files"),
        )
    })
    .clone()
}

/// Connect to `dsn`; the connection is driven by a task of its own until
/// the client is dropped.
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    let (client, conn) = tokio_postgres::connect(dsn, tls()).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "IndexPilot's database connection ended");
        }
    });
    Ok(client)
}
