//! `arauto run`: the daemon in the foreground, as systemd starts it.

use std::time::Duration;

use clap::Args;

use super::config_arg::ConfigArg;
use super::exit::Exit;
use crate::config;
use crate::daemon::RunOptions;
use crate::logging::{self, LogFormat};

/// `arauto run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// Log destination: journald when stderr is the journal (auto), text, json or journald.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Do everything except sending: log what would be sent.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) fn run(args: RunArgs) -> Exit {
    // Before any thread exists.
    crate::daemon::tune_allocator();
    let config = match config::load(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("arauto: {errors}");
            return Exit::Failure;
        }
    };
    let log = match logging::init(args.log_format, &config.daemon.log_level) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("arauto: {error}");
            return Exit::Failure;
        }
    };
    for warning in config.warnings() {
        tracing::warn!(key = %warning.key, "{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("arauto")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return Exit::Failure;
        }
    };
    let options = RunOptions {
        config_path: config.source_path().to_path_buf(),
        dry_run: args.dry_run,
    };
    let result = runtime.block_on(crate::daemon::run(options, config, Some(log)));
    // Tasks still running were given their deadline already; do not wait again.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => Exit::Ok,
        Err(error) => {
            tracing::error!("{error}");
            Exit::Failure
        }
    }
}
