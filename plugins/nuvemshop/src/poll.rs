//! One `poll` call: a few pushed orders, one list page, and the next cursor.
//!
//! A *sweep* lists every order updated since `updated_at_min` page by page
//! (one page per call, `has-more` until the last page), so the host commits
//! page by page. `updated_at_min` is the high-water mark minus `overlap`.
//!
//! # Nothing missed while orders move between pages
//!
//! The list's order is undocumented and its pages are offsets into a set
//! that changes while it is read: an order updated mid-sweep leaves its
//! place, and every later row moves up one, so the row at a page boundary is
//! never read. The pass notices a possible shift (only possible when it has
//! more than one page): `x-total-count` changes between pages, an order
//! reappears with another `updated_at`, or a row's `updated_at` is later
//! than the moment the pass began. After the last page it then re-reads the
//! window from page 1 (rows already returned are dropped as seen, without
//! further requests); after [`MAX_PASSES`] passes that keep shifting, the
//! sweep ends with the window pinned, so the next sweep reads the same
//! `updated_at_min` again. The mark only moves after a pass without a shift.
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

/// Passes over a sweep's window, at most, while rows keep shifting.
pub const MAX_PASSES: u32 = 3;

/// Pushed orders read per call, at most (one request each).
pub const LOOK_AT_PER_CALL: usize = 5;

/// How far past the connector's clock an `updated_at` may move the mark.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// The API refuses `page × per_page` beyond this (documented for the
/// 2025-03 order list); a sweep stops there.
pub const MAX_LISTED_PER_SWEEP: u64 = 10_000;

/// How long an unreadable order waits before the next sweep tries it again.
const UNREADABLE_RETRY_S: u64 = 60;

/// Why the call stopped before its page was complete.
enum Stop {
    /// The bucket is nearly full, or a 429 came: wait this long.
    Wait(u64),
}

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
        stop = Some(Stop::Wait(api.bucket.wait_ms()));
    }
    if let Some(Stop::Wait(ms)) = stop {
        let ms = ms.max(1);
        cursor.not_before_ms = Some(now.saturating_add(i64::try_from(ms).unwrap_or(60_000)));
        has_more = false;
        log::log(
            Level::Info,
            &format!(
                "Nuvemshop's request bucket for store {} is nearly full ({} left of {}); the \
                 sweep pauses {ms} ms and resumes at the next poll",
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
        if api.bucket.nearly_full() {
            requeue(cursor, &batch[index..]);
            return Ok(Some(Stop::Wait(api.bucket.wait_ms())));
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
                    return Ok(Some(Stop::Wait(ms)));
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

/// Read the sweep's next page (starting a sweep when none is in progress).
fn read_page(
    settings: &Settings,
    api: &mut Api<'_>,
    cursor: &mut Cursor,
    orders: &mut Vec<OrderSnapshot>,
    now: i64,
) -> Result<PageOutcome, PluginError> {
    if api.bucket.nearly_full() {
        return Ok(PageOutcome::Stopped(Stop::Wait(api.bucket.wait_ms())));
    }
    let mut sweep = match cursor.sweep.take() {
        Some(sweep) => sweep,
        None => Sweep {
            since_ms: cursor
                .pinned_since_ms
                .take()
                .or(cursor
                    .mark_ms
                    .map(|m| m.saturating_sub(settings.overlap_ms)))
                .unwrap_or_else(|| now.saturating_sub(settings.initial_lookback_ms)),
            page: 1,
            pass: 1,
            pass_started_ms: now,
            ..Sweep::default()
        },
    };
    let list = match api.list_orders(
        &format_rfc3339_ms(sweep.since_ms),
        sweep.page,
        settings.page_size,
    ) {
        Ok(list) => list,
        Err(error) => {
            cursor.sweep = Some(sweep);
            return match retry_hint(&error) {
                Some(ms) if !orders.is_empty() => Ok(PageOutcome::Stopped(Stop::Wait(ms))),
                _ => Err(error),
            };
        }
    };
    if sweep.page == 1 {
        sweep.total = list.total;
    } else if list.total.is_some() && list.total != sweep.total {
        sweep.shifted = true;
    }
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
        if sweep
            .listed
            .get(&key.id)
            .is_some_and(|known| *known != key.updated_ms)
            || key.updated_ms > sweep.pass_started_ms
        {
            sweep.shifted = true;
        }
        sweep.listed.insert(key.id.clone(), key.updated_ms);
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
                // The page is read again next time; rows returned are seen.
                cursor.sweep = Some(sweep);
                return Ok(PageOutcome::Stopped(stop));
            }
        }
    }

    let per_page = u64::from(settings.page_size);
    let page = u64::from(sweep.page);
    let more = match list.next_page {
        Some(next) => u64::from(next) > page,
        None => {
            list.rows.len() as u64 >= per_page && list.total.is_none_or(|t| page * per_page < t)
        }
    };
    if more && (page + 1) * per_page > MAX_LISTED_PER_SWEEP {
        log::log(
            Level::Warn,
            &format!(
                "store {}: more than {MAX_LISTED_PER_SWEEP} orders changed since {}; Nuvemshop \
                 lists no further pages, so the sweep ends here and the next one starts from \
                 the newest order read",
                settings.store_id,
                format_rfc3339_ms(sweep.since_ms)
            ),
            &[("store_id", settings.store_id.as_str())],
        );
        sweep.shifted = false;
    } else if more {
        sweep.page += 1;
        cursor.sweep = Some(sweep);
        return Ok(PageOutcome::More);
    }
    if sweep.shifted && sweep.page > 1 && sweep.pass < MAX_PASSES {
        log::log(
            Level::Debug,
            &format!(
                "store {}: orders moved between pages during pass {}; reading the window again",
                settings.store_id, sweep.pass
            ),
            &[],
        );
        cursor.sweep = Some(Sweep {
            since_ms: sweep.since_ms,
            page: 1,
            pass: sweep.pass + 1,
            pass_started_ms: now,
            newest_ms: sweep.newest_ms,
            ..Sweep::default()
        });
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
        return Err(Stop::Wait(api.bucket.wait_ms()));
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
            Err(Stop::Wait(wait))
        }
    }
}

fn describe(error: &PluginError) -> String {
    match error {
        PluginError::Retryable(r) => r.message.clone(),
        PluginError::Permanent(m) | PluginError::Misconfigured(m) => m.clone(),
    }
}

/// Move the mark (or pin the window) and forget what the next window cannot list.
fn finish_sweep(settings: &Settings, cursor: &mut Cursor, sweep: &Sweep, now: i64) {
    let unresolved = sweep.shifted && sweep.page > 1;
    if unresolved {
        log::log(
            Level::Info,
            &format!(
                "store {}: orders kept moving between pages for {MAX_PASSES} passes; the next \
                 sweep reads the same window again",
                settings.store_id
            ),
            &[],
        );
        cursor.pinned_since_ms = Some(sweep.since_ms);
    } else if let Some(newest) = sweep.newest_ms {
        let mark = high_water::clamp(newest, now, FUTURE_TOLERANCE_MS).value();
        cursor.mark_ms = Some(cursor.mark_ms.map_or(mark, |m| m.max(mark)));
    } else if cursor.mark_ms.is_none() {
        // Nothing listed yet: keep the window where it started.
        cursor.mark_ms = Some(sweep.since_ms.saturating_add(settings.overlap_ms));
    }
    let next_since = cursor.pinned_since_ms.unwrap_or_else(|| {
        cursor
            .mark_ms
            .map_or(sweep.since_ms, |m| m.saturating_sub(settings.overlap_ms))
    });
    cursor.prune(next_since);
}
