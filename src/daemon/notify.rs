//! systemd readiness notifications (`sd_notify`), a no-op outside systemd.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sd_notify::NotifyState;

/// Sends `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…` and `WATCHDOG=1`
/// to `$NOTIFY_SOCKET` when systemd (or a test) provides one.
#[derive(Clone, Default)]
pub struct Notifier {
    warned: Arc<AtomicBool>,
}

impl Notifier {
    /// Startup (or a reload) is complete.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
    }

    /// A reload begins. `MONOTONIC_USEC` lets systemd ≥ 253 (`Type=notify-reload`)
    /// match it with the reload it requested.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading"),
            ]),
            Err(_) => self.send(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
        }
    }

    /// Shutdown begins.
    pub fn stopping(&self, status: &str) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status(&one_line(status)),
        ]);
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(&one_line(status))]);
    }

    /// Watchdog keep-alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(states) {
            // Once is enough: a broken notify socket does not get better.
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("cannot notify systemd through $NOTIFY_SOCKET: {error}");
            }
        }
    }
}

/// The notify protocol is one `KEY=value` per line.
fn one_line(status: &str) -> String {
    status.split_whitespace().collect::<Vec<_>>().join(" ")
}
