//! Small text helpers shared by the checklist and the reports.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A duration the way an operator reads it: the two largest units, whole
/// seconds (`3h12m`, `2m5s`, `40s`, `2d3h`).
pub(crate) fn short_duration(duration: SignedDuration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    let mut units = 0;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
            units += 1;
        } else if units > 0 {
            // Skip an empty middle unit but still stop after two places.
            units += 1;
        }
        if units == 2 {
            break;
        }
    }
    out
}

/// "3m20s ago" (or "just now" / "in 5m" for times not in the past).
pub(crate) fn ago(now: Timestamp, then: Timestamp) -> String {
    let age = now.duration_since(then);
    if age.as_secs() == 0 {
        "just now".to_owned()
    } else if age.is_negative() {
        format!("in {}", short_duration(-age))
    } else {
        format!("{} ago", short_duration(age))
    }
}

/// A local date and time in `tz`: `2025-03-14 18:02`.
pub(crate) fn local(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// "1 order" / "3 orders".
pub(crate) fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(short_duration(SignedDuration::from_secs(40)), "40s");
        assert_eq!(short_duration(SignedDuration::from_secs(125)), "2m5s");
        assert_eq!(
            short_duration(SignedDuration::from_secs(3 * 3600 + 12 * 60 + 9)),
            "3h12m"
        );
        assert_eq!(
            short_duration(SignedDuration::from_secs(2 * 86_400 + 5)),
            "2d"
        );
        assert_eq!(short_duration(SignedDuration::from_secs(3600)), "1h");
        assert_eq!(short_duration(SignedDuration::ZERO), "0s");
    }
}
