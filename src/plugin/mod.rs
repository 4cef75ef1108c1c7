//! The wasmtime plugin host: engine, compiled-artifact cache, sandbox, WIT
//! bindings per API version.
//!
//! Connectors and senders are WebAssembly components built against the WIT
//! package `arauto:plugin`: contract 0.2 (`plugins/wit/since_v0.2.0`,
//! bound in `v0_2.rs`) or the deprecated 0.1 (`plugins/wit/since_v0.1.0`,
//! bound in `v0_1.rs`, whose undeclared recipient, pace and request budget
//! come from the name table in `v0_1/fallback.rs`). Both load side by side,
//! and what they return is bounded and converted once, in `output.rs`. The
//! host:
//!
//! * keeps one [`PluginHost`] (one wasmtime `Engine`, an epoch ticker thread,
//!   the compiled-artifact cache) per daemon;
//! * [`PluginHost::load`]s a `.wasm` once into a [`Plugin`]: compiled (or
//!   taken from the cache), its API version and world checked, its imports
//!   linked, its `info` read;
//! * creates one handle per configured use — [`PluginHost::connector`] for a
//!   store, [`PluginHost::sender`] for a channel — with that instance's
//!   settings, secrets, network grants and limits ([`InstanceConfig`]);
//! * runs every call in a fresh sandbox: its own store (memory cap), a
//!   wall-clock deadline that also bounds host work such as HTTP, no WASI at
//!   all. Whatever the plugin does, the call ends with a value or a typed
//!   [`PluginError`] and the next call starts clean.
//!
//! Nothing outside this module sees a generated binding type: plugins speak
//! [`crate::model`] types plus the request/response types in `types.rs`.

mod address;
pub(crate) mod allowlist;
mod api_version;
mod cache;
mod engine;
mod error;
mod host;
mod http;
mod http_call;
mod inspect;
mod limits;
mod output;
mod redact;
mod sandbox;
mod types;
mod v0_1;
mod v0_2;

/// Re-exported so plugin callers match on [`PluginError::class`] without
/// reaching into `model`.
pub use crate::model::ErrorClass;
pub use api_version::ApiVersion;
pub use cache::ArtifactSource;
pub use error::{PluginError, RECIPIENT_UNREACHABLE_PREFIX};
pub use host::{
    ConnectorInstance, DEFAULT_MAX_CONCURRENT_CALLS, HostConfig, HostError, Plugin, PluginHost,
    SenderInstance, inspect,
};
pub use inspect::{ConnectorDetails, InspectReport, SenderDetails};
pub use types::{
    ConnectorNotice, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MEMORY_LIMIT,
    InstanceConfig, MAX_LOOK_AT, MAX_NOTICES_PER_CALL, MessageMeta, NoticeError, OutgoingMessage,
    PollPage, PollRequest, ProviderTemplate, PushHint, PushRequest, Recipient, RejectedOrder,
    SendReceipt,
};
