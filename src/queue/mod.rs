//! The durable queue engine and state store.
