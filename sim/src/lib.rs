//! Fake third-party services (Loja Integrada, channel providers) on 127.0.0.1.
