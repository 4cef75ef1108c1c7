//! Fake channel providers that record every request and replay documented success and error bodies.
