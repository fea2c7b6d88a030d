//! The report from IndexPilot's tables: the demo and `indexpilot simulate`
//! [`record`] every measured phase in `simulation_run`; [`collect`] puts the
//! latest auto run, the baseline run of the same scenario, the lineage log
//! since the auto run started, the expression profiles and the sizes of
//! IndexPilot's indexes together. Against a deployment nobody simulated on,
//! the phases are empty and the report is the lineage and the indexes.

use std::time::SystemTime;

use anyhow::Context;
use serde_json::Value;
use tokio_postgres::Client;

use super::{IndexEvent, IndexSize, Phase, Report, TenantExpression};
use crate::store::quote_ident;

/// Which phase a simulation run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The proxy with indexing off (or advise): the reference.
    Baseline,
    /// The proxy in apply mode, measured after the indexer settled.
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Auto => "auto",
        }
    }
}

/// One measured phase, as recorded.
#[derive(Clone, Debug)]
pub struct Run {
    pub mode: Mode,
    /// When the phase began (for auto: when learning began; index events
    /// are timed from here).
    pub started: SystemTime,
    pub scenario: Value,
    pub phase: Phase,
    /// The proxy's configuration, as far as the runner knows it.
    pub config: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Store `run` in `simulation_run`; returns its id.
pub async fn record(client: &Client, schema: &str, run: &Run) -> anyhow::Result<i64> {
    let row = client
        .query_one(
            &format!(
                "insert into {}.simulation_run (mode, started_at, scenario, phase, config, notes)
                 values ($1, $2, $3::text::jsonb, $4::text::jsonb, $5::text::jsonb, $6::text::jsonb)
                 returning id",
                quote_ident(schema)
            ),
            &[
                &run.mode.as_str(),
                &run.started,
                &run.scenario.to_string(),
                &serde_json::to_string(&run.phase)?,
                &serde_json::to_string(&run.config)?,
                &serde_json::to_string(&run.notes)?,
            ],
        )
        .await
        .context("recording the simulation run")?;
    Ok(row.get(0))
}

/// The report as IndexPilot's tables have it now.
pub async fn collect(client: &Client, schema: &str) -> anyhow::Result<Report> {
    let s = quote_ident(schema);
    let auto = latest(client, &s, Mode::Auto, None).await?;
    let baseline = latest(
        client,
        &s,
        Mode::Baseline,
        auto.as_ref().map(|r| &r.scenario),
    )
    .await?;
    let mut notes = Vec::new();
    if baseline.is_none() {
        notes.push(
            "No baseline run is recorded for this scenario: run `indexpilot simulate --mode \
             baseline` against the proxy with indexing off (indexer.mode = off or advise)."
                .to_string(),
        );
    }
    if auto.is_none() {
        notes.push(
            "No auto run is recorded: run `indexpilot simulate --mode auto` against the proxy \
             in apply mode. Index events below are the whole lineage log, timed from its first \
             entry."
                .to_string(),
        );
    }
    // Index events are timed from the auto run's start; without one, from
    // the first event of the log.
    let since = auto.as_ref().map(|r| r.started);
    let indexes = index_events(client, &s, since).await?;
    let scenario = auto
        .as_ref()
        .or(baseline.as_ref())
        .map(|r| r.scenario.clone())
        .unwrap_or(Value::Null);
    let config = auto
        .as_ref()
        .or(baseline.as_ref())
        .map(|r| r.config.clone())
        .unwrap_or_default();
    for run in [&baseline, &auto].into_iter().flatten() {
        for note in &run.notes {
            if !notes.contains(note) {
                notes.push(note.clone());
            }
        }
    }
    let empty = |name: &str| Phase {
        name: name.to_string(),
        ..Phase::default()
    };
    let baseline = baseline.map_or_else(|| empty("baseline"), |r| r.phase);
    let auto = auto.map_or_else(|| empty("auto"), |r| r.phase);
    Ok(Report {
        scenario,
        improvement: improvement(&baseline, &auto),
        baseline,
        auto,
        indexes,
        index_sizes: index_sizes(client, &s).await?,
        expression: expressions(client, &s).await?,
        config,
        notes,
    })
}

/// The latest run of `mode` (of `scenario`, when given and one exists).
async fn latest(
    client: &Client,
    s: &str,
    mode: Mode,
    scenario: Option<&Value>,
) -> anyhow::Result<Option<Run>> {
    let sql = format!(
        "select started_at, scenario::text, phase::text, config::text, notes::text
           from {s}.simulation_run
          where mode = $1 and ($2::text is null or scenario = $2::text::jsonb)
          order by id desc limit 1"
    );
    let wanted = scenario.map(Value::to_string);
    let mut row = client.query_opt(&sql, &[&mode.as_str(), &wanted]).await?;
    if row.is_none() && wanted.is_some() {
        row = client
            .query_opt(&sql, &[&mode.as_str(), &None::<String>])
            .await?;
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let json = |i: usize| -> anyhow::Result<Value> {
        serde_json::from_str(&row.get::<_, String>(i)).context("reading a simulation run")
    };
    Ok(Some(Run {
        mode,
        started: row.get(0),
        scenario: json(1)?,
        phase: serde_json::from_value(json(2)?).context("reading a recorded phase")?,
        config: serde_json::from_value(json(3)?).unwrap_or_default(),
        notes: serde_json::from_value(json(4)?).unwrap_or_default(),
    }))
}

/// What IndexPilot did to indexes since `since` (the whole log if `None`),
/// with declined and deferred decisions; `at_s` counts from `since` (or
/// from the first event).
async fn index_events(
    client: &Client,
    s: &str,
    since: Option<SystemTime>,
) -> anyhow::Result<Vec<IndexEvent>> {
    let rows = client
        .query(
            &format!(
                "select case when m.kind = 'advise' then 'advise: ' || m.outcome else m.kind end,
                        coalesce(m.table_name, p.table_name, ''),
                        case when m.columns = '{{}}' then coalesce(p.columns, m.columns)
                             else m.columns end,
                        m.tenant, m.at, coalesce(m.index_name, p.index_name), m.reason,
                        m.evidence::text
                   from {s}.mutation_log m
                   left join {s}.mutation_log p on p.id = m.parent_id
                  where ($1::timestamptz is null or m.at >= $1)
                    and (m.kind in ('create', 'keep', 'revert', 'drop')
                         or (m.kind = 'advise' and m.outcome <> 'recommended'))
                  order by m.id"
            ),
            &[&since],
        )
        .await?;
    let origin = since.or_else(|| rows.first().map(|r| r.get(4)));
    Ok(rows
        .iter()
        .map(|r| {
            let at: SystemTime = r.get(4);
            IndexEvent {
                action: r.get(0),
                table: r.get(1),
                columns: r.get(2),
                tenant: r.get(3),
                at_s: origin
                    .and_then(|o| at.duration_since(o).ok())
                    .map_or(0.0, |d| d.as_secs_f64()),
                index_name: r.get(5),
                reason: r.get(6),
                evidence: serde_json::from_str(&r.get::<_, String>(7)).unwrap_or_default(),
            }
        })
        .collect())
}

/// IndexPilot's indexes that exist now (built, not reverted or dropped).
async fn index_sizes(client: &Client, s: &str) -> anyhow::Result<Vec<IndexSize>> {
    let rows = client
        .query(
            &format!(
                "select distinct on (c.index_name) c.index_name, coalesce(c.table_name, ''),
                        c.columns, c.tenant, pg_relation_size(i.oid)
                   from {s}.mutation_log c
                   join pg_class i on i.relname = c.index_name and i.relkind = 'i'
                  where c.kind = 'create' and c.outcome = 'built'
                    and not exists (select 1 from {s}.mutation_log r
                                     where r.parent_id = c.id and r.kind in ('revert', 'drop'))
                  order by c.index_name, c.id desc"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| IndexSize {
            index_name: r.get(0),
            table: r.get(1),
            columns: r.get(2),
            tenant: r.get(3),
            bytes: r.get(4),
        })
        .collect())
}

async fn expressions(client: &Client, s: &str) -> anyhow::Result<Vec<TenantExpression>> {
    let rows = client
        .query(
            &format!(
                "select tenant, array_agg(table_name || '.' || column_name
                                          order by table_name, column_name)
                   from {s}.expression_profile where enabled group by tenant
                  order by length(tenant), tenant"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TenantExpression {
            tenant: r.get(0),
            fields: r.get(1),
        })
        .collect())
}

/// baseline / auto for the filtered reads, all queries, the spike; auto /
/// baseline for write throughput (above 1: auto writes faster).
pub fn improvement(baseline: &Phase, auto: &Phase) -> Value {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let spike_p95 = |p: &Phase| p.spike.as_ref().map_or(0.0, |s| s.filtered.p95_ms);
    serde_json::json!({
        "filtered_p50": ratio(baseline.filtered.p50_ms, auto.filtered.p50_ms),
        "filtered_p95": ratio(baseline.filtered.p95_ms, auto.filtered.p95_ms),
        "filtered_p99": ratio(baseline.filtered.p99_ms, auto.filtered.p99_ms),
        "filtered_mean": ratio(baseline.filtered.mean_ms, auto.filtered.mean_ms),
        "all_p95": ratio(baseline.overall.p95_ms, auto.overall.p95_ms),
        "spike_filtered_p95": ratio(spike_p95(baseline), spike_p95(auto)),
        "write_throughput": ratio(auto.write_throughput, baseline.write_throughput),
    })
}
