//! One `poll` call: one search page, its details, and the next cursor.
//!
//! A *sweep* lists every order modified since `since` page by page; each
//! call reads one page and returns `has_more = true` with an intermediate
//! cursor until the last page, so the host commits page by page.
//!
//! # Nothing missed while orders change mid-sweep
//!
//! Offset paging over a changing result set can skip rows. Which rows depends
//! on LI's (undocumented) ordering:
//!
//! * an order modified mid-sweep that moves *towards the front* (newest-first
//!   ordering), or a new order entering the read region, pushes rows forward:
//!   a row is read twice (skipped by its change key) and the moved order's new
//!   version is listed by the next sweep, which lists from LI's clock when
//!   this pass began less `overlap` (or, when LI sends no `Date`, from
//!   `hw − overlap − lag`, `lag` = how long the sweep took), i.e. from before
//!   the change;
//! * an order that was already read and moves *towards the end*
//!   (oldest-first ordering), or a deleted order, pulls the unread rows back by
//!   one: the row at the page boundary is never read. The connector notices —
//!   the moved order reappears in the same sweep with a different change key,
//!   an order's detail is newer than its row, or `meta.total_count`
//!   drops — and, at the end of the pass, re-reads the window from offset 0
//!   (rows already returned are skipped without detail calls). After
//!   [`MAX_RESCANS`] passes that keep shifting, the sweep ends but the next
//!   sweep restarts from the same `since` (the cursor's `floor`), so a skipped
//!   row is still listed later.
//!
//! # After a burst
//!
//! A sweep lists from the earlier of LI's clock at the last pass's start
//! less `overlap`, and the mark less `overlap` (`crate::cursor`). When the
//! mark's window holds more than a page of orders already returned — a
//! burst the mark sits on — the sweep lists from LI's clock and then reads
//! one page of the mark's window: when LI's `total_count` equals the orders
//! the cursor knows there and that page brought nothing new, the rest is not
//! read again. The page is the next of a round (the cursor's `check_at`), so
//! successive checks re-read the whole window, one page each: a count that
//! two differences cancel out cannot hide an order for longer than a round. A pass that read a burst began right after it, so
//! when LI's clock's window still holds more than a page of orders already
//! returned, the sweep lists it once more at once (a settling pass, after
//! all of the pass's detail reads) and anchors the next window at that
//! pass's start. Detail reads of changed orders always come before pages
//! already seen are read again. docs/platforms/loja-integrada.md §After a
//! burst has the whole story.
//!
//! # One unreadable order does not hold up the store
//!
//! An order whose detail (or customer) cannot be read — an answer over the
//! host's size cap, a body that is not JSON or is nested too deeply, an error
//! status about that order alone — is skipped, recorded in the cursor and
//! reported (`order-unreadable` notice); the rest of the page flows on. It is
//! retried by `numero` when due (1 min, doubling to 1 h), even once it has
//! left the search window, and after [`crate::cursor::QUARANTINE_AFTER`] attempts set aside
//! (`order-quarantined`) until a search row shows it changed. Failures about
//! the store — rejected credentials, rate limits, 5xx, timeouts — still fail
//! the call as before: retrying another order would meet them too.
//!
//! # Orders a push named
//!
//! `look_at` (the orders verified pushes named, only on a sweep's first call)
//! are queued in the cursor and read in detail by `numero`, at most
//! [`LOOK_AT_PER_CALL`] per call, whatever the search listing shows yet: LI
//! may index a change later than it pushes it. The rest wait in the cursor
//! and the call answers `has_more = true`, so the next pages read them; each
//! page still reads its search page as usual, so the listing is not held up.
//! An id that is not a `numero`, or whose detail answers 404 or another error
//! about that order alone (410, a body over the size cap, …), is skipped with
//! a log line naming it: the listing still returns the order if it exists.
//!
//! An order read this way updates the change keys (`seen`), so its search
//! row, once LI lists it, is skipped; it never moves the high-water mark.
//! Only listed rows do, so the mark follows what LI's search index has
//! shown: were it to follow a pushed order, a change LI indexes minutes late
//! (and whose push was lost) could fall before every later window.
//!
//! # Rate limits in the middle of a page
//!
//! When LI answers 429 (or 503 with `Retry-After`) after some orders of the
//! page were read, those orders are returned and the wait is kept in the
//! cursor (`not_before_ms`): a call made before it ends answers `retryable`
//! with the time left, without sending a request.

use std::collections::HashMap;

use arauto_plugin_sdk::connector::log::{self, Level};
use arauto_plugin_sdk::connector::{
    OrderSnapshot, PluginError, PollPage, PollRequest, clock, high_water, notice, permanent,
    retry_after,
};
use jiff::civil::DateTime;

use crate::api::{Api, ReadError, message_of};
use crate::cursor::{BadCursor, Cursor, Seen, Sweep};
use crate::doc::{Json, Node};
use crate::mapping::{self, ChangeKey, Warnings};
use crate::settings::Settings;
use crate::time::{format_micros, format_seconds, from_rfc3339, from_unix_ms, parse_li};

/// Extra passes over a sweep's window when rows shifted during it.
pub const MAX_RESCANS: u32 = 3;

/// Unreadable orders retried by `numero` per call, at most (each costs a
/// request of the store's budget).
const MAX_RETRIES_PER_CALL: usize = 10;

/// Pushed orders (`look_at`) read per call, at most; the rest wait in the
/// cursor for the next pages. Each costs up to two requests (detail and
/// customer) of the store's budget (90 a minute), on top of the search page
/// and its details, and the host makes a request wait when the budget is
/// spent: a call reading all 100 ids a poll may bring could run past its
/// deadline, and a call that times out loses everything it read.
pub const LOOK_AT_PER_CALL: usize = 5;

/// Run one poll call.
pub fn poll(req: PollRequest) -> Result<PollPage, PluginError> {
    let settings = Settings::load()?;
    let api = Api::new(&settings);
    let now_ms = clock::now_unix_ms();
    let cutoff = match req.detail_cutoff.as_deref() {
        None => None,
        Some(text) => Some(from_rfc3339(text).ok_or_else(|| {
            permanent(format!(
                "detail-cutoff {text:?} from the host is not an RFC 3339 instant"
            ))
        })?),
    };
    let mut cursor = match req.cursor.as_deref() {
        None => Cursor::default(),
        Some(text) => Cursor::decode(text).unwrap_or_else(|BadCursor(why)| {
            log::log(
                Level::Warn,
                &format!(
                    "stored cursor is unusable ({why}); starting over from `initial_lookback` \
                     (orders already known produce no new notifications)"
                ),
                &[],
            );
            Cursor::default()
        }),
    };
    // LI's clock is São Paulo wall-clock time: the connector's "now" in it.
    let ceiling = from_unix_ms(now_ms).saturating_add(settings.future_tolerance);
    if let Some(pulled) = cursor.pull_back_from_future(ceiling) {
        log::log(
            Level::Warn,
            &format!(
                "the stored cursor lay in the future ({pulled}); pulled back to now + \
                 future_tolerance ({}) so that new orders are listed again",
                format_micros(ceiling)
            ),
            &[],
        );
    }
    if let Some(not_before) = cursor.not_before_ms {
        if now_ms < not_before {
            let left = not_before - now_ms;
            return Err(retry_after(
                format!(
                    "Loja Integrada asked to wait (Retry-After) in the middle of a page; {} s \
                     left, no request sent",
                    left.div_ceil(1000)
                ),
                left,
            ));
        }
        cursor.not_before_ms = None;
    }
    queue_look_at(&mut cursor, &req.look_at);
    let sweep = match cursor.sweep.take() {
        Some(sweep) => sweep,
        None => cursor.begin_sweep(
            settings.overlap,
            settings.initial_lookback,
            now_ms,
            settings.page_size as usize,
        ),
    };

    let mut run = PageRun {
        api: &api,
        settings: &settings,
        cursor,
        sweep,
        cutoff,
        now_ms,
        ceiling,
        customers: HashMap::new(),
        orders: Vec::new(),
        details: 0,
        failures_changed: false,
    };

    // Orders that could not be read before, due now: by numero, whether or
    // not the search below lists them.
    let due: Vec<u64> = run
        .cursor
        .failed
        .iter()
        .filter(|(_, f)| !f.quarantined && f.next_retry_ms <= now_ms)
        .map(|(numero, _)| *numero)
        .take(MAX_RETRIES_PER_CALL)
        .collect();
    for numero in due {
        if let Err(e) = run.retry(numero) {
            return run.interrupted(e);
        }
    }
    for _ in 0..LOOK_AT_PER_CALL {
        let Some(&numero) = run.cursor.look_at.first() else {
            break;
        };
        if let Err(e) = run.look_at(numero) {
            // Still queued: the next call reads it first.
            return run.interrupted(e);
        }
        run.cursor.look_at.pop_front();
    }

    let listing = match api.search(&run.sweep.since, run.sweep.offset, settings.page_size) {
        Ok(listing) => listing,
        Err(e) => return run.interrupted(e),
    };
    let page = match api.page(&listing) {
        Ok(page) => page,
        Err(e) => return run.interrupted(e),
    };
    if let (Some(before), Some(now)) = (run.sweep.total, page.total)
        && now < before
    {
        // Rows left the window (deleted orders): unread rows moved back.
        run.sweep.shifted = true;
    }
    run.sweep.total = page.total.or(run.sweep.total);
    if run.sweep.offset == 0 && run.sweep.pass_at.is_none() {
        // The pass's first page: every change committed before now is in
        // this listing. LI's `Date` is its clock; the host's clock at the
        // start of the call only ever makes the mark earlier (safer), so a
        // host running ahead of LI cannot push the window past a change.
        run.sweep.pass_at = page
            .answered_at
            .map(|li_now| format_seconds(li_now.min(from_unix_ms(now_ms))));
    }

    for row in &page.rows {
        if let Err(e) = run.row(row) {
            return run.interrupted(e);
        }
    }
    let PageRun {
        mut cursor,
        mut sweep,
        orders,
        details,
        ..
    } = run;
    log::log(
        Level::Debug,
        &format!(
            "search page since {} offset {}: {} rows (limit applied {}), {} orders returned, {} detail calls",
            sweep.since,
            sweep.offset,
            page.rows.len(),
            page.limit.map_or_else(|| "?".to_owned(), |l| l.to_string()),
            orders.len(),
            details
        ),
        &[],
    );

    // The check of the mark's window (after a burst): its one page (the
    // cursor's rotating `check_at`) was read like any other; when LI counts
    // as many orders in it as the cursor knows and this page brought
    // nothing new, the rest of its pages hold nothing new either and are
    // not read again. The next check reads the next page, so the checks
    // together re-read the whole window: a count two differences cancel
    // out (an order read by `numero` whose row LI still lists with an older
    // date, and an unknown one LI indexed late) cannot hide the late one
    // longer than one round of pages.
    let check_page = sweep.checking && sweep.check_page == Some(sweep.offset);
    let verified = check_page
        && !sweep.shifted
        && orders.is_empty()
        && details == 0
        && (page.next_offset.is_some() || sweep.offset > 0)
        && parse_li(&sweep.since)
            .is_some_and(|since| page.total == Some(cursor.known_since(since) as u64));
    if check_page {
        sweep.check_page = None;
        // After a check that settled the window, the next one reads the
        // next page (the first again after the last); after one that did
        // not, the window is read in full now and the round starts over.
        cursor.check_at = if verified {
            page.next_offset.unwrap_or(0)
        } else {
            0
        };
    }
    if verified {
        log::log(
            Level::Debug,
            &format!(
                "LI lists {} orders modified since {}, as many as already returned, and none \
                 is new on the page at offset {}: the rest of that window is not read again",
                page.total.unwrap_or_default(),
                sweep.since,
                sweep.offset
            ),
            &[],
        );
    }
    let listing_has_more = match page.next_offset {
        _ if check_page && !verified && sweep.offset > 0 => {
            // The check's page was not the window's first: read the window
            // in full, from its start.
            log::log(
                Level::Debug,
                &format!(
                    "the check of the window since {} at offset {} did not settle it (LI \
                     counts {:?} orders, the cursor knows {}); reading it in full",
                    sweep.since,
                    sweep.offset,
                    page.total,
                    parse_li(&sweep.since).map_or(0, |since| cursor.known_since(since))
                ),
                &[],
            );
            sweep.offset = 0;
            sweep.total = None;
            // A new pass from the window's start lists whatever moved.
            sweep.shifted = false;
            cursor.sweep = Some(sweep);
            true
        }
        Some(next) if !verified => {
            sweep.offset = next;
            cursor.sweep = Some(sweep);
            true
        }
        _ if !verified && sweep.shifted && sweep.rescans < MAX_RESCANS => {
            log::log(
                Level::Info,
                &format!(
                    "orders changed while paging since {}; re-reading the window to catch rows \
                     that shifted past the read position (pass {})",
                    sweep.since,
                    sweep.rescans + 2
                ),
                &[],
            );
            sweep.rescans += 1;
            sweep.offset = 0;
            sweep.total = None;
            sweep.shifted = false;
            // A new pass: its own first page says when it began.
            sweep.pass_at = None;
            // Rows moved under the check: a re-read lists the whole window.
            // Its first page may count right again and would end the pass
            // there, anchored at this pass's later start, missing a change
            // that landed on a later page between the two passes.
            sweep.checking = false;
            cursor.sweep = Some(sweep);
            true
        }
        _ if !verified
            && !sweep.shifted
            && let Some(since) = settling_since(&cursor, &sweep, &settings, now_ms) =>
        {
            log::log(
                Level::Info,
                &format!(
                    "read the window since {} (pass {}); listing once more since {since} \
                     (LI's clock when this pass began, less the overlap) so that later polls \
                     start after these orders instead of reading them again",
                    sweep.since,
                    sweep.rescans + 1
                ),
                &[],
            );
            sweep.since = since;
            sweep.offset = 0;
            sweep.total = None;
            sweep.pass_at = None;
            sweep.settling = true;
            cursor.sweep = Some(sweep);
            true
        }
        _ if !verified && !sweep.shifted && sweep.check.is_some() => {
            // LI's-clock window done; now the mark's, by one page: the
            // round's next (`check_at`), or the first when the window
            // shrank below it.
            sweep.since = sweep.check.take().unwrap_or_default();
            let known = parse_li(&sweep.since).map_or(0, |since| cursor.known_since(since));
            let page_at = if usize::try_from(cursor.check_at).is_ok_and(|at| at < known) {
                cursor.check_at
            } else {
                0
            };
            sweep.offset = page_at;
            sweep.check_page = Some(page_at);
            sweep.total = None;
            sweep.checking = true;
            cursor.sweep = Some(sweep);
            true
        }
        _ => {
            if sweep.shifted {
                log::log(
                    Level::Warn,
                    &format!(
                        "orders kept changing while paging since {} ({} passes); the next sweep \
                         lists the same window again",
                        sweep.since,
                        sweep.rescans + 1
                    ),
                    &[],
                );
            }
            cursor.finish_sweep(&sweep, now_ms, settings.overlap, ceiling);
            false
        }
    };
    // Pushed orders still queued: the next call reads more of them (and
    // begins a new sweep if this one is complete).
    let has_more = listing_has_more || !cursor.look_at.is_empty();
    if !cursor.look_at.is_empty() {
        log::log(
            Level::Debug,
            &format!(
                "{} pushed orders still to read; they follow on the next pages",
                cursor.look_at.len()
            ),
            &[],
        );
    }
    Ok(PollPage {
        orders,
        next_cursor: Some(cursor.encode()),
        has_more,
    })
}

/// The `since` of a settling pass, when the pass that just ended calls for
/// one. The next window starts at LI's clock when this pass began, less the
/// overlap; after a long pass over a burst that window still holds the
/// burst, and every later poll would list it again until LI's clock moves an
/// overlap past it. When that window holds more than a page of orders
/// already returned, and a window starting now (less the overlap) would hold
/// at most a page, listing it once more now — after every detail read of
/// the pass — moves the anchor to the new pass's start, past the burst.
/// At most once a sweep; never without LI's clock, nor when `floor` keeps
/// the window anyway.
fn settling_since(
    cursor: &Cursor,
    sweep: &Sweep,
    settings: &Settings,
    now_ms: u64,
) -> Option<String> {
    if sweep.settling || sweep.checking || cursor.floor.is_some() {
        return None;
    }
    let pass_at = sweep.pass_at.as_deref().and_then(parse_li)?;
    let since_text = format_seconds(pass_at.saturating_sub(settings.overlap));
    let since = parse_li(&since_text)?;
    let page = settings.page_size as usize;
    let relisted = cursor.seen_since(since);
    // Where the settling pass's own next window would start: the host's
    // clock stands in for LI's here (a guess that only decides whether the
    // extra pass is worth its requests, never what is listed).
    let after_settling = cursor.seen_since(
        from_unix_ms(now_ms)
            .max(pass_at)
            .saturating_sub(settings.overlap),
    );
    (relisted > page && after_settling <= page).then_some(since_text)
}

/// The state of one call being processed.
struct PageRun<'a> {
    api: &'a Api<'a>,
    settings: &'a Settings,
    cursor: Cursor,
    sweep: Sweep,
    cutoff: Option<DateTime>,
    /// Host clock at the start of the call.
    now_ms: u64,
    /// The connector's now + `future_tolerance`, in LI's time: no mark goes past it.
    ceiling: DateTime,
    /// Customers fetched in this call, by URI (one call per distinct customer).
    customers: HashMap<String, Option<Json<'static>>>,
    orders: Vec<OrderSnapshot>,
    details: usize,
    /// An order failed or recovered in this call: the cursor has news even
    /// when no order is returned.
    failures_changed: bool,
}

impl PageRun<'_> {
    /// A failure about the store stopped the call. Keep what was read: the
    /// next call re-reads this page and skips the orders returned here by
    /// their change keys. A rate limit's wait is kept in the cursor.
    fn interrupted(mut self, error: PluginError) -> Result<PollPage, PluginError> {
        let PluginError::Retryable(e) = &error else {
            return Err(error);
        };
        if self.orders.is_empty() && !self.failures_changed {
            return Err(error);
        }
        let returned = self.orders.len();
        log::log(
            Level::Warn,
            &format!(
                "stopping this page early after {returned} orders: {}; the rest follows on the \
                 next call",
                e.message
            ),
            &[],
        );
        if let Some(wait) = e.retry_after_ms {
            self.cursor.not_before_ms = Some(self.now_ms.saturating_add(wait));
        }
        self.cursor.sweep = Some(self.sweep);
        Ok(PollPage {
            orders: self.orders,
            next_cursor: Some(self.cursor.encode()),
            has_more: true,
        })
    }

    fn row(&mut self, row: &Json<'_>) -> Result<(), PluginError> {
        let Some(key) = mapping::change_key(row) else {
            let excerpt = arauto_plugin_sdk::connector::http::excerpt(&row.json_text(), 200);
            log::log(
                Level::Warn,
                &format!(
                    "search row without a numero or a readable data_modificacao skipped: {excerpt}"
                ),
                &[],
            );
            return Ok(());
        };
        let sweep_no = self.cursor.sweep_no;
        let modified = format_micros(key.modified);
        if let Some(seen) = self.cursor.seen.get_mut(&key.numero) {
            if seen.status == key.status && seen.modified == modified {
                seen.sweep_no = sweep_no;
                // Returned before (perhaps read because a push named it):
                // the listing shows it now, so the mark may follow it.
                self.listed(&key);
                return Ok(());
            }
            if seen.sweep_no == sweep_no {
                // Read earlier in this sweep and changed since: with results
                // ordered by modification it moved behind the read position and
                // pulled unread rows back.
                self.sweep.shifted = true;
            }
        }
        if let Some(failure) = self.cursor.failed.get(&key.numero)
            && failure.status == key.status
            && failure.modified == modified
            && (failure.quarantined || failure.next_retry_ms > self.now_ms)
        {
            // Unchanged since it failed: it waits for its retry (or, once
            // quarantined, for a change).
            return Ok(());
        }
        let numero = key.numero.to_string();
        match self.cutoff {
            Some(cutoff) if key.modified < cutoff => {
                let (snapshot, warnings) = mapping::summary(row, &key);
                self.returned(snapshot, &warnings, &key, None, Some(&key));
                Ok(())
            }
            _ => {
                self.details += 1;
                let raw = raw_modified(row).or_else(|| Some(modified.clone()));
                let api = self.api;
                match api.order(key.numero, |detail| self.detailed(&key, detail, raw)) {
                    Ok(Some(returned)) => returned,
                    Ok(None) => {
                        log::log(
                            Level::Warn,
                            &format!(
                                "order {numero} is listed but GET pedido/{numero} answered 404 \
                                 (deleted?); skipped until it changes again"
                            ),
                            &[("order", &numero)],
                        );
                        self.forget_failure(key.numero);
                        self.remember(&key, None, Some(&key));
                        Ok(())
                    }
                    Err(ReadError::Store(e)) => Err(e),
                    Err(ReadError::Order(e)) => {
                        self.order_failed(&key, &e);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Read an order a push named, by numero, and return it. Nothing about
    /// that order alone fails the call: it is skipped with a log line, and
    /// the listing still returns it if it exists.
    fn look_at(&mut self, numero: u64) -> Result<(), PluginError> {
        let order = numero.to_string();
        self.details += 1;
        let api = self.api;
        let read = api.order(numero, |detail| {
            let Some(key) = mapping::change_key(detail).filter(|k| k.numero == numero) else {
                log::log(
                    Level::Warn,
                    &format!(
                        "pushed order {numero}: its detail has no readable numero or \
                         data_modificacao; left to the listing"
                    ),
                    &[("order", &order)],
                );
                return Ok(());
            };
            self.detailed(&key, detail, None)
        });
        match read {
            Ok(Some(returned)) => returned,
            Ok(None) => {
                log::log(
                    Level::Info,
                    &format!(
                        "pushed order {numero} answered 404 (deleted, or not this store's); \
                         skipped"
                    ),
                    &[("order", &order)],
                );
                Ok(())
            }
            Err(ReadError::Store(e)) => Err(e),
            Err(ReadError::Order(e)) => {
                // The listing brings it back and the usual retries apply.
                log::log(
                    Level::Info,
                    &format!(
                        "pushed order {numero} could not be read now: {}; skipped, the \
                         listing picks it up",
                        message_of(&e)
                    ),
                    &[("order", &order)],
                );
                Ok(())
            }
        }
    }

    /// Read an order that failed before, by numero.
    fn retry(&mut self, numero: u64) -> Result<(), PluginError> {
        let Some(failure) = self.cursor.failed.get(&numero).cloned() else {
            return Ok(());
        };
        let Some(modified) = parse_li(&failure.modified) else {
            // Not written by this connector; forget it (a change lists it again).
            self.forget_failure(numero);
            return Ok(());
        };
        let listed = ChangeKey {
            numero,
            status: failure.status.clone(),
            modified,
        };
        self.details += 1;
        let api = self.api;
        match api.order(numero, |detail| self.detailed(&listed, detail, None)) {
            Ok(Some(returned)) => returned,
            Ok(None) => {
                log::log(
                    Level::Warn,
                    &format!(
                        "order {numero}, retried after failing, answered 404 (deleted?); no \
                         longer retried"
                    ),
                    &[("order", &numero.to_string())],
                );
                self.forget_failure(numero);
                Ok(())
            }
            Err(ReadError::Store(e)) => Err(e),
            Err(ReadError::Order(e)) => {
                self.order_failed(&listed, &e);
                Ok(())
            }
        }
    }

    /// Map a fetched detail and return it. `listed` is the key the order was
    /// listed with in this page (`listed_raw` its raw `data_modificacao`), or,
    /// for a read by numero (`listed_raw` = `None`), the key it failed with
    /// (a retry) or its detail's own key (a pushed order). Only a listed
    /// order moves the high-water mark, and only to the key it was listed with.
    fn detailed(
        &mut self,
        listed: &ChangeKey,
        detail: &Json<'_>,
        listed_raw: Option<String>,
    ) -> Result<(), PluginError> {
        let numero = listed.numero.to_string();
        let detail_key = mapping::change_key(detail)
            .filter(|k| k.numero == listed.numero)
            .unwrap_or_else(|| listed.clone());
        let from_listing = listed_raw.is_some();
        if detail_key != *listed && from_listing {
            // Modified between the listing and the detail read: it may
            // have moved within the result set. (A retry by numero was not
            // listed by this sweep: its key is only the one it failed with.)
            self.sweep.shifted = true;
        }
        let resolved = match detail.get("cliente") {
            Some(Json::Str(uri)) => match self.customer(uri, &numero) {
                Ok(customer) => customer,
                Err(ReadError::Store(e)) => return Err(e),
                Err(ReadError::Order(e)) => {
                    self.order_failed(listed, &e);
                    return Ok(());
                }
            },
            _ => None,
        };
        let (snapshot, warnings) = mapping::detailed(
            detail,
            &detail_key,
            resolved.as_ref(),
            self.settings.tracking_url_template.as_deref(),
        );
        let (newest, raw) = if detail_key.modified > listed.modified {
            (detail_key, raw_modified(detail))
        } else {
            (listed.clone(), listed_raw.or_else(|| raw_modified(detail)))
        };
        if self.forget_failure(listed.numero) {
            notice::order_recovered(&numero);
        }
        let by_listing = from_listing.then_some(listed);
        self.returned(snapshot, &warnings, &newest, raw.as_deref(), by_listing);
        Ok(())
    }

    /// Log what the mapping could not read, remember the order and return it
    /// (`listed`: the key the search listing showed it with, if it did).
    fn returned(
        &mut self,
        snapshot: OrderSnapshot,
        warnings: &Warnings,
        key: &ChangeKey,
        raw_modified: Option<&str>,
        listed: Option<&ChangeKey>,
    ) {
        report(&snapshot.number, warnings);
        if snapshot.status.code.is_empty() {
            log::log(
                Level::Warn,
                &format!(
                    "order {} has no status (situacao is null, missing or unreadable); it is \
                     returned with an empty status code",
                    snapshot.number
                ),
                &[("order", &snapshot.number)],
            );
        }
        self.remember(key, raw_modified, listed);
        self.orders.push(snapshot);
    }

    /// `numero` could not be read: record the attempt and say so.
    fn order_failed(&mut self, key: &ChangeKey, error: &PluginError) {
        let numero = key.numero.to_string();
        let failure = self.cursor.record_failure(
            key.numero,
            &key.status,
            &format_micros(key.modified),
            self.now_ms,
        );
        self.failures_changed = true;
        let reason = message_of(error);
        if failure.quarantined {
            notice::order_quarantined(&numero, failure.attempts, reason);
        } else {
            let retry_in_s = failure
                .next_retry_ms
                .saturating_sub(self.now_ms)
                .div_ceil(1000);
            notice::order_unreadable(&numero, failure.attempts, retry_in_s, reason);
        }
    }

    /// Drop the failure record of `numero`; true when there was one.
    fn forget_failure(&mut self, numero: u64) -> bool {
        let had = self.cursor.failed.remove(&numero).is_some();
        self.failures_changed |= had;
        had
    }

    /// Record the key as returned, and let the key the listing showed the
    /// order with (`listed`; `None` for a read by numero) raise the sweep's
    /// newest modification. A date in the future is reported with its raw
    /// text and does not drag the cursor along.
    fn remember(
        &mut self,
        key: &ChangeKey,
        raw_modified: Option<&str>,
        listed: Option<&ChangeKey>,
    ) {
        let modified = format_micros(key.modified);
        if high_water::clamp_to(key.modified, self.ceiling).1 {
            notice::future_timestamp(
                &key.numero.to_string(),
                raw_modified.unwrap_or(modified.as_str()),
            );
        }
        // "The sweep that last listed it": a read by numero is no listing,
        // so a later row of this sweep with another key is not taken for a
        // row that moved behind the read position.
        let sweep_no = match listed {
            Some(listed) => {
                self.listed(listed);
                self.cursor.sweep_no
            }
            None => self.cursor.seen.get(&key.numero).map_or(0, |s| s.sweep_no),
        };
        self.cursor.seen.insert(
            key.numero,
            Seen {
                status: key.status.clone(),
                modified,
                sweep_no,
            },
        );
    }

    /// The search listing showed `key`: raise the sweep's newest
    /// modification to it, never past now + `future_tolerance`.
    fn listed(&mut self, key: &ChangeKey) {
        let (mark, _) = high_water::clamp_to(key.modified, self.ceiling);
        let newer = self
            .sweep
            .max
            .as_deref()
            .and_then(parse_li)
            .is_none_or(|max| mark > max);
        if newer {
            self.sweep.max = Some(format_micros(mark));
        }
    }

    fn customer(&mut self, uri: &str, numero: &str) -> Result<Option<Json<'static>>, ReadError> {
        if let Some(cached) = self.customers.get(uri) {
            return Ok(cached.clone());
        }
        let customer = self.api.customer(uri)?;
        if customer.is_none() {
            log::log(
                Level::Warn,
                &format!(
                    "customer {uri} of order {numero} answered 404; the order has no contact data"
                ),
                &[("order", numero)],
            );
        }
        self.customers.insert(uri.to_owned(), customer.clone());
        Ok(customer)
    }
}

/// `data_modificacao` as LI wrote it (for messages about odd values).
fn raw_modified(doc: &Json<'_>) -> Option<String> {
    doc.get("data_modificacao").map(|v| match v {
        Json::Str(s) => arauto_plugin_sdk::connector::http::excerpt(s, 64),
        other => arauto_plugin_sdk::connector::http::excerpt(&other.json_text(), 64),
    })
}

fn report(numero: &str, warnings: &Warnings) {
    if !warnings.0.is_empty() {
        log::log(
            Level::Warn,
            &format!("order {numero}: {}", warnings.0.join("; ")),
            &[("order", numero)],
        );
    }
}

/// Queue the orders a push named for reading by numero; an id that is not a
/// `numero` is left to the listing.
fn queue_look_at(cursor: &mut Cursor, ids: &[String]) {
    let numeros = ids.iter().filter_map(|id| {
        let numero = id.trim().parse::<u64>().ok().filter(|n| *n > 0);
        if numero.is_none() {
            log::log(
                Level::Info,
                &format!(
                    "pushed order {:?} is not a numero; skipped, left to the listing",
                    arauto_plugin_sdk::connector::http::excerpt(id, 40)
                ),
                &[],
            );
        }
        numero
    });
    let dropped = cursor.queue_look_at(numeros);
    if !dropped.is_empty() {
        log::log(
            Level::Info,
            &format!(
                "{} pushed orders not queued: {} are already waiting to be read; the listing \
                 returns them",
                dropped.len(),
                crate::cursor::MAX_LOOK_AT_PENDING
            ),
            &[],
        );
    }
}
