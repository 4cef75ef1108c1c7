//! The daemon runtime: startup path shared with `validate`, signals, reload, shutdown, systemd notifications.
//!
//! * [`build`] turns a loaded [`crate::config::Config`] into a [`State`]. It is
//!   the one startup path: `arauto validate` calls it with [`Purpose::Validate`]
//!   and stops there; `arauto run` calls it at start and on every SIGHUP, so a
//!   configuration that validates is one that starts (kanidm's configtest and
//!   `vector validate` work the same way). It never opens the database.
//! * [`Runtime`] runs the daemon: takes the state directory's lock, starts the
//!   [`Service`]s its providers build from the state, sends `READY=1`, then
//!   reacts to signals: SIGHUP reloads (`RELOADING=1` … `READY=1`; a bad new
//!   configuration is logged with its key paths and the old one keeps running),
//!   SIGTERM/SIGINT drain (`STOPPING=1`, services cancelled, in-flight work
//!   given `daemon.shutdown_timeout`), a second SIGTERM/SIGINT exits at once.
//! * With `WatchdogSec=`, `WATCHDOG=1` is sent at half the interval while every
//!   registered [`Heartbeat`] is fresh.

mod assemble;
mod lock;
mod notify;
mod pipeline;
mod runtime;
mod service;
mod signals;
mod state;
mod watchdog;

pub use lock::{InstanceLock, LOCK_FILE, LockError};
pub use notify::Notifier;
pub use pipeline::with_pipeline;
pub use runtime::{
    Phase, ReloadHook, ReloadOutcome, RunError, RunOptions, Runtime, RuntimeInfo, Startup,
    StartupHook,
};
pub use service::{
    Service, ServiceContext, ServiceError, ServiceProvider, ServiceSpec, ServiceTask,
};
pub use signals::Control;
pub use state::{BuildError, BuildOptions, BuildProblem, Purpose, State, StateHandle, build};
pub use watchdog::{Heartbeat, Stale};
