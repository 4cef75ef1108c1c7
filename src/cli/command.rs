//! The command line itself: [`Cli`] and its subcommands, as clap parses them.

use clap::{Parser, Subcommand};

use super::check::CheckArgs;
use super::plugins::PluginsArgs;
use super::preview::PreviewArgs;
use super::queue::QueueArgs;
use super::report::ReportArgs;
use super::run::RunArgs;
use super::state::StateArgs;
use super::status::StatusArgs;
use super::validate::ValidateArgs;
use super::webhooks::WebhooksArgs;

/// Order notifications for Brazilian online shops, as a systemd daemon.
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
    /// What arauto would send for a store's recent orders, read live; sends and writes nothing.
    #[command(long_about = super::preview::LONG_ABOUT)]
    Preview(PreviewArgs),
    /// Subscribe a store's platform to push order changes to this daemon (or undo it).
    Webhooks(WebhooksArgs),
    /// Move the whole state (queue, history, poll and channel state) to or from a file.
    State(StateArgs),
}
