//! The `indexpilot` binary: parse the command line, load the configuration,
//! install logging, hand over to the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indexpilot::cli::{Cli, Command};
use indexpilot::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
