//! How a command ends: its exit status ([`Exit`]), a JSON answer on stdout,
//! or a refusal from the daemon on stderr.

use std::process::ExitCode;

use crate::control::Response;

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

/// Print `value` as pretty JSON on stdout.
pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Exit> {
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
pub(super) fn refused(response: Response) -> Exit {
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
