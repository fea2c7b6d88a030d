//! Configuration: `proxy.toml`, then `INDEXPILOT_*` environment variables, then
//! command-line overrides (later wins), validated once into a typed [`Config`].
//! Every error names the key and where its value came from.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What kind of value a key holds, so that environment variables and flags
/// (always strings) can be turned into the right TOML type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

/// Every key IndexPilot understands, dotted as in `proxy.toml`. The
/// environment variable for a key is `INDEXPILOT_` + the key upper-cased with
/// dots turned into underscores (`tls.cert` → `INDEXPILOT_TLS_CERT`).
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("upstream", Kind::Str),
    ("max_client_connections", Kind::Int),
    ("max_message_bytes", Kind::Int),
    ("buffer_bytes", Kind::Int),
    ("connect_timeout", Kind::Str),
    ("startup_timeout", Kind::Str),
    ("idle_timeout", Kind::Str),
    ("shutdown_timeout", Kind::Str),
    ("worker_threads", Kind::Int),
    ("event_queue_capacity", Kind::Int),
    ("log.level", Kind::Str),
    ("log.format", Kind::Str),
    ("tls.cert", Kind::Str),
    ("tls.key", Kind::Str),
    ("upstream_tls.mode", Kind::Str),
    ("upstream_tls.ca_file", Kind::Str),
    ("upstream_tls.server_name", Kind::Str),
    ("metrics_listen", Kind::Str),
    ("analysis.enabled", Kind::Bool),
    ("analysis.max_parse_bytes", Kind::Int),
    ("analysis.cache_capacity", Kind::Int),
    ("analysis.tenant_column", Kind::Str),
    ("analysis.tenant_source", Kind::Str),
    ("analysis.tenant_parameter", Kind::Str),
    ("analysis.max_tenants", Kind::Int),
    ("stats.window", Kind::Str),
    ("stats.windows_kept", Kind::Int),
    ("stats.flush_interval", Kind::Str),
    ("stats.flush_batch_rows", Kind::Int),
    ("stats.max_pending_rows", Kind::Int),
    ("admin.dsn", Kind::Str),
    ("admin.schema", Kind::Str),
    ("indexer.mode", Kind::Str),
    ("indexer.dsn", Kind::Str),
    ("indexer.interval", Kind::Str),
    ("indexer.min_calls", Kind::Int),
    ("indexer.min_table_rows", Kind::Int),
    ("indexer.max_partial_tenants", Kind::Int),
    ("indexer.partial_share", Kind::Float),
    ("indexer.horizon", Kind::Str),
    ("indexer.hypopg", Kind::Bool),
    ("indexer.drop_superseded", Kind::Bool),
    ("indexer.build_windows", Kind::Str),
    ("indexer.max_builds_per_hour", Kind::Int),
    ("indexer.max_indexes_per_table", Kind::Int),
    ("indexer.max_total_index_bytes", Kind::Int),
    ("indexer.lock_timeout", Kind::Str),
    ("indexer.statement_timeout", Kind::Str),
    ("indexer.verify_window", Kind::Str),
    ("indexer.verify_min_calls", Kind::Int),
    ("indexer.verify_min_gain", Kind::Float),
    ("indexer.unused_after", Kind::Str),
    ("indexer.index_prefix", Kind::Str),
    ("genome.exclude_schemas", Kind::Str),
    ("genome.exclude_tables", Kind::Str),
    ("genome.not_indexable", Kind::Str),
    ("genome.feature_groups", Kind::Str),
    ("expression.min_calls", Kind::Int),
    ("expression.fade_after", Kind::Str),
];

/// A configuration error: which key, from which source, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey { key: String, origin: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    upstream: Option<String>,
    max_client_connections: Option<u64>,
    max_message_bytes: Option<u64>,
    buffer_bytes: Option<u64>,
    connect_timeout: Option<String>,
    startup_timeout: Option<String>,
    idle_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    worker_threads: Option<u64>,
    event_queue_capacity: Option<u64>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    upstream_tls: RawUpstreamTls,
    metrics_listen: Option<String>,
    #[serde(default)]
    analysis: RawAnalysis,
    #[serde(default)]
    stats: RawStats,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    indexer: RawIndexer,
    #[serde(default)]
    genome: RawGenome,
    #[serde(default)]
    expression: RawExpression,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenome {
    exclude_schemas: Option<String>,
    exclude_tables: Option<String>,
    not_indexable: Option<String>,
    feature_groups: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpression {
    min_calls: Option<u64>,
    fade_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndexer {
    mode: Option<String>,
    dsn: Option<String>,
    interval: Option<String>,
    min_calls: Option<u64>,
    min_table_rows: Option<u64>,
    max_partial_tenants: Option<u64>,
    partial_share: Option<f64>,
    horizon: Option<String>,
    hypopg: Option<bool>,
    drop_superseded: Option<bool>,
    build_windows: Option<String>,
    max_builds_per_hour: Option<u64>,
    max_indexes_per_table: Option<u64>,
    max_total_index_bytes: Option<u64>,
    lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    verify_window: Option<String>,
    verify_min_calls: Option<u64>,
    verify_min_gain: Option<f64>,
    unused_after: Option<String>,
    index_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnalysis {
    enabled: Option<bool>,
    max_parse_bytes: Option<u64>,
    cache_capacity: Option<u64>,
    tenant_column: Option<String>,
    tenant_source: Option<String>,
    tenant_parameter: Option<String>,
    max_tenants: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    window: Option<String>,
    windows_kept: Option<u64>,
    flush_interval: Option<String>,
    flush_batch_rows: Option<u64>,
    max_pending_rows: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    dsn: Option<String>,
    schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTls {
    mode: Option<String>,
    ca_file: Option<String>,
    server_name: Option<String>,
}

/// Where the proxy connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamAddr {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// TLS towards the upstream server, in libpq `sslmode` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

#[derive(Clone, Debug)]
pub struct UpstreamTls {
    pub mode: UpstreamTlsMode,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// Certificate and key for terminating client TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a statement's tenant comes from (DESIGN.md decision 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantSource {
    /// An equality on `tenant_column` (literal or bound `$n`).
    Column,
    /// A startup parameter, e.g. `options=-c indexpilot.tenant=42`.
    StartupParameter,
    /// A session variable set with `SET indexpilot.tenant = ...`.
    SessionVariable,
    /// The connection's user name.
    User,
}

#[derive(Clone, Debug)]
pub struct AnalysisConfig {
    pub enabled: bool,
    pub max_parse_bytes: usize,
    pub cache_capacity: usize,
    pub tenant_column: String,
    pub tenant_source: TenantSource,
    pub tenant_parameter: String,
    pub max_tenants: usize,
}

#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub window: Duration,
    pub windows_kept: usize,
    pub flush_interval: Duration,
    pub flush_batch_rows: usize,
    pub max_pending_rows: usize,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// IndexPilot's own connection (with credentials); `None`: nothing is persisted.
    pub dsn: Option<String>,
    pub schema: String,
}

/// What the indexer may do (DESIGN.md decision 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexerMode {
    /// Count and flush statistics only; no decisions.
    Off,
    /// Record recommendations with their DDL and evidence; build nothing.
    Advise,
    /// Build, verify and revert indexes.
    Apply,
}

impl IndexerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexerMode::Off => "off",
            IndexerMode::Advise => "advise",
            IndexerMode::Apply => "apply",
        }
    }
}

/// A daily UTC time range in which builds may start, in minutes after
/// midnight; `start > end` wraps past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildWindow {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl BuildWindow {
    /// Whether `minute` (after UTC midnight) lies inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

#[derive(Clone, Debug)]
pub struct IndexerConfig {
    pub mode: IndexerMode,
    /// The leader's connection (DDL, advisory lock); `None`: `admin.dsn`.
    pub dsn: Option<String>,
    pub interval: Duration,
    pub min_calls: u64,
    pub min_table_rows: u64,
    pub max_partial_tenants: usize,
    pub partial_share: f64,
    pub horizon: Duration,
    pub hypopg: bool,
    /// Empty: builds may start at any time.
    pub build_windows: Vec<BuildWindow>,
    pub max_builds_per_hour: u32,
    pub max_indexes_per_table: usize,
    /// 0: unlimited.
    pub max_total_index_bytes: u64,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub verify_window: Duration,
    pub verify_min_calls: u64,
    pub verify_min_gain: f64,
    /// `None`: never drop an index for being unused.
    pub unused_after: Option<Duration>,
    /// Drop an idle index of ours whose statements the planner now serves
    /// with another index.
    pub drop_superseded: bool,
    pub index_prefix: String,
}

/// Overrides of the discovered genome (DESIGN.md decision 10). Table names
/// are labels as the statistics use them: `table` in `public`, else
/// `schema.table`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenomeConfig {
    pub exclude_schemas: Vec<String>,
    pub exclude_tables: Vec<String>,
    /// `table.column` fields never indexed.
    pub not_indexable: Vec<String>,
    /// (group, `table.column` pattern; a trailing `*` matches a prefix).
    pub feature_groups: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct ExpressionConfig {
    /// Calls by one tenant on one field, within the remembered windows,
    /// that make the field expressed by that tenant (observed).
    pub min_calls: u64,
    /// An observed expression with no calls for this long fades.
    pub fade_after: Duration,
}

/// The validated configuration, shared as `Arc<Config>`.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstream: UpstreamAddr,
    pub max_client_connections: usize,
    pub max_message_bytes: usize,
    pub buffer_bytes: usize,
    pub connect_timeout: Duration,
    pub startup_timeout: Duration,
    /// `None` disables the idle timeout.
    pub idle_timeout: Option<Duration>,
    pub shutdown_timeout: Duration,
    /// Relay threads, each a current-thread runtime with its own listener;
    /// 0 (the default) means one per CPU.
    pub worker_threads: usize,
    pub event_queue_capacity: usize,
    pub log_level: String,
    pub log_format: LogFormat,
    pub tls: Option<TlsFiles>,
    pub upstream_tls: UpstreamTls,
    /// `None` disables the metrics and health endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub analysis: AnalysisConfig,
    pub stats: StatsConfig,
    pub admin: AdminConfig,
    pub indexer: IndexerConfig,
    pub genome: GenomeConfig,
    pub expression: ExpressionConfig,
}

/// The layered sources of settings, lowest precedence first.
#[derive(Debug, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// `key=value` overrides from flags.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// Load from the process environment plus the given file and overrides.
    pub fn load(
        file: Option<&Path>,
        overrides: Vec<(String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::from_sources(Sources {
            file: file.map(Path::to_path_buf),
            env: std::env::vars().collect(),
            overrides,
        })
    }

    /// Build a config from `key=value` overrides only (tests, embedding).
    pub fn from_overrides(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(Sources {
            overrides: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        })
    }

    pub fn from_sources(sources: Sources) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let mut origins: HashMap<String, String> = HashMap::new();
        if let Some(path) = &sources.file {
            table = read_file(path)?;
            let origin = path.display().to_string();
            for key in leaf_keys(&table, "") {
                origins.insert(key, origin.clone());
            }
        }
        for (name, value) in &sources.env {
            if let Some((key, kind)) = key_for_env(name) {
                set_key(&mut table, key, kind, value, name)?;
                origins.insert(key.to_string(), format!("environment variable {name}"));
            }
        }
        for (key, value) in &sources.overrides {
            let origin = format!("flag --set {key}");
            let kind = kind_of(key).ok_or_else(|| ConfigError::UnknownKey {
                key: key.clone(),
                origin: origin.clone(),
            })?;
            set_key(&mut table, key, kind, value, &origin)?;
            origins.insert(key.clone(), origin);
        }
        // A key, or a table (`[proxy]`) whose keys came from one source.
        let origin_of = |key: &str| {
            let table = format!("{key}.");
            origins
                .get(key)
                .or_else(|| {
                    origins
                        .iter()
                        .find(|(k, _)| k.starts_with(&table))
                        .map(|(_, o)| o)
                })
                .cloned()
                .unwrap_or_else(|| "built-in default".to_string())
        };
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let message = e.inner().to_string();
                if let Some(field) = unknown_field(&message) {
                    let full = unknown_key(&key, &field);
                    ConfigError::UnknownKey {
                        origin: origin_of(&full),
                        key: full,
                    }
                } else {
                    ConfigError::Invalid {
                        origin: origin_of(&key),
                        key,
                        message,
                    }
                }
            })?;
        raw.validate(&origin_of)
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
}

/// Dotted names of every non-table value, to remember where each came from.
fn leaf_keys(table: &toml::Table, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => out.extend(leaf_keys(inner, &full)),
            _ => out.push(full),
        }
    }
    out
}

fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

fn key_for_env(name: &str) -> Option<(&'static str, Kind)> {
    let rest = name.strip_prefix("INDEXPILOT_")?;
    KEYS.iter()
        .find(|(k, _)| k.replace('.', "_").eq_ignore_ascii_case(rest))
        .map(|(k, kind)| (*k, *kind))
}

fn set_key(
    table: &mut toml::Table,
    key: &str,
    kind: Kind,
    value: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let parsed = parse_value(kind, value).map_err(|message| ConfigError::Invalid {
        key: key.to_string(),
        origin: origin.to_string(),
        message,
    })?;
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().unwrap_or(key);
    let mut cur = table;
    for part in parts {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Invalid {
                    key: part.to_string(),
                    origin: origin.to_string(),
                    message: "expected a table".to_string(),
                })
            }
        };
    }
    cur.insert(leaf.to_string(), parsed);
    Ok(())
}

/// Turn an environment variable or flag string into the key's TOML type.
fn parse_value(kind: Kind, value: &str) -> Result<toml::Value, String> {
    let v = value.trim();
    match kind {
        Kind::Str => Ok(toml::Value::String(value.to_string())),
        Kind::Int => v
            .parse()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected an integer, got {value:?}")),
        Kind::Float => v
            .parse()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got {value:?}")),
        Kind::Bool => match v {
            "true" | "on" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "off" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {value:?}")),
        },
    }
}

/// Extract `foo` from serde's "unknown field `foo`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

/// The dotted key of an unknown `field` reported at serde path `path`:
/// the path already ends with the field (`nosuch`, `indexer.nosuch`), or
/// names its table (`.` for the top level).
fn unknown_key(path: &str, field: &str) -> String {
    if path == "." {
        field.to_string()
    } else if path == field || path.ends_with(&format!(".{field}")) {
        path.to_string()
    } else {
        format!("{path}.{field}")
    }
}

impl RawConfig {
    fn validate(self, origin_of: &dyn Fn(&str) -> String) -> Result<Config, ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            origin: origin_of(key),
            message,
        };
        let listen_text = self.listen.as_deref().unwrap_or("127.0.0.1:6432");
        let listen = resolve_listen(listen_text).map_err(|m| bad("listen", m))?;
        let upstream_text = self
            .upstream
            .as_deref()
            .unwrap_or("postgres://127.0.0.1:5432");
        let upstream = parse_upstream(upstream_text).map_err(|m| bad("upstream", m))?;
        let duration = |key: &str, value: &Option<String>, default: &str| {
            parse_duration(value.as_deref().unwrap_or(default)).map_err(|m| bad(key, m))
        };
        let positive =
            |key: &str, value: Option<u64>, default: u64, min: u64| -> Result<usize, ConfigError> {
                let v = value.unwrap_or(default);
                if v < min {
                    return Err(bad(key, format!("must be at least {min}, got {v}")));
                }
                usize::try_from(v).map_err(|_| bad(key, format!("{v} is too large")))
            };
        let idle = duration("idle_timeout", &self.idle_timeout, "0s")?;
        let log_format = match self.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    format!("expected \"text\" or \"json\", got {other:?}"),
                ))
            }
        };
        let tls = match (self.tls.cert, self.tls.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: existing_file(&cert).map_err(|m| bad("tls.cert", m))?,
                key: existing_file(&key).map_err(|m| bad("tls.key", m))?,
            }),
            (Some(_), None) => return Err(bad("tls.key", "required when tls.cert is set".into())),
            (None, Some(_)) => return Err(bad("tls.cert", "required when tls.key is set".into())),
        };
        let mode = match self.upstream_tls.mode.as_deref().unwrap_or("disable") {
            "disable" => UpstreamTlsMode::Disable,
            "prefer" => UpstreamTlsMode::Prefer,
            "require" => UpstreamTlsMode::Require,
            "verify-full" => UpstreamTlsMode::VerifyFull,
            other => {
                return Err(bad(
                    "upstream_tls.mode",
                    format!("expected disable, prefer, require or verify-full, got {other:?}"),
                ))
            }
        };
        let ca_file = match self.upstream_tls.ca_file {
            Some(p) => Some(existing_file(&p).map_err(|m| bad("upstream_tls.ca_file", m))?),
            None => None,
        };
        if mode == UpstreamTlsMode::VerifyFull && ca_file.is_none() {
            return Err(bad(
                "upstream_tls.ca_file",
                "required when upstream_tls.mode = \"verify-full\"".into(),
            ));
        }
        let metrics_listen = match self.metrics_listen.as_deref().unwrap_or("127.0.0.1:9187") {
            "" | "off" => None,
            text => Some(resolve_listen(text).map_err(|m| bad("metrics_listen", m))?),
        };
        let analysis = validate_analysis(self.analysis, &bad)?;
        let stats = StatsConfig {
            window: duration("stats.window", &self.stats.window, "60s")?,
            windows_kept: positive("stats.windows_kept", self.stats.windows_kept, 60, 1)?,
            flush_interval: duration("stats.flush_interval", &self.stats.flush_interval, "10s")?,
            flush_batch_rows: positive(
                "stats.flush_batch_rows",
                self.stats.flush_batch_rows,
                500,
                1,
            )?,
            max_pending_rows: positive(
                "stats.max_pending_rows",
                self.stats.max_pending_rows,
                100_000,
                1,
            )?,
        };
        if stats.window < Duration::from_secs(1) {
            return Err(bad("stats.window", "must be at least 1s".into()));
        }
        let admin = AdminConfig {
            dsn: self.admin.dsn.filter(|d| !d.trim().is_empty()),
            schema: self
                .admin
                .schema
                .unwrap_or_else(|| "indexpilot".to_string()),
        };
        if admin.schema.is_empty() || admin.schema.len() > 63 {
            return Err(bad("admin.schema", "must be 1 to 63 characters".into()));
        }
        let indexer = validate_indexer(self.indexer, &bad)?;
        let genome = validate_genome(self.genome, &bad)?;
        let expression = ExpressionConfig {
            min_calls: match self.expression.min_calls.unwrap_or(20) {
                0 => return Err(bad("expression.min_calls", "must be at least 1".into())),
                n => n,
            },
            fade_after: duration("expression.fade_after", &self.expression.fade_after, "24h")?,
        };
        Ok(Config {
            listen,
            upstream,
            max_client_connections: positive(
                "max_client_connections",
                self.max_client_connections,
                1000,
                1,
            )?,
            max_message_bytes: positive(
                "max_message_bytes",
                self.max_message_bytes,
                64 << 20,
                1024,
            )?,
            buffer_bytes: positive("buffer_bytes", self.buffer_bytes, 16 << 10, 1024)?,
            connect_timeout: duration("connect_timeout", &self.connect_timeout, "5s")?,
            startup_timeout: duration("startup_timeout", &self.startup_timeout, "30s")?,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            shutdown_timeout: duration("shutdown_timeout", &self.shutdown_timeout, "30s")?,
            worker_threads: positive("worker_threads", self.worker_threads, 0, 0)?,
            event_queue_capacity: positive(
                "event_queue_capacity",
                self.event_queue_capacity,
                65536,
                1,
            )?,
            log_level: self.log.level.unwrap_or_else(|| "info".to_string()),
            log_format,
            tls,
            upstream_tls: UpstreamTls {
                mode,
                ca_file,
                server_name: self.upstream_tls.server_name,
            },
            metrics_listen,
            analysis,
            stats,
            admin,
            indexer,
            genome,
            expression,
        })
    }
}

/// Comma-separated items, trimmed, empty ones dropped.
fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn validate_genome(
    raw: RawGenome,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<GenomeConfig, ConfigError> {
    let not_indexable = list(raw.not_indexable.as_deref());
    if let Some(f) = not_indexable.iter().find(|f| !f.contains('.')) {
        return Err(bad(
            "genome.not_indexable",
            format!("{f:?} is not table.column"),
        ));
    }
    let mut feature_groups = Vec::new();
    for part in raw.feature_groups.as_deref().unwrap_or("").split(';') {
        if part.trim().is_empty() {
            continue;
        }
        let (group, fields) = part.split_once(':').ok_or_else(|| {
            bad(
                "genome.feature_groups",
                format!("{part:?} is not \"group: table.column, ...\""),
            )
        })?;
        for field in list(Some(fields)) {
            if !field.contains('.') {
                return Err(bad(
                    "genome.feature_groups",
                    format!("{field:?} is not table.column"),
                ));
            }
            feature_groups.push((group.trim().to_string(), field));
        }
    }
    Ok(GenomeConfig {
        exclude_schemas: list(raw.exclude_schemas.as_deref()),
        exclude_tables: list(raw.exclude_tables.as_deref()),
        not_indexable,
        feature_groups,
    })
}

fn validate_indexer(
    raw: RawIndexer,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<IndexerConfig, ConfigError> {
    let mode = match raw.mode.as_deref().unwrap_or("advise") {
        "off" => IndexerMode::Off,
        "advise" => IndexerMode::Advise,
        "apply" => IndexerMode::Apply,
        other => {
            return Err(bad(
                "indexer.mode",
                format!("expected off, advise or apply, got {other:?}"),
            ))
        }
    };
    let duration = |key: &str, value: &Option<String>, default: &str| {
        parse_duration(value.as_deref().unwrap_or(default)).map_err(|m| bad(key, m))
    };
    let count = |key: &str, v: Option<u64>, default: u64, min: u64| -> Result<u64, ConfigError> {
        let v = v.unwrap_or(default);
        if v < min {
            return Err(bad(key, format!("must be at least {min}, got {v}")));
        }
        Ok(v)
    };
    let interval = duration("indexer.interval", &raw.interval, "5s")?;
    if interval < Duration::from_millis(100) {
        return Err(bad("indexer.interval", "must be at least 100ms".into()));
    }
    let partial_share = raw.partial_share.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&partial_share) {
        return Err(bad(
            "indexer.partial_share",
            format!("must be between 0 and 1, got {partial_share}"),
        ));
    }
    let verify_min_gain = raw.verify_min_gain.unwrap_or(1.2);
    if !(verify_min_gain >= 1.0 && verify_min_gain.is_finite()) {
        return Err(bad(
            "indexer.verify_min_gain",
            format!("must be a ratio of at least 1.0, got {verify_min_gain}"),
        ));
    }
    let build_windows = parse_build_windows(raw.build_windows.as_deref().unwrap_or(""))
        .map_err(|m| bad("indexer.build_windows", m))?;
    let unused_after = duration("indexer.unused_after", &raw.unused_after, "24h")?;
    let index_prefix = raw
        .index_prefix
        .unwrap_or_else(|| "indexpilot_".to_string());
    if index_prefix.len() < 3
        || index_prefix.len() > 20
        || !index_prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad(
            "indexer.index_prefix",
            "must be 3 to 20 characters of a-z, 0-9 and _ (only indexes whose names carry it are ever dropped)".into(),
        ));
    }
    let verify_window = duration("indexer.verify_window", &raw.verify_window, "60s")?;
    if verify_window.is_zero() {
        return Err(bad("indexer.verify_window", "must be more than 0".into()));
    }
    Ok(IndexerConfig {
        mode,
        dsn: raw.dsn.filter(|d| !d.trim().is_empty()),
        interval,
        min_calls: count("indexer.min_calls", raw.min_calls, 50, 1)?,
        min_table_rows: count("indexer.min_table_rows", raw.min_table_rows, 10_000, 0)?,
        max_partial_tenants: count("indexer.max_partial_tenants", raw.max_partial_tenants, 3, 0)?
            as usize,
        partial_share,
        horizon: duration("indexer.horizon", &raw.horizon, "1h")?,
        hypopg: raw.hypopg.unwrap_or(true),
        drop_superseded: raw.drop_superseded.unwrap_or(true),
        build_windows,
        max_builds_per_hour: count(
            "indexer.max_builds_per_hour",
            raw.max_builds_per_hour,
            20,
            0,
        )?
        .min(u64::from(u32::MAX)) as u32,
        max_indexes_per_table: count(
            "indexer.max_indexes_per_table",
            raw.max_indexes_per_table,
            8,
            0,
        )? as usize,
        max_total_index_bytes: count(
            "indexer.max_total_index_bytes",
            raw.max_total_index_bytes,
            10 << 30,
            0,
        )?,
        lock_timeout: duration("indexer.lock_timeout", &raw.lock_timeout, "2s")?,
        statement_timeout: duration("indexer.statement_timeout", &raw.statement_timeout, "30m")?,
        verify_window,
        verify_min_calls: count("indexer.verify_min_calls", raw.verify_min_calls, 20, 1)?,
        verify_min_gain,
        unused_after: (!unused_after.is_zero()).then_some(unused_after),
        index_prefix,
    })
}

/// Parse `"HH:MM-HH:MM, ..."` (UTC); empty means no restriction.
pub fn parse_build_windows(text: &str) -> Result<Vec<BuildWindow>, String> {
    let minute = |t: &str| -> Result<u16, String> {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("{t:?} is not HH:MM"))?;
        let (h, m): (u16, u16) = (
            h.parse().map_err(|_| format!("{t:?} is not HH:MM"))?,
            m.parse().map_err(|_| format!("{t:?} is not HH:MM"))?,
        );
        if h > 24 || m > 59 || (h == 24 && m > 0) {
            return Err(format!("{t:?} is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("{part:?} is not a range like 01:00-05:00 (UTC)"))?;
            Ok(BuildWindow {
                start_minute: minute(a)?,
                end_minute: minute(b)?,
            })
        })
        .collect()
}

fn validate_analysis(
    raw: RawAnalysis,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<AnalysisConfig, ConfigError> {
    let tenant_source = match raw.tenant_source.as_deref().unwrap_or("column") {
        "column" => TenantSource::Column,
        "startup_parameter" => TenantSource::StartupParameter,
        "session_variable" => TenantSource::SessionVariable,
        "user" => TenantSource::User,
        other => {
            return Err(bad(
                "analysis.tenant_source",
                format!(
                    "expected column, startup_parameter, session_variable or user, got {other:?}"
                ),
            ))
        }
    };
    let size = |key: &str, v: Option<u64>, default: u64| -> Result<usize, ConfigError> {
        match v.unwrap_or(default) {
            0 => Err(bad(key, "must be at least 1".into())),
            n => usize::try_from(n).map_err(|_| bad(key, format!("{n} is too large"))),
        }
    };
    let tenant_column = raw.tenant_column.unwrap_or_else(|| "tenant_id".to_string());
    if tenant_column.is_empty() {
        return Err(bad("analysis.tenant_column", "must not be empty".into()));
    }
    Ok(AnalysisConfig {
        enabled: raw.enabled.unwrap_or(true),
        max_parse_bytes: size("analysis.max_parse_bytes", raw.max_parse_bytes, 16 * 1024)?,
        cache_capacity: size("analysis.cache_capacity", raw.cache_capacity, 10_000)?,
        tenant_column,
        tenant_source,
        tenant_parameter: raw
            .tenant_parameter
            .unwrap_or_else(|| "indexpilot.tenant".to_string()),
        max_tenants: size("analysis.max_tenants", raw.max_tenants, 10_000)?,
    })
}

fn existing_file(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "file {path:?} does not exist or is not a regular file"
        ))
    }
}

fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not a host:port address ({e})"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Parse `postgres://host:port`, `host:port`, or `unix:/path/to/.s.PGSQL.5432`.
/// Credentials and database names are refused: each client brings its own.
pub fn parse_upstream(text: &str) -> Result<UpstreamAddr, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return Ok(UpstreamAddr::Unix(PathBuf::from(path)));
    }
    let rest = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
        .unwrap_or(text);
    if rest.contains('@') {
        return Err("must not contain credentials: each client authenticates itself".into());
    }
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('?') {
        return Err("only host and port are used; the database comes from each client".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.starts_with('[')) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("invalid port {p:?}"))?,
        ),
        _ => (authority, 5432),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    Ok(UpstreamAddr::Tcp {
        host: host.to_string(),
        port,
    })
}

/// Parse `250ms`, `30s`, `5m`, `1h` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 30s, 5m, 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?} has no unit: use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(
        file: Option<&str>,
        env: &[(&str, &str)],
        sets: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let file = file.map(|text| {
            let path = std::env::temp_dir().join(format!(
                "ip-config-{}-{}.toml",
                std::process::id(),
                text.len()
            ));
            std::fs::write(&path, text).unwrap();
            path
        });
        Config::from_sources(Sources {
            file,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides: sets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn unknown_keys_in_the_file_are_named_once_with_the_file() {
        for (text, key) in [
            ("nosuch = 1\n", "nosuch"),
            (
                "[indexer]\nmode = \"off\"\nnosuch_key = 1\n",
                "indexer.nosuch_key",
            ),
            ("[nosuch_table]\nlisten = 12\n", "nosuch_table"),
        ] {
            let err = sources(Some(text), &[], &[]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unknown configuration key `{key}` (from ")),
                "{err}"
            );
            assert!(err.contains("ip-config-"), "the file is named: {err}");
        }
        assert_eq!(unknown_key(".", "x"), "x");
        assert_eq!(unknown_key("stats", "x"), "stats.x");
    }

    #[test]
    fn defaults_are_valid() {
        let c = sources(None, &[], &[]).unwrap();
        assert_eq!(c.listen.port(), 6432);
        assert_eq!(c.max_message_bytes, 64 << 20);
        assert!(c.idle_timeout.is_none());
        assert!(c.tls.is_none());
    }

    #[test]
    fn the_example_file_is_valid_and_states_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml");
        let from_file = Config::from_sources(Sources {
            file: Some(path),
            ..Sources::default()
        })
        .unwrap();
        let defaults = sources(None, &[], &[]).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn later_sources_win() {
        let file = "listen = \"127.0.0.1:7000\"\nmax_client_connections = 10\n";
        let c = sources(
            Some(file),
            &[("INDEXPILOT_MAX_CLIENT_CONNECTIONS", "20")],
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.max_client_connections, 20);
        let c = sources(
            Some(file),
            &[("INDEXPILOT_MAX_CLIENT_CONNECTIONS", "20")],
            &[("max_client_connections", "30")],
        )
        .unwrap();
        assert_eq!(c.max_client_connections, 30);
    }

    #[test]
    fn errors_name_key_and_origin() {
        let err = sources(Some("startup_timeout = \"ten\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("startup_timeout") && err.contains(".toml"),
            "{err}"
        );
        let err = sources(None, &[("INDEXPILOT_LOG_FORMAT", "xml")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.format") && err.contains("INDEXPILOT_LOG_FORMAT"),
            "{err}"
        );
        let err = sources(Some("[tls]\ncertificate = \"x\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.certificate"), "{err}");
        let err = sources(Some("max_message_bytes = \"big\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_message_bytes"), "{err}");
        let err = sources(None, &[], &[("nope", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = sources(None, &[], &[("tls.cert", "/nonexistent")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.cert") || err.contains("tls.key"), "{err}");
    }

    #[test]
    fn upstream_forms() {
        let tcp = |h: &str, p| UpstreamAddr::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            parse_upstream("postgres://db:5433").unwrap(),
            tcp("db", 5433)
        );
        assert_eq!(parse_upstream("postgresql://db/").unwrap(), tcp("db", 5432));
        assert_eq!(
            parse_upstream("10.0.0.1:6000").unwrap(),
            tcp("10.0.0.1", 6000)
        );
        assert_eq!(
            parse_upstream("postgres://[::1]:5432").unwrap(),
            tcp("::1", 5432)
        );
        assert_eq!(
            parse_upstream("unix:/run/pg/.s.PGSQL.5432").unwrap(),
            UpstreamAddr::Unix("/run/pg/.s.PGSQL.5432".into())
        );
        assert!(parse_upstream("postgres://u:p@db/app").is_err());
        assert!(parse_upstream("postgres://db:x").is_err());
    }

    #[test]
    fn indexer_keys() {
        let c = sources(None, &[], &[]).unwrap();
        assert_eq!(c.indexer.mode, IndexerMode::Advise);
        assert_eq!(c.indexer.min_calls, 50);
        let c = sources(
            None,
            &[("INDEXPILOT_INDEXER_MODE", "apply")],
            &[
                ("indexer.verify_min_gain", "1.5"),
                ("indexer.build_windows", "22:00-04:00, 12:00-12:30"),
            ],
        )
        .unwrap();
        assert_eq!(c.indexer.mode, IndexerMode::Apply);
        assert_eq!(c.indexer.verify_min_gain, 1.5);
        let w = &c.indexer.build_windows;
        assert!(w[0].contains(23 * 60) && w[0].contains(60) && !w[0].contains(5 * 60));
        assert!(w[1].contains(12 * 60 + 10) && !w[1].contains(12 * 60 + 30));
        for (key, value) in [
            ("indexer.mode", "yolo"),
            ("indexer.verify_min_gain", "0.5"),
            ("indexer.build_windows", "25:00-01:00"),
            ("indexer.index_prefix", "Bad-Prefix"),
            ("indexer.partial_share", "2"),
        ] {
            let err = sources(None, &[], &[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn genome_overrides() {
        let c = sources(
            None,
            &[],
            &[
                ("genome.not_indexable", "contacts.notes, ops.jobs.payload"),
                (
                    "genome.feature_groups",
                    "custom: contacts.custom_*; contact: contacts.email, contacts.phone",
                ),
                ("genome.exclude_tables", "audit_log"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.genome.not_indexable,
            ["contacts.notes", "ops.jobs.payload"]
        );
        assert_eq!(c.genome.feature_groups.len(), 3);
        assert_eq!(
            c.genome.feature_groups[0],
            ("custom".into(), "contacts.custom_*".into())
        );
        assert_eq!(c.genome.exclude_tables, ["audit_log"]);
        for (key, value) in [
            ("genome.not_indexable", "notes"),
            ("genome.feature_groups", "contacts.email"),
            ("expression.min_calls", "0"),
        ] {
            let err = sources(None, &[], &[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
    }
}
