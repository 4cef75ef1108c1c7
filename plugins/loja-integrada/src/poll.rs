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
//!   version is listed by the next sweep, which starts at `hw − overlap − lag`
//!   (`lag` = how long the sweep took), i.e. before the sweep began;
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

use std::collections::HashMap;

use arauto_plugin_sdk::connector::log::{self, Level};
use arauto_plugin_sdk::connector::{
    OrderSnapshot, PluginError, PollPage, PollRequest, clock, permanent,
};
use jiff::civil::DateTime;
use serde_json::Value;

use crate::api::Api;
use crate::cursor::{BadCursor, Cursor, Seen, Sweep};
use crate::mapping::{self, ChangeKey, Warnings};
use crate::settings::Settings;
use crate::time::{format_micros, from_rfc3339, parse_li};

/// Extra passes over a sweep's window when rows shifted during it.
pub const MAX_RESCANS: u32 = 3;

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
    let mut sweep = match cursor.sweep.take() {
        Some(sweep) => sweep,
        None => cursor.begin_sweep(settings.overlap, settings.initial_lookback, now_ms),
    };

    let page = api.search(&sweep.since, sweep.offset, settings.page_size)?;
    if let (Some(before), Some(now)) = (sweep.total, page.total)
        && now < before
    {
        // Rows left the window (deleted orders): unread rows moved back.
        sweep.shifted = true;
    }
    sweep.total = page.total.or(sweep.total);

    let mut run = PageRun {
        api: &api,
        settings: &settings,
        cursor: &mut cursor,
        sweep: &mut sweep,
        cutoff,
        customers: HashMap::new(),
        orders: Vec::new(),
        details: 0,
    };
    for row in &page.rows {
        match run.row(row) {
            Ok(()) => {}
            Err(PluginError::Retryable(e)) if !run.orders.is_empty() => {
                // Keep what was read: the next call re-reads this page and skips
                // the orders returned here by their change keys.
                let returned = run.orders.len();
                log::log(
                    Level::Warn,
                    &format!(
                        "stopping this page early after {returned} orders: {}; the rest follows \
                         on the next call",
                        e.message
                    ),
                    &[],
                );
                let orders = std::mem::take(&mut run.orders);
                cursor.sweep = Some(sweep);
                return Ok(PollPage {
                    orders,
                    next_cursor: Some(cursor.encode()),
                    has_more: true,
                });
            }
            Err(e) => return Err(e),
        }
    }
    let orders = std::mem::take(&mut run.orders);
    let details = run.details;
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

    let has_more = match page.next_offset {
        Some(next) => {
            sweep.offset = next;
            cursor.sweep = Some(sweep);
            true
        }
        None if sweep.shifted && sweep.rescans < MAX_RESCANS => {
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
            cursor.sweep = Some(sweep);
            true
        }
        None => {
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
            cursor.finish_sweep(&sweep, now_ms, settings.overlap);
            false
        }
    };
    Ok(PollPage {
        orders,
        next_cursor: Some(cursor.encode()),
        has_more,
    })
}

/// The state of one page being processed.
struct PageRun<'a> {
    api: &'a Api<'a>,
    settings: &'a Settings,
    cursor: &'a mut Cursor,
    sweep: &'a mut Sweep,
    cutoff: Option<DateTime>,
    /// Customers fetched in this call, by URI (one call per distinct customer).
    customers: HashMap<String, Option<Value>>,
    orders: Vec<OrderSnapshot>,
    details: usize,
}

impl PageRun<'_> {
    fn row(&mut self, row: &Value) -> Result<(), PluginError> {
        let Some(key) = mapping::change_key(row) else {
            let excerpt = arauto_plugin_sdk::connector::http::excerpt(&row.to_string(), 200);
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
                return Ok(());
            }
            if seen.sweep_no == sweep_no {
                // Read earlier in this sweep and changed since: with results
                // ordered by modification it moved behind the read position and
                // pulled unread rows back.
                self.sweep.shifted = true;
            }
        }
        let numero = key.numero.to_string();
        let (snapshot, warnings, remembered) = match self.cutoff {
            Some(cutoff) if key.modified < cutoff => {
                let (snapshot, warnings) = mapping::summary(row, &key);
                (snapshot, warnings, key)
            }
            _ => {
                self.details += 1;
                let Some(detail) = self.api.order(key.numero)? else {
                    log::log(
                        Level::Warn,
                        &format!(
                            "order {numero} is listed but GET pedido/{numero} answered 404 \
                             (deleted?); skipped until it changes again"
                        ),
                        &[("order", &numero)],
                    );
                    self.remember(&key);
                    return Ok(());
                };
                let detail_key = mapping::change_key(&detail)
                    .filter(|k| k.numero == key.numero)
                    .unwrap_or_else(|| key.clone());
                if detail_key != key {
                    // Modified between the listing and the detail read: it may
                    // have moved within the result set.
                    self.sweep.shifted = true;
                }
                let resolved = match detail.get("cliente") {
                    Some(Value::String(uri)) => self.customer(uri, &numero)?,
                    _ => None,
                };
                let (snapshot, warnings) = mapping::detailed(
                    &detail,
                    &detail_key,
                    resolved.as_ref(),
                    self.settings.tracking_url_template.as_deref(),
                );
                let newest = if detail_key.modified > key.modified {
                    detail_key
                } else {
                    key
                };
                (snapshot, warnings, newest)
            }
        };
        report(&numero, &warnings);
        self.remember(&remembered);
        self.orders.push(snapshot);
        Ok(())
    }

    /// Record the key as returned in this sweep and raise the sweep's newest modification.
    fn remember(&mut self, key: &ChangeKey) {
        let modified = format_micros(key.modified);
        let newer = self
            .sweep
            .max
            .as_deref()
            .and_then(parse_li)
            .is_none_or(|max| key.modified > max);
        if newer {
            self.sweep.max = Some(modified.clone());
        }
        self.cursor.seen.insert(
            key.numero,
            Seen {
                status: key.status.clone(),
                modified,
                sweep_no: self.cursor.sweep_no,
            },
        );
    }

    fn customer(&mut self, uri: &str, numero: &str) -> Result<Option<Value>, PluginError> {
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

fn report(numero: &str, warnings: &Warnings) {
    if !warnings.0.is_empty() {
        log::log(
            Level::Warn,
            &format!("order {numero}: {}", warnings.0.join("; ")),
            &[("order", numero)],
        );
    }
}
