//! The connector's cursor (opaque to the host, JSON): the high-water mark on
//! `updated_at`, the change keys already returned near it, the sweep in
//! progress and the pushed ids still to read (see
//! docs/platforms/nuvemshop.md §Cursor).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Layout version; a cursor of another version starts over.
const VERSION: u32 = 1;

/// Pushed ids kept waiting at most (the host sends at most 100 per sweep).
pub const MAX_LOOK: usize = 100;

/// Everything a poll call hands to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    /// Layout version.
    pub v: u32,
    /// Newest `updated_at` (Unix ms) a completed sweep listed, clamped to
    /// now + tolerance; `None` before the first sweep completes.
    pub mark_ms: Option<i64>,
    /// id → `updated_at` (ms) of every version returned that the next
    /// sweep's window can still list: such rows are dropped as seen.
    pub seen: BTreeMap<String, i64>,
    /// The sweep in progress.
    pub sweep: Option<Sweep>,
    /// Pushed ids not read yet.
    pub look: Vec<String>,
    /// The bucket was nearly full: no request before this instant (Unix ms).
    pub not_before_ms: Option<i64>,
}

/// A sweep over `updated_at` ∈ [`since_ms`, `until_ms`], read as slices
/// that each fit one page (see `src/poll.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sweep {
    /// Lower bound of the slice being read (Unix ms); starts at the
    /// sweep's `updated_at_min` and moves up slice by slice.
    pub since_ms: i64,
    /// Upper bound of the whole sweep: the connector's clock when it began.
    pub until_ms: i64,
    /// Upper bound of the slice being read.
    pub slice_until_ms: i64,
    /// Page of the slice (1, or more only for a slice too narrow to split).
    pub page: u32,
    /// Newest `updated_at` listed in this sweep.
    pub newest_ms: Option<i64>,
    /// The API ignored `updated_at_max`: this sweep pages through the rest
    /// of its window instead of slicing it.
    pub paging: bool,
}

/// Why a stored cursor was not used.
#[derive(Debug)]
pub struct BadCursor(pub String);

impl Cursor {
    /// A fresh cursor.
    pub fn new() -> Self {
        Self {
            v: VERSION,
            ..Self::default()
        }
    }

    /// Read a stored cursor.
    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let cursor: Cursor =
            serde_json::from_str(text).map_err(|e| BadCursor(format!("not a cursor: {e}")))?;
        if cursor.v != VERSION {
            return Err(BadCursor(format!(
                "field `v` = {} is not this connector's cursor version {VERSION}",
                cursor.v
            )));
        }
        if let Some(sweep) = &cursor.sweep
            && (sweep.page == 0
                || sweep.since_ms > sweep.slice_until_ms
                || sweep.slice_until_ms > sweep.until_ms)
        {
            return Err(BadCursor(
                "field `sweep` is inconsistent (page 0, or bounds out of order)".into(),
            ));
        }
        Ok(cursor)
    }

    /// The cursor as stored.
    pub fn encode(&self) -> String {
        // A map of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Queue pushed ids (deduplicated, at most [`MAX_LOOK`]).
    pub fn queue_look(&mut self, ids: &[String]) {
        for id in ids {
            if self.look.len() >= MAX_LOOK {
                break;
            }
            if !self.look.contains(id) {
                self.look.push(id.clone());
            }
        }
    }

    /// True when this version of the order was returned before.
    pub fn was_seen(&self, id: &str, updated_ms: i64) -> bool {
        self.seen.get(id) == Some(&updated_ms)
    }

    /// Remember a returned version.
    pub fn remember(&mut self, id: &str, updated_ms: i64) {
        let newer = self.seen.get(id).is_none_or(|known| *known <= updated_ms);
        if newer {
            self.seen.insert(id.to_owned(), updated_ms);
        }
    }

    /// Forget versions older than `since_ms`: the listing starts there, so
    /// they can only come back with a newer `updated_at`.
    pub fn prune(&mut self, since_ms: i64) {
        self.seen.retain(|_, updated| *updated >= since_ms);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_foreign_one_is_named() {
        let mut c = Cursor::new();
        c.mark_ms = Some(5);
        c.remember("1", 10);
        c.sweep = Some(Sweep {
            since_ms: 1,
            until_ms: 9,
            slice_until_ms: 5,
            page: 2,
            newest_ms: None,
            paging: false,
        });
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(
            Cursor::decode("{\"v\":9}")
                .unwrap_err()
                .0
                .contains("`v` = 9")
        );
        assert!(Cursor::decode("[]").is_err());
        let mut zero = c.clone();
        if let Some(s) = zero.sweep.as_mut() {
            s.page = 0;
        }
        assert!(
            Cursor::decode(&zero.encode())
                .unwrap_err()
                .0
                .contains("`sweep`")
        );
    }

    #[test]
    fn seen_versions_are_kept_newest_and_pruned_by_the_window() {
        let mut c = Cursor::new();
        c.remember("1", 10);
        c.remember("1", 5);
        assert!(c.was_seen("1", 10));
        assert!(!c.was_seen("1", 5));
        c.remember("2", 3);
        c.prune(4);
        assert!(c.seen.contains_key("1") && !c.seen.contains_key("2"));
    }

    #[test]
    fn pushed_ids_are_queued_once_and_bounded() {
        let mut c = Cursor::new();
        let ids: Vec<String> = (0..150).map(|n| (n % 120).to_string()).collect();
        c.queue_look(&ids);
        assert_eq!(c.look.len(), MAX_LOOK);
    }
}
