//! The `indexpilot` binary: parse the command line, load the configuration,
//! install logging, hand over to the library.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indexpilot::cli::{
    AdviseArgs, Cli, Command, DbArgs, DemoArgs, ExpressionAction, ExpressionArgs, GenomeAction,
    GenomeArgs, LineageArgs, ReportArgs, ScenarioArgs, SimulateArgs,
};
use indexpilot::config::Config;
use indexpilot::genome::expression::{self, ALL_TENANTS};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lineage(args) => lineage(args),
        Command::Advise(args) => advise(args),
        Command::Genome(args) => genome(args),
        Command::Expression(args) => expression(args),
        Command::Demo(args) => demo(args),
        Command::Simulate(args) => simulate(args),
        Command::Report(args) => report(args),
        Command::Serve(args) => {
            let config = match load(args.config.as_deref(), args.overrides()) {
                Ok(c) => Arc::new(c),
                Err(code) => return code,
            };
            let _logs = indexpilot::init_tracing(&config);
            finish(run(indexpilot::serve(config)).map(|()| String::new()))
        }
    }
}

/// The configuration, or exit code 2 with the error (it names the key).
fn load(file: Option<&std::path::Path>, sets: Vec<(String, String)>) -> Result<Config, ExitCode> {
    let config = Config::load(file, sets).map_err(|e| {
        eprintln!("indexpilot: {e}");
        ExitCode::from(2)
    })?;
    // IndexPilot's own connections verify the server as upstream_tls says.
    indexpilot::dbconn::init(&config.upstream_tls).map_err(|e| {
        eprintln!("indexpilot: upstream_tls: {e}");
        ExitCode::from(2)
    })?;
    Ok(config)
}

/// The DSN of a database command, or exit code 2 saying how to give one.
fn need_dsn(dsn: Option<String>, keys: &str) -> Result<String, ExitCode> {
    dsn.ok_or_else(|| {
        eprintln!("indexpilot: no database to read: set {keys} in the config or pass --dsn");
        ExitCode::from(2)
    })
}

/// Run a future to completion on the library's runtime.
fn run<T, E>(work: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    let rt = indexpilot::runtime()?;
    rt.block_on(work).map_err(Into::into)
}

/// Print a command's output, or its error with exit code 1. A closed
/// stdout or stderr does not change the exit code (`print!` would panic).
fn finish(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            let _ = write!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "indexpilot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration of a command that reads IndexPilot's tables; `--dsn`
/// stands for both `admin.dsn` and `indexer.dsn`.
fn database(db: &DbArgs) -> Result<Config, ExitCode> {
    let mut sets = db.set.clone();
    if let Some(dsn) = &db.dsn {
        sets.push(("admin.dsn".to_string(), dsn.clone()));
        sets.push(("indexer.dsn".to_string(), dsn.clone()));
    }
    load(db.config.as_deref(), sets)
}

/// The configuration and `admin.dsn`, or the exit code 2 to return.
fn admin(db: &DbArgs) -> Result<(Config, String), ExitCode> {
    let config = database(db)?;
    let dsn = need_dsn(config.admin.dsn.clone(), "admin.dsn")?;
    Ok((config, dsn))
}

fn lineage(args: LineageArgs) -> ExitCode {
    let (config, dsn) = match admin(&args.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = &config.admin.schema;
    finish(run(indexpilot::indexer::lineage::show(
        &dsn,
        schema,
        args.limit,
        args.db.json,
    )))
}

fn advise(args: AdviseArgs) -> ExitCode {
    let config = match database(&args.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = need_dsn(
        indexpilot::indexer::run::dsn(&config),
        "indexer.dsn or admin.dsn",
    ) {
        return code;
    }
    finish(run(indexpilot::indexer::run::advise(&config, args.db.json)))
}

fn genome(args: GenomeArgs) -> ExitCode {
    let (config, dsn) = match admin(&args.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let json = args.db.json;
    finish(run(async {
        match args.action.unwrap_or(GenomeAction::Show) {
            GenomeAction::Show => indexpilot::genome::catalog::show(&config, &dsn, json).await,
            GenomeAction::Refresh => {
                indexpilot::genome::catalog::refresh(&config, &dsn, json).await
            }
        }
    }))
}

fn expression(args: ExpressionArgs) -> ExitCode {
    let (config, dsn) = match admin(&args.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = &config.admin.schema;
    finish(run(async {
        match &args.action {
            ExpressionAction::Show { tenant } => {
                expression::show(&dsn, schema, tenant.as_deref(), args.db.json).await
            }
            ExpressionAction::Enable(d) | ExpressionAction::Disable(d) => {
                let enabled = matches!(args.action, ExpressionAction::Enable(_));
                let tenant = d.tenant.as_deref().unwrap_or(ALL_TENANTS);
                expression::set(&dsn, schema, tenant, &d.field, enabled).await
            }
        }
    }))
}

/// The scenario the flags name, or exit code 2 with the reason.
fn scenario(args: &ScenarioArgs) -> Result<indexpilot::sim::Scenario, ExitCode> {
    args.scenario().map_err(|message| {
        eprintln!("indexpilot: {message}");
        ExitCode::from(2)
    })
}

fn demo(args: DemoArgs) -> ExitCode {
    let scenario = match scenario(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let run = indexpilot::sim::demo::demo(scenario, args.out, args.server_settings);
    finish(multi_thread(run).map(|_| String::new()))
}

fn simulate(args: SimulateArgs) -> ExitCode {
    let scenario = match scenario(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let options = indexpilot::sim::simulate::Options {
        dsn: args.dsn,
        admin_dsn: args.admin_dsn,
        schema: args.schema,
        scenario,
        mode: args.mode,
        reseed: args.reseed,
        config: args.config,
        learn_limit: args.learn_limit,
        min_learn: args.min_learn,
        no_drift: args.no_drift,
    };
    finish(multi_thread(indexpilot::sim::simulate::simulate(options)))
}

fn report(args: ReportArgs) -> ExitCode {
    let (config, dsn) = match admin(&args.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = config.admin.schema.clone();
    let json = args.db.json;
    finish(run(async move {
        let client = indexpilot::dbconn::connect(&dsn).await?;
        let report = indexpilot::report::collect::collect(&client, &schema).await?;
        let files = indexpilot::report::render::write_all(&report, &args.out)?;
        if json {
            return Ok::<_, anyhow::Error>(indexpilot::report::render::json(&report) + "\n");
        }
        let mut text = indexpilot::sim::demo::summary(&report);
        for f in files {
            text.push_str(&format!("\n  wrote {}", f.display()));
        }
        Ok(text + "\n")
    }))
}

/// The simulations run many clients: two worker threads, like the machine
/// they were measured on.
fn multi_thread<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(work)
}
