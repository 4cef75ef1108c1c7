//! Caps on what a plugin hands to the host.
//!
//! A plugin's memory is capped, but a hostile or buggy plugin can still hand
//! the host strings of tens of megabytes (an error message, a receipt id, a
//! cursor, a million log fields), which would otherwise be logged, written to
//! the state database on every call and shown by `queue list` and `report`.
//! Every string and list that crosses the boundary is bounded here; the same
//! caps are stated in the WIT doc comments (`plugins/wit/since_v0.*`).
//!
//! Text that is only shown or recorded is cut on a character boundary and
//! ends with a visible marker ([`truncate`]). Values whose meaning would change
//! if cut (a cursor, an order id, the number of orders on a page) fail the
//! call as [`super::error::PluginError::InvalidOutput`] instead, so nothing huge is
//! stored and the previous cursor stays in effect.

use super::redact::Redactor;

/// Error messages a plugin returns (`retryable`, `permanent`,
/// `misconfigured`), and any host error text built from plugin output.
pub(crate) const MAX_ERROR_MESSAGE_BYTES: usize = 4 * 1024;
/// Provider message id and recipient id of a send receipt; order id and
/// number of a snapshot (an order id over it fails the page).
pub(crate) const MAX_ID_BYTES: usize = 256;
/// A connector's cursor. Over it the poll fails and the stored cursor stays.
///
/// Not 64 KiB: a cursor may legitimately hold one change key per order of
/// the sweep's window (the Loja Integrada connector keeps about 60 bytes per
/// order it returned in the sweep, so that rows re-listed by offset paging
/// cost no detail call), which reaches hundreds of KiB on a busy store's
/// first sync. 4 MiB covers ~60,000 such orders while still bounding what a
/// broken connector can make the host write on every page.
pub(crate) const MAX_CURSOR_BYTES: usize = 4 * 1024 * 1024;
/// Fields of one log line; the rest are dropped and counted in one
/// `dropped_fields` field.
pub(crate) const MAX_LOG_FIELDS: usize = 32;
/// The key and the value of one log field, each.
pub(crate) const MAX_LOG_FIELD_BYTES: usize = 1024;
/// Every other text of an order snapshot (customer name, e-mail, phone,
/// status name, item name, tracking code...) and of a plugin's `info`.
pub(crate) const MAX_SNAPSHOT_TEXT_BYTES: usize = 4 * 1024;
/// A snapshot's `extras-json`. Over it the page fails.
pub(crate) const MAX_EXTRAS_JSON_BYTES: usize = 64 * 1024;
/// Orders on one poll page. Over it the page fails (dropping orders while the
/// cursor moves on would lose them).
pub(crate) const MAX_ORDERS_PER_PAGE: usize = 1_000;
/// Phones, shipments and items of one order; the rest are dropped.
pub(crate) const MAX_SNAPSHOT_LIST_LEN: usize = 1_000;

/// `text` cut to at most `cap` bytes (on a character boundary), followed by
/// `…[truncated N bytes]` when anything was cut.
pub(crate) fn truncate(mut text: String, cap: usize) -> String {
    if text.len() <= cap {
        return text;
    }
    let mut cut = cap;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[truncated {dropped} bytes]"));
    text
}

/// [`truncate`] in place.
pub(crate) fn truncate_in_place(text: &mut String, cap: usize) {
    if text.len() > cap {
        *text = truncate(std::mem::take(text), cap);
    }
}

/// `text` with secrets scrubbed, then cut to `cap` bytes.
///
/// Scrubbing first means a secret is never left half-visible by the cut.
/// To keep a huge text cheap, it is first cut to `cap` plus the longest
/// secret's length: a secret that starts before `cap` still lies whole within
/// that, and what lies beyond is dropped anyway. The marker counts the bytes
/// of the original text that are not shown.
pub(crate) fn scrub_and_truncate(text: &str, cap: usize, redactor: &Redactor) -> String {
    if text.len() <= cap {
        return redactor.redact(text).into_owned();
    }
    let mut pre_cut = (cap + redactor.longest_secret()).min(text.len());
    while !text.is_char_boundary(pre_cut) {
        pre_cut -= 1;
    }
    let scrubbed = redactor.redact(&text[..pre_cut]);
    let mut cut = cap.min(scrubbed.len());
    while !scrubbed.is_char_boundary(cut) {
        cut -= 1;
    }
    // Bytes of the original not shown: what the pre-cut dropped, plus what
    // the final cut drops of the scrubbed remainder.
    let dropped = (text.len() - pre_cut) + (scrubbed.len() - cut);
    format!("{}…[truncated {dropped} bytes]", &scrubbed[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_marker() {
        let cut = truncate("é".repeat(100), 9);
        assert_eq!(cut, "éééé…[truncated 192 bytes]");
        assert_eq!(truncate("short".into(), 9), "short");
        let mut s = "x".repeat(10);
        truncate_in_place(&mut s, 4);
        assert_eq!(s, "xxxx…[truncated 6 bytes]");
    }

    #[test]
    fn a_secret_across_the_cut_is_scrubbed_not_half_shown() {
        let redactor = Redactor::new(["SECRET-TOKEN".to_owned()]);
        // The secret starts 4 bytes before the cap and ends after it.
        let text = format!("{}SECRET-TOKEN{}", "a".repeat(96), "b".repeat(1_000_000));
        let out = scrub_and_truncate(&text, 100, &redactor);
        assert!(!out.contains("SECRET") && !out.contains("SECR"), "{out}");
        assert!(out.starts_with(&"a".repeat(96)), "{out}");
        assert!(out.len() < 140, "{} bytes", out.len());
        assert!(out.contains("…[truncated "), "{out}");
        assert_eq!(
            scrub_and_truncate("a SECRET-TOKEN", 100, &redactor),
            "a <redacted>"
        );
    }
}
