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
//!
//! Reading text (timestamps and duration settings) is the SDK's
//! `arauto_plugin_sdk::time`, shared with the Nuvemshop connector; this
//! module keeps LI's wall-clock type (`jiff::civil::DateTime`) and formats.

use arauto_plugin_sdk::time::{civil_from_days, parse_duration_ms, parse_wall_clock};
use jiff::civil::DateTime;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

/// São Paulo's offset from UTC.
pub const SAO_PAULO: Offset = Offset::constant(-3);

/// São Paulo's offset in minutes, as the SDK's parser takes it.
const SAO_PAULO_MINUTES: i32 = -180;

/// Microseconds per day.
const DAY_US: i64 = 86_400_000_000;

/// Parse an LI timestamp: naive (`2024-05-10T09:12:47.556120`, also without
/// fraction or with a space separator) or, as webhook-style payloads carry,
/// with an offset or `Z` (converted to São Paulo wall-clock time).
///
/// Also, as the jiff parser this replaced accepted them: a date alone
/// (`2024-05-10`, midnight) and a date with the hour alone
/// (`2024-05-10T09`, `2024-05-10 09`), both naive. Other forms jiff took
/// (compact `20240510T091247`, bracketed time-zone annotations) are not
/// LI's and stay refused.
///
/// Years outside 1..=9999 are not LI dates (and have no four-digit text form
/// to store in the cursor): `None`.
pub fn parse_li(text: &str) -> Option<DateTime> {
    let text = text.trim();
    if let Some(at) = parse_canonical(text) {
        return Some(at);
    }
    let completed;
    let text = match text.len() {
        // `YYYY-MM-DD`: midnight.
        10 => {
            completed = format!("{text}T00:00");
            completed.as_str()
        }
        // `YYYY-MM-DDTHH`: on the hour.
        13 if text
            .as_bytes()
            .get(11..)
            .is_some_and(|hour| hour.iter().all(u8::is_ascii_digit)) =>
        {
            completed = format!("{text}:00");
            completed.as_str()
        }
        _ => text,
    };
    // The SDK keeps microseconds, LI's precision: finer digits would not
    // survive the cursor's text form, so every copy compares equal.
    from_local_us(parse_wall_clock(text)?.local_us_at(SAO_PAULO_MINUTES))
}

/// The forms LI prints and the cursor stores, `YYYY-MM-DDTHH:MM:SS` and
/// `YYYY-MM-DDTHH:MM:SS.ffffff` (`T` or a space), read by position: every
/// poll reads dozens (each row's and detail's dates, every change key the
/// cursor keeps, each time a window is counted), and the general grammar
/// below was a visible share of the connector's CPU (docs/BENCHMARKS.md,
/// issue 16, session 26). `None` sends the text down the general way,
/// which gives the same answer for these forms (a test pins it) and knows
/// every other one; a leap second goes that way too.
fn parse_canonical(text: &str) -> Option<DateTime> {
    let b = text.as_bytes();
    if !(b.len() == 19 || (b.len() == 26 && b[19] == b'.')) {
        return None;
    }
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if !matches!(b[10], b'T' | b' ') || separators.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i32> {
        b[from..to].iter().try_fold(0i32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    };
    let year = i16::try_from(number(0, 4)?).ok().filter(|y| *y >= 1)?;
    let small = |from: usize| number(from, from + 2).and_then(|n| i8::try_from(n).ok());
    let second = small(17).filter(|s| *s <= 59)?;
    let micros = if b.len() == 26 { number(20, 26)? } else { 0 };
    DateTime::new(
        year,
        small(5)?,
        small(8)?,
        small(11)?,
        small(14)?,
        second,
        micros * 1000,
    )
    .ok()
}

/// The wall-clock reading `local_us` (microseconds from 1970-01-01T00:00 on
/// São Paulo's clock) as a civil date-time; `None` outside years 1..=9999.
fn from_local_us(local_us: i64) -> Option<DateTime> {
    let (year, month, day) = civil_from_days(local_us.div_euclid(DAY_US));
    let in_day = local_us.rem_euclid(DAY_US);
    let small = |n: i64| i8::try_from(n).ok();
    DateTime::new(
        i16::try_from(year)
            .ok()
            .filter(|y| (1..=9999).contains(y))?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        small(in_day / 3_600_000_000)?,
        small(in_day / 60_000_000 % 60)?,
        small(in_day / 1_000_000 % 60)?,
        i32::try_from(in_day % 1_000_000 * 1000).ok()?,
    )
    .ok()
}

/// `YYYY-MM-DDTHH:MM:SS`, the fraction dropped (LI's filter format; flooring
/// keeps an inclusive filter inclusive).
pub fn format_seconds(at: DateTime) -> String {
    let mut out = String::with_capacity(32);
    push_seconds(&mut out, at);
    out
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`: the canonical form kept in the cursor, so
/// equal instants compare equal as text whatever form LI printed.
pub fn format_micros(at: DateTime) -> String {
    let mut out = String::with_capacity(32);
    push_seconds(&mut out, at);
    out.push('.');
    push_padded(&mut out, micros_of(at), 6);
    out
}

/// RFC 3339 with São Paulo's offset, e.g. `2024-05-10T09:12:47.55612-03:00`
/// (fraction only when non-zero, trailing zeros trimmed).
pub fn rfc3339(at: DateTime) -> String {
    let mut out = String::with_capacity(32);
    push_seconds(&mut out, at);
    let micros = micros_of(at);
    if micros != 0 {
        out.push('.');
        push_padded(&mut out, micros, 6);
        let kept = out.trim_end_matches('0').len();
        out.truncate(kept);
    }
    out.push_str("-03:00");
    out
}

fn micros_of(at: DateTime) -> u32 {
    u32::try_from(at.subsec_nanosecond() / 1000).unwrap_or(0)
}

/// `format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}")` of `at`, written digit by
/// digit: every poll formats a few timestamps per order (the cursor's change
/// keys, the snapshot's times), and `fmt` was a visible share of the
/// connector's CPU (docs/BENCHMARKS.md, issue 16, session 26).
fn push_seconds(out: &mut String, at: DateTime) {
    match u32::try_from(at.year()) {
        Ok(year) if year <= 9999 => push_padded(out, year, 4),
        // Outside LI's years (never parsed, but a host clock could say so):
        // the `{:04}` form, sign included.
        _ => out.push_str(&format!("{:04}", at.year())),
    }
    for (separator, part) in [
        ('-', at.month()),
        ('-', at.day()),
        ('T', at.hour()),
        (':', at.minute()),
        (':', at.second()),
    ] {
        out.push(separator);
        push_padded(out, u32::try_from(part).unwrap_or(0), 2);
    }
}

/// `n` in decimal, zero-padded to `width` digits (wider when it needs more).
fn push_padded(out: &mut String, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = n;
    let mut used = 0;
    while used == 0 || rest > 0 {
        digits[digits.len() - 1 - used] = b'0' + (rest % 10) as u8;
        rest /= 10;
        used += 1;
    }
    for _ in used..width {
        out.push('0');
    }
    for &digit in &digits[digits.len() - used..] {
        out.push(char::from(digit));
    }
}

/// The host's clock (Unix milliseconds) as São Paulo wall-clock time.
pub fn from_unix_ms(ms: u64) -> DateTime {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let at = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX);
    SAO_PAULO.to_datetime(at)
}

/// An RFC 3339 instant (the host's `detail-cutoff`) as São Paulo wall-clock time.
pub fn from_rfc3339(text: &str) -> Option<DateTime> {
    let at = parse_wall_clock(text).filter(|at| at.offset_minutes.is_some())?;
    from_local_us(at.local_us_at(SAO_PAULO_MINUTES))
}

/// A non-negative duration setting: `"10m"`, `"1h 30m"`, `"PT10M"`, or
/// days `"7d"` (24 hours each: São Paulo has no DST), in the SDK's grammar
/// (`arauto_plugin_sdk::time::parse_duration_ms`).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let ms = parse_duration_ms(text)?;
    i64::try_from(ms)
        .map(SignedDuration::from_millis)
        .map_err(|_| "too long".to_owned())
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
        // Forms the earlier jiff parser accepted and LI could plausibly send.
        assert_eq!(
            parse_li("2024-05-10"),
            Some(date(2024, 5, 10).at(0, 0, 0, 0))
        );
        assert_eq!(
            parse_li("2024-05-10T09"),
            Some(date(2024, 5, 10).at(9, 0, 0, 0))
        );
        assert_eq!(
            parse_li("2024-05-10 09"),
            Some(date(2024, 5, 10).at(9, 0, 0, 0))
        );
        assert_eq!(
            parse_li("2024-05-10T09:12"),
            Some(date(2024, 5, 10).at(9, 12, 0, 0))
        );
        assert_eq!(parse_li("2024-02-30"), None, "an impossible date");
        assert_eq!(parse_li("2024-05-10T9x"), None);
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
    fn the_canonical_forms_read_as_the_general_grammar_reads_them() {
        let general =
            |text: &str| from_local_us(parse_wall_clock(text)?.local_us_at(SAO_PAULO_MINUTES));
        let mut texts = vec![
            "2024-05-10T09:12:47.556120".to_owned(),
            "2024-05-10 09:12:47".to_owned(),
            "0000-01-01T00:00:00".to_owned(),
            "0001-01-01T00:00:00".to_owned(),
            "9999-12-31T23:59:59.999999".to_owned(),
            "2024-02-29T00:00:00".to_owned(),
            "2023-02-29T00:00:00".to_owned(),
            "2024-13-01T00:00:00".to_owned(),
            "2024-00-10T00:00:00".to_owned(),
            "2024-05-00T00:00:00".to_owned(),
            "2024-05-10T24:00:00".to_owned(),
            "2024-05-10T23:60:00".to_owned(),
            "2024-05-10T23:59:60".to_owned(),
            "2024-05-10T23:59:60.500000".to_owned(),
            "2024-05-10T09:12:47.55612a".to_owned(),
            "2024-05-10T09:12:47,556120".to_owned(),
            "2024-05-10t09:12:47".to_owned(),
            "+024-05-10T09:12:47".to_owned(),
            "2024-05-10T09:12:4-".to_owned(),
            "2024-05-10T09:12:47-03:00".to_owned(),
        ];
        // Every digit position and separator of both forms, varied.
        let base = "2024-05-10T09:12:47.556120";
        for at in 0..base.len() {
            for c in ['0', '3', '9', '-', ':', 'T', ' ', '.', 'x'] {
                let mut text = base.to_owned();
                text.replace_range(at..=at, &c.to_string());
                texts.push(text.clone());
                texts.push(text[..19].to_owned());
            }
        }
        for text in &texts {
            assert_eq!(parse_li(text), general(text), "{text:?}");
            if let Some(at) = parse_canonical(text) {
                assert_eq!(Some(at), general(text), "{text:?}");
            }
        }
        assert!(parse_canonical(base).is_some(), "the fast way is taken");
    }

    #[test]
    fn formats_match_the_fmt_forms_they_replace() {
        let times = [
            date(2024, 5, 10).at(9, 12, 47, 556_120_000),
            date(1, 1, 1).at(0, 0, 0, 0),
            date(9999, 12, 31).at(23, 59, 59, 999_999_999),
            date(0, 1, 1).at(0, 0, 0, 1000),
            date(-5, 6, 7).at(8, 9, 10, 100_000),
            date(-9999, 1, 1).at(0, 0, 0, 0),
            date(2024, 5, 10).at(9, 0, 0, 500),
        ];
        for at in times {
            let seconds = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                at.year(),
                at.month(),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            );
            assert_eq!(format_seconds(at), seconds);
            let micros = at.subsec_nanosecond() / 1000;
            assert_eq!(format_micros(at), format!("{seconds}.{micros:06}"));
            let fraction = if micros == 0 {
                String::new()
            } else {
                format!(".{}", format!("{micros:06}").trim_end_matches('0'))
            };
            assert_eq!(rfc3339(at), format!("{seconds}{fraction}-03:00"));
        }
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
        assert_eq!(
            parse_duration("1d 12h"),
            Ok(SignedDuration::from_hours(36)),
            "days combine with other units (the SDK's grammar)"
        );
        assert!(parse_duration("ten minutes").is_err());
    }
}
