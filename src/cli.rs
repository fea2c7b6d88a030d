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
}

#[derive(Debug, clap::Args)]
pub struct AdviseArgs {
    /// Configuration file; `indexer.*`, `admin.*` and `analysis.*` are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Connection string, instead of `indexer.dsn` / `admin.dsn`.
    #[arg(long, value_name = "DSN")]
    pub dsn: Option<String>,
    /// Override any config key, e.g. `--set indexer.min_calls=10`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// Configuration file; `admin.dsn` and `admin.schema` are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Connection string, instead of `admin.dsn`.
    #[arg(long, value_name = "DSN")]
    pub dsn: Option<String>,
    /// Override any config key, e.g. `--set admin.schema=ops`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Print JSON instead of a timeline.
    #[arg(long)]
    pub json: bool,
    /// How many of the most recent entries.
    #[arg(long, default_value_t = 200)]
    pub limit: i64,
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
