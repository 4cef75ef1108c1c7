//! The `arauto` command line (clap): `run`, `validate`, `check`, `report`, `queue`, `plugins`, `status`.
