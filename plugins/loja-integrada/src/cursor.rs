//! The opaque cursor: everything the stateless connector remembers between polls.
//!
//! It is a small versioned JSON object (the host stores it verbatim and hands
//! it back). Example, in the middle of a sweep:
//!
//! ```json
//! {"v":1,"hw":"2024-05-10T09:12:47.556120","lag_ms":1200,"sweep_no":7,
//!  "seen":[[1001,"aguardando_pagamento","2024-05-10T09:12:47.556120",7]],
//!  "sweep":{"since":"2024-05-10T09:02:46","offset":50,"total":73,
//!           "max":"2024-05-10T09:12:47.556120","started_ms":1715342400000,"rescans":0,"shifted":false}}
//! ```
//!
//! * `hw` — high-water mark: the newest `data_modificacao` the search
//!   listing has shown for an order returned so far, in LI's own clock (naive São Paulo, microseconds). Never
//!   the local clock.
//! * `floor` — an upper bound for the next sweep's `since`: the first poll's
//!   look-back start while no order was ever returned, or the `since` of a
//!   sweep that ended with rows still possibly skipped (see [`Sweep::shifted`]).
//! * `anchor` — LI's clock when the last complete sweep's last pass read its
//!   first page ([`Sweep::pass_at`]: LI's `Date` header, no later than the
//!   host clock, whole seconds). Every change committed before the pass
//!   began was in its listing, and one committed after it is dated no
//!   earlier than the anchor, less LI's commit delay (what `overlap`
//!   covers): `anchor − overlap` onward holds everything that changed since.
//!   Absent when LI sent no `Date`.
//! * `lag_ms` — how long the last complete sweep took (host clock, a duration
//!   only). Without an `anchor` the next sweep starts at
//!   `hw − overlap − lag`, so that orders modified while a long sweep was
//!   paging are re-listed.
//!
//! The next sweep lists from the earlier of `anchor − overlap` and
//! `hw − overlap` (the mark's window catches changes LI's search shows
//! late). When the mark's window holds more than a page of orders already
//! returned (a burst the mark sits on), it lists from `anchor − overlap` and
//! checks the mark's window by one page and its `total_count`
//! ([`Sweep::check`]); docs/platforms/loja-integrada.md §After a burst says
//! why (before the anchor, `hw − overlap − lag` made every poll after a
//! burst list the whole burst again).
//! * `sweep_no` — counts sweeps; `seen` entries carry the sweep that last saw them.
//! * `seen` — change keys `[numero, situacao.codigo, data_modificacao, sweep_no]`
//!   of orders already returned whose modification is inside the next sweep's
//!   window: a row whose key is here is skipped without a detail call.
//!   Pruned at the end of each sweep to the rows the next one will list; about
//!   60 bytes per order in the window.
//! * `sweep` — present while a sweep is in progress (`has_more = true`),
//!   with its pass's `pass_at`, `"settling":true` on a settling pass, the
//!   mark's window still to check (`check`) and `"checking":true` while it is
//!   (each absent otherwise; cursors written before them read as absent),
//!   and `check_page`, the offset of the check's one page until it is read.
//! * `check_at` — the offset of the mark's window the next check reads:
//!   each check that settles the window moves it a page on (back to 0 after
//!   the last), so the checks re-read the window in full, one page each.
//!   Absent when 0.
//! * `fail` — orders that could not be read (detail over the size cap,
//!   malformed, an error status about that order alone):
//!   `[numero, attempts, next_retry_ms, situacao.codigo, data_modificacao, quarantined]`.
//!   Retried by `numero` at `next_retry_ms` (host clock; 1 min doubling to
//!   1 h), set aside (quarantined) after [`QUARANTINE_AFTER`] attempts and
//!   then retried only when a search row shows the order changed. At most
//!   [`MAX_FAILED`] entries.
//! * `not_before_ms` — LI asked to wait (429, or 503 with `Retry-After`)
//!   after part of a page was read: no request is made before this instant
//!   (host clock).
//! * `look` — orders verified pushes named (`PollRequest.look_at`) that are
//!   still to be read by `numero`: each call reads a few of them
//!   ([`crate::poll::LOOK_AT_PER_CALL`]) and carries the rest here, at most
//!   [`MAX_LOOK_AT_PENDING`]. Absent when none are waiting (and in cursors
//!   written before pushes existed, which read as "none").
//!
//! `seen` and `look` are the SDK's [`SeenVersions`] and [`LookQueue`], and
//! the mark moves by [`advance_mark`] / [`window_start`] (shared with the
//! Nuvemshop connector); their wire form above is unchanged.
//!
//! # What moves the high-water mark
//!
//! Only rows of the search listing raise a sweep's `max`, and so `hw`. An
//! order read by `numero` — because a push named it, or to retry a failed
//! read — updates `seen` (so the listing does not return it again) but never
//! the mark: LI indexes some changes minutes late, and a mark that followed
//! pushed orders could pass a change the index has not shown yet, which then
//! falls before every later window.
//!
//! # Timestamps in the future
//!
//! `hw`, `floor` and a sweep's `since` never lie beyond the connector's now
//! (host clock in São Paulo time) plus the `future_tolerance` setting. A row
//! whose `data_modificacao` is later than that (a mistyped year, a platform
//! bug) is still returned, but it cannot drag the window into the future,
//! where no new order would ever be listed again. A cursor stored before this
//! rule existed, with such a mark, is pulled back when it is next used
//! ([`Cursor::pull_back_from_future`]).

use std::collections::BTreeMap;

use jiff::SignedDuration;
use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use arauto_plugin_sdk::connector::{high_water, order_retry_backoff_ms};
use arauto_plugin_sdk::cursor::{
    CursorFields, LookQueue, SeenVersions, advance_mark, window_start,
};

use crate::time::{format_micros, format_seconds, from_unix_ms, parse_li};

/// First retry of an unreadable order after this long, doubling per attempt.
const RETRY_BASE_MS: u64 = 60_000;
/// Retries of an unreadable order are at most this far apart.
const RETRY_CAP_MS: u64 = 3_600_000;

/// The cursor format version written by this connector.
pub const VERSION: u32 = 1;

/// At most this many `seen` entries survive the end of a sweep (the newest
/// ones). Beyond it an unchanged order re-listed in the overlap costs one
/// extra detail call; the host's snapshot comparison keeps that harmless.
const MAX_SEEN_AFTER_SWEEP: usize = 20_000;

/// At most this many pushed orders wait in the cursor to be read by
/// `numero` (the host sends at most 100 per poll). Beyond it the extra ids
/// are dropped: the search listing still returns those orders, only later.
pub const MAX_LOOK_AT_PENDING: usize = 100;

/// Reading an order is tried this many times before it is quarantined.
pub const QUARANTINE_AFTER: u32 = 5;

/// At most this many failing orders are tracked (quarantined ones are
/// forgotten first, then those retried furthest ahead; a forgotten order is
/// read again whenever a search lists it).
pub const MAX_FAILED: usize = 500;

/// An order that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Failed attempts so far (since the order last changed).
    pub attempts: u32,
    /// Host clock (Unix ms) of the next retry.
    pub next_retry_ms: u64,
    /// `situacao.codigo` when it failed.
    pub status: String,
    /// `data_modificacao` when it failed, canonical microsecond text.
    pub modified: String,
    /// Given up until the order changes.
    pub quarantined: bool,
}

/// How an order looked when it was last returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `situacao.codigo`.
    pub status: String,
    /// `data_modificacao`, canonical microsecond text.
    pub modified: String,
    /// The sweep that last listed it.
    pub sweep_no: u64,
}

/// A sweep in progress: one pass over `pedido/search?since_atualizado=since`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// `since_atualizado` of every page of this sweep (`YYYY-MM-DDTHH:MM:SS`).
    pub since: String,
    /// Offset of the next page to read.
    pub offset: u64,
    /// `meta.total_count` of the last page read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Newest `data_modificacao` listed in this sweep for an order returned
    /// (or returned before); orders read by `numero` leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// Host clock when the sweep started (only used as a duration base).
    pub started_ms: u64,
    /// Times this sweep started over from offset 0 to catch shifted rows.
    #[serde(default)]
    pub rescans: u32,
    /// Rows may have shifted past the read position since this pass began: an
    /// order already read this sweep reappeared changed, or `total_count`
    /// dropped. Offset paging may then have skipped an unread row.
    #[serde(default)]
    pub shifted: bool,
    /// LI's clock when this pass read its first page: the earlier of LI's
    /// `Date` header and the host clock (naive São Paulo, seconds). Every
    /// change committed before it is in this pass's listing; `None` when LI
    /// sent no usable `Date` (the next window then falls back to
    /// `hw − overlap − lag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_at: Option<String>,
    /// This pass is the settling pass: the window after a long pass, listed
    /// once more in the same poll (see `crate::poll`), at most once a sweep.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settling: bool,
    /// When this sweep lists from LI's clock (`anchor − overlap`) while the
    /// mark's window (`hw − overlap`) starts earlier and holds more than a
    /// page of orders already returned: that window's `since`, checked by
    /// one page and its `total_count` once the listing is done (see
    /// `crate::poll`, "After a burst").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// This pass is that check: its first page's `total_count` against the
    /// orders already returned in the window decides whether it goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checking: bool,
    /// The offset of the check's one page while it is still to be read
    /// (the cursor's [`Cursor::check_at`] when the check began); `None`
    /// once it was read and did not settle the window, which is then read
    /// in full from offset 0. A check written before this field existed
    /// reads as `None`: its window is read in full (safe, one sweep's cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_page: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Wire {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    floor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor: Option<String>,
    #[serde(default)]
    lag_ms: u64,
    #[serde(default)]
    sweep_no: u64,
    #[serde(default)]
    seen: Vec<(u64, String, String, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sweep: Option<Sweep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fail: Vec<(u64, u32, u64, String, String, bool)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    look: Vec<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    check_at: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Wire {
    /// Straight from the text when every field is well formed (every poll
    /// reads the cursor: this skips an intermediate `serde_json::Value`);
    /// otherwise field by field, so that a rejection names the field at
    /// fault and a `null` reads as the field's default. Only an object takes
    /// the direct way: a derived reader would also take an array.
    fn read(text: &str) -> Result<Self, BadCursor> {
        if text.trim_start().starts_with('{')
            && let Ok(wire) = serde_json::from_str::<Self>(text)
        {
            return Ok(wire);
        }
        Self::read_by_field(text)
    }

    fn read_by_field(text: &str) -> Result<Self, BadCursor> {
        let fields = CursorFields::parse(text).map_err(BadCursor)?;
        if !fields.has("v") {
            return Err(BadCursor(
                "not a cursor of this connector: no version `v`".to_owned(),
            ));
        }
        let read = || -> Result<Self, String> {
            Ok(Self {
                v: fields.get("v")?,
                hw: fields.get("hw")?,
                floor: fields.get("floor")?,
                anchor: fields.get("anchor")?,
                lag_ms: fields.get("lag_ms")?,
                sweep_no: fields.get("sweep_no")?,
                seen: fields.get("seen")?,
                sweep: fields.get("sweep")?,
                fail: fields.get("fail")?,
                not_before_ms: fields.get("not_before_ms")?,
                look: fields.get("look")?,
                check_at: fields.get("check_at")?,
            })
        };
        read().map_err(BadCursor)
    }
}

/// The decoded cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Newest `data_modificacao` the listing showed for a returned order (LI's clock).
    pub hw: Option<DateTime>,
    /// Upper bound for the next sweep's `since`.
    pub floor: Option<DateTime>,
    /// LI's clock when the last complete sweep's last pass began (see
    /// [`Sweep::pass_at`]); the next window starts an overlap before it.
    pub anchor: Option<DateTime>,
    /// Duration of the last complete sweep.
    pub lag_ms: u64,
    /// Sweep counter.
    pub sweep_no: u64,
    /// Change keys of returned orders, by numero.
    pub seen: SeenVersions<u64, Seen>,
    /// The sweep in progress.
    pub sweep: Option<Sweep>,
    /// Orders that could not be read, by numero.
    pub failed: BTreeMap<u64, Failure>,
    /// No request before this host instant (LI's Retry-After).
    pub not_before_ms: Option<u64>,
    /// Pushed orders still to be read by `numero`, oldest first.
    pub look_at: LookQueue<u64>,
    /// Offset of the mark's window the next check reads (see
    /// [`Sweep::check`]): each check that settles the window moves it on by
    /// a page, back to 0 after the last, so the checks together re-read the
    /// whole window once every `pages` checks at no extra request. A count
    /// that two differences cancel out can fool one check, never the page
    /// that lists the order it missed.
    pub check_at: u64,
}

/// Why a stored cursor was not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCursor(pub String);

impl Cursor {
    /// Decode a cursor this connector wrote.
    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let wire = Wire::read(text)?;
        if wire.v != VERSION {
            return Err(BadCursor(format!(
                "cursor version {} (this connector writes {VERSION})",
                wire.v
            )));
        }
        let time = |field: &str, text: Option<String>| -> Result<Option<DateTime>, BadCursor> {
            text.map(|t| {
                parse_li(&t)
                    .ok_or_else(|| BadCursor(format!("`{field}` = {t:?} is not a timestamp")))
            })
            .transpose()
        };
        let seen = wire
            .seen
            .into_iter()
            .map(|(numero, status, modified, sweep_no)| {
                (
                    numero,
                    Seen {
                        status,
                        modified,
                        sweep_no,
                    },
                )
            })
            .collect();
        let failed = wire
            .fail
            .into_iter()
            .map(
                |(numero, attempts, next_retry_ms, status, modified, quarantined)| {
                    (
                        numero,
                        Failure {
                            attempts,
                            next_retry_ms,
                            status,
                            modified,
                            quarantined,
                        },
                    )
                },
            )
            .collect();
        Ok(Self {
            hw: time("hw", wire.hw)?,
            floor: time("floor", wire.floor)?,
            anchor: time("anchor", wire.anchor)?,
            lag_ms: wire.lag_ms,
            sweep_no: wire.sweep_no,
            seen,
            sweep: wire.sweep,
            failed,
            not_before_ms: wire.not_before_ms,
            look_at: wire.look.into(),
            check_at: wire.check_at,
        })
    }

    /// The JSON text handed to the host.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: VERSION,
            hw: self.hw.map(format_micros),
            floor: self.floor.map(format_seconds),
            anchor: self.anchor.map(format_seconds),
            lag_ms: self.lag_ms,
            sweep_no: self.sweep_no,
            seen: self
                .seen
                .iter()
                .map(|(n, s)| (*n, s.status.clone(), s.modified.clone(), s.sweep_no))
                .collect(),
            sweep: self.sweep.clone(),
            fail: self
                .failed
                .iter()
                .map(|(n, f)| {
                    (
                        *n,
                        f.attempts,
                        f.next_retry_ms,
                        f.status.clone(),
                        f.modified.clone(),
                        f.quarantined,
                    )
                })
                .collect(),
            not_before_ms: self.not_before_ms,
            look: self.look_at.to_vec(),
            check_at: self.check_at,
        };
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Where the mark says the next sweep lists from: `hw − overlap` (and
    /// less the last sweep's duration when LI sent no `Date`), no later than
    /// `floor`. The mark follows what LI's search has shown, so this window
    /// catches a change LI indexes late, however late its clock says it is.
    pub fn mark_since(&self, overlap: SignedDuration) -> Option<DateTime> {
        let lag = if self.anchor.is_some() {
            // Changes made during the sweep are the anchor's business.
            SignedDuration::ZERO
        } else {
            SignedDuration::from_millis(i64::try_from(self.lag_ms).unwrap_or(i64::MAX))
        };
        window_start(self.hw, self.floor, |hw| {
            hw.saturating_sub(overlap).saturating_sub(lag)
        })
    }

    /// Where LI's clock says the next sweep lists from: `anchor − overlap`,
    /// no later than `floor`; `None` without an anchor.
    pub fn fresh_since(&self, overlap: SignedDuration) -> Option<DateTime> {
        let fresh = self.anchor?.saturating_sub(overlap);
        Some(self.floor.map_or(fresh, |floor| fresh.min(floor)))
    }

    /// The earliest instant the next sweep lists from (the earlier of
    /// [`Self::mark_since`] and [`Self::fresh_since`]); `None` before
    /// anything is known (first poll).
    pub fn next_since(&self, overlap: SignedDuration) -> Option<DateTime> {
        match (self.mark_since(overlap), self.fresh_since(overlap)) {
            (Some(mark), Some(fresh)) => Some(mark.min(fresh)),
            (mark, fresh) => mark.or(fresh),
        }
    }

    /// Orders LI should list from `since` by what this cursor knows: those
    /// already returned, and those that could not be read, last modified at
    /// or after it.
    pub fn known_since(&self, since: DateTime) -> usize {
        let failed = self
            .failed
            .iter()
            .filter(|(numero, f)| {
                !self.seen.contains_key(*numero)
                    && parse_li(&f.modified).is_some_and(|m| m >= since)
            })
            .count();
        self.seen_since(since) + failed
    }

    /// Orders already returned whose last known modification is at or
    /// after `since`: what a listing from `since` would show again.
    pub fn seen_since(&self, since: DateTime) -> usize {
        self.seen
            .iter()
            .filter(|(_, s)| parse_li(&s.modified).is_some_and(|m| m >= since))
            .count()
    }

    /// Pull every mark that lies beyond `ceiling` (now + tolerance) back to
    /// it: a cursor written before future timestamps were clamped, or by a
    /// host whose clock jumped back. A sweep in progress over a future window
    /// is dropped (the next one starts from the pulled-back mark). Returns
    /// what was pulled back, for the log.
    pub fn pull_back_from_future(&mut self, ceiling: DateTime) -> Option<String> {
        let mut pulled = Vec::new();
        for (name, mark) in [
            ("hw", &mut self.hw),
            ("floor", &mut self.floor),
            ("anchor", &mut self.anchor),
        ] {
            if let Some(at) = *mark {
                let (kept, clamped) = high_water::clamp_to(at, ceiling);
                if clamped {
                    pulled.push(format!("`{name}` {}", format_micros(at)));
                    *mark = Some(kept);
                }
            }
        }
        if let Some(sweep) = &self.sweep {
            let since = parse_li(&sweep.since);
            if since.is_none_or(|since| since > ceiling) {
                pulled.push(format!("the sweep since {}", sweep.since));
                self.sweep = None;
            } else if let Some(max) = sweep.max.as_deref().and_then(parse_li)
                && max > ceiling
                && let Some(sweep) = &mut self.sweep
            {
                pulled.push(format!("the sweep's newest modification {max}"));
                sweep.max = Some(format_micros(ceiling));
            }
        }
        (!pulled.is_empty()).then(|| pulled.join(", "))
    }

    /// Queue pushed orders to be read by `numero`, after those already
    /// waiting; one already waiting is not queued twice. Returns the numeros
    /// dropped because [`MAX_LOOK_AT_PENDING`] were already waiting.
    pub fn queue_look_at(&mut self, numeros: impl IntoIterator<Item = u64>) -> Vec<u64> {
        self.look_at.queue(numeros, MAX_LOOK_AT_PENDING)
    }

    /// Record that `numero` (listed with `status`/`modified`) could not be
    /// read at host time `now_ms`. Returns the failure as recorded.
    pub fn record_failure(
        &mut self,
        numero: u64,
        status: &str,
        modified: &str,
        now_ms: u64,
    ) -> Failure {
        let previous = self
            .failed
            .remove(&numero)
            // A new version of the order starts a new series of attempts.
            .filter(|f| f.status == status && f.modified == modified);
        let attempts = previous.map_or(0, |f| f.attempts).saturating_add(1);
        let backoff = order_retry_backoff_ms(attempts, RETRY_BASE_MS, RETRY_CAP_MS);
        let failure = Failure {
            attempts,
            next_retry_ms: now_ms.saturating_add(backoff),
            status: status.to_owned(),
            modified: modified.to_owned(),
            quarantined: attempts >= QUARANTINE_AFTER,
        };
        self.failed.insert(numero, failure.clone());
        while self.failed.len() > MAX_FAILED {
            // Forget quarantined orders first (they wait for a change, which
            // lists them again anyway), then the ones retried furthest ahead.
            let victim = self
                .failed
                .iter()
                .filter(|(n, _)| **n != numero)
                .max_by_key(|(_, f)| (f.quarantined, f.next_retry_ms))
                .map(|(n, _)| *n);
            match victim {
                Some(n) => {
                    self.failed.remove(&n);
                }
                None => break,
            }
        }
        failure
    }

    /// Start a sweep (next sweep number; `since` from the cursor, or
    /// `now − initial_lookback` on a store's first poll).
    ///
    /// When the mark's window starts before LI's clock's and would take more
    /// pages of orders already returned than LI's clock's window and one more
    /// (a burst the mark still sits on), the sweep lists from LI's clock and
    /// only checks the mark's window afterwards, by one page
    /// ([`Sweep::check`]); otherwise it lists from the earlier of the two.
    pub fn begin_sweep(
        &mut self,
        overlap: SignedDuration,
        initial_lookback: SignedDuration,
        now_ms: u64,
        page_size: usize,
    ) -> Sweep {
        self.sweep_no += 1;
        let mark = self.mark_since(overlap).map(format_seconds);
        let fresh = self.fresh_since(overlap).map(format_seconds);
        // Pages a listing from `since` takes, by the orders already returned.
        let pages = |since: &str| {
            parse_li(since).map_or(usize::MAX, |at| {
                self.seen_since(at).div_ceil(page_size.max(1)).max(1)
            })
        };
        let (since, check) = match (mark, fresh) {
            // Worth it only when LI's clock's window plus the one page of
            // the check costs fewer requests than the mark's window.
            (Some(mark), Some(fresh)) if fresh > mark && pages(&mark) > pages(&fresh) + 1 => {
                (fresh, Some(mark))
            }
            (mark, fresh) => {
                let earliest = match (mark, fresh) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let since = earliest.unwrap_or_else(|| {
                    format_seconds(from_unix_ms(now_ms).saturating_sub(initial_lookback))
                });
                (since, None)
            }
        };
        Sweep {
            since,
            offset: 0,
            total: None,
            max: None,
            started_ms: now_ms,
            rescans: 0,
            shifted: false,
            pass_at: None,
            settling: false,
            check,
            checking: false,
            check_page: None,
        }
    }

    /// Close a complete sweep: advance `hw` to LI's newest modification
    /// returned, remember how long the sweep took, keep `floor` where rows may
    /// have been skipped or nothing was ever returned, and prune `seen` to
    /// what the next sweep will list.
    ///
    /// `hw` never goes past `ceiling` (now + tolerance), whatever LI listed.
    pub fn finish_sweep(
        &mut self,
        sweep: &Sweep,
        now_ms: u64,
        overlap: SignedDuration,
        ceiling: DateTime,
    ) {
        let sweep_max = sweep.max.as_deref().and_then(parse_li);
        self.hw = advance_mark(self.hw, sweep_max, ceiling);
        self.lag_ms = now_ms.saturating_sub(sweep.started_ms);
        // Without LI's clock the next window falls back to the mark.
        self.anchor = sweep
            .pass_at
            .as_deref()
            .and_then(parse_li)
            .map(|at| at.min(ceiling));
        let since = parse_li(&sweep.since);
        self.floor = if sweep.shifted || self.hw.is_none() {
            match (self.floor, since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            None
        };
        self.sweep = None;
        if let Some(window_start) = self.next_since(overlap) {
            self.seen
                .prune(|s| parse_li(&s.modified).is_some_and(|m| m >= window_start));
        }
        self.seen
            .keep_newest(MAX_SEEN_AFTER_SWEEP, |s| s.modified.clone());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// A ceiling no test date reaches.
    const FAR: DateTime = DateTime::constant(2200, 1, 1, 0, 0, 0, 0);

    fn seen(status: &str, modified: &str, sweep_no: u64) -> Seen {
        Seen {
            status: status.into(),
            modified: modified.into(),
            sweep_no,
        }
    }

    #[test]
    fn the_direct_read_agrees_with_the_read_by_field() {
        let texts = [
            r#"{"v":1,"hw":"2024-05-10T09:12:47.556120","lag_ms":1200,"sweep_no":7,"seen":[[1001,"aguardando_pagamento","2024-05-10T09:12:47.556120",7]],"sweep":{"since":"2024-05-10T09:02:46","offset":50,"total":73,"max":"2024-05-10T09:12:47.556120","started_ms":1715342400000,"rescans":0,"shifted":false},"check_at":50,"look":[3],"fail":[[9,1,5,"x","2024-05-10T09:12:47.556120",false]]}"#,
            r#"{"v":1,"lag_ms":null,"seen":null,"sweep":null,"look":null}"#,
            r#"{"v":1,"v":1}"#,
            r#"{"v":1,"unknown":{"a":[1,2]}}"#,
            r#" {"v":2}"#,
            r#"[1]"#,
            r#"{"hw":"x"}"#,
            r#"{"v":1,"lag_ms":1.5}"#,
            r#"{"v":1,"seen":[[1,"a","b"]]}"#,
            "{\"v\":1,\"hw\":\"2024-05-10T09:00:00\\u0041\"}",
        ];
        for text in texts {
            let by_field = Wire::read_by_field(text);
            let direct = Wire::read(text);
            assert_eq!(direct, by_field, "{text}");
        }
        // A cursor whose fields are all well formed takes the direct way.
        assert!(serde_json::from_str::<Wire>(texts[0]).is_ok());
    }

    #[test]
    fn round_trips_through_json() {
        let mut cursor = Cursor {
            hw: Some(date(2024, 5, 10).at(9, 12, 47, 556_120_000)),
            floor: None,
            lag_ms: 1200,
            sweep_no: 7,
            ..Cursor::default()
        };
        cursor.seen.insert(
            1001,
            seen("aguardando_pagamento", "2024-05-10T09:12:47.556120", 7),
        );
        cursor.sweep = Some(Sweep {
            since: "2024-05-10T09:02:46".into(),
            offset: 50,
            total: Some(73),
            max: Some("2024-05-10T09:12:47.556120".into()),
            started_ms: 1_715_342_400_000,
            rescans: 0,
            shifted: false,
            pass_at: None,
            settling: false,
            check: None,
            checking: false,
            check_page: None,
        });
        let text = cursor.encode();
        assert!(
            text.starts_with(r#"{"v":1,"hw":"2024-05-10T09:12:47.556120","#),
            "{text}"
        );
        assert_eq!(Cursor::decode(&text), Ok(cursor));
    }

    #[test]
    fn a_cursor_stored_before_the_sdk_cursor_types_reads_and_writes_back_unchanged() {
        // Written by the connector before `seen` and `look` became
        // `arauto_plugin_sdk::cursor` types: running daemons store this shape.
        let stored = concat!(
            r#"{"v":1,"hw":"2024-05-10T09:12:47.556120","floor":"2024-05-03T09:00:00","#,
            r#""lag_ms":1200,"sweep_no":7,"#,
            r#""seen":[[1001,"aguardando_pagamento","2024-05-10T09:12:47.556120",7]],"#,
            r#""sweep":{"since":"2024-05-10T09:02:46","offset":50,"total":73,"#,
            r#""max":"2024-05-10T09:12:47.556120","started_ms":1715342400000,"#,
            r#""rescans":0,"shifted":false},"#,
            r#""fail":[[7,1,61000,"pedido_pago","2024-05-10T09:00:00.000000",false]],"#,
            r#""not_before_ms":1715342460000,"look":[5,6]}"#
        );
        let cursor = Cursor::decode(stored).unwrap();
        assert_eq!(
            cursor.seen.get(&1001),
            Some(&seen(
                "aguardando_pagamento",
                "2024-05-10T09:12:47.556120",
                7
            ))
        );
        assert_eq!(*cursor.look_at, [5, 6]);
        assert_eq!(cursor.encode(), stored);
    }

    #[test]
    fn the_anchor_and_a_sweep_checking_the_marks_window_round_trip() {
        let stored = concat!(
            r#"{"v":1,"hw":"2024-05-10T09:00:00.119000","anchor":"2024-05-10T10:00:00","#,
            r#""lag_ms":0,"sweep_no":2,"seen":[],"#,
            r#""sweep":{"since":"2024-05-10T08:50:00","offset":0,"started_ms":0,"#,
            r#""rescans":0,"shifted":false,"pass_at":"2024-05-10T10:00:00","#,
            r#""settling":true,"checking":true}}"#
        );
        let cursor = Cursor::decode(stored).unwrap();
        assert_eq!(cursor.anchor, Some(date(2024, 5, 10).at(10, 0, 0, 0)));
        let sweep = cursor.sweep.clone().unwrap();
        assert!(sweep.settling && sweep.checking && sweep.check.is_none());
        assert_eq!(cursor.encode(), stored);
        let bad = Cursor::decode(r#"{"v":1,"anchor":"soon"}"#).unwrap_err();
        assert!(bad.0.contains("`anchor`"), "{}", bad.0);
    }

    #[test]
    fn after_a_burst_the_sweep_lists_from_lis_clock_and_checks_the_marks_window() {
        let mut cursor = Cursor {
            hw: Some(date(2024, 5, 10).at(9, 0, 1, 0)),
            anchor: Some(date(2024, 5, 10).at(9, 5, 0, 0)),
            ..Cursor::default()
        };
        let overlap = SignedDuration::from_secs(1);
        for numero in 0..5 {
            cursor
                .seen
                .insert(numero, seen("pedido_pago", "2024-05-10T09:00:00.500000", 1));
        }
        let quiet = cursor.begin_sweep(overlap, SignedDuration::from_hours(1), 0, 2);
        assert_eq!(quiet.since, "2024-05-10T09:04:59");
        assert_eq!(quiet.check.as_deref(), Some("2024-05-10T09:00:00"));
        let small = cursor.begin_sweep(overlap, SignedDuration::from_hours(1), 0, 50);
        assert_eq!(
            (small.since.as_str(), small.check),
            ("2024-05-10T09:00:00", None),
            "a window of one page is listed whole, as before"
        );
    }

    #[test]
    fn foreign_or_future_cursors_are_rejected_with_the_reason() {
        assert!(Cursor::decode("2024-05-10T09:00:00").is_err());
        let future = Cursor::decode(r#"{"v":2}"#).unwrap_err();
        assert!(future.0.contains("version 2"), "{}", future.0);
        let bad = Cursor::decode(r#"{"v":1,"hw":"yesterday"}"#).unwrap_err();
        assert!(bad.0.contains("`hw`"), "{}", bad.0);
        let bad = Cursor::decode(r#"{"v":1,"seen":[[1,"x"]]}"#).unwrap_err();
        assert!(bad.0.contains("`seen`"), "{}", bad.0);
        let bad = Cursor::decode(r#"{"v":1,"sweep":{"offset":-1}}"#).unwrap_err();
        assert!(bad.0.contains("`sweep`"), "{}", bad.0);
        let bad = Cursor::decode(r#"{"v":"1"}"#).unwrap_err();
        assert!(bad.0.contains("`v`"), "{}", bad.0);
    }

    #[test]
    fn next_since_widens_by_overlap_and_lag_and_respects_the_floor() {
        let hw = date(2024, 5, 10).at(10, 0, 0, 500_000_000);
        let mut cursor = Cursor {
            hw: Some(hw),
            lag_ms: 60_000,
            ..Cursor::default()
        };
        assert_eq!(
            cursor.next_since(SignedDuration::from_mins(10)),
            Some(date(2024, 5, 10).at(9, 49, 0, 500_000_000))
        );
        cursor.floor = Some(date(2024, 5, 9).at(0, 0, 0, 0));
        assert_eq!(
            cursor.next_since(SignedDuration::from_mins(10)),
            cursor.floor
        );
        assert_eq!(
            Cursor::default().next_since(SignedDuration::from_mins(10)),
            None
        );
    }

    #[test]
    fn the_first_sweep_looks_back_from_the_host_clock_and_later_ones_from_hw() {
        let mut cursor = Cursor::default();
        // 2024-05-10T12:00:00Z = 09:00 in São Paulo.
        let sweep = cursor.begin_sweep(
            SignedDuration::from_mins(10),
            SignedDuration::from_hours(168),
            1_715_342_400_000,
            50,
        );
        assert_eq!(sweep.since, "2024-05-03T09:00:00");
        assert_eq!(cursor.sweep_no, 1);
        cursor.hw = Some(date(2024, 5, 10).at(9, 30, 15, 900_000_000));
        let sweep = cursor.begin_sweep(
            SignedDuration::from_mins(10),
            SignedDuration::from_hours(168),
            0,
            50,
        );
        assert_eq!(
            sweep.since, "2024-05-10T09:20:15",
            "floored to seconds, host clock ignored"
        );
    }

    #[test]
    fn finishing_advances_hw_to_li_time_and_prunes_seen_to_the_next_window() {
        let mut cursor = Cursor {
            sweep_no: 3,
            ..Cursor::default()
        };
        cursor
            .seen
            .insert(1, seen("pedido_pago", "2024-05-10T08:00:00.000000", 3));
        cursor
            .seen
            .insert(2, seen("pedido_pago", "2024-05-10T09:55:00.000000", 3));
        let sweep = Sweep {
            since: "2024-05-10T07:00:00".into(),
            offset: 0,
            total: Some(2),
            max: Some("2024-05-10T10:00:00.250000".into()),
            started_ms: 1_000,
            rescans: 0,
            shifted: false,
            pass_at: None,
            settling: false,
            check: None,
            checking: false,
            check_page: None,
        };
        cursor.finish_sweep(&sweep, 31_000, SignedDuration::from_mins(10), FAR);
        assert_eq!(cursor.hw, Some(date(2024, 5, 10).at(10, 0, 0, 250_000_000)));
        assert_eq!(cursor.lag_ms, 30_000);
        assert_eq!(cursor.floor, None);
        assert_eq!(cursor.seen.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn an_unresolved_shift_or_an_empty_store_keeps_the_sweep_start_as_floor() {
        let mut cursor = Cursor::default();
        let mut sweep = Sweep {
            since: "2024-05-03T09:00:00".into(),
            offset: 0,
            total: Some(0),
            max: None,
            started_ms: 0,
            rescans: 0,
            shifted: false,
            pass_at: None,
            settling: false,
            check: None,
            checking: false,
            check_page: None,
        };
        cursor.finish_sweep(&sweep, 0, SignedDuration::from_mins(10), FAR);
        assert_eq!(cursor.hw, None);
        assert_eq!(
            cursor.floor,
            Some(date(2024, 5, 3).at(9, 0, 0, 0)),
            "empty store: no advance"
        );

        sweep.max = Some("2024-05-10T10:00:00".into());
        sweep.shifted = true;
        cursor.finish_sweep(&sweep, 0, SignedDuration::from_mins(10), FAR);
        assert_eq!(cursor.hw, Some(date(2024, 5, 10).at(10, 0, 0, 0)));
        assert_eq!(
            cursor.floor,
            Some(date(2024, 5, 3).at(9, 0, 0, 0)),
            "shifted: re-list the window"
        );
    }

    #[test]
    fn a_mark_in_2099_is_pulled_back_and_the_next_since_is_near_now() {
        let mut cursor = Cursor::decode(
            r#"{"v":1,"hw":"2099-01-01T00:00:00.000000","floor":"2098-12-31T23:00:00","lag_ms":0}"#,
        )
        .unwrap();
        let ceiling = date(2024, 5, 10).at(9, 10, 0, 0);
        let pulled = cursor.pull_back_from_future(ceiling).unwrap();
        assert!(pulled.contains("`hw` 2099-01-01"), "{pulled}");
        assert_eq!(cursor.hw, Some(ceiling));
        assert_eq!(cursor.floor, Some(ceiling));
        let sweep = cursor.begin_sweep(
            SignedDuration::from_mins(10),
            SignedDuration::from_hours(1),
            1_715_342_400_000,
            50,
        );
        assert_eq!(sweep.since, "2024-05-10T09:00:00");
        assert_eq!(
            cursor.pull_back_from_future(ceiling),
            None,
            "nothing left to pull"
        );
    }

    #[test]
    fn finishing_never_moves_hw_past_the_ceiling() {
        let mut cursor = Cursor::default();
        let sweep = Sweep {
            since: "2024-05-10T07:00:00".into(),
            offset: 0,
            total: Some(1),
            max: Some("2099-01-01T00:00:00.000000".into()),
            started_ms: 0,
            rescans: 0,
            shifted: false,
            pass_at: None,
            settling: false,
            check: None,
            checking: false,
            check_page: None,
        };
        let ceiling = date(2024, 5, 10).at(9, 10, 0, 0);
        cursor.finish_sweep(&sweep, 0, SignedDuration::from_mins(10), ceiling);
        assert_eq!(cursor.hw, Some(ceiling));
    }

    #[test]
    fn failures_back_off_quarantine_and_stay_bounded() {
        let mut cursor = Cursor::default();
        let at = "2024-05-10T09:00:00.000000";
        let waits: Vec<u64> = (0..5)
            .map(|_| {
                cursor
                    .record_failure(7, "pedido_pago", at, 1_000)
                    .next_retry_ms
                    - 1_000
            })
            .collect();
        assert_eq!(waits, [60_000, 120_000, 240_000, 480_000, 960_000]);
        assert!(cursor.failed[&7].quarantined);
        assert_eq!(cursor.failed[&7].attempts, QUARANTINE_AFTER);
        // A new version of the order starts over.
        let fresh = cursor.record_failure(7, "pedido_enviado", at, 1_000);
        assert_eq!((fresh.attempts, fresh.quarantined), (1, false));

        let text = cursor.encode();
        assert!(
            text.contains(r#""fail":[[7,1,61000,"pedido_enviado""#),
            "{text}"
        );
        assert_eq!(Cursor::decode(&text).unwrap(), cursor);

        for numero in 0..(MAX_FAILED as u64 + 50) {
            cursor.record_failure(1_000 + numero, "x", at, numero);
        }
        assert_eq!(cursor.failed.len(), MAX_FAILED);
        assert!(
            cursor
                .failed
                .contains_key(&(1_000 + MAX_FAILED as u64 + 49)),
            "the newest stays"
        );
    }

    #[test]
    fn pushed_orders_wait_in_a_bounded_list_that_old_cursors_lack() {
        let old = r#"{"v":1,"hw":"2024-05-10T09:12:47.556120","lag_ms":0,"sweep_no":3}"#;
        let mut cursor = Cursor::decode(old).unwrap();
        assert!(cursor.look_at.is_empty());
        assert!(
            !cursor.encode().contains("look"),
            "nothing waiting, nothing written"
        );

        assert!(cursor.queue_look_at([7, 8, 7]).is_empty());
        assert!(
            cursor.queue_look_at([8, 9]).is_empty(),
            "8 is already waiting"
        );
        assert_eq!(*cursor.look_at, [7, 8, 9]);
        let text = cursor.encode();
        assert!(text.contains(r#""look":[7,8,9]"#), "{text}");
        assert_eq!(Cursor::decode(&text).unwrap(), cursor);

        let dropped = cursor.queue_look_at(100..(100 + MAX_LOOK_AT_PENDING as u64));
        assert_eq!(cursor.look_at.len(), MAX_LOOK_AT_PENDING);
        assert_eq!(
            dropped.len(),
            3,
            "the newest beyond the bound are left to the listing"
        );
        let bad = Cursor::decode(r#"{"v":1,"look":["x"]}"#).unwrap_err();
        assert!(bad.0.contains("`look`"), "{}", bad.0);
    }
}
