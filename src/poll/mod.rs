//! Poll scheduling: one sweep per store per interval, never two at once.
//!
//! * [`crate::state::StoreRuntime`] — a store's connector instance and
//!   policy, built by [`crate::state::build`].
//! * [`sweep::Sweep`] — one sweep: connector pages → [`crate::decide::detect`] and
//!   [`crate::decide`] per order → one atomic commit per page.
//! * [`service`] — one turn of a store's poller (a sweep, or a credentials
//!   check while paused) and when the next is due.
//! * [`scheduler`] — every store's poller: a record per store and one
//!   due-time heap driving the turns.
//! * [`push`] — the webhook listener platforms push order changes to; a
//!   verified push lands in the store's [`inbox`] and makes its poller sweep
//!   sooner, nothing more.
//! * [`idle`] — polls that find nothing new, kept in memory instead of
//!   written.
//! * [`gate`] — how many sweeps of all stores may be under way at once.

pub mod gate;
pub mod idle;
pub mod inbox;
mod invalid;
pub mod push;
pub mod scheduler;
pub mod service;
pub mod sweep;
