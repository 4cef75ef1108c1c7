//! Per-channel dispatch: pacing, recipients, rendering, retries, outcomes.

pub mod channel;
pub mod job;
pub mod pacing;
pub mod recipient;
pub mod retry;
