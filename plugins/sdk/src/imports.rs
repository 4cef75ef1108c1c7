//! Bindings of the host's imports (`http`, `log`, `config`, `clock`) and the
//! types both worlds share (`arauto:plugin/types`), generated once from the
//! WIT world `imports`. The `connector` and `sender` worlds reuse these Rust
//! types instead of generating their own, so the helpers in
//! [`crate::support`] are written once for both.
//!
//! Plugins rarely need this module directly: the helpers and each world's
//! `prelude` re-export what they use.

wit_bindgen::generate!({
    world: "imports",
    path: "../wit/since_v0.2.0",
    default_bindings_module: "arauto_plugin_sdk::imports",
});
