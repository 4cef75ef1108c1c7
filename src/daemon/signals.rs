//! Unix signals as typed control messages.
//!
//! SIGTERM/SIGINT → [`Control::Shutdown`]; SIGHUP → [`Control::Reload`]. Once
//! a shutdown has begun, a second SIGTERM/SIGINT terminates the process at once
//! from the signal handler itself (signal-hook's conditional shutdown), so a
//! stuck drain never needs SIGKILL; the exit status is then 128 + the signal
//! number (143 for SIGTERM, 130 for SIGINT), as a shell would report it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

/// What the runtime is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Stop gracefully (SIGTERM, SIGINT).
    Shutdown {
        /// The signal's name, for logs.
        signal: &'static str,
    },
    /// Re-read the configuration and apply it (SIGHUP).
    Reload,
}

/// The process's signal stream.
pub(crate) struct SignalSource {
    signals: Signals,
    armed: Arc<AtomicBool>,
}

impl SignalSource {
    /// Take over SIGTERM, SIGINT and SIGHUP. Call before announcing readiness:
    /// until then SIGHUP's default action would kill the process.
    pub(crate) fn install() -> io::Result<Self> {
        let armed = Arc::new(AtomicBool::new(false));
        // Registered before the stream, so it runs first: once armed, the
        // second signal exits before the stream ever sees it.
        for (signal, status) in [(SIGTERM, 128 + SIGTERM), (SIGINT, 128 + SIGINT)] {
            signal_hook::flag::register_conditional_shutdown(signal, status, armed.clone())?;
        }
        let signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        Ok(Self { signals, armed })
    }

    /// The next control message (`None` if the stream closed).
    pub(crate) async fn next(&mut self) -> Option<Control> {
        let signal = self.signals.next().await?;
        Some(match signal {
            SIGHUP => Control::Reload,
            SIGINT => Control::Shutdown { signal: "SIGINT" },
            _ => Control::Shutdown { signal: "SIGTERM" },
        })
    }

    /// From now on, SIGTERM/SIGINT terminate the process immediately.
    pub(crate) fn arm_immediate_exit(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}
