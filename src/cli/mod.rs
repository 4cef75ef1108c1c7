//! The `arauto` command line (clap): `run`, `validate`, `status`, `check`,
//! `report`, `queue …`, `plugins list|inspect`, `webhooks register|unregister`,
//! `preview`, `state export|import`.
//!
//! Exit statuses: 0 success, 1 failure (for `check`: a red line), 2 usage
//! error (clap, or a store/channel that does not exist), 3 the daemon is not
//! running (`status`). A daemon stopped by a second SIGTERM/SIGINT exits with
//! 143/130.
//!
//! `check`, `report` and `queue` ask the daemon over its control socket when it
//! runs, and otherwise open the state database themselves (see `backend.rs`).
//! `preview` opens no database at all: it reads the platform and plans in
//! memory, so it runs the same beside a running daemon.

mod backend;
mod check;
mod check_cluster;
mod command;
mod config_arg;
mod exit;
mod output;
mod plugins;
mod preview;
mod queue;
mod report;
mod run;
mod state;
mod status;
mod status_cluster;
mod style;
mod validate;
mod webhooks;

pub use backend::ConnectArgs;
pub use check::CheckArgs;
pub use command::{Cli, Command};
pub use config_arg::ConfigArg;
pub use exit::Exit;
pub use plugins::{InspectArgs, ListPluginsArgs, PluginsArgs, PluginsCommand};
pub use preview::PreviewArgs;
pub use queue::{
    CancelArgs, ListArgs, PauseArgs, PurgeArgs, QueueArgs, QueueCommand, ResumeArgs, RetryArgs,
    ShowArgs,
};
pub use report::ReportArgs;
pub use run::RunArgs;
pub use state::{ExportArgs, ImportArgs, StateArgs, StateCommand};
pub use status::StatusArgs;
pub use validate::ValidateArgs;
pub use webhooks::{SubscriptionArgs, WebhooksArgs, WebhooksCommand};

use std::process::ExitCode;

use clap::Parser;

/// Entry point of the `arauto` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        die_quietly_on_closed_stdout();
    }
    let exit = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::validate(args),
        Command::Status(args) => status::status(args),
        Command::Check(args) => check::run(args),
        Command::Report(args) => report::run(args),
        Command::Queue(args) => queue::run(args),
        Command::Plugins(args) => plugins::run(args),
        Command::Webhooks(args) => webhooks::run(args),
        Command::Preview(args) => preview::run(args),
        Command::State(args) => state::run(args),
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
