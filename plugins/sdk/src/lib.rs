//! # arauto plugin SDK
//!
//! Write arauto platform connectors and channel senders as WebAssembly
//! components. The SDK version is the version of the WIT contract it binds
//! (`arauto:plugin@0.1.0`, in `plugins/wit/since_v0.1.0/` of the arauto
//! repository). How the daemon loads, sandboxes and calls plugins is in the
//! repository's `README.md` ("Plugins") and `docs/ARCHITECTURE.md`; this
//! crate's own `README.md` walks through writing one.
//!
//! A plugin crate enables **exactly one** world feature:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! arauto-plugin-sdk = { path = "../sdk", features = ["sender"] }
//! ```
//!
//! and implements that world's trait, then exports it:
//!
//! ```ignore
//! use arauto_plugin_sdk::sender::prelude::*;
//!
//! struct Echo;
//!
//! impl Sender for Echo {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             name: "echo".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             kind: PluginKind::Sender,
//!             description: "Posts the text to an HTTP endpoint".into(),
//!             config_keys: vec![config_key("url", "Where to POST", true, false)],
//!             default_hosts: vec![],
//!         }
//!     }
//!     fn check() -> Result<(), PluginError> {
//!         let url = settings::require("url")?;
//!         http::get(&url).send()?.ok_or_error()?;
//!         Ok(())
//!     }
//!     fn send(msg: Message) -> Result<Receipt, PluginError> {
//!         let url = settings::require("url")?;
//!         let resp = http::post(&url).json(&serde_json::json!({"text": msg.text}))?.send()?;
//!         resp.ok_or_error()?;
//!         Ok(Receipt { provider_message_id: None, recipient_id: None })
//!     }
//! }
//!
//! arauto_plugin_sdk::export_sender!(Echo);
//! ```
//!
//! Build it for `wasm32-unknown-unknown` and turn the core module into a
//! component (`make plugins` in the arauto repository does both; see
//! `scripts/build-plugins.sh`). The plugin has no WASI: the world's imports
//! (`http`, `log`, `config`, `clock`) are its only way out of the sandbox.
//!
//! ## Testing natively
//!
//! Plugin logic can be unit-tested with plain `cargo test` on the host target:
//! outside wasm32 the SDK's `settings`, `http`, `clock` and `log` helpers talk to
//! a per-thread [`connector::testing`]/[`sender::testing`] harness instead of the
//! daemon. Install settings, a clock and an HTTP transport (for example a
//! blocking client pointed at a fake provider on 127.0.0.1), call your trait
//! methods directly, and inspect the log lines and requests. Give the crate
//! `crate-type = ["cdylib", "rlib"]` so tests can link it.
//!
//! ## Errors
//!
//! Every export returns a [`connector::PluginError`]/[`sender::PluginError`] whose
//! class tells the daemon what to do: [`retryable`](connector::retryable) (try again
//! later, honouring an optional retry-after), [`permanent`](connector::permanent)
//! (dead-letter this job) or [`misconfigured`](connector::misconfigured) (pause the
//! store or channel until the sysadmin fixes the settings). HTTP helpers map
//! transport failures to the right class for you.

#[cfg(not(any(feature = "connector", feature = "sender")))]
compile_error!("enable one world feature of arauto-plugin-sdk: \"connector\" or \"sender\"");

/// Bindings and helpers for the `connector` world (platform connectors).
#[cfg(feature = "connector")]
pub mod connector {
    wit_bindgen::generate!({
        world: "connector",
        path: "../wit/since_v0.1.0",
        default_bindings_module: "arauto_plugin_sdk::connector",
        pub_export_macro: true,
        export_macro_name: "__export_connector_world",
    });

    /// The trait a connector implements (the WIT world's exports).
    pub use self::exports::arauto::plugin::connector_api::Guest as Connector;
    pub use self::exports::arauto::plugin::connector_api::*;

    include!("world_support.rs");
    include!("connector_support.rs");

    /// Everything a connector usually needs, in one import.
    pub mod prelude {
        pub use super::exports::arauto::plugin::connector_api::*;
        pub use super::{
            Connector, MONEY_UNKNOWN_CENTS, PluginError, PluginInfo, PluginKind, QUANTITY_UNKNOWN,
            RetryableError, clock, config_key, high_water, http, log, misconfigured,
            money_or_unknown, money_unknown, notice, permanent, retry_after, retryable, settings,
        };
    }
}

/// Bindings and helpers for the `sender` world (channel senders).
#[cfg(feature = "sender")]
pub mod sender {
    wit_bindgen::generate!({
        world: "sender",
        path: "../wit/since_v0.1.0",
        default_bindings_module: "arauto_plugin_sdk::sender",
        pub_export_macro: true,
        export_macro_name: "__export_sender_world",
    });

    /// The trait a sender implements (the WIT world's exports).
    pub use self::exports::arauto::plugin::sender_api::Guest as Sender;
    pub use self::exports::arauto::plugin::sender_api::*;

    include!("world_support.rs");
    include!("sender_support.rs");

    /// Everything a sender usually needs, in one import.
    pub mod prelude {
        pub use super::exports::arauto::plugin::sender_api::*;
        pub use super::{
            PluginError, PluginInfo, PluginKind, RetryableError, Sender, clock, config_key, http,
            log, misconfigured, permanent, recipient_e164, retry_after, retryable, settings,
        };
    }
}

/// Export a type implementing [`connector::Connector`] as this component's connector.
///
/// Also installs a panic hook that forwards panic messages to the daemon's log
/// (wasm32-unknown-unknown has no stderr).
#[cfg(feature = "connector")]
#[macro_export]
macro_rules! export_connector {
    ($ty:ident) => {
        const _: () = {
            #[doc(hidden)]
            pub struct __ArautoConnector;
            impl $crate::connector::Connector for __ArautoConnector {
                fn info() -> $crate::connector::ConnectorInfo {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::info()
                }
                fn check() -> ::core::result::Result<(), $crate::connector::PluginError> {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::check()
                }
                fn poll(
                    req: $crate::connector::PollRequest,
                ) -> ::core::result::Result<
                    $crate::connector::PollPage,
                    $crate::connector::PluginError,
                > {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::poll(req)
                }
            }
            // Component exports only exist on wasm32; natively (unit tests with
            // `sdk::testing`) the export names would not even be valid symbols.
            #[cfg(target_arch = "wasm32")]
            $crate::connector::__export_connector_world!(__ArautoConnector);
        };
    };
}

/// Export a type implementing [`sender::Sender`] as this component's sender.
///
/// Also installs a panic hook that forwards panic messages to the daemon's log
/// (wasm32-unknown-unknown has no stderr).
#[cfg(feature = "sender")]
#[macro_export]
macro_rules! export_sender {
    ($ty:ident) => {
        const _: () = {
            #[doc(hidden)]
            pub struct __ArautoSender;
            impl $crate::sender::Sender for __ArautoSender {
                fn info() -> $crate::sender::PluginInfo {
                    $crate::sender::install_panic_hook();
                    <$ty as $crate::sender::Sender>::info()
                }
                fn check() -> ::core::result::Result<(), $crate::sender::PluginError> {
                    $crate::sender::install_panic_hook();
                    <$ty as $crate::sender::Sender>::check()
                }
                fn send(
                    msg: $crate::sender::Message,
                ) -> ::core::result::Result<$crate::sender::Receipt, $crate::sender::PluginError>
                {
                    $crate::sender::install_panic_hook();
                    <$ty as $crate::sender::Sender>::send(msg)
                }
            }
            // Component exports only exist on wasm32; natively (unit tests with
            // `sdk::testing`) the export names would not even be valid symbols.
            #[cfg(target_arch = "wasm32")]
            $crate::sender::__export_sender_world!(__ArautoSender);
        };
    };
}
