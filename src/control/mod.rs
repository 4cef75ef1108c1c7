//! The local control socket (Unix, JSON lines) the CLI uses while the daemon runs.
//!
//! redb allows one process per database file, so while the daemon runs, the
//! CLI asks it instead of opening the state itself. The socket lives at
//! `daemon.control_socket` (systemd's `RuntimeDirectory=`), mode 0660; the
//! protocol is in [`protocol`].

mod client;
mod handler;
pub mod protocol;
mod server;

use std::sync::Arc;

pub use client::{Client, ClientError};
pub use handler::handle;
pub use protocol::{ChannelSummary, Request, Response, StatusReport, StoreSummary};
pub use server::{BindError, ControlService, SOCKET_MODE};

use crate::daemon::{Service, ServiceProvider};

/// The provider of the control service (always present; follows `daemon.control_socket`).
pub fn service_provider() -> ServiceProvider {
    Arc::new(|state| {
        let socket = state.config.daemon.control_socket.clone();
        vec![Box::new(ControlService::new(socket)) as Box<dyn Service>]
    })
}
