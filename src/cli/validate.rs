//! `arauto validate`: the configuration checked exactly as `run` would start
//! it, plugins and templates included, without opening the database.

use clap::Args;

use super::config_arg::ConfigArg;
use super::exit::Exit;
use super::output;
use crate::config;
use crate::logging::{self, LogFormat};
use crate::plugin::{HostConfig, HostError, PluginHost};
use crate::state::{BuildError, BuildOptions, State, build};

/// `arauto validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

pub(super) fn validate(args: ValidateArgs) -> Exit {
    // Components that log while building (plugins…) should be heard.
    if let Err(error) = logging::init(LogFormat::Text, "warn") {
        eprintln!("arauto: {error}");
    }
    let config = match config::load_for_validation(args.config.config.as_deref()) {
        Ok(config) => config,
        Err((errors, partial)) => {
            eprintln!("{errors}");
            // The second phase (plugins, templates) on what the errors spare,
            // so one run lists both.
            if let Some(partial) = partial
                && let Err(error) = build_for_validation(*partial)
            {
                eprintln!("and, checked against the plugins and templates: {error}");
            }
            return Exit::Failure;
        }
    };
    let path = config.source_path().to_path_buf();
    for warning in config.warnings() {
        eprintln!("{warning}");
    }
    match build_for_validation(config) {
        Ok(state) => {
            print!("{}", output::validate_summary(&state));
            Exit::Ok
        }
        Err(error) => {
            eprintln!("invalid configuration {}: {error}", path.display());
            Exit::Failure
        }
    }
}

/// The startup path of `run` without its side effects. The daemon's compiled
/// plugins are reused but nothing is written: validate leaves no trace (it may
/// run as another user, e.g. in ExecReload=).
fn build_for_validation(config: config::Config) -> Result<State, ValidationError> {
    let cache_dir = config.daemon.cache_dir.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ValidationError::Runtime)?;
    runtime.block_on(async {
        let host = PluginHost::new(HostConfig::reading_cache(cache_dir))?;
        Ok(build(config, &BuildOptions::default(), &host).await?)
    })
}

/// Why `validate` could not build the configuration.
#[derive(Debug, thiserror::Error)]
enum ValidationError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the plugin host: {0}")]
    Host(#[from] HostError),
    #[error(transparent)]
    Build(#[from] BuildError),
}
