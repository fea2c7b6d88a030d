//! `indexpilot simulate`: the demo's workload against a proxy and database
//! that already run. It seeds the CRM into the database when it is not
//! there (never over tables it did not create), measures one phase —
//! `baseline` (the proxy with indexing off) or `auto` (apply mode: learn
//! until the indexer settles, measure, drift) — and records it in
//! IndexPilot's `simulation_run` table, from which `indexpilot report`
//! builds the before/after report.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use tokio_postgres::Client;

use super::phase::{Runner, Timeline};
use super::progress::Bar;
use super::seed::{self, Existing, Seeded};
use super::Scenario;
use crate::report::collect::{self, Mode, Run};
use crate::report::Phase;
use crate::store::quote_ident;

/// What `indexpilot simulate` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The application's connection string: through the proxy.
    pub dsn: String,
    /// Where IndexPilot's tables are read and the run recorded (default:
    /// `dsn`).
    pub admin_dsn: Option<String>,
    pub schema: String,
    pub scenario: Scenario,
    pub mode: Mode,
    /// Replace a simulation dataset of another scenario.
    pub reseed: bool,
    /// The proxy's configuration file, recorded with the run (DSN
    /// passwords masked).
    pub config: Option<PathBuf>,
    /// How long the auto phase may learn, and the drift last, at most.
    pub learn_limit: Duration,
    /// Learning lasts at least this long (the production defaults verify
    /// a build after `indexer.verify_window`, 60 s).
    pub min_learn: Duration,
    /// Skip the drift after the auto phase.
    pub no_drift: bool,
}

/// Run one phase and record it; returns the lines to print.
pub async fn simulate(o: Options) -> anyhow::Result<String> {
    let data = connect(&o.dsn, "--dsn").await?;
    let mut admin = match &o.admin_dsn {
        Some(dsn) => connect(dsn, "--admin-dsn").await?,
        None => connect(&o.dsn, "--dsn").await?,
    };
    crate::store::migrate(&mut admin, &o.schema)
        .await
        .with_context(|| {
            format!(
                "creating or upgrading IndexPilot's tables in schema {:?} (the role needs \
                 CREATE on the database, or pass --admin-dsn with one that has it)",
                o.schema
            )
        })?;
    let config = match &o.config {
        Some(path) => recorded_config(path)?,
        None => Vec::new(),
    };
    let seeded = dataset(&data, &o.scenario, o.reseed).await?;
    let runner = Runner {
        conninfo: o.dsn.clone(),
        data: &data,
        admin: &admin,
        schema: o.schema.clone(),
        seeded: &seeded,
        scenario: &o.scenario,
        learn_limit: o.learn_limit,
        drift_limit: o.learn_limit,
        min_learn: o.min_learn,
        timeline: Timeline::start(),
        no_checkpoint: Default::default(),
    };
    let started = SystemTime::now();
    let mut notes = vec![format!(
        "Measured by `indexpilot simulate --mode {}` through an existing proxy; figures are \
         medians over {} trials of the same seeded sequences (seed {}).",
        o.mode.as_str(),
        o.scenario.trials,
        o.scenario.seed
    )];
    let phase = match o.mode {
        Mode::Baseline => {
            let phase = runner.measure("baseline").await?;
            let built = builds_since(&admin, &o.schema, started).await?;
            if built > 0 {
                let warning = format!(
                    "IndexPilot built {built} index(es) during this baseline run: the proxy's \
                     indexer.mode is not off or advise, so this baseline is not a clean reference."
                );
                eprintln!("simulate: warning: {warning}");
                notes.push(warning);
            }
            phase
        }
        Mode::Auto => {
            let learned = runner.learn().await?;
            if learned.builds == 0 {
                let warning = "IndexPilot built nothing while learning: is the proxy in \
                               indexer.mode = apply, with admin.dsn set, and are the tables \
                               above indexer.min_table_rows?"
                    .to_string();
                eprintln!("simulate: warning: {warning}");
                notes.push(warning);
            }
            let phase = runner.measure("auto").await?;
            notes.push(format!(
                "The indexer settled after {:.0} s of traffic with {} build(s).",
                learned.seconds, learned.builds
            ));
            notes.extend(learned.warning());
            let mut phase = phase;
            if !o.no_drift {
                let drifted = runner.drift().await?;
                notes.push(format!(
                    "The drift phase ran {:.0} s and ended with {} build(s) and {} revert(s) \
                     or drop(s) in all.",
                    drifted.seconds, drifted.builds, drifted.undone
                ));
            }
            // The auto line covers learning, measuring and the drift.
            phase.timeline = runner.timeline.points();
            phase
        }
    };
    let id = collect::record(
        &admin,
        &o.schema,
        &Run {
            mode: o.mode,
            started,
            scenario: serde_json::to_value(&o.scenario)?,
            phase: phase.clone(),
            config,
            notes,
        },
    )
    .await?;
    Ok(format!(
        "{}\nrecorded as simulation run {id}; `indexpilot report --dsn … --out DIR` builds the \
         before/after report\n",
        phase_summary(&phase)
    ))
}

async fn connect(dsn: &str, flag: &str) -> anyhow::Result<Client> {
    crate::dbconn::connect(dsn)
        .await
        .with_context(|| format!("connecting to {flag}"))
}

/// The scenario's data: reused when the database holds exactly it, seeded
/// when there is none; never over tables someone else created.
async fn dataset(client: &Client, s: &Scenario, reseed: bool) -> anyhow::Result<Seeded> {
    let wanted = seed::marker(s);
    match seed::existing(client).await? {
        Existing::Dataset(found) if found == wanted && !reseed => {
            eprintln!("simulate: reusing the dataset in place ({found})");
            return Ok(Seeded::layout(s));
        }
        Existing::Dataset(found) if !reseed => bail!(
            "the database holds another simulation dataset ({found}); pass the --scenario, \
             --tenants, --contacts and --seed it was made with, or --reseed to replace it"
        ),
        Existing::Foreign(tables) => bail!(
            "table(s) {} exist and were not created by indexpilot simulate; refusing to replace \
             them: simulate into a database of its own",
            tables.join(", ")
        ),
        Existing::Dataset(_) | Existing::Nothing => {}
    }
    let mut bar = Bar::new("seeding", 1);
    let seeded = seed::seed(client, s, &mut |done, total| bar.set(done, total)).await?;
    bar.finish();
    eprintln!("simulate: seeded in {:.0} s", seeded.seconds);
    Ok(seeded)
}

async fn builds_since(admin: &Client, schema: &str, since: SystemTime) -> anyhow::Result<i64> {
    let row = admin
        .query_one(
            &format!(
                "select count(*) from {}.mutation_log
                  where kind = 'create' and outcome = 'built' and at >= $1",
                quote_ident(schema)
            ),
            &[&since],
        )
        .await?;
    Ok(row.get(0))
}

/// The configuration file's settings as `key = value` lines, with the
/// passwords of connection strings masked.
fn recorded_config(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    // Reject what the proxy would reject, with the same message.
    crate::config::Config::load(Some(path), Vec::new())?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let mut out = Vec::new();
    flatten(&table, "", &mut out);
    Ok(out)
}

fn flatten(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => flatten(inner, &format!("{key}."), out),
            toml::Value::String(s) => out.push((key, mask_password(s))),
            other => out.push((key, other.to_string())),
        }
    }
}

/// `postgres://user:secret@host` → `postgres://user:***@host`, and
/// `password=secret` → `password=***`.
pub fn mask_password(value: &str) -> String {
    let mut out = value.to_string();
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        if let Some(at) = out[rest..].find('@').map(|i| rest + i) {
            if let Some(colon) = out[rest..at].find(':').map(|i| rest + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(start) = out.find("password=") {
        let from = start + "password=".len();
        let end = out[from..].find([' ', '&']).map_or(out.len(), |i| from + i);
        out.replace_range(from..end, "***");
    }
    out
}

/// A phase in a few lines.
pub fn phase_summary(p: &Phase) -> String {
    let mut lines = vec![
        format!(
            "{}: filtered queries p95 {:.2} ms, p50 {:.2} ms, mean {:.2} ms; all queries {:.0}/s",
            p.name, p.filtered.p95_ms, p.filtered.p50_ms, p.filtered.mean_ms, p.overall.throughput
        ),
        format!(
            "{}: writes {:.0}/s (write-only runs), {} failed queries per trial",
            p.name, p.write_throughput, p.errors
        ),
    ];
    if let Some(s) = &p.spike {
        lines.push(format!(
            "{}: spike with {} clients: filtered p95 {:.2} ms, {} failed",
            p.name, s.clients, s.filtered.p95_ms, s.errors
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(
            mask_password("host=db user=app password=s3cret dbname=app"),
            "host=db user=app password=*** dbname=app"
        );
        assert_eq!(
            mask_password("postgres://app@db/app"),
            "postgres://app@db/app"
        );
        assert_eq!(mask_password("127.0.0.1:6432"), "127.0.0.1:6432");
    }
}
