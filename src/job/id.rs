//! Time-ordered job ids, shared by decide (which cancels jobs by id), the
//! queue (which keys its tables by them) and the CLI (`arauto queue show ID`).
//!
//! Layout as in ULID: unix milliseconds in the high 48 bits, 80 low bits that
//! start at a random value each millisecond and count up within it. Ids sort by
//! creation time, so the jobs table's key order is creation order and "entered
//! in the last five minutes" is a range scan. Written by hand (40 lines) rather
//! than pulling in a ULID crate: we need the raw `u128` as a redb key and our own
//! monotonic generator inside the single writer anyway.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Identifies one job. Displays as 26 lowercase Crockford base32 characters
/// (e.g. `01jbz3k5q8c9m2w4x6y7z8a9bc`), the form `arauto queue show ID` accepts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u128);

const RANDOM_BITS: u32 = 80;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const ENCODED_LEN: usize = 26;

impl JobId {
    /// Wraps a raw id (as stored in keys).
    pub const fn from_u128(raw: u128) -> Self {
        Self(raw)
    }

    /// The raw id.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// Milliseconds since the epoch encoded in the id.
    pub const fn unix_ms(self) -> u64 {
        (self.0 >> RANDOM_BITS) as u64
    }

    /// When the id was generated (millisecond precision).
    pub fn timestamp(self) -> Timestamp {
        i64::try_from(self.unix_ms())
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .unwrap_or(Timestamp::MAX)
    }

    /// The smallest id that can be generated at `at` or later: the lower bound
    /// of a "created since" range scan.
    pub fn lower_bound_at(at: Timestamp) -> Self {
        Self(u128::from(timestamp_ms(at)) << RANDOM_BITS)
    }
}

/// Milliseconds since the epoch, clamped to `0..` (ids and index keys are unsigned).
pub(crate) fn timestamp_ms(at: Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; ENCODED_LEN];
        let mut value = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(value & 31) as usize];
            value >>= 5;
        }
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

/// Why a string is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a job id: {reason} (expected 26 characters like 01jbz3k5q8c9m2w4x6y7z8a9bc)"
)]
pub struct ParseJobIdError {
    input: String,
    reason: &'static str,
}

impl FromStr for JobId {
    type Err = ParseJobIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseJobIdError {
            input: input.to_owned(),
            reason,
        };
        if input.len() != ENCODED_LEN {
            return Err(error("wrong length"));
        }
        let mut value: u128 = 0;
        for (index, byte) in input.bytes().enumerate() {
            let digit = decode_digit(byte).ok_or_else(|| error("invalid character"))?;
            if index == 0 && digit > 7 {
                return Err(error("out of range"));
            }
            value = (value << 5) | u128::from(digit);
        }
        Ok(Self(value))
    }
}

/// Crockford decoding: case-insensitive, `i`/`l` read as 1 and `o` as 0.
fn decode_digit(byte: u8) -> Option<u8> {
    let byte = byte.to_ascii_lowercase();
    let byte = match byte {
        b'i' | b'l' => b'1',
        b'o' => b'0',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|&c| c == byte)
        .and_then(|p| u8::try_from(p).ok())
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Generates strictly increasing ids. Lives in the single writer, so no locking.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    last: u128,
}

impl IdGenerator {
    /// Continues after `last` (the newest stored id), so ids stay increasing even
    /// if the clock stepped back across a restart.
    pub(crate) fn after(last: Option<JobId>) -> Self {
        Self {
            last: last.map_or(0, JobId::as_u128),
        }
    }

    /// Continues after `id` too if it is newer than the last id given out
    /// (jobs imported with their own ids must not be met again).
    pub(crate) fn advance_past(&mut self, id: JobId) {
        self.last = self.last.max(id.as_u128());
    }

    pub(crate) fn next(&mut self, now: Timestamp) -> JobId {
        let now_ms = u128::from(timestamp_ms(now)) & ((1u128 << 48) - 1);
        let last_ms = self.last >> RANDOM_BITS;
        let next = if now_ms > last_ms {
            // Top random bit cleared: leaves room to count up within the millisecond.
            let random = rand::random::<u128>() & ((1u128 << (RANDOM_BITS - 1)) - 1);
            (now_ms << RANDOM_BITS) | random
        } else {
            // Same millisecond or a clock that went backwards: keep counting.
            self.last.saturating_add(1)
        };
        self.last = next;
        JobId(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn display_round_trips_and_sorts_like_the_number() -> TestResult {
        let mut generator = IdGenerator::after(None);
        let now = Timestamp::from_second(1_700_000_000)?;
        let ids: Vec<JobId> = (0..1000).map(|_| generator.next(now)).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        for id in &ids {
            let text = id.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(text.parse::<JobId>(), Ok(*id));
            assert_eq!(text.to_uppercase().parse::<JobId>(), Ok(*id));
            assert_eq!(id.timestamp(), now);
        }
        assert_eq!(
            JobId(u128::MAX).to_string().parse::<JobId>(),
            Ok(JobId(u128::MAX))
        );
        Ok(())
    }

    #[test]
    fn ids_keep_increasing_when_the_clock_goes_back() -> TestResult {
        let later = Timestamp::from_second(1_700_000_100)?;
        let earlier = Timestamp::from_second(1_700_000_000)?;
        let mut generator = IdGenerator::after(None);
        let first = generator.next(later);
        let mut resumed = IdGenerator::after(Some(first));
        assert!(resumed.next(earlier) > first);
        assert!(JobId::lower_bound_at(later) <= first);
        Ok(())
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!("short".parse::<JobId>().is_err());
        assert!("8zzzzzzzzzzzzzzzzzzzzzzzzz".parse::<JobId>().is_err());
        assert!("0000000000000000000000000u".parse::<JobId>().is_err());
        match "x".parse::<JobId>() {
            Err(error) => assert!(error.to_string().contains("\"x\"")),
            Ok(id) => panic!("parsed {id}"),
        }
    }
}
