//! The daemon runtime: startup path shared with `validate`, signals, reload, shutdown, systemd notifications.
