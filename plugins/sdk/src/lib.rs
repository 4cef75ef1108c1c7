//! # arauto plugin SDK
//!
//! Write arauto platform connectors and channel senders as WebAssembly
//! components. The SDK version is the version of the WIT contract it binds
//! (`arauto:plugin@0.2.0`, in `plugins/wit/since_v0.2.0/` of the arauto
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
//!     fn info() -> SenderInfo {
//!         SenderInfo {
//!             plugin: PluginInfo {
//!                 name: "echo".into(),
//!                 version: env!("CARGO_PKG_VERSION").into(),
//!                 description: "Posts the text to an HTTP endpoint".into(),
//!                 config_keys: vec![config_key("url", "Where to POST", true, false)],
//!                 default_hosts: vec![],
//!             },
//!             // The destination is in the settings, not in the order.
//!             recipient: RecipientNeed::None,
//!             default_min_interval_ms: 0,
//!             default_daily_cap: None,
//!             idempotent: false,
//!         }
//!     }
//!     fn check() -> Result<(), PluginError> {
//!         let url = settings::base_url("url", "")?;
//!         http::get(&url).send()?.ok_or_error()?;
//!         Ok(())
//!     }
//!     fn send(msg: Message) -> Result<Receipt, PluginError> {
//!         let url = settings::base_url("url", "")?;
//!         let resp = http::post(&url).json(&serde_json::json!({"text": msg.text}))?.send()?;
//!         // After a 2xx, a JSON body of any shape counts as sent.
//!         let body: serde_json::Value = resp.ok_or_error()?.accepted()?;
//!         let id = body.get("id").and_then(|v| v.as_str()).map(str::to_owned);
//!         Ok(Receipt { provider_message_id: id, recipient_id: None })
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

// The generated bindings name this crate by its package name.
extern crate self as arauto_plugin_sdk;

pub mod decimal;
pub mod imports;
pub mod support;
pub mod time;

#[cfg(feature = "connector")]
pub mod connector;

#[cfg(feature = "sender")]
pub mod sender;

#[cfg(feature = "sender")]
pub mod event;

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
            impl $crate::connector::exports::arauto::plugin::connector_api::Guest
                for __ArautoConnector
            {
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
                fn verify_push(
                    req: $crate::connector::PushRequest,
                ) -> ::core::result::Result<
                    $crate::connector::PushHint,
                    $crate::connector::PluginError,
                > {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::verify_push(req)
                }
                fn register_push(
                    notify_url: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::connector::PluginError> {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::register_push(notify_url)
                }
                fn unregister_push(
                    notify_url: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::connector::PluginError> {
                    $crate::connector::install_panic_hook();
                    <$ty as $crate::connector::Connector>::unregister_push(notify_url)
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
            impl $crate::sender::exports::arauto::plugin::sender_api::Guest for __ArautoSender {
                fn info() -> $crate::sender::SenderInfo {
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
