//! Configuration: TOML file plus `ARAUTO_` environment overrides (figment), secrets, validation.
