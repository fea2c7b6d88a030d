//! The `indexpilot` binary: parse the command line, load the configuration,
//! install logging, hand over to the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indexpilot::cli::{AdviseArgs, Cli, Command, LineageArgs};
use indexpilot::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lineage(args) => lineage(args),
        Command::Advise(args) => advise(args),
        Command::Serve(args) => {
            let config = match Config::load(args.config.as_deref(), args.overrides()) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    eprintln!("indexpilot: {e}");
                    return ExitCode::from(2);
                }
            };
            indexpilot::init_tracing(&config);
            let result = indexpilot::runtime()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(indexpilot::serve(config))
                        .map_err(anyhow::Error::from)
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("indexpilot: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn lineage(args: LineageArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), args.set.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("indexpilot: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dsn) = args.dsn.or(config.admin.dsn) else {
        eprintln!("indexpilot: no database to read: set admin.dsn in the config or pass --dsn");
        return ExitCode::from(2);
    };
    let result = indexpilot::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let shown = indexpilot::indexer::lineage::show(
                &dsn,
                &config.admin.schema,
                args.limit,
                args.json,
            );
            rt.block_on(shown).map_err(anyhow::Error::from)
        });
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

fn advise(args: AdviseArgs) -> ExitCode {
    let mut sets = args.set.clone();
    if let Some(dsn) = &args.dsn {
        sets.push(("indexer.dsn".to_string(), dsn.clone()));
    }
    let config = match Config::load(args.config.as_deref(), sets) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("indexpilot: {e}");
            return ExitCode::from(2);
        }
    };
    if indexpilot::indexer::run::dsn(&config).is_none() {
        eprintln!("indexpilot: no database to read: set indexer.dsn or admin.dsn, or pass --dsn");
        return ExitCode::from(2);
    }
    let result = indexpilot::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(indexpilot::indexer::run::advise(&config, args.json))
                .map_err(anyhow::Error::from)
        });
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
