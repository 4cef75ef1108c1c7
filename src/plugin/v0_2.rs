//! Bindings for plugin API `arauto:plugin@0.2.x` (`plugins/wit/since_v0.2.0`)
//! and the conversions between its generated types and arauto's own.

/// The `connector` world. Its import interfaces are shared with `sender`.
pub(crate) mod connector {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "plugins/wit/since_v0.2.0",
        imports: { "arauto:plugin/http.send": trappable },
    });
}

/// The `sender` world, reusing the connector world's import bindings.
pub(crate) mod sender {
    wasmtime::component::bindgen!({
        world: "sender",
        path: "plugins/wit/since_v0.2.0",
        with: {
            "arauto:plugin/types": super::connector::arauto::plugin::types,
            "arauto:plugin/http": super::connector::arauto::plugin::http,
            "arauto:plugin/log": super::connector::arauto::plugin::log,
            "arauto:plugin/config": super::connector::arauto::plugin::config,
            "arauto:plugin/clock": super::connector::arauto::plugin::clock,
        },
    });
}
