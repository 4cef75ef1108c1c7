//! LI's time base: naive São Paulo wall-clock timestamps.
//!
//! The REST API returns `data_modificacao` & co. without an offset, with
//! microseconds (`2024-05-10T09:12:47.556120`), in São Paulo local time, and
//! takes `since_atualizado` in the same form at seconds precision
//! (see docs/platforms/loja-integrada.md §Time).
//! America/Sao_Paulo has been a fixed UTC−03:00 all year since Brazil
//! abolished DST in 2019 (tzdata 2019b). The plugin runs on
//! wasm32-unknown-unknown, which has no time-zone database, and bundling one
//! would add hundreds of KB to the component for a zone that no longer
//! changes, so the offset is the constant −03:00. The only inaccuracy is one
//! hour in the RFC 3339 form of pre-2019 summer-time instants, which no poll
//! of current orders meets.

use jiff::civil::DateTime;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

/// São Paulo's offset from UTC.
pub const SAO_PAULO: Offset = Offset::constant(-3);

/// Parse an LI timestamp: naive (`2024-05-10T09:12:47.556120`, also without
/// fraction or with a space separator) or, as webhook-style payloads carry,
/// with an offset or `Z` (converted to São Paulo wall-clock time).
///
/// Years outside 1..=9999 are not LI dates (and have no four-digit text form
/// to store in the cursor): `None`.
pub fn parse_li(text: &str) -> Option<DateTime> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let at = match text.parse::<Timestamp>() {
        Ok(at) => SAO_PAULO.to_datetime(at),
        Err(_) => text.parse::<DateTime>().ok()?,
    };
    // LI's precision is the microsecond; finer digits would not survive the
    // cursor's text form, so drop them here and every copy compares equal.
    let at = at.saturating_sub(SignedDuration::from_nanos(i64::from(
        at.subsec_nanosecond() % 1000,
    )));
    (1..=9999).contains(&at.year()).then_some(at)
}

/// `YYYY-MM-DDTHH:MM:SS`, the fraction dropped (LI's filter format; flooring
/// keeps an inclusive filter inclusive).
pub fn format_seconds(at: DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`: the canonical form kept in the cursor, so
/// equal instants compare equal as text whatever form LI printed.
pub fn format_micros(at: DateTime) -> String {
    format!(
        "{}.{:06}",
        format_seconds(at),
        at.subsec_nanosecond() / 1000
    )
}

/// RFC 3339 with São Paulo's offset, e.g. `2024-05-10T09:12:47.55612-03:00`
/// (fraction only when non-zero, trailing zeros trimmed).
pub fn rfc3339(at: DateTime) -> String {
    let micros = at.subsec_nanosecond() / 1000;
    let fraction = if micros == 0 {
        String::new()
    } else {
        let digits = format!("{micros:06}");
        format!(".{}", digits.trim_end_matches('0'))
    };
    format!("{}{fraction}-03:00", format_seconds(at))
}

/// The host's clock (Unix milliseconds) as São Paulo wall-clock time.
pub fn from_unix_ms(ms: u64) -> DateTime {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let at = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX);
    SAO_PAULO.to_datetime(at)
}

/// An RFC 3339 instant (the host's `detail-cutoff`) as São Paulo wall-clock time.
pub fn from_rfc3339(text: &str) -> Option<DateTime> {
    text.trim()
        .parse::<Timestamp>()
        .ok()
        .map(|at| SAO_PAULO.to_datetime(at))
}

/// A non-negative duration setting: `"10m"`, `"1h 30m"`, `"PT10M"`, or
/// whole days `"7d"` (24 hours each: São Paulo has no DST).
///
/// Days are handled here rather than through `jiff::Span`, whose calendar
/// machinery would double the component's size for this one suffix.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let text = text.trim();
    let days = text
        .strip_suffix("days")
        .or_else(|| text.strip_suffix("day"))
        .or_else(|| text.strip_suffix('d'))
        .map(str::trim_end)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let duration = match days {
        Some(n) => n
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(86_400))
            .map(SignedDuration::from_secs)
            .ok_or_else(|| format!("{n} days is too long"))?,
        None => text.parse::<SignedDuration>().map_err(|e| e.to_string())?,
    };
    if duration.is_negative() {
        return Err("must not be negative".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn naive_and_offset_forms_parse_to_sao_paulo_wall_clock() {
        let at = date(2024, 5, 10).at(9, 12, 47, 556_120_000);
        assert_eq!(parse_li("2024-05-10T09:12:47.556120"), Some(at));
        assert_eq!(parse_li("2024-05-10 09:12:47.556120"), Some(at));
        assert_eq!(parse_li("2024-05-10T12:12:47.556120Z"), Some(at));
        assert_eq!(parse_li("2024-05-10T09:12:47.556120-03:00"), Some(at));
        assert_eq!(
            parse_li("2024-05-10T09:00:00"),
            Some(date(2024, 5, 10).at(9, 0, 0, 0))
        );
        assert_eq!(parse_li(""), None);
        assert_eq!(parse_li("ontem"), None);
        assert_eq!(
            parse_li("-009999-01-01T00:00:00"),
            None,
            "found by src/fuzz.rs"
        );
        assert_eq!(
            parse_li("0001-01-01 00:00:00.0000001"),
            Some(date(1, 1, 1).at(0, 0, 0, 0)),
            "below a microsecond: dropped (found by src/fuzz.rs)"
        );
    }

    #[test]
    fn formats() {
        let at = date(2024, 5, 10).at(9, 12, 47, 556_120_000);
        assert_eq!(format_seconds(at), "2024-05-10T09:12:47");
        assert_eq!(format_micros(at), "2024-05-10T09:12:47.556120");
        assert_eq!(rfc3339(at), "2024-05-10T09:12:47.55612-03:00");
        assert_eq!(
            rfc3339(date(2024, 5, 10).at(9, 0, 0, 0)),
            "2024-05-10T09:00:00-03:00"
        );
    }

    #[test]
    fn host_instants_convert_with_a_fixed_minus_three() {
        // 2024-05-10T12:00:00Z
        assert_eq!(
            from_unix_ms(1_715_342_400_000),
            date(2024, 5, 10).at(9, 0, 0, 0)
        );
        assert_eq!(
            from_rfc3339("2024-05-10T12:00:00Z"),
            Some(date(2024, 5, 10).at(9, 0, 0, 0))
        );
        assert_eq!(
            from_rfc3339("2024-05-10T09:00:00-03:00"),
            Some(date(2024, 5, 10).at(9, 0, 0, 0))
        );
        assert_eq!(
            from_rfc3339("2024-05-10T09:00:00"),
            None,
            "an instant needs an offset"
        );
    }

    #[test]
    fn durations_accept_friendly_and_iso_forms_with_24_hour_days() {
        assert_eq!(parse_duration("10m"), Ok(SignedDuration::from_mins(10)));
        assert_eq!(parse_duration("7d"), Ok(SignedDuration::from_hours(7 * 24)));
        assert_eq!(parse_duration("1h 30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("PT10M"), Ok(SignedDuration::from_mins(10)));
        assert_eq!(parse_duration("0s"), Ok(SignedDuration::ZERO));
        assert_eq!(parse_duration("2 days"), Ok(SignedDuration::from_hours(48)));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(
            parse_duration("1d 12h").is_err(),
            "days only as a whole number of days"
        );
        assert!(parse_duration("ten minutes").is_err());
    }
}
