//! Persisting statistics: closed windows go to `query_stats`/`filter_stats`
//! (and each new fingerprint's text to `query_text`) in multi-row inserts, on
//! IndexPilot's own connection (`admin.dsn`). Never on the relay path; when
//! the database is unreachable, rows wait in memory up to
//! `stats.max_pending_rows` and the loss beyond is counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{FlushRow, Stats};
use crate::config::Config;
use crate::metrics as m;
use crate::store::{self, quote_ident};

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("cannot connect to admin.dsn: {0}")]
    Connect(tokio_postgres::Error),
    #[error("timed out connecting to admin.dsn")]
    Timeout,
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// Open IndexPilot's own connection and bring its schema up to date.
pub async fn connect_admin(dsn: &str, schema: &str) -> Result<Client, FlushError> {
    let connecting = crate::dbconn::connect(dsn);
    let mut client = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| FlushError::Timeout)?
        .map_err(FlushError::Connect)?;
    store::migrate(&mut client, schema).await?;
    Ok(client)
}

/// Close windows on time and write them out until `stop`; then a last flush.
pub async fn run(
    stats: Arc<Stats>,
    config: Arc<Config>,
    proxy_id: String,
    stop: CancellationToken,
) {
    let mut writer = Writer {
        stats,
        config,
        proxy_id,
        client: None,
        known_texts: HashSet::new(),
        retry_at: None,
    };
    let mut tick = tokio::time::interval(writer.config.stats.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        writer.stats.roll(SystemTime::now());
        writer.flush_all().await;
    }
    // Close the window in progress so its counts are not lost on shutdown.
    writer
        .stats
        .roll(SystemTime::now() + writer.config.stats.window);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer.flush_all()).await;
}

struct Writer {
    stats: Arc<Stats>,
    config: Arc<Config>,
    proxy_id: String,
    client: Option<Client>,
    known_texts: HashSet<u64>,
    retry_at: Option<tokio::time::Instant>,
}

impl Writer {
    async fn flush_all(&mut self) {
        let Some(dsn) = self.config.admin.dsn.clone() else {
            // Nothing to persist to: keep memory flat.
            self.stats.take_pending(usize::MAX);
            return;
        };
        while self.stats.pending_len() > 0 {
            if self.client.as_ref().is_none_or(|c| c.is_closed()) && !self.reconnect(&dsn).await {
                return;
            }
            let batch = self.stats.take_pending(self.config.stats.flush_batch_rows);
            match self.write(&batch).await {
                Ok(()) => metrics::counter!(m::STATS_FLUSH_BATCHES_TOTAL).increment(1),
                Err(e) => {
                    warn!(error = %e, rows = batch.len(), "stats flush failed; will retry");
                    metrics::counter!(m::STATS_FLUSH_FAILURES_TOTAL).increment(1);
                    self.stats.requeue(batch);
                    self.client = None;
                    return;
                }
            }
        }
    }

    async fn reconnect(&mut self, dsn: &str) -> bool {
        if self
            .retry_at
            .is_some_and(|t| tokio::time::Instant::now() < t)
        {
            return false;
        }
        match connect_admin(dsn, &self.config.admin.schema).await {
            Ok(c) => {
                self.client = Some(c);
                self.retry_at = None;
                true
            }
            Err(e) => {
                warn!(error = %e, "stats flush: admin database unreachable; keeping rows in memory");
                metrics::counter!(m::STATS_FLUSH_FAILURES_TOTAL).increment(1);
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                false
            }
        }
    }

    async fn write(&mut self, rows: &[FlushRow]) -> Result<(), FlushError> {
        let client = self.client.as_ref().expect("connected before write");
        let s = quote_ident(&self.config.admin.schema);
        let window_seconds = self.config.stats.window.as_secs() as i32;
        let mut texts: Vec<(i64, Arc<str>)> = Vec::new();
        let mut stmt_params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut filter_params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut group_params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        for row in rows {
            match row.clone() {
                FlushRow::Statement {
                    window_start,
                    fingerprint,
                    tenant,
                    calls,
                    errors,
                    total_ms,
                    p95_ms,
                    rows,
                } => {
                    if !self.known_texts.contains(&fingerprint) {
                        if let Some(text) = self.stats.text(fingerprint) {
                            texts.push((fingerprint as i64, text));
                        }
                    }
                    stmt_params.extend([
                        Box::new(window_start) as Box<dyn ToSql + Sync + Send>,
                        Box::new(window_seconds),
                        Box::new(fingerprint as i64),
                        Box::new(tenant.map(|t| t.to_string())),
                        Box::new(calls as i64),
                        Box::new(errors as i64),
                        Box::new(total_ms),
                        Box::new(p95_ms),
                        Box::new(rows as i64),
                        Box::new(self.proxy_id.clone()),
                    ]);
                }
                FlushRow::Filter {
                    window_start,
                    tenant,
                    table,
                    column,
                    class,
                    calls,
                    rows,
                } => {
                    filter_params.extend([
                        Box::new(window_start) as Box<dyn ToSql + Sync + Send>,
                        Box::new(window_seconds),
                        Box::new(tenant.map(|t| t.to_string())),
                        Box::new(table.to_string()),
                        Box::new(column.to_string()),
                        Box::new(class.to_string()),
                        Box::new(calls as i64),
                        Box::new(rows as i64),
                        Box::new(self.proxy_id.clone()),
                    ]);
                }
                FlushRow::Group {
                    window_start,
                    tenant,
                    table,
                    columns,
                    calls,
                } => {
                    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
                    group_params.extend([
                        Box::new(window_start) as Box<dyn ToSql + Sync + Send>,
                        Box::new(window_seconds),
                        Box::new(tenant.map(|t| t.to_string())),
                        Box::new(table.to_string()),
                        Box::new(columns),
                        Box::new(calls as i64),
                        Box::new(self.proxy_id.clone()),
                    ]);
                }
            }
        }
        let stmt_cols = "window_start, window_seconds, fingerprint, tenant, calls, errors, total_ms, p95_ms, rows, proxy";
        let filter_cols = "window_start, window_seconds, tenant, table_name, column_name, predicate, calls, rows, proxy";
        insert_rows(
            client,
            &format!("{s}.query_stats ({stmt_cols})"),
            10,
            &stmt_params,
        )
        .await?;
        insert_rows(
            client,
            &format!("{s}.filter_stats ({filter_cols})"),
            9,
            &filter_params,
        )
        .await?;
        insert_rows(
            client,
            &format!("{s}.group_stats (window_start, window_seconds, tenant, table_name, columns, calls, proxy)"),
            7,
            &group_params,
        )
        .await?;
        for (fingerprint, text) in texts {
            client
                .execute(
                    &format!("insert into {s}.query_text (fingerprint, query) values ($1, $2) on conflict do nothing"),
                    &[&fingerprint, &&*text],
                )
                .await?;
            self.known_texts.insert(fingerprint as u64);
        }
        Ok(())
    }
}

/// One multi-row INSERT of `params.len() / width` rows.
async fn insert_rows(
    client: &Client,
    target: &str,
    width: usize,
    params: &[Box<dyn ToSql + Sync + Send>],
) -> Result<(), FlushError> {
    if params.is_empty() {
        return Ok(());
    }
    let tuples: Vec<String> = (0..params.len() / width)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect();
    let sql = format!("insert into {target} values {}", tuples.join(", "));
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.execute(&sql, &refs).await?;
    Ok(())
}
