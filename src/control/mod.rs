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

pub use client::{Client, ClientError};
pub use handler::handle;
pub use protocol::{ChannelSummary, Request, Response, StatusReport, StoreSummary};
pub use server::{BindError, ControlContext, ControlSocket, SOCKET_MODE, bind, serve};
