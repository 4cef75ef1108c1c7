//! The local control socket (Unix, JSON lines) the CLI uses while the daemon runs.
