//! `arauto status`: what the running daemon is doing, asked over its control
//! socket. With `[cluster]` the cluster's status comes first, read from NATS
//! with the configuration alone (`status_cluster.rs`), so it answers from any
//! node and without a local daemon.

use std::path::PathBuf;

use clap::Args;

use super::config_arg::ConfigArg;
use super::exit::{Exit, refused};
use super::{output, status_cluster};
use crate::config;
use crate::control::{Client, ClientError, Request, Response};

/// `arauto status`.
#[derive(Debug, Args)]
#[command(
    after_help = "With [cluster], the cluster part reads the ownership buckets and every store's and channel's status, and asks a running node for each channel's pending and running counts (every daemon holds all jobs in its view; it answers within about a second, after catching up with the jobs bucket). Only when no node answers within 2 s, or the answering node's view of the jobs is not current, does it read the whole jobs bucket and count itself (jobs carry no state in their key, so that is every job the bucket keeps); the output says which (\"pending/running counted by node …\" or \"… counted from the jobs bucket: <why>\", in --json \"counted_by\"). Never the history stream."
)]
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

pub(super) fn status(args: StatusArgs) -> Exit {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| config::control_socket_path(args.config.config.as_deref()));
    let answer = Client::connect(&socket).and_then(|mut client| client.request(&Request::Status));
    // Without a readable configuration with [cluster], the daemon alone (as before).
    let cluster = match config::load(args.config.config.as_deref()) {
        Ok(config) if config.cluster.is_some() => Some(read_cluster(&config)),
        _ => None,
    };
    let Some(cluster) = cluster else {
        return local_only(answer, args.json);
    };
    let local = match answer {
        Ok(Response::Status(report)) => Ok(Some(report)),
        Err(ClientError::NotRunning { .. }) => Ok(None),
        Ok(Response::Error { message }) => {
            Err(format!("the daemon refused the request: {message}"))
        }
        Ok(other) => Err(format!("the daemon answered {other:?}")),
        Err(error) => Err(error.to_string()),
    };
    if args.json {
        let json = serde_json::json!({
            "cluster": cluster.as_ref().ok(),
            "cluster_error": cluster.as_ref().err(),
            "daemon": local.as_ref().ok().and_then(Option::as_ref),
            "daemon_error": local.as_ref().err(),
        });
        match serde_json::to_string_pretty(&json) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("arauto: cannot encode the status: {error}");
                return Exit::Failure;
            }
        }
    } else {
        match &cluster {
            Ok(status) => print!("{}", status_cluster::text(status)),
            Err(error) => eprintln!("arauto: cannot read the cluster's status: {error}"),
        }
        match &local {
            Ok(Some(report)) => {
                println!("this node's daemon:");
                print!("{}", output::status_text(report));
            }
            Ok(None) => println!("this node's daemon: not running"),
            Err(error) => eprintln!("arauto: this node's daemon: {error}"),
        }
    }
    if cluster.is_ok() {
        Exit::Ok
    } else {
        Exit::Failure
    }
}

/// Reads the cluster's status on a small runtime of its own.
fn read_cluster(config: &config::Config) -> Result<status_cluster::ClusterStatus, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime
        .block_on(status_cluster::read(config))
        .map_err(|error| format!("{error:#}"))
}

/// `arauto status` without `[cluster]`: the local daemon's answer.
fn local_only(answer: Result<Response, ClientError>, json: bool) -> Exit {
    match answer {
        Ok(Response::Status(report)) => {
            if json {
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
