//! Poll scheduling: one sweep per store per interval, never two at once.
//!
//! * [`StoreRuntime`] — a store's connector instance and policy, built by
//!   [`crate::daemon::build`].
//! * [`sweep::Sweep`] — one sweep: connector pages → [`crate::decide::detect`] and
//!   [`crate::decide`] per order → one atomic commit per page.
//! * [`service`] — the per-store loop the daemon runs.

mod invalid;
pub mod service;
mod store;
pub mod sweep;

pub use service::{PollService, service_provider};
pub use store::{DEFAULT_MAX_ATTEMPTS, StoreRuntime};
