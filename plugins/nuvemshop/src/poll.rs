//! One `poll` call: a few pushed orders, one list request, and the next cursor.
//!
//! A *sweep* lists every order whose `updated_at` lies between
//! `updated_at_min` (the high-water mark minus `overlap`) and the moment the
//! sweep began, one request per call (`has-more` until it is done), so the
//! host commits as it goes.
//!
//! # Nothing missed while orders move between pages
//!
//! The list's order is undocumented and its pages are offsets into a set
//! that changes while it is read: an order updated between two page reads
//! leaves its place and every later row moves up one, so the row at a page
//! boundary is never read. One answer, though, is one consistent picture.
//! So the sweep reads its window in *slices* of `updated_at` that each fit
//! one page: it asks for the whole rest of the window (open-ended, so an
//! order dated in the future is still seen); when `x-total-count` says it
//! holds more than a page, it narrows the slice's upper bound
//! (`updated_at_max`) using the rows that came as a sample (and at least
//! halving it) and asks again; the rows that came are kept, and dropped as
//! seen when they come again. A complete slice moves the
//! lower bound up to its upper bound minus one second (the API's timestamps
//! have second precision and the filters' inclusivity is undocumented), and
//! the next slice is the rest of the window. Orders updated during the sweep
//! leave the window (their new `updated_at` is past its end) and are read by
//! the next sweep. Only a slice one second wide that still holds more than a
//! page is paged through (`page` 2, 3, …), the one case where a shift could
//! still skip a row: more than `per_page` orders changed in the same second.
//!
//! # Orders a push named
//!
//! `look-at` ids are queued in the cursor and read by detail, at most
//! [`LOOK_AT_PER_CALL`] per call. They update the seen versions (so the
//! listing skips them later) but never the mark: the mark follows what the
//! listing showed.
//!
//! # Pacing
//!
//! After every answer the connector reads the leaky bucket's headers. When
//! at most the floor is left, it stops: the orders read so far are returned,
//! the page is not advanced, `has-more` is false and the cursor records when
//! the bucket will have leaked enough; a call before then answers retryable
//! with that wait, without a request. A 429 in the middle of a page does the
//! same when something was read, and fails the call otherwise.

use arauto_plugin_sdk::connector::log::{self, Level};
use arauto_plugin_sdk::connector::{
    OrderSnapshot, PluginError, PollPage, PollRequest, clock, high_water, notice, retry_after,
};
use arauto_plugin_sdk::time::format_rfc3339_ms;
use serde_json::Value;

use crate::api::{Api, ReadError, id_text};
use crate::cursor::{BadCursor, Cursor, Sweep};
use crate::mapping::{self, ChangeKey};
use crate::settings::Settings;

/// A slice this narrow (ms) is not split further but paged through. Twice
/// the overlap between slices, so each slice moves the window up a second.
pub const MIN_SLICE_MS: i64 = 2 * SLICE_OVERLAP_MS;

/// Consecutive slices overlap by this much (ms): second precision, and
/// `updated_at_min`/`_max` may be exclusive.
pub const SLICE_OVERLAP_MS: i64 = 1_000;

/// Pushed orders read per call, at most (one request each).
pub const LOOK_AT_PER_CALL: usize = 5;

/// How far past the connector's clock an `updated_at` may move the mark.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// The API refuses `page × per_page` beyond this (documented for the
/// 2025-03 order list): paging a one-second slice stops there.
pub const MAX_LISTED_PER_SLICE: u64 = 10_000;

/// How long an unreadable order waits before the next sweep tries it again.
const UNREADABLE_RETRY_S: u64 = 60;

/// Why the call stopped before its page was complete.
enum Stop {
    /// Wait this long (ms), for this reason.
    Wait(u64, &'static str),
}

const BUCKET_NEARLY_FULL: &str = "its request bucket is nearly full";
const ASKED_TO_WAIT: &str = "it asked the connector to wait (429 or a failing detail)";

fn retry_hint(error: &PluginError) -> Option<u64> {
    match error {
        PluginError::Retryable(r) => Some(r.retry_after_ms.unwrap_or(10_000)),
        _ => None,
    }
}

/// Run one poll call.
pub fn poll(req: PollRequest) -> Result<PollPage, PluginError> {
    let settings = Settings::load()?;
    let now = i64::try_from(clock::now_unix_ms()).unwrap_or(i64::MAX);
    let mut cursor = match req.cursor.as_deref() {
        None => Cursor::new(),
        Some(text) => Cursor::decode(text).unwrap_or_else(|BadCursor(why)| {
            log::log(
                Level::Warn,
                &format!(
                    "stored cursor is unusable ({why}); starting over from `initial_lookback` \
                     (orders already known produce no new notifications)"
                ),
                &[],
            );
            Cursor::new()
        }),
    };
    cursor.queue_look(&req.look_at);
    if let Some(not_before) = cursor.not_before_ms {
        if now < not_before {
            let left = u64::try_from(not_before - now).unwrap_or(1000);
            return Err(retry_after(
                format!(
                    "Nuvemshop's request bucket for store {} was nearly full; the connector \
                     waits {left} ms for it to leak before the next request",
                    settings.store_id
                ),
                left,
            ));
        }
        cursor.not_before_ms = None;
    }

    let mut api = Api::new(&settings);
    let mut orders: Vec<OrderSnapshot> = Vec::new();
    let mut stop = read_pushed(&mut api, &mut cursor, &mut orders)?;
    let mut has_more = false;
    if stop.is_none() {
        match read_page(&settings, &mut api, &mut cursor, &mut orders, now)? {
            PageOutcome::More => has_more = true,
            PageOutcome::SweepDone => has_more = !cursor.look.is_empty(),
            PageOutcome::Stopped(why) => stop = Some(why),
        }
    }
    if stop.is_none() && api.bucket.nearly_full() {
        stop = Some(Stop::Wait(api.bucket.wait_ms(), BUCKET_NEARLY_FULL));
    }
    if let Some(Stop::Wait(ms, why)) = stop {
        let ms = ms.max(1);
        cursor.not_before_ms = Some(now.saturating_add(i64::try_from(ms).unwrap_or(60_000)));
        has_more = false;
        log::log(
            Level::Info,
            &format!(
                "Nuvemshop store {}: {why} ({} left of {}); the sweep pauses {ms} ms and \
                 resumes at the next poll",
                settings.store_id,
                api.bucket.remaining.map_or("?".into(), |n| n.to_string()),
                api.bucket.limit.map_or("?".into(), |n| n.to_string()),
            ),
            &[("store_id", settings.store_id.as_str())],
        );
    }
    Ok(PollPage {
        orders,
        next_cursor: Some(cursor.encode()),
        has_more,
    })
}

/// Read up to [`LOOK_AT_PER_CALL`] pushed ids by detail.
fn read_pushed(
    api: &mut Api<'_>,
    cursor: &mut Cursor,
    orders: &mut Vec<OrderSnapshot>,
) -> Result<Option<Stop>, PluginError> {
    let take = cursor.look.len().min(LOOK_AT_PER_CALL);
    let batch: Vec<String> = cursor.look.drain(..take).collect();
    for (index, id) in batch.iter().enumerate() {
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            log::log(
                Level::Info,
                &format!("pushed id {id:?} is not a Nuvemshop order id; skipped"),
                &[("order", id.as_str())],
            );
            continue;
        }
        if api.bucket.nearly_full() {
            requeue(cursor, &batch[index..]);
            return Ok(Some(Stop::Wait(api.bucket.wait_ms(), BUCKET_NEARLY_FULL)));
        }
        match api.order(id) {
            Ok(doc) => match mapping::change_key(&doc) {
                Ok(key) if key.id == *id => {
                    if !cursor.was_seen(&key.id, key.updated_ms) {
                        orders.push(mapping::snapshot(&doc, &key));
                        cursor.remember(&key.id, key.updated_ms);
                    }
                }
                Ok(key) => log::log(
                    Level::Warn,
                    &format!(
                        "pushed order {id}: the API answered with order {} instead; skipped",
                        key.id
                    ),
                    &[("order", id.as_str())],
                ),
                Err(bad) => {
                    notice::order_unreadable(id, 1, UNREADABLE_RETRY_S, &bad.to_string());
                }
            },
            Err(ReadError::NotFound) => log::log(
                Level::Info,
                &format!(
                    "pushed order {id} was not found (404): deleted, or not visible to the app; \
                     skipped"
                ),
                &[("order", id.as_str())],
            ),
            Err(ReadError::Unreadable(why)) => {
                notice::order_unreadable(id, 1, UNREADABLE_RETRY_S, &why);
            }
            Err(ReadError::Store(error)) => match retry_hint(&error) {
                Some(ms) if !orders.is_empty() => {
                    requeue(cursor, &batch[index..]);
                    return Ok(Some(Stop::Wait(ms, ASKED_TO_WAIT)));
                }
                _ => return Err(error),
            },
        }
    }
    Ok(None)
}

fn requeue(cursor: &mut Cursor, ids: &[String]) {
    let mut rest: Vec<String> = ids.to_vec();
    rest.append(&mut cursor.look);
    cursor.look = rest;
}

enum PageOutcome {
    More,
    SweepDone,
    Stopped(Stop),
}

/// Read the sweep's next slice (starting a sweep when none is in progress).
fn read_page(
    settings: &Settings,
    api: &mut Api<'_>,
    cursor: &mut Cursor,
    orders: &mut Vec<OrderSnapshot>,
    now: i64,
) -> Result<PageOutcome, PluginError> {
    if api.bucket.nearly_full() {
        return Ok(PageOutcome::Stopped(Stop::Wait(
            api.bucket.wait_ms(),
            BUCKET_NEARLY_FULL,
        )));
    }
    let mut sweep = match cursor.sweep.take() {
        Some(sweep) => sweep,
        None => {
            let since_ms = cursor
                .mark_ms
                .map(|m| m.saturating_sub(settings.overlap_ms))
                .unwrap_or_else(|| now.saturating_sub(settings.initial_lookback_ms))
                .min(now);
            Sweep {
                since_ms,
                until_ms: now,
                slice_until_ms: now,
                page: 1,
                newest_ms: None,
                paging: false,
            }
        }
    };
    // The last slice is open-ended: one answer, so nothing can shift, and
    // orders with an `updated_at` past the clock are still seen (and reported).
    // Whole seconds, as the API prints them (the lower bound rounded down and
    // the upper rounded up, so rounding only widens the slice).
    let slice_max = (sweep.slice_until_ms < sweep.until_ms).then(|| {
        format_rfc3339_ms(
            sweep
                .slice_until_ms
                .saturating_add(999)
                .div_euclid(1000)
                .saturating_mul(1000),
        )
    });
    let list = match api.list_orders(
        &format_rfc3339_ms(sweep.since_ms.div_euclid(1000).saturating_mul(1000)),
        slice_max.as_deref(),
        sweep.page,
        settings.page_size,
    ) {
        Ok(list) => list,
        Err(error) => {
            cursor.sweep = Some(sweep);
            return match retry_hint(&error) {
                Some(ms) if !orders.is_empty() => {
                    Ok(PageOutcome::Stopped(Stop::Wait(ms, ASKED_TO_WAIT)))
                }
                _ => Err(error),
            };
        }
    };
    for row in &list.rows {
        let key = match mapping::change_key(row) {
            Ok(key) => key,
            Err(bad) => {
                let order = row
                    .get("id")
                    .and_then(id_text)
                    .unwrap_or_else(|| "?".into());
                notice::order_unreadable(&order, 1, UNREADABLE_RETRY_S, &bad.to_string());
                continue;
            }
        };
        sweep.newest_ms = Some(
            sweep
                .newest_ms
                .map_or(key.updated_ms, |n| n.max(key.updated_ms)),
        );
        if high_water::is_future(key.updated_ms, now, FUTURE_TOLERANCE_MS) {
            notice::future_timestamp(&key.id, &key.updated_raw);
        }
        if cursor.was_seen(&key.id, key.updated_ms) {
            continue;
        }
        match detail_of(api, row, &key) {
            Ok(Some(doc)) => {
                orders.push(mapping::snapshot(&doc, &key));
                cursor.remember(&key.id, key.updated_ms);
            }
            Ok(None) => {}
            Err(stop) => {
                // The slice is read again next time; rows returned are seen.
                cursor.sweep = Some(sweep);
                return Ok(PageOutcome::Stopped(stop));
            }
        }
    }

    if let Some(max) = &slice_max
        && list.rows.iter().any(|row| {
            mapping::change_key(row)
                .is_ok_and(|key| key.updated_ms > sweep.slice_until_ms + SLICE_OVERLAP_MS)
        })
    {
        // Rows past the slice's end: the filter is not honoured, so slicing
        // cannot narrow anything. Page through the rest of the window.
        log::log(
            Level::Warn,
            &format!(
                "store {}: the order list ignored updated_at_max={max}; this sweep pages \
                 through the rest of its window instead",
                settings.store_id
            ),
            &[("store_id", settings.store_id.as_str())],
        );
        sweep.paging = true;
        sweep.slice_until_ms = sweep.until_ms;
        sweep.page = 1;
        cursor.sweep = Some(sweep);
        return Ok(PageOutcome::More);
    }
    let per_page = u64::from(settings.page_size);
    let listed = list.rows.len() as u64;
    // How many rows the slice holds: the header, or at least what came.
    let total = list
        .total
        .unwrap_or(if listed >= per_page { u64::MAX } else { listed });
    let span = sweep.slice_until_ms.saturating_sub(sweep.since_ms);
    if !sweep.paging && sweep.page == 1 && total > per_page {
        // Too many rows for one atomic read: narrow the slice. The rows that
        // came are a sample of it; the slice up to the 80 %-of-a-page-th
        // oldest of them holds at least that many, and at most half the span
        // keeps the narrowing geometric whatever order the API lists in.
        let mut stamps: Vec<i64> = list
            .rows
            .iter()
            .filter_map(|row| mapping::change_key(row).ok())
            .map(|key| key.updated_ms)
            .filter(|ms| (sweep.since_ms..=sweep.slice_until_ms).contains(ms))
            .collect();
        stamps.sort_unstable();
        let k = usize::try_from(per_page * 4 / 5).unwrap_or(1).max(1);
        let half = sweep.since_ms.saturating_add(span / 2);
        let cut = stamps
            .get(k - 1)
            .or(stamps.last())
            .map_or(half, |at| (*at).min(half));
        let width = cut
            .saturating_sub(sweep.since_ms)
            .min(span / 2)
            .max(MIN_SLICE_MS);
        if width < span {
            sweep.slice_until_ms = sweep.since_ms.saturating_add(width);
            cursor.sweep = Some(sweep);
            return Ok(PageOutcome::More);
        }
    }
    let page = u64::from(sweep.page);
    let more_pages = match list.next_page {
        Some(next) => u64::from(next) > page,
        None => total > page * per_page && listed > 0,
    };
    if more_pages && (page + 1) * per_page <= MAX_LISTED_PER_SLICE {
        // A slice too narrow to split (or an API without updated_at_max):
        // page through it.
        sweep.page += 1;
        cursor.sweep = Some(sweep);
        return Ok(PageOutcome::More);
    }
    if more_pages {
        log::log(
            Level::Warn,
            &format!(
                "store {}: more than {MAX_LISTED_PER_SLICE} orders share the second at {}; \
                 Nuvemshop lists no further pages, so the rest of that second is not read",
                settings.store_id,
                format_rfc3339_ms(sweep.since_ms)
            ),
            &[("store_id", settings.store_id.as_str())],
        );
    }
    if sweep.slice_until_ms < sweep.until_ms {
        // The slice is complete: on to the rest of the window.
        sweep.since_ms = sweep
            .slice_until_ms
            .saturating_sub(SLICE_OVERLAP_MS)
            .max(sweep.since_ms.saturating_add(1));
        sweep.slice_until_ms = sweep.until_ms;
        sweep.page = 1;
        // Slices only move up: versions older than this slice (less the
        // overlap the next sweep starts with) cannot be listed again, so
        // the cursor stays small however long the first sync is.
        cursor.prune(sweep.since_ms.saturating_sub(settings.overlap_ms));
        cursor.sweep = Some(sweep);
        return Ok(PageOutcome::More);
    }
    finish_sweep(settings, cursor, &sweep, now);
    Ok(PageOutcome::SweepDone)
}

/// A list row, or its detail when the row lacks the state fields. `None`
/// when the order is skipped (404, unreadable: logged); `Err` when the call
/// must stop (bucket, rate limit) — store failures that cannot wait are
/// logged and stop too.
fn detail_of(api: &mut Api<'_>, row: &Value, key: &ChangeKey) -> Result<Option<Value>, Stop> {
    if !mapping::needs_detail(row) {
        return Ok(Some(row.clone()));
    }
    if api.bucket.nearly_full() {
        return Err(Stop::Wait(api.bucket.wait_ms(), BUCKET_NEARLY_FULL));
    }
    match api.order(&key.id) {
        Ok(doc) => Ok(Some(doc)),
        Err(ReadError::NotFound) => {
            log::log(
                Level::Info,
                &format!(
                    "order {} was listed but its detail answers 404; skipped",
                    key.id
                ),
                &[("order", key.id.as_str())],
            );
            Ok(None)
        }
        Err(ReadError::Unreadable(why)) => {
            notice::order_unreadable(&key.id, 1, UNREADABLE_RETRY_S, &why);
            Ok(None)
        }
        Err(ReadError::Store(error)) => {
            let wait = retry_hint(&error).unwrap_or(60_000);
            log::log(
                Level::Warn,
                &format!(
                    "order {}: reading its detail failed ({}); the page is read again later",
                    key.id,
                    describe(&error)
                ),
                &[("order", key.id.as_str())],
            );
            Err(Stop::Wait(wait, ASKED_TO_WAIT))
        }
    }
}

fn describe(error: &PluginError) -> String {
    match error {
        PluginError::Retryable(r) => r.message.clone(),
        PluginError::Permanent(m) | PluginError::Misconfigured(m) => m.clone(),
    }
}

/// Move the mark and forget what the next window cannot list.
fn finish_sweep(settings: &Settings, cursor: &mut Cursor, sweep: &Sweep, now: i64) {
    if let Some(newest) = sweep.newest_ms {
        let mark = high_water::clamp(newest, now, FUTURE_TOLERANCE_MS).value();
        cursor.mark_ms = Some(cursor.mark_ms.map_or(mark, |m| m.max(mark)));
    } else if cursor.mark_ms.is_none() {
        // Nothing listed yet: keep the window where it started.
        cursor.mark_ms = Some(sweep.since_ms.saturating_add(settings.overlap_ms));
    }
    let next_since = cursor
        .mark_ms
        .map_or(sweep.since_ms, |m| m.saturating_sub(settings.overlap_ms));
    cursor.prune(next_since);
}
