//! Heartbeats: proof that a long-running loop (a poller, a dispatcher) still
//! makes progress.
//!
//! Each loop registers one and beats it after every unit of work and while it
//! waits; the daemon's watchdog asks [`Heartbeats::stale`]
//! which loops went silent for longer than they promised, and withholds
//! systemd's keep-alive while one is stuck.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

struct Beat {
    name: String,
    max_silence: Duration,
    last: Mutex<Instant>,
}

/// Proof of life of one loop, from [`Heartbeats::register`].
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
pub struct Heartbeats(Arc<Mutex<Registry>>);

/// The registered heartbeats, dropped ones included until the next prune.
#[derive(Default)]
struct Registry {
    beats: Vec<Weak<Beat>>,
    /// Entries after the last prune: the list is pruned again once it has
    /// doubled, so registering n loops costs O(n) in all, not O(n²) (a
    /// daemon with 100,000 stores registers 100,000 pollers at start).
    after_prune: usize,
}

impl Heartbeats {
    /// A new heartbeat of the loop `name`, stale after `max_silence` without a
    /// beat. Dropping it unregisters it.
    pub fn register(&self, name: &str, max_silence: Duration) -> Heartbeat {
        let beat = Arc::new(Beat {
            name: name.to_owned(),
            max_silence,
            last: Mutex::new(Instant::now()),
        });
        let mut registry = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if registry.beats.len() >= 2 * registry.after_prune.max(8) {
            registry.beats.retain(|weak| weak.strong_count() > 0);
            registry.after_prune = registry.beats.len();
        }
        registry.beats.push(Arc::downgrade(&beat));
        Heartbeat(beat)
    }

    /// The heartbeats silent for longer than allowed at `now`.
    pub fn stale(&self, now: Instant) -> Vec<Stale> {
        let registry = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        registry
            .beats
            .iter()
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

    #[test]
    fn dropped_heartbeats_are_pruned_as_the_registry_grows() {
        let heartbeats = Heartbeats::default();
        let kept: Vec<Heartbeat> = (0..10)
            .map(|n| heartbeats.register(&format!("poll/{n}"), Duration::from_secs(60)))
            .collect();
        for n in 0..10_000 {
            drop(heartbeats.register(&format!("poll/gone-{n}"), Duration::from_secs(60)));
        }
        let registered = heartbeats.0.lock().map(|r| r.beats.len()).unwrap_or(0);
        assert!(
            registered <= 2 * 16,
            "{registered} entries kept for 10 live heartbeats"
        );
        assert_eq!(
            heartbeats
                .stale(Instant::now() + Duration::from_secs(61))
                .len(),
            kept.len()
        );
    }
}
