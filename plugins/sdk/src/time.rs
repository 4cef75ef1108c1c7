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

/// Unix milliseconds of `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM|±HH)`,
/// years 1000 to 9999. `None` for anything else: no offset, an impossible
/// date or time, an offset of 24 hours or more, trailing text. A fraction
/// beyond milliseconds is truncated; a leap second (`:60`) counts as `:59`.
pub fn parse_offset_datetime_ms(text: &str) -> Option<i64> {
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
        || year < 1000
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    // The offset starts at the first `Z`, `+` or `-` after the time.
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
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
    let millis = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f3 = format!("{f:0<3}");
            f3[..3].parse::<i64>().ok()?
        }
        Some(_) => return None,
    };
    let offset_minutes: i64 = match zone {
        "Z" | "z" => 0,
        _ => {
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
            let total = i64::from(h * 60 + m);
            if negative { -total } else { total }
        }
    };
    let second = second.min(59);
    let local_ms = days_from_civil(year, month, day) * DAY_MS
        + i64::from(hour * 3600 + minute * 60 + second) * 1000
        + millis;
    Some(local_ms - offset_minutes * 60_000)
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
    fn civil_days_agree_both_ways() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_853, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
