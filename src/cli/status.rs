//! `arauto status`: what the running daemon is doing, asked over its control
//! socket.

use std::path::PathBuf;

use clap::Args;

use super::config_arg::ConfigArg;
use super::exit::{Exit, refused};
use super::output;
use crate::config;
use crate::control::{Client, ClientError, Request, Response};

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

pub(super) fn status(args: StatusArgs) -> Exit {
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
