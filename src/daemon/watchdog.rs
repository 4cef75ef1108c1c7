//! The systemd watchdog, fed only while every loop's heartbeat is fresh.
//!
//! systemd's `WatchdogSec=` restarts a service that stops sending `WATCHDOG=1`.
//! Pinging from a timer alone would only prove the timer runs; so the pinger
//! first checks that every registered loop (a dispatcher, a poller) has beaten
//! recently, and withholds the ping while one is stuck.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notify::Notifier;
use crate::heartbeat::Heartbeats;

/// How often heartbeats are checked when systemd's watchdog is off.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Check heartbeats every half watchdog period (or every 10 s without one) and
/// ping systemd while all are fresh. Runs until `stop` is cancelled.
pub(crate) async fn run(
    heartbeats: Heartbeats,
    notifier: Notifier,
    watchdog: Option<Duration>,
    stop: CancellationToken,
) {
    let period = watchdog.map_or(CHECK_INTERVAL, |w| (w / 2).max(Duration::from_millis(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stuck = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let stale = heartbeats.stale(Instant::now());
        if stale.is_empty() {
            if watchdog.is_some() {
                notifier.watchdog();
            }
            if was_stuck {
                tracing::info!("all services report progress again");
                was_stuck = false;
            }
            continue;
        }
        if !was_stuck {
            for s in &stale {
                tracing::error!(
                    service = %s.name,
                    "no progress for {:?} (limit {:?}){}",
                    s.silent_for,
                    s.max_silence,
                    if watchdog.is_some() {
                        "; withholding the watchdog keep-alive so systemd restarts arauto"
                    } else {
                        ""
                    }
                );
            }
            let names: Vec<&str> = stale.iter().map(|s| s.name.as_str()).collect();
            notifier.status(&format!("stuck: {}", names.join(", ")));
            was_stuck = true;
        }
    }
}
