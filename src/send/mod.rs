//! Per-channel dispatch: pacing, recipients, rendering, retries, outcomes.

pub mod pacing;
pub mod retry;
pub mod recipient;
