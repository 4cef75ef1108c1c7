//! The value syntaxes of the configuration (durations, sizes, times of day,
//! ids…): their parsers, their canonical spelling, and [`ByteSize`]. Each parser
//! fails with a [`ValueError`] saying what was expected; the caller adds the key
//! path and the value.

use std::fmt;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Serialize, Serializer};

/// What a value failed to be. The text is what a user reads after
/// `key = value:`, so it says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a duration.
    #[error(r#"expected a duration like "20s", "5m", "24h" or "7d""#)]
    Duration,
    /// A duration in months or years, which have no fixed length.
    #[error(
        r#"expected a duration like "20s", "5m", "24h" or "7d" (months and years are not fixed lengths)"#
    )]
    DurationInCalendarUnits,
    /// Not a size.
    #[error(r#"expected a size like "64MiB", "4MiB", "512KiB" or a number of bytes"#)]
    Size,
    /// A size beyond `u64` bytes.
    #[error("size is too large")]
    SizeTooLarge,
    /// Not a `HH:MM` time of day.
    #[error(r#"expected a time of day "HH:MM" between "00:00" and "23:59""#)]
    TimeOfDay,
    /// Not an IANA time zone jiff knows.
    #[error(r#"unknown time zone (expected an IANA name like "America/Sao_Paulo" or "UTC")"#)]
    TimeZone,
    /// Not a valid id or plugin name.
    #[error(
        "must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, '_' and '-', starting \
         with a letter or digit; at most 64 characters)"
    )]
    Id,
}

/// The message alone, for callers whose own errors are text (clap's value
/// parsers in the CLI take `Result<_, String>`).
impl From<ValueError> for String {
    fn from(error: ValueError) -> Self {
        error.to_string()
    }
}

/// A size in bytes, written like `"64MiB"`, `"4MB"` or `1048576`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [
            ("GiB", 1024 * 1024 * 1024),
            ("MiB", 1024 * 1024),
            ("KiB", 1024),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parse `"20s"`, `"5m"`, `"24h"`, `"7d"`, `"1h30m"`, `"2 hours"` or ISO 8601 (`"PT5M"`).
///
/// jiff's [`SignedDuration`] parser stops at hours, so units of days and weeks
/// go through a [`Span`] with 24-hour days (calendar days do not matter for
/// timeouts and intervals).
pub fn parse_duration(text: &str) -> Result<SignedDuration, ValueError> {
    let text = text.trim();
    if let Ok(duration) = text.parse::<SignedDuration>() {
        return Ok(duration);
    }
    let span: Span = text.parse().map_err(|_| ValueError::Duration)?;
    span.to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| ValueError::DurationInCalendarUnits)
}

/// A duration the way the configuration writes it: `"90d"`, `"5m"`, `"1h30m"`.
pub fn format_duration(duration: SignedDuration) -> String {
    if duration.subsec_nanos() != 0 {
        return format!("{duration:#}");
    }
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parse a size: a plain number of bytes, or `"64MiB"`, `"4 MB"`, `"512KiB"`.
///
/// Hand-written: the one size crate worth using (bytesize) is not in our
/// dependency tree, and the grammar is a dozen lines.
pub fn parse_size(text: &str) -> Result<ByteSize, ValueError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| ValueError::Size)?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return Err(ValueError::Size),
    };
    number
        .checked_mul(multiplier)
        .map(ByteSize)
        .ok_or(ValueError::SizeTooLarge)
}

/// Parse a local time of day, `"HH:MM"` (24-hour clock).
pub fn parse_time(text: &str) -> Result<Time, ValueError> {
    let (hours, minutes) = text.split_once(':').ok_or(ValueError::TimeOfDay)?;
    let well_formed = (1..=2).contains(&hours.len())
        && minutes.len() == 2
        && hours
            .bytes()
            .chain(minutes.bytes())
            .all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(ValueError::TimeOfDay);
    }
    let hours: i8 = hours.parse().map_err(|_| ValueError::TimeOfDay)?;
    let minutes: i8 = minutes.parse().map_err(|_| ValueError::TimeOfDay)?;
    Time::new(hours, minutes, 0, 0).map_err(|_| ValueError::TimeOfDay)
}

/// `"HH:MM"`.
pub fn format_time(time: Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// Look up an IANA time zone in jiff's database (bundled into the binary).
pub fn parse_timezone(name: &str) -> Result<TimeZone, ValueError> {
    TimeZone::get(name).map_err(|_| ValueError::TimeZone)
}

/// Check an id (store, channel) or plugin name: `[a-z0-9][a-z0-9_-]*`, at most 64 bytes.
pub fn check_id(id: &str) -> Result<(), ValueError> {
    let mut bytes = id.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok && id.len() <= 64 {
        Ok(())
    } else {
        Err(ValueError::Id)
    }
}

/// The closest candidate to `wrong`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (wrong.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            // A truncated name ("poll" for "poll_interval") is as likely a slip as a typo.
            let truncated = wrong.len() >= 3 && c.starts_with(wrong);
            (
                if truncated {
                    limit
                } else {
                    strsim::damerau_levenshtein(wrong, c)
                },
                c,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// `serialize_with` for durations: the configuration's own spelling (`"5m"`).
pub(crate) fn serialize_duration<S: Serializer>(
    d: &SignedDuration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `serialize_with` for optional durations.
pub(crate) fn serialize_optional_duration<S: Serializer>(
    d: &Option<SignedDuration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for times of day (`"21:00"`).
pub(crate) fn serialize_time<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

/// `serialize_with` for time zones: the IANA name.
pub(crate) fn serialize_timezone<S: Serializer>(tz: &TimeZone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.iana_name().unwrap_or("UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("20s"), Ok(20));
        assert_eq!(secs("5m"), Ok(300));
        assert_eq!(secs("24h"), Ok(86_400));
        assert_eq!(secs("7d"), Ok(7 * 86_400));
        assert_eq!(secs("1h30m"), Ok(5_400));
        assert_eq!(secs("2 weeks"), Ok(14 * 86_400));
        assert_eq!(secs("-5s"), Ok(-5));
        assert!(parse_duration("5 minutos").is_err());
        assert!(parse_duration("1 month").is_err());
        assert!(parse_duration("").is_err());
        for text in ["90d", "5m", "1h30m", "20s", "0s", "1d2h"] {
            assert_eq!(
                parse_duration(text).map(format_duration).as_deref(),
                Ok(text)
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(ByteSize::mib(64)));
        assert_eq!(parse_size("4 MiB"), Ok(ByteSize::mib(4)));
        assert_eq!(parse_size("1000"), Ok(ByteSize(1000)));
        assert_eq!(parse_size("2kb"), Ok(ByteSize(2000)));
        assert!(parse_size("64 megs").is_err());
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time("21:00").map(format_time).as_deref(), Ok("21:00"));
        assert_eq!(parse_time("8:05").map(format_time).as_deref(), Ok("08:05"));
        for bad in [
            "24:00", "21:60", "2100", "21:0", "ab:cd", "-1:00", "21:00:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert!(check_id("loja1").is_ok());
        assert!(check_id("whats-app_2").is_ok());
        for bad in ["", "Loja", "_x", "-x", "a b", "a.b", "ção"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let keys = ["channels", "platform", "poll_interval"];
        assert_eq!(did_you_mean("chanels", keys), Some("channels"));
        assert_eq!(did_you_mean("poll_intervall", keys), Some("poll_interval"));
        assert_eq!(did_you_mean("poll", keys), Some("poll_interval"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
