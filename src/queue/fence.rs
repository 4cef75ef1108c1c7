//! Fencing: whether this process may still act for a store or a channel.
//!
//! On one node (redb) the instance lock on the state directory makes the
//! daemon the only writer, so it may always act ([`Unfenced`]). In a cluster
//! (`[cluster] backend = "nats"`) each store is polled and each channel
//! dispatched by the one node holding the lease of its slot (stores and
//! channels are hashed into `cluster.lease_slots` slots, each one lease: see
//! `cluster::ownership`); a node that lost the lease
//! (its process was paused past the lease's end, or it was cut off from the
//! cluster) must no longer commit a poll, claim a job, or send. (Completing
//! a claim is not fenced: it records a send that already happened.)
//! The backend asks [`Fence::holds`] before every such write and the
//! dispatcher asks it before every send; the answer comes from the node's own
//! monotonic clock, so a process resumed after SIGSTOP sees at once that its
//! lease is gone, before it talks to anyone.

/// What a lease covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope<'a> {
    /// Polling of this store (its cursor, order records, status, new jobs).
    Store(&'a str),
    /// Dispatch of this channel (claims, completions, pacing).
    Channel(&'a str),
}

impl std::fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(store) => write!(f, "store {store}"),
            Self::Channel(channel) => write!(f, "channel {channel}"),
        }
    }
}

/// Whether this node may still act for a scope.
pub trait Fence: Send + Sync + 'static {
    /// True while this node holds the lease covering `scope` (in a cluster:
    /// its slot's) with time to spare.
    /// Must be cheap (no I/O): it is asked before every write and send.
    fn holds(&self, scope: Scope<'_>) -> bool;
}

/// A single node: always allowed (the state directory's lock already makes
/// it the only writer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unfenced;

impl Fence for Unfenced {
    fn holds(&self, _scope: Scope<'_>) -> bool {
        true
    }
}
