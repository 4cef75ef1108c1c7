//! Heartbeats and the systemd watchdog.
//!
//! systemd's `WatchdogSec=` restarts a service that stops sending `WATCHDOG=1`.
//! Pinging from a timer alone would only prove the timer runs; so the pinger
//! first checks that every registered loop (a dispatcher, a poller) has beaten
//! recently, and withholds the ping while one is stuck.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notify::Notifier;

struct Beat {
    name: String,
    max_silence: Duration,
    last: Mutex<Instant>,
}

/// Proof of life of one loop; see [`crate::daemon::ServiceContext::heartbeat`].
#[derive(Clone)]
pub struct Heartbeat(Arc<Beat>);

impl Heartbeat {
    /// Record progress now.
    pub fn beat(&self) {
        *self.0.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }
}

/// A loop that has not beaten in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The service that registered the heartbeat.
    pub name: String,
    /// Time since its last beat.
    pub silent_for: Duration,
    /// Its allowed silence.
    pub max_silence: Duration,
}

/// Registry of live heartbeats (dropped ones disappear on their own).
#[derive(Clone, Default)]
pub(crate) struct Heartbeats(Arc<Mutex<Vec<Weak<Beat>>>>);

impl Heartbeats {
    pub(crate) fn register(&self, name: &str, max_silence: Duration) -> Heartbeat {
        let beat = Arc::new(Beat {
            name: name.to_owned(),
            max_silence,
            last: Mutex::new(Instant::now()),
        });
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|weak| weak.strong_count() > 0);
        list.push(Arc::downgrade(&beat));
        Heartbeat(beat)
    }

    pub(crate) fn stale(&self, now: Instant) -> Vec<Stale> {
        let list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter()
            .filter_map(Weak::upgrade)
            .filter_map(|beat| {
                let last = *beat.last.lock().unwrap_or_else(PoisonError::into_inner);
                let silent_for = now.saturating_duration_since(last);
                (silent_for > beat.max_silence).then(|| Stale {
                    name: beat.name.clone(),
                    silent_for,
                    max_silence: beat.max_silence,
                })
            })
            .collect()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_heartbeats_are_stale_until_they_beat_or_drop() {
        let heartbeats = Heartbeats::default();
        let fast = heartbeats.register("send/wa", Duration::from_secs(5));
        let slow = heartbeats.register("poll/loja1", Duration::from_secs(60));
        let later = |secs| Instant::now() + Duration::from_secs(secs);
        let stale = heartbeats.stale(later(6));
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].name, "send/wa");
        fast.beat();
        assert!(heartbeats.stale(later(1)).is_empty());
        assert_eq!(heartbeats.stale(later(61)).len(), 2);
        drop(fast);
        drop(slow);
        assert!(heartbeats.stale(later(61)).is_empty());
    }
}
