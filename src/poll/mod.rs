//! Poll scheduling: one sweep per store per interval, never two at once.
//!
//! * [`crate::state::StoreRuntime`] — a store's connector instance and
//!   policy, built by [`crate::state::build`].
//! * [`sweep::Sweep`] — one sweep: connector pages → [`crate::decide::detect`] and
//!   [`crate::decide`] per order → one atomic commit per page.
//! * [`service`] — the per-store loop the daemon runs.

mod invalid;
pub mod service;
pub mod sweep;

pub use service::run;
