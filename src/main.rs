//! The `indexpilot` binary: parse the command line, load the configuration,
//! install logging, hand over to the library.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indexpilot::cli::{
    AdviseArgs, Cli, Command, DemoArgs, ExpressionAction, ExpressionArgs, GenomeAction, GenomeArgs,
    LineageArgs,
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
        Command::Serve(args) => {
            let config = match load(args.config.as_deref(), args.overrides()) {
                Ok(c) => Arc::new(c),
                Err(code) => return code,
            };
            indexpilot::init_tracing(&config);
            finish(run(indexpilot::serve(config)).map(|()| String::new()))
        }
    }
}

/// The configuration, or exit code 2 with the error (it names the key).
fn load(file: Option<&std::path::Path>, sets: Vec<(String, String)>) -> Result<Config, ExitCode> {
    Config::load(file, sets).map_err(|e| {
        eprintln!("indexpilot: {e}");
        ExitCode::from(2)
    })
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

/// Print a command's output, or its error with exit code 1.
fn finish(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("indexpilot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn lineage(args: LineageArgs) -> ExitCode {
    let config = match load(args.config.as_deref(), args.set.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dsn = match need_dsn(args.dsn.or(config.admin.dsn), "admin.dsn") {
        Ok(d) => d,
        Err(code) => return code,
    };
    let schema = &config.admin.schema;
    finish(run(indexpilot::indexer::lineage::show(
        &dsn, schema, args.limit, args.json,
    )))
}

fn advise(args: AdviseArgs) -> ExitCode {
    let mut sets = args.set.clone();
    if let Some(dsn) = &args.dsn {
        sets.push(("indexer.dsn".to_string(), dsn.clone()));
    }
    let config = match load(args.config.as_deref(), sets) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = need_dsn(
        indexpilot::indexer::run::dsn(&config),
        "indexer.dsn or admin.dsn",
    ) {
        return code;
    }
    finish(run(indexpilot::indexer::run::advise(&config, args.json)))
}

fn genome(args: GenomeArgs) -> ExitCode {
    let config = match load(args.config.as_deref(), args.set.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dsn = match need_dsn(
        args.dsn.clone().or_else(|| config.admin.dsn.clone()),
        "admin.dsn",
    ) {
        Ok(d) => d,
        Err(code) => return code,
    };
    finish(run(async {
        match args.action.unwrap_or(GenomeAction::Show) {
            GenomeAction::Show => indexpilot::genome::catalog::show(&config, &dsn, args.json).await,
            GenomeAction::Refresh => {
                indexpilot::genome::catalog::refresh(&config, &dsn, args.json).await
            }
        }
    }))
}

fn expression(args: ExpressionArgs) -> ExitCode {
    let config = match load(args.config.as_deref(), args.set.clone()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dsn = match need_dsn(
        args.dsn.clone().or_else(|| config.admin.dsn.clone()),
        "admin.dsn",
    ) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let schema = &config.admin.schema;
    finish(run(async {
        match &args.action {
            ExpressionAction::Show { tenant } => {
                expression::show(&dsn, schema, tenant.as_deref(), args.json).await
            }
            ExpressionAction::Enable(d) | ExpressionAction::Disable(d) => {
                let enabled = matches!(args.action, ExpressionAction::Enable(_));
                let tenant = d.tenant.as_deref().unwrap_or(ALL_TENANTS);
                expression::set(&dsn, schema, tenant, &d.field, enabled).await
            }
        }
    }))
}

fn demo(args: DemoArgs) -> ExitCode {
    let Some(mut scenario) = indexpilot::sim::Scenario::named(&args.scenario) else {
        eprintln!(
            "indexpilot: unknown scenario {:?}: use tiny, small, medium or large",
            args.scenario
        );
        return ExitCode::from(2);
    };
    if let Some(v) = args.tenants {
        scenario.tenants = v.max(1);
    }
    if let Some(v) = args.contacts {
        scenario.contacts = v.max(1);
    }
    if let Some(v) = args.queries {
        scenario.queries = v.max(1);
    }
    if let Some(v) = args.concurrency {
        scenario.concurrency = v.max(1);
    }
    if let Some(v) = args.trials {
        scenario.trials = v.max(1);
    }
    if let Some(v) = args.seed {
        scenario.seed = v;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return finish(Err(e.into())),
    };
    let done = rt.block_on(indexpilot::sim::demo::demo(scenario, args.out));
    finish(done.map(|_| String::new()))
}
