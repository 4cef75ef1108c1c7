//! The cluster (`[cluster] backend = "nats"`): how a node connects to NATS
//! ([`connect`]) and which stores and channels it owns ([`ownership`]).
//!
//! The JetStream state backend itself lives in `crate::queue::nats`; this
//! module only decides who may act for what, and tells the backend and the
//! dispatcher through [`crate::queue::Fence`]; and the plain core-NATS
//! messages between nodes: pushes forwarded to a store's node
//! ([`push_forward`]) and the channels' counts a node answers `arauto
//! status` with ([`channel_counts`]).

pub mod channel_counts;
pub mod connect;
pub mod inspect;
pub mod ownership;
pub mod push_forward;
