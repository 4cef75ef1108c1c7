//! [`SweepGate`]: how many sweeps of all stores may be under way at once.
//!
//! Every sweep needs a plugin call, and the plugin host runs at most
//! `max_concurrent_calls` of those at once; a sweep started beyond that only
//! waits for a call slot. Waiting *inside* the sweep is what cost memory: the
//! sweep's boxed state machine (about 2.3 KiB), its cursor read and its
//! buffers exist from its start, so when thousands of stores come due
//! together (the first sweeps spread over five seconds after a start, a
//! reload, a slow platform) thousands of them sat allocated in the call
//! queue at once, and glibc kept the freed peak resident afterwards. Measured
//! with heaptrack at 10,000 stores: 22,000 such allocations, 51 MiB, alive
//! at once. The poll scheduler ([`super::scheduler`]) now takes a permit
//! from the gate before it starts a store's turn, so waiting costs nothing
//! but the store's place in the due-time heap, and at most
//! [`SweepGate::DEFAULT`] sweeps exist.
//!
//! The gate changes no schedule: a due store waits for a permit exactly where
//! it would have waited for a call slot, jitter and intervals are computed as
//! before (the next sweep is set from the end of this one), and due stores
//! get their permits in due-time order.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by every poller of a daemon. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SweepGate(Arc<Semaphore>);

impl SweepGate {
    /// Sweeps under way at once: twice the plugin host's default call slots
    /// (32), so a sweep committing its page (no plugin call) does not leave a
    /// call slot idle.
    pub const DEFAULT: usize = 64;

    /// A gate letting `sweeps` sweeps run at once (at least one).
    pub fn new(sweeps: usize) -> Self {
        Self(Arc::new(Semaphore::new(sweeps.max(1))))
    }

    /// Wait for a turn; the sweep runs while the permit is held. `None`
    /// only if the gate were closed (it never is): the sweep then runs
    /// ungated rather than not at all.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().acquire_owned().await.ok()
    }
}

impl Default for SweepGate {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_past_the_limit_waits_until_one_ends() {
        let gate = SweepGate::new(2);
        let first = gate.enter().await;
        let _second = gate.enter().await;
        let third = gate.enter();
        tokio::pin!(third);
        // Not ready while two permits are out: polled once, it stays pending.
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(first);
        assert!(third.await.is_some());
    }

    #[test]
    fn a_gate_of_zero_still_lets_one_sweep_run() {
        assert_eq!(SweepGate::new(0).0.available_permits(), 1);
    }
}
