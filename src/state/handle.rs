//! [`StateHandle`]: the current [`State`], shared by every service and
//! replaced atomically on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::snapshot::State;

/// The current [`State`], shared by every service; replaced atomically on reload.
#[derive(Clone)]
pub struct StateHandle {
    current: Arc<ArcSwap<State>>,
    generation: Arc<watch::Sender<u64>>,
}

impl StateHandle {
    /// A handle holding `state` as generation 0.
    pub fn new(state: Arc<State>) -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            current: Arc::new(ArcSwap::new(state)),
            generation: Arc::new(generation),
        }
    }

    /// The current state. Hold the returned `Arc` for one unit of work (a poll,
    /// a send) and load again for the next, so reloads take effect promptly.
    pub fn load(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// A receiver that sees a new generation number after every swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Make `state` the current one and tell every subscriber.
    pub fn replace(&self, state: Arc<State>) {
        self.current.store(state);
        self.generation.send_modify(|g| *g += 1);
    }
}
