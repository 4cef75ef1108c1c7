//! `--config`, the option every subcommand that reads the configuration shares.

use std::path::PathBuf;

use clap::Args;

use crate::config;

/// `--config`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file [default: /etc/arauto/arauto.toml].
    #[arg(short, long, env = config::ENV_CONFIG_FILE, value_name = "PATH")]
    pub config: Option<PathBuf>,
}
