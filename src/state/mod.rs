//! What the daemon runs on: everything built from one configuration (stores
//! with their connector instances and policies, channels with their sender
//! instances, compiled templates), the handle every stage reads it through,
//! and the process facts `arauto status` reports.
//!
//! Both the poll and the send stage read the same store and channel records
//! from here, so neither imports the other.

mod build;
mod channel;
mod handle;
mod lifecycle;
mod problem;
mod snapshot;
mod store;

pub use build::{BuildOptions, build};
pub use channel::ChannelRuntime;
pub use handle::StateHandle;
pub use lifecycle::{Phase, ReloadOutcome, RuntimeInfo, ViewSource};
pub use problem::{BuildError, BuildProblem};
pub use snapshot::State;
pub use store::{DEFAULT_MAX_ATTEMPTS, StoreRuntime};
