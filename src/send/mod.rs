//! Per-channel dispatch: pacing, recipients, rendering, retries, outcomes.

pub mod channel;
pub mod dispatch;
pub mod pacing;
pub mod retry;

pub use dispatch::run;
