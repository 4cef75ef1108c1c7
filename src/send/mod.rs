//! Per-channel dispatch: pacing, recipients, rendering, retries, outcomes.

pub mod recipient;
