//! Command-line interface: subcommands and the flags that override config keys.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "indexpilot",
    version,
    about = "Transparent PostgreSQL proxy that indexes a multi-tenant database by itself"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve(ServeArgs),
    /// Print the mutation lineage log as a timeline (reverts beneath creates).
    Lineage(LineageArgs),
    /// Print the current index recommendations with their evidence and DDL,
    /// computed from the statistics every replica flushed.
    Advise(AdviseArgs),
    /// Show the genome catalog (every field, its type and whether it is
    /// indexable), or refresh it from the database catalog.
    Genome(GenomeArgs),
    /// Show or declare which tenants use which fields.
    Expression(ExpressionArgs),
    /// The whole story on a throwaway PostgreSQL: seed a multi-tenant CRM,
    /// measure it without and with automatic indexing, write the report.
    Demo(DemoArgs),
    /// The demo's workload against a running proxy and database: seed the
    /// CRM if absent, measure one phase (baseline or auto), record it.
    Simulate(SimulateArgs),
    /// Build the before/after report from IndexPilot's tables (recorded
    /// simulation runs, lineage log, expression profiles, index sizes).
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Where report.md, report.json and latency.svg go.
    #[arg(long, default_value = "./report")]
    pub out: PathBuf,
    /// A setting of the throwaway PostgreSQL, e.g. `shared_buffers=1GB`
    /// (repeatable; overrides the demo's: shared_buffers=256MB,
    /// max_wal_size=8GB, track_wal_io_timing=on and PostgreSQL's default
    /// durability, fsync, synchronous_commit and full_page_writes on).
    #[arg(long = "server-setting", value_name = "KEY=VALUE", value_parser = server_setting)]
    pub server_settings: Vec<(String, String)>,
}

/// `key=value` with a PostgreSQL setting name for the key.
fn server_setting(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE, e.g. shared_buffers=1GB"))?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !valid {
        return Err(format!("{key:?} is not a PostgreSQL setting name"));
    }
    Ok((key.to_ascii_lowercase(), value.trim().to_string()))
}

/// A scenario by name, with any of its sizes overridden.
#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// tiny (CI), small (the seed report's 10 tenants), medium, large
    /// (1,000 tenants, 10M contacts).
    #[arg(long, default_value = "tiny")]
    pub scenario: String,
    /// Override the scenario's tenant count.
    #[arg(long)]
    pub tenants: Option<u32>,
    /// Override the scenario's contact count (organizations: a tenth,
    /// interactions: twice).
    #[arg(long)]
    pub contacts: Option<u64>,
    /// Override the queries per measured run.
    #[arg(long)]
    pub queries: Option<u64>,
    /// Override the concurrent clients.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Override the measured runs per phase.
    #[arg(long)]
    pub trials: Option<u32>,
    /// Override the random seed (data and query sequence).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ScenarioArgs {
    /// The named scenario with the overrides applied, or the message for an
    /// unknown name.
    pub fn scenario(&self) -> Result<crate::sim::Scenario, String> {
        let mut s = crate::sim::Scenario::named(&self.scenario).ok_or_else(|| {
            format!(
                "unknown scenario {:?}: use tiny, small, medium or large",
                self.scenario
            )
        })?;
        if let Some(v) = self.tenants {
            s.tenants = v.max(1);
        }
        if let Some(v) = self.contacts {
            s.contacts = v.max(1);
        }
        if let Some(v) = self.queries {
            s.queries = v.max(1);
        }
        if let Some(v) = self.concurrency {
            s.concurrency = v.max(1);
        }
        if let Some(v) = self.trials {
            s.trials = v.max(1);
        }
        if let Some(v) = self.seed {
            s.seed = v;
        }
        Ok(s)
    }
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The application's connection string, pointing at the proxy, e.g.
    /// postgres://app:pw@proxy:6432/app.
    #[arg(long, value_name = "DSN")]
    pub dsn: String,
    /// Where IndexPilot's tables are (to follow the indexer and record the
    /// run); default: --dsn.
    #[arg(long, value_name = "DSN")]
    pub admin_dsn: Option<String>,
    /// IndexPilot's schema (config key admin.schema).
    #[arg(long, default_value = "indexpilot")]
    pub schema: String,
    /// baseline: measure the proxy with indexing off (or advise); auto:
    /// learn until the indexer (apply mode) settles, measure, drift.
    #[arg(long, value_enum)]
    pub mode: crate::report::collect::Mode,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Replace a simulation dataset seeded for another scenario (tables
    /// IndexPilot did not create are never touched).
    #[arg(long)]
    pub reseed: bool,
    /// The proxy's configuration file, recorded with the run for the report
    /// (passwords masked).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long learning (auto) and the drift may last at most, e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = crate::config::parse_duration)]
    pub learn_limit: std::time::Duration,
    /// Learn at least this long before calling the indexer settled (longer
    /// than one indexer.verify_window, so a build can be verified).
    #[arg(long, default_value = "75s", value_parser = crate::config::parse_duration)]
    pub min_learn: std::time::Duration,
    /// Skip the drift phase after the auto measurement.
    #[arg(long)]
    pub no_drift: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Where report.md, report.json and latency.svg go.
    #[arg(long, default_value = "./report")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ExpressionArgs {
    #[command(subcommand)]
    pub action: ExpressionAction,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExpressionAction {
    /// Print the expression profiles (one tenant's, with the all-tenant
    /// defaults, or everyone's).
    Show {
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
    },
    /// Declare TABLE.COLUMN used by a tenant (or by all): it wins over what
    /// is observed.
    Enable(Declare),
    /// Declare TABLE.COLUMN not used by a tenant (or by all): its traffic
    /// no longer leads to indexes, and its partial indexes are dropped.
    Disable(Declare),
}

#[derive(Debug, clap::Args)]
pub struct Declare {
    /// The tenant (as the proxy attributes statements to tenants).
    #[arg(
        long,
        value_name = "TENANT",
        conflicts_with = "all",
        required_unless_present = "all"
    )]
    pub tenant: Option<String>,
    /// Every tenant (a default that a tenant's own declaration overrides).
    #[arg(long)]
    pub all: bool,
    /// The field, `table.column` (`schema.table.column` outside public).
    #[arg(value_name = "TABLE.COLUMN")]
    pub field: String,
}

#[derive(Debug, clap::Args)]
pub struct GenomeArgs {
    #[command(subcommand)]
    pub action: Option<GenomeAction>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// What `indexpilot genome` does; `show` when omitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum GenomeAction {
    /// Print the genome catalog as recorded.
    Show,
    /// Discover the genome from the database catalog (with the `genome.*`
    /// overrides), record what changed, and say so.
    Refresh,
}

#[derive(Debug, clap::Args)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// How many of the most recent entries.
    #[arg(long, default_value_t = 200)]
    pub limit: i64,
}

/// What every command that reads IndexPilot's tables takes.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Configuration file (see the annotated proxy.toml).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Connection string, instead of the one in the configuration
    /// (`admin.dsn`; for `advise`, `indexer.dsn` first).
    #[arg(long, value_name = "DSN", global = true)]
    pub dsn: Option<String>,
    /// Override any config key, e.g. `--set admin.schema=ops`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value, global = true)]
    pub set: Vec<(String, String)>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (see the annotated proxy.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to accept clients on (config key `listen`).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// PostgreSQL server to relay to (config key `upstream`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Override any config key, e.g. `--set max_client_connections=500`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
}

impl ServeArgs {
    /// Flag overrides as `key=value` pairs, in precedence order.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.listen {
            out.push(("listen".to_string(), v.clone()));
        }
        if let Some(v) = &self.upstream {
            out.push(("upstream".to_string(), v.clone()));
        }
        out.extend(self.set.iter().cloned());
        out
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_settings_parse_and_reject_bad_names() {
        assert_eq!(
            server_setting("shared_buffers = 1GB"),
            Ok(("shared_buffers".into(), "1GB".into()))
        );
        assert_eq!(
            server_setting("Work_Mem=64MB"),
            Ok(("work_mem".into(), "64MB".into()))
        );
        assert!(server_setting("fsync").unwrap_err().contains("KEY=VALUE"));
        let err = server_setting("a;b=1").unwrap_err();
        assert!(err.contains("not a PostgreSQL setting name"), "{err}");
    }
}
