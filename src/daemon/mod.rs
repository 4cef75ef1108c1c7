//! The daemon: a plain supervisor over a set of services known at compile
//! time, signals, reload, shutdown, systemd notifications.
//!
//! * [`crate::state::build`] turns a loaded [`crate::config::Config`] into a
//!   [`crate::state::State`]. It is the one startup path: `arauto validate`
//!   calls it and stops there; [`run`] calls it at start and on every SIGHUP,
//!   so a configuration that validates is one that starts (kanidm's
//!   configtest and `vector validate` work the same way). It never opens the
//!   database.
//! * [`run`] takes the state directory's lock, opens the [`Pipeline`] (state
//!   database, metrics, clock, plugin host), starts the services
//!   [`desired`] lists for the state (each a [`ServiceKey`]: the control
//!   socket, metrics, one poller per store, one dispatcher per channel,
//!   housekeeping), sends `READY=1`, then reacts to signals: SIGHUP reloads
//!   (`RELOADING=1` … `READY=1`; the desired keys are diffed against the
//!   running ones; a bad new configuration is logged with its key paths and
//!   the old one keeps running), SIGTERM/SIGINT drain (`STOPPING=1`, services
//!   cancelled, in-flight work given `daemon.shutdown_timeout`), a second
//!   SIGTERM/SIGINT exits at once.
//! * With `WatchdogSec=`, `WATCHDOG=1` is sent at half the interval while every
//!   registered [`crate::heartbeat::Heartbeat`] is fresh.
//!
//! The stages know nothing of this module: each exports a plain `run`
//! function taking what it needs, and [`services`] calls it.

mod housekeeping;
mod lock;
mod malloc;
mod notify;
mod pipeline;
mod runtime;
pub mod services;
mod signals;
mod supervisor;
mod watchdog;

pub use lock::{InstanceLock, LOCK_FILE, LockError};
pub use malloc::tune_allocator;
pub use notify::Notifier;
pub use pipeline::Pipeline;
pub use runtime::{ReloadError, RunError, RunOptions, run};
pub use services::{ServiceKey, desired};
pub use signals::Control;
