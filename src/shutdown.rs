//! Shutdown signals: SIGTERM drains (stop accepting, let sessions finish up to
//! `shutdown_timeout`), SIGINT or a second SIGTERM ends everything at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The two stages of shutdown, as tokens any task can wait on.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// Stop accepting; let sessions drain.
    pub stop_accepting: CancellationToken,
    /// End everything now.
    pub immediate: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Begin a graceful shutdown.
    pub fn drain(&self) {
        self.stop_accepting.cancel();
    }

    /// Stop at once.
    pub fn now(&self) {
        self.stop_accepting.cancel();
        self.immediate.cancel();
    }
}

/// Translate process signals into `shutdown` until it is complete.
pub async fn watch_signals(shutdown: Shutdown) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                if shutdown.stop_accepting.is_cancelled() {
                    info!("second SIGTERM: stopping now");
                    shutdown.now();
                    return Ok(());
                }
                info!("SIGTERM: draining");
                shutdown.drain();
            }
            _ = int.recv() => {
                info!("SIGINT: stopping now");
                shutdown.now();
                return Ok(());
            }
        }
    }
}
