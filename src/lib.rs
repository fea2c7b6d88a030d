//! IndexPilot: a transparent PostgreSQL wire-protocol proxy that indexes a
//! multi-tenant database by itself.
//!
//! # Layout
//!
//! - [`config`]: `proxy.toml` + `INDEXPILOT_*` + flags → validated [`config::Config`]
//! - [`cli`]: subcommands and flags
//! - [`proxy`]: the byte-for-byte relay and its inspection hook
//! - [`shutdown`]: SIGTERM drains, SIGINT stops
//! - [`metrics`]: Prometheus metric names, descriptions and the recorder
//! - [`http`]: `/metrics`, `/healthz` and `/readyz` on `metrics_listen`
//! - [`health`]: which long-lived parts died (what `/healthz` reports)
//! - [`pg`]: a throwaway PostgreSQL for tests and the demo

pub mod background;
pub mod cli;
pub mod config;
pub mod dbconn;
pub mod genome;
pub mod health;
pub mod http;
pub mod indexer;
pub mod metrics;
pub mod pg;
pub mod proxy;
pub mod report;
pub mod shutdown;
pub mod sim;
pub mod sql;
pub mod stats;
pub mod store;

use std::sync::Arc;

use config::{Config, LogFormat};
use proxy::{Proxy, ProxyError};
use shutdown::Shutdown;

/// Install the tracing subscriber described by the config (`RUST_LOG` wins).
/// Lines go to stderr through a writer thread, so that a slow or vanished
/// reader (a log shipper restarting, `| head`) costs log lines, never the
/// relay: a full queue drops lines and a failed write is ignored. Keep the
/// returned guard until exit; dropping it flushes what is queued.
pub fn init_tracing(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        // At most a few MB of lines wait for a slow reader.
        .buffered_lines_limit(16 * 1024)
        .thread_name("indexpilot-log")
        .finish(LossyStderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// stderr whose writes never fail: with the reader gone (EPIPE) a line is
/// lost, and reporting that would only go to stderr again.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The runtime `serve` starts on: a current-thread runtime. Extra relay
/// threads (`worker_threads`) get their own, see [`proxy::Proxy::run`].
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// `indexpilot serve`: bind, then relay until a signal says stop.
pub async fn serve(config: Arc<Config>) -> Result<(), ProxyError> {
    let proxy = Proxy::bind(config).await?;
    let shutdown = Shutdown::new();
    let watch = proxy.health().watch("signal handling");
    let signals = tokio::spawn(watch.run(shutdown::watch_signals(shutdown.clone())));
    proxy.run(shutdown).await;
    signals.abort();
    Ok(())
}
