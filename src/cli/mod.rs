//! The `arauto` command line (clap): `run`, `validate`, `status`, `check`,
//! `report`, `queue …`, `plugins list|inspect`.
//!
//! Exit statuses: 0 success, 1 failure (for `check`: a red line), 2 usage
//! error (clap, or a store/channel that does not exist), 3 the daemon is not
//! running (`status`). A daemon stopped by a second SIGTERM/SIGINT exits with
//! 143/130.
//!
//! `check`, `report` and `queue` ask the daemon over its control socket when it
//! runs, and otherwise open the state database themselves (see [`backend`]).

mod backend;
mod check;
mod output;
mod plugins;
mod queue;
mod report;
mod style;

pub use backend::ConnectArgs;
pub use check::CheckArgs;
pub use plugins::{InspectArgs, ListPluginsArgs, PluginsArgs, PluginsCommand};
pub use queue::{
    CancelArgs, ListArgs, PauseArgs, PurgeArgs, QueueArgs, QueueCommand, ResumeArgs, RetryArgs,
    ShowArgs,
};
pub use report::ReportArgs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::control::{Client, ClientError, Request, Response};
use crate::daemon::RunOptions;
use crate::logging::{self, LogFormat};
use crate::plugin::HostError;
use crate::plugin::{HostConfig, PluginHost};
use crate::state::{BuildError, BuildOptions, State, build};

/// Exit statuses of the `arauto` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Something failed (the message says what).
    Failure = 1,
    /// Bad command line (clap's own status).
    Usage = 2,
    /// `status`: no daemon is running.
    NotRunning = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// arauto: order notifications for Brazilian online shops, as a systemd daemon.
#[derive(Debug, Parser)]
#[command(name = "arauto", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (systemd: Type=notify; SIGHUP reloads, SIGTERM stops).
    Run(RunArgs),
    /// Check the configuration exactly as `run` would start it, without opening the database.
    Validate(ValidateArgs),
    /// Show what the running daemon is doing (through its control socket).
    Status(StatusArgs),
    /// Is everything ready to send? A checklist per store and channel, with live checks.
    Check(CheckArgs),
    /// Delivery figures per store and channel: sent, failed, cancelled…, queue and ETA.
    Report(ReportArgs),
    /// Inspect and steer the send queue.
    Queue(QueueArgs),
    /// The plugins the configuration loads, and any plugin file's contract.
    Plugins(PluginsArgs),
}

/// `--config`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file [default: /etc/arauto/arauto.toml].
    #[arg(short, long, env = config::ENV_CONFIG_FILE, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

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

/// `arauto validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
}

/// `arauto status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// Control socket [default: daemon.control_socket from the configuration].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Entry point of the `arauto` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        die_quietly_on_closed_stdout();
    }
    let exit = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(args),
        Command::Status(args) => status(args),
        Command::Check(args) => check::run(args),
        Command::Report(args) => report::run(args),
        Command::Queue(args) => queue::run(args),
        Command::Plugins(args) => plugins::run(args),
    };
    exit.into()
}

/// Command-line tools piped into `head` should end quietly when the reader
/// goes away, like every other Unix tool, instead of panicking on EPIPE. Rust
/// ignores SIGPIPE by default (right for the daemon, whose sockets report the
/// error instead), so the one-shot commands restore the default action.
#[allow(unsafe_code)]
fn die_quietly_on_closed_stdout() {
    // SAFETY: called once at start-up, before any thread is spawned, with a
    // valid signal number and the default disposition; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Print `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Exit> {
    match serde_json::to_string_pretty(value) {
        Ok(json) => {
            println!("{json}");
            Ok(())
        }
        Err(error) => {
            eprintln!("arauto: cannot encode the answer as JSON: {error}");
            Err(Exit::Failure)
        }
    }
}

/// Report an answer that is not the one asked for (a refusal or an error).
fn refused(response: Response) -> Exit {
    match response {
        Response::Invalid { message, not_found } => {
            eprintln!("arauto: {message}");
            if not_found {
                Exit::Failure
            } else {
                Exit::Usage
            }
        }
        Response::Error { message } => {
            eprintln!("arauto: {message}");
            Exit::Failure
        }
        other => {
            let kind = serde_json::to_value(&other)
                .ok()
                .and_then(|v| {
                    v.get("response")
                        .and_then(|r| r.as_str().map(str::to_owned))
                })
                .unwrap_or_default();
            eprintln!(
                "arauto: unexpected answer {kind:?} (is the arauto CLI the same version as the daemon?)"
            );
            Exit::Failure
        }
    }
}

fn run(args: RunArgs) -> Exit {
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

fn validate(args: ValidateArgs) -> Exit {
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

fn status(args: StatusArgs) -> Exit {
    let socket = args
        .socket
        .unwrap_or_else(|| config::control_socket_path(args.config.config.as_deref()));
    let answer = Client::connect(&socket).and_then(|mut client| client.request(&Request::Status));
    match answer {
        Ok(Response::Status(report)) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(error) => {
                        eprintln!("arauto: cannot encode the status: {error}");
                        return Exit::Failure;
                    }
                }
            } else {
                print!("{}", output::status_text(&report));
            }
            Exit::Ok
        }
        Ok(Response::Error { message }) => {
            eprintln!("arauto: the daemon refused the request: {message}");
            Exit::Failure
        }
        Ok(other) => refused(other),
        Err(error @ ClientError::NotRunning { .. }) => {
            eprintln!("{error}");
            Exit::NotRunning
        }
        Err(error) => {
            eprintln!("arauto: {error}");
            Exit::Failure
        }
    }
}
