//! Housekeeping: prunes delivery history past `daemon.history_retention`, in
//! small batches so other writers keep flowing.

use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::queue::SharedStore;
use crate::state::StateHandle;

/// How often finished jobs past `daemon.history_retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Jobs deleted per transaction while pruning (keeps other writers flowing).
const PRUNE_BATCH: usize = 500;

/// Prune every [`PRUNE_EVERY`] (first at once) until `shutdown` is cancelled.
pub async fn run(db: SharedStore, state: StateHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let retention = state.load().config.daemon.history_retention;
        let before = Timestamp::now()
            .checked_sub(retention)
            .unwrap_or(Timestamp::MIN);
        match db.prune(before, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "pruned delivery history older than {before}"),
            Err(error) => tracing::error!("pruning the delivery history failed: {error}"),
        }
    }
}
