//! Leader election (DESIGN.md decision 7): among the replicas in front of
//! one database, the one holding a session-level advisory lock on its own
//! admin connection decides. The lock dies with the connection, so when a
//! leader dies another replica takes over on its next attempt.

use std::time::Duration;

use tokio_postgres::Client;
use tracing::debug;

use crate::stats::flush::{connect_admin, FlushError};

/// One admin connection, which may or may not hold the leader lock.
pub struct Seat {
    client: Client,
    schema: String,
    leading: bool,
}

/// The lock key: a hash of the schema name, so that two IndexPilot
/// deployments with different schemas on one database elect separately.
const LOCK_KEY: &str = "select hashtext('indexpilot.leader:' || $1)::int8";

impl Seat {
    /// Connect (and migrate IndexPilot's schema).
    pub async fn connect(dsn: &str, schema: &str) -> Result<Seat, FlushError> {
        let client = connect_admin(dsn, schema).await?;
        Ok(Seat {
            client,
            schema: schema.to_string(),
            leading: false,
        })
    }

    /// Try to become (or check that we still are) the leader. A broken
    /// connection is an error: the caller reconnects.
    pub async fn try_lead(&mut self) -> Result<bool, tokio_postgres::Error> {
        if self.leading {
            // Still connected means still holding the lock.
            tokio::time::timeout(
                Duration::from_secs(10),
                self.client.simple_query("select 1"),
            )
            .await
            .map_err(|_| {
                debug!("leader connection unresponsive");
                self.leading = false;
            })
            .ok()
            .transpose()?;
            return Ok(self.leading);
        }
        let key: i64 = self
            .client
            .query_one(LOCK_KEY, &[&self.schema])
            .await?
            .get(0);
        let row = self
            .client
            .query_one("select pg_try_advisory_lock($1)", &[&key])
            .await?;
        self.leading = row.get(0);
        Ok(self.leading)
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// For transactions (the genome sync).
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A plain connection for commands (`advise`, `lineage`), no migration.
pub async fn connect_plain(dsn: &str) -> Result<Client, tokio_postgres::Error> {
    crate::dbconn::connect(dsn).await
}
