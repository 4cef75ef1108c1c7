//! Tolerant ISO 8601 / RFC 3339 timestamps with an offset, as Unix
//! milliseconds, without a time-zone database (plugins run on
//! `wasm32-unknown-unknown`, where there is none).
//!
//! Platforms print the same instant in several ways: `2024-05-10T12:00:00Z`,
//! `2008-01-10T11:00:00-05:00`, Nuvemshop's `2022-02-23T12:25:18+0000`
//! (offset without a colon), with or without a fraction, with a space
//! instead of the `T`. [`parse_offset_datetime_ms`] reads them all and
//! refuses a timestamp without an offset (its instant is unknown: the caller
//! decides which zone a platform means, as the LI connector does for São
//! Paulo); [`format_rfc3339_ms`] prints the one form the host expects.
//!
//! Platforms that print naive local times (Loja Integrada: São Paulo,
//! microseconds) read them with [`parse_wall_clock`] / [`parse_datetime_us_at`]
//! at the offset they document, and keep canonical microsecond text with
//! [`format_naive_micros`]. [`parse_duration_ms`] reads the duration settings
//! (`overlap`, `initial_lookback`) of every connector the same way.

/// Milliseconds per day.
const DAY_MS: i64 = 86_400_000;

/// Days from 1970-01-01 to the civil date `year-month-day` (proleptic
/// Gregorian; Howard Hinnant's `days_from_civil`). The date must be valid.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: day 1..=31, month 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(text: &str, len: usize) -> Option<u32> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Microseconds per day.
const DAY_US: i64 = DAY_MS * 1000;

/// A date-time as a platform wrote it: the wall-clock reading and, when the
/// text carries one, its offset from UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// Microseconds from 1970-01-01T00:00:00 to the reading, on the
    /// text's own clock (equal to Unix microseconds only at offset zero).
    pub local_us: i64,
    /// The offset from UTC in minutes (`-03:00` is −180); `None` for a
    /// naive timestamp, whose zone only the platform's documentation knows.
    pub offset_minutes: Option<i32>,
}

impl WallClock {
    /// Unix microseconds, reading a naive timestamp at `naive_offset_minutes`.
    pub fn utc_us(self, naive_offset_minutes: i32) -> i64 {
        let offset = self.offset_minutes.unwrap_or(naive_offset_minutes);
        self.local_us - i64::from(offset) * 60_000_000
    }

    /// The wall-clock reading at `offset_minutes` (a naive timestamp is
    /// taken to be at that offset already).
    pub fn local_us_at(self, offset_minutes: i32) -> i64 {
        self.utc_us(offset_minutes) + i64::from(offset_minutes) * 60_000_000
    }
}

/// Read `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][Z|±HH:MM|±HHMM|±HH]`, years
/// 0001 to 9999, with or without an offset. `None` for anything else: an
/// impossible date or time, an offset of 24 hours or more, trailing text.
/// A fraction beyond microseconds is truncated; a leap second (`:60`)
/// counts as `:59`.
pub fn parse_wall_clock(text: &str) -> Option<WallClock> {
    let text = text.trim();
    if text.len() > 64 || !text.is_ascii() {
        return None;
    }
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let sep = rest.as_bytes().first()?;
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &rest[1..];
    let mut date_parts = date.split('-');
    let year = i64::from(digits(date_parts.next()?, 4)?);
    let month = digits(date_parts.next()?, 2)?;
    let day = digits(date_parts.next()?, 2)?;
    if date_parts.next().is_some()
        || year < 1
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    // The offset, when there is one, starts at the first `Z`, `+` or `-`
    // after the time.
    let (clock, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(at) => (&rest[..at], Some(&rest[at..])),
        None => (rest, None),
    };
    let (hms, fraction) = match clock.split_once(['.', ',']) {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let hour = digits(parts.next()?, 2)?;
    let minute = digits(parts.next()?, 2)?;
    let second = match parts.next() {
        Some(s) => digits(s, 2)?,
        None if fraction.is_none() => 0,
        None => return None,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f6 = format!("{f:0<6}");
            f6[..6].parse::<i64>().ok()?
        }
        Some(_) => return None,
    };
    let offset_minutes = match zone {
        None => None,
        Some("Z" | "z") => Some(0),
        Some(zone) => {
            let negative = zone.starts_with('-');
            let body = &zone[1..];
            let (h, m) = match body.len() {
                2 => (digits(body, 2)?, 0),
                4 => (digits(&body[..2], 2)?, digits(&body[2..], 2)?),
                5 if body.as_bytes()[2] == b':' => (digits(&body[..2], 2)?, digits(&body[3..], 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = i32::try_from(h * 60 + m).ok()?;
            Some(if negative { -total } else { total })
        }
    };
    let second = second.min(59);
    let local_us = days_from_civil(year, month, day) * DAY_US
        + i64::from(hour * 3600 + minute * 60 + second) * 1_000_000
        + micros;
    Some(WallClock {
        local_us,
        offset_minutes,
    })
}

/// Unix milliseconds of `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM|±HH)`,
/// years 1000 to 9999. `None` for anything else: no offset, an impossible
/// date or time, an offset of 24 hours or more, trailing text. A fraction
/// beyond milliseconds is truncated; a leap second (`:60`) counts as `:59`.
pub fn parse_offset_datetime_ms(text: &str) -> Option<i64> {
    let at = parse_wall_clock(text)?;
    let offset = at.offset_minutes?;
    if at.local_us < days_from_civil(1000, 1, 1) * DAY_US {
        return None;
    }
    Some(at.utc_us(offset).div_euclid(1000))
}

/// Unix microseconds of a platform timestamp, with an offset or naive (then
/// read at `naive_offset_minutes`, the zone the platform documents, e.g.
/// −180 for São Paulo). Same grammar as [`parse_wall_clock`].
pub fn parse_datetime_us_at(text: &str, naive_offset_minutes: i32) -> Option<i64> {
    parse_wall_clock(text).map(|at| at.utc_us(naive_offset_minutes))
}

/// `YYYY-MM-DDTHH:MM:SS` of a wall-clock reading in microseconds (the
/// fraction dropped: flooring keeps an inclusive filter inclusive).
pub fn format_naive_seconds(local_us: i64) -> String {
    let days = local_us.div_euclid(DAY_US);
    let in_day = local_us.rem_euclid(DAY_US) / 1_000_000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` of a wall-clock reading: one canonical
/// text per instant, so equal readings compare equal as text.
pub fn format_naive_micros(local_us: i64) -> String {
    format!(
        "{}.{:06}",
        format_naive_seconds(local_us),
        local_us.rem_euclid(1_000_000)
    )
}

/// Parse a non-negative duration setting in milliseconds: `"10m"`,
/// `"1h 30m"`, `"1h30m"`, `"500ms"`, `"12 h"`, `"2 days"`, `"7d"` (24-hour
/// days), `"90 minutes"`, or ISO 8601 `"PT10M"` / `"P1DT2H"`. Units: ms, s,
/// m, h, d and their long forms (sec, second(s), min, minute(s), hr, hour(s),
/// day(s)). The error says what is wrong, for the message naming the key.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    if text.len() > 64 {
        return Err("too long".to_owned());
    }
    if let Some(iso) = text.strip_prefix(['P', 'p']) {
        return parse_iso_duration_ms(iso);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if number_end == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let number: u64 = rest[..number_end]
            .parse()
            .map_err(|_| "number too large".to_owned())?;
        let after = rest[number_end..].trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let unit = &after[..unit_end];
        let unit_ms = unit_ms(unit).ok_or_else(|| {
            if unit.is_empty() {
                format!("{number} needs a unit (ms, s, m, h, d)")
            } else {
                format!("unknown unit {unit:?} (ms, s, m, h, d)")
            }
        })?;
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| "too long".to_owned())?;
        rest = after[unit_end..].trim_start_matches([' ', ',']);
    }
    Ok(total)
}

fn unit_ms(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    })
}

/// The part after `P` of an ISO 8601 duration: `[nD][T[nH][nM][nS]]`.
fn parse_iso_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("\"P{text}\" is not an ISO 8601 duration such as PT10M or P1DT2H");
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return Err(bad()),
        None => (text, None),
    };
    let mut total: u64 = 0;
    let mut add = |part: &str, units: &[(char, u64)]| -> Result<(), String> {
        let mut rest = part;
        let mut allowed = units;
        while !rest.is_empty() {
            let end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let unit = rest[end..]
                .chars()
                .next()
                .ok_or_else(bad)?
                .to_ascii_uppercase();
            let at = allowed
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            let number: u64 = rest[..end].parse().map_err(|_| bad())?;
            total = number
                .checked_mul(allowed[at].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| "too long".to_owned())?;
            allowed = &allowed[at + 1..];
            rest = &rest[end + 1..];
        }
        Ok(())
    };
    if date.is_empty() && time.is_none() {
        return Err(bad());
    }
    add(date, &[('D', 86_400_000)])?;
    if let Some(time) = time {
        add(time, &[('H', 3_600_000), ('M', 60_000), ('S', 1000)])?;
    }
    Ok(total)
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]+00:00` of Unix milliseconds (UTC; the
/// fraction only when there are milliseconds). Years outside 0..=9999 are
/// clamped to that range's ends, since RFC 3339 has no room for them.
pub fn format_rfc3339_ms(ms: i64) -> String {
    const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    if milli == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+00:00")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}+00:00")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON_2024_05_10: i64 = 1_715_342_400_000;

    #[test]
    fn every_documented_offset_form_reads_the_same_instant() {
        for text in [
            "2024-05-10T12:00:00Z",
            "2024-05-10T12:00:00+00:00",
            "2024-05-10T12:00:00+0000",
            "2024-05-10T09:00:00-03:00",
            "2024-05-10T09:00:00-0300",
            "2024-05-10T09:00:00-03",
            "2024-05-10 12:00:00Z",
            "2024-05-10T12:00:00.000Z",
            "2024-05-10T12:00Z",
            " 2024-05-10t12:00:00z ",
        ] {
            assert_eq!(
                parse_offset_datetime_ms(text),
                Some(NOON_2024_05_10),
                "{text}"
            );
        }
        assert_eq!(
            parse_offset_datetime_ms("2024-05-10T12:00:00.123456+00:00"),
            Some(NOON_2024_05_10 + 123)
        );
        assert_eq!(
            parse_offset_datetime_ms("2008-01-10T11:00:00-05:00"),
            Some(1_199_980_800_000)
        );
    }

    #[test]
    fn timestamps_without_offset_or_impossible_ones_are_refused() {
        for text in [
            "",
            "2024-05-10",
            "2024-05-10T12:00:00",
            "2024-02-30T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-10T24:00:00Z",
            "2024-05-10T12:60:00Z",
            "2024-05-10T12:00:00+24:00",
            "2024-05-10T12:00:00+3",
            "2024-05-10T12:00:00Zjunk",
            "2024-05-10T12:00:00.Z",
            "0999-05-10T12:00:00Z",
            "２024-05-10T12:00:00Z",
            "2024-05-10X12:00:00Z",
        ] {
            assert_eq!(parse_offset_datetime_ms(text), None, "{text:?}");
        }
        assert_eq!(
            parse_offset_datetime_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        assert_eq!(
            format_rfc3339_ms(NOON_2024_05_10),
            "2024-05-10T12:00:00+00:00"
        );
        assert_eq!(
            format_rfc3339_ms(NOON_2024_05_10 + 7),
            "2024-05-10T12:00:00.007+00:00"
        );
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999+00:00");
        for ms in [
            0,
            NOON_2024_05_10,
            951_782_400_000,
            4_102_444_800_000,
            -86_400_000,
        ] {
            assert_eq!(
                parse_offset_datetime_ms(&format_rfc3339_ms(ms)),
                Some(ms),
                "{ms}"
            );
        }
        assert_eq!(format_rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999+00:00");
        assert_eq!(format_rfc3339_ms(i64::MIN), "0000-01-01T00:00:00+00:00");
    }

    #[test]
    fn naive_timestamps_read_at_the_documented_offset_with_microseconds() {
        // 2024-05-10T09:12:47.556120 in São Paulo (−03:00) = 12:12:47.556120Z.
        let utc_us = 1_715_343_167_556_120;
        for text in [
            "2024-05-10T09:12:47.556120",
            "2024-05-10 09:12:47.556120",
            "2024-05-10T09:12:47.5561209",
            "2024-05-10T12:12:47.556120Z",
            "2024-05-10T09:12:47.556120-03:00",
        ] {
            assert_eq!(parse_datetime_us_at(text, -180), Some(utc_us), "{text}");
        }
        let naive = parse_wall_clock("2024-05-10T09:12:47.556120");
        assert_eq!(naive.map(|at| at.offset_minutes), Some(None));
        let local = naive.map_or(0, |at| at.local_us);
        assert_eq!(format_naive_micros(local), "2024-05-10T09:12:47.556120");
        assert_eq!(format_naive_seconds(local), "2024-05-10T09:12:47");
        let offset = parse_wall_clock("2024-05-10T12:12:47.556120Z");
        assert_eq!(offset.map(|at| at.local_us_at(-180)), Some(local));
        assert_eq!(
            parse_wall_clock("0001-01-01 00:00:00.0000001")
                .map(|at| format_naive_micros(at.local_us)),
            Some("0001-01-01T00:00:00.000000".to_owned())
        );
        for bad in [
            "",
            "ontem",
            "-009999-01-01T00:00:00",
            "2024-05-10",
            "0000-01-01T00:00:00",
        ] {
            assert_eq!(parse_wall_clock(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_read_friendly_and_iso_forms() {
        for (text, ms) in [
            ("10m", 600_000),
            ("1h 30m", 5_400_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("12 h", 43_200_000),
            ("7d", 604_800_000),
            ("2 days", 172_800_000),
            ("1d 12h", 129_600_000),
            ("90 minutes", 5_400_000),
            ("0s", 0),
            ("PT10M", 600_000),
            ("P1DT2H", 93_600_000),
            ("P7D", 604_800_000),
        ] {
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
        }
        for bad in [
            "",
            "m",
            "5",
            "5y",
            "-5m",
            "-1d",
            "ten minutes",
            "P",
            "PT",
            "PT10",
            "PT1M2H",
            "99999999999999999999d",
            "1h 5",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_duration_ms("-5m"),
            Err("must not be negative".to_owned())
        );
    }

    #[test]
    fn civil_days_agree_both_ways() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_853, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
