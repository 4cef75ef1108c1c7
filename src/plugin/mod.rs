//! The wasmtime plugin host: engine, compiled-artifact cache, sandbox, WIT bindings per major version.
