//! Configuration: TOML file plus `ARAUTO_` environment overrides (figment), secrets, validation.
//!
//! * The file comes from `--config PATH`, else `$ARAUTO_CONFIG`, else
//!   [`DEFAULT_CONFIG_PATH`]. It is parsed with the `toml` crate first, so syntax
//!   errors carry line and column, then layered with figment.
//! * `ARAUTO_<SECTION>__<KEY>…` variables override the file, `__` separating
//!   levels: `ARAUTO_DAEMON__LOG_LEVEL=debug`, `ARAUTO_STORES__LOJA1__POLL_INTERVAL=1m`.
//! * Every problem of a file is reported at once ([`ConfigErrors`]), each naming
//!   the file and line (or the variable), the full key path and the bad value.
//! * In `settings` tables, `<key>_file` and `<key>_env` load secrets; secret
//!   values are [`Secret`]s that never print.
//!
//! `config/arauto.toml` documents every key.
//!
//! The files follow the TOML: one per table ([`daemon`], [`plugins`],
//! [`stores`], [`channels`], [`notifications`], [`checklist`]), each holding
//! the table's types, its defaults as named constants and the code that reads
//! it; [`Config`] (the root table) and the checks across tables are in
//! `root.rs`, the entry points ([`load`]…) in `load.rs`. The shared machinery
//! underneath: `reader.rs` (typed reading that reports every problem),
//! `values.rs` (durations, sizes, times), `source.rs` (file and environment
//! layers, file:line origins), `store_blocks.rs` (the file cut into store
//! blocks, parsed one at a time), `locations.rs` (where a key was written, found
//! on demand from the file's kept text), `secret.rs` (secrets and `settings` tables),
//! `error.rs` (diagnostics). Child files import each other by path, never
//! from this file, so no two of them depend on each other.

mod bounded_file;
pub mod channels;
pub mod checklist;
pub mod cluster;
pub mod daemon;
mod error;
mod load;
mod locations;
pub mod notifications;
mod plugin_check;
pub mod plugins;
mod reader;
mod root;
mod secret;
mod source;
mod store_blocks;
pub mod stores;
mod values;

pub use channels::{ChannelConfig, TemplateMapping, Warmup};
pub use checklist::ChecklistConfig;
pub use cluster::ClusterConfig;
pub use daemon::{
    DEFAULT_CACHE_DIR, DEFAULT_CONTROL_SOCKET, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STATE_DIR,
    DEFAULT_TIMEZONE, DaemonConfig, WebhooksConfig, default_plugin_dir,
};
pub use error::{ConfigError, ConfigErrors, Origin, Severity};
pub use load::{
    DEFAULT_CONFIG_PATH, MAX_CONFIG_BYTES, control_socket_path, load, load_for_validation,
    load_with_env, require_something_configured, resolve_config_path,
};
pub use notifications::{ChannelTemplate, NotificationConfig, QuietHoursPolicy, TemplateText};
pub use plugin_check::{check_channel, check_store};
pub use plugins::{PluginDefaults, SandboxConfig};
pub use root::Config;
pub use secret::{REDACTED, Secret, Setting, Settings, looks_secret};
pub use source::{ENV_CONFIG_FILE, ENV_PREFIX, ENV_SEPARATOR};
pub use stores::{QuietHours, Recognition, StoreConfig};
pub use values::{ByteSize, ValueError, format_duration, parse_duration};
