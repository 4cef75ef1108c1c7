//! Recipient phone numbers: whatever the shop platform stored, normalised to
//! E.164 before a sender plugin is called.
//!
//! Brazilian customers type their numbers in every shape: `(11) 98765-4321`,
//! `011 98765 4321`, `0 21 11 98765-4321` (with a long-distance carrier
//! code), `5511987654321`, `+55 11 8765-4321` (a mobile from before the ninth
//! digit)… [`normalize_br_phone`] runs a Brazilian pre-normaliser (the rules
//! libphonenumber cannot know: trunk and carrier prefixes, legacy 8-digit
//! mobiles, service numbers) and then asks the `phonenumber` crate
//! (libphonenumber's metadata) for a second opinion and for foreign numbers.
//! The numbering rules themselves are in docs/channels.md §Brazilian phone
//! numbers.
//!
//! Landlines are valid numbers but cannot receive WhatsApp or SMS: they come
//! back as `Ok` with [`PhoneKind::Landline`] so the caller decides;
//! [`first_usable_phone`] picks the first number that can receive messages.
//! Nothing here panics on garbage: an unusable value is an [`InvalidPhone`]
//! that says what is wrong with it, for the job's permanent error and the
//! planner's invalid events ([`NoUsablePhone::problem`]).
//!
//! Phone numbers are personal data: error texts (which end up in logs, the
//! queue and `arauto queue show`) never spell a raw value or a normalised
//! number out, only its last four digits and its length ([`masked`]), e.g.
//! `…4444 (10 digits)` — enough to match it against the order on the
//! platform, not enough to call the customer.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Brazilian area codes (DDD) in use.
const VALID_DDDS: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, // SP
    21, 22, 24, // RJ
    27, 28, // ES
    31, 32, 33, 34, 35, 37, 38, // MG
    41, 42, 43, 44, 45, 46, // PR
    47, 48, 49, // SC
    51, 53, 54, 55, // RS
    61, // DF
    62, 64, // GO
    63, // TO
    65, 66, // MT
    67, // MS
    68, // AC
    69, // RO
    71, 73, 74, 75, 77, // BA
    79, // SE
    81, 87, // PE
    82, // AL
    83, // PB
    84, // RN
    85, 88, // CE
    86, 89, // PI
    91, 93, 94, // PA
    92, 97, // AM
    95, // RR
    96, // AP
    98, 99, // MA
];

/// How many trailing digits [`masked`] shows, and the fewest digits a value
/// must have for it to show any (fewer would give most of a short value away).
const SHOWN_DIGITS: usize = 4;
const MIN_DIGITS_TO_SHOW: usize = 8;

/// What kind of line a valid number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneKind {
    /// A mobile: reachable by WhatsApp and SMS.
    Mobile,
    /// A fixed line: a valid number, but no WhatsApp or SMS.
    Landline,
    /// The numbering plan does not tell (United States, Canada…); worth trying.
    MobileOrLandline,
    /// Toll-free, VoIP, pager, personal number… or unknown.
    Other,
}

impl PhoneKind {
    /// Whether WhatsApp or SMS can reach this kind of number.
    pub const fn can_receive_messages(self) -> bool {
        matches!(self, Self::Mobile | Self::MobileOrLandline)
    }
}

impl fmt::Display for PhoneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mobile => "mobile",
            Self::Landline => "landline",
            Self::MobileOrLandline => "mobile or landline",
            Self::Other => "not a mobile or landline number",
        })
    }
}

/// A valid phone number in E.164 form (`+5511987654321`) and its kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct E164 {
    number: String,
    kind: PhoneKind,
}

impl E164 {
    /// `+` followed by country code and number, e.g. `+5511987654321`.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The digits without `+`, as gateways such as Evolution API and Z-API want them.
    pub fn digits(&self) -> &str {
        &self.number[1..]
    }

    /// Mobile, landline…
    pub fn kind(&self) -> PhoneKind {
        self.kind
    }

    /// Whether this is a Brazilian (+55) number.
    pub fn is_brazilian(&self) -> bool {
        self.number.starts_with("+55")
    }

    /// Whether WhatsApp or SMS can reach it.
    pub fn can_receive_messages(&self) -> bool {
        self.kind.can_receive_messages()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.number
    }
}

/// Why a phone value is not a usable number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidReason {
    /// Nothing but whitespace.
    Empty,
    /// Letters or symbols that are not part of a phone number.
    NotANumber,
    /// Fewer digits than any number (with area code) has.
    TooShort {
        /// How many digits there were.
        digits: usize,
    },
    /// A local number without the area code (DDD).
    MissingAreaCode,
    /// More digits than any number has (often two numbers in one field).
    TooLong {
        /// How many digits there were.
        digits: usize,
    },
    /// 0800/0300/0500/0900 or 4004/3003-style service numbers.
    NonGeographic,
    /// A DDD that does not exist.
    BadAreaCode {
        /// The two digits read as the DDD.
        ddd: String,
    },
    /// A 9-digit subscriber number that does not start with 9, or an
    /// 8-digit one starting with 0 or 1.
    BadSubscriberNumber,
    /// libphonenumber's metadata says no such number exists.
    NotAssigned,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the value is empty"),
            Self::NotANumber => f.write_str("it contains letters or symbols that are not part of a phone number"),
            Self::TooShort { digits } => write!(f, "too short ({digits} digits)"),
            Self::MissingAreaCode => f.write_str("the area code (DDD) is missing"),
            Self::TooLong { digits } => write!(f, "too long ({digits} digits; two numbers in one field?)"),
            Self::NonGeographic => {
                f.write_str("0800/0300/4004-style service numbers cannot receive WhatsApp or SMS")
            }
            Self::BadAreaCode { ddd } => write!(f, "area code (DDD) {ddd} does not exist"),
            Self::BadSubscriberNumber => {
                f.write_str("mobile numbers have 9 digits starting with 9 and landlines 8 digits starting with 2-5")
            }
            Self::NotAssigned => f.write_str("no such number exists (libphonenumber)"),
        }
    }
}

impl InvalidReason {
    /// The planner's category of this reason.
    pub const fn problem(&self) -> PhoneProblem {
        match self {
            Self::Empty => PhoneProblem::NoPhone,
            Self::NotANumber => PhoneProblem::NotANumber,
            Self::TooShort { .. } => PhoneProblem::TooShort,
            Self::MissingAreaCode => PhoneProblem::MissingAreaCode,
            Self::TooLong { .. } => PhoneProblem::TooLong,
            Self::NonGeographic => PhoneProblem::ServiceNumber,
            Self::BadAreaCode { .. } => PhoneProblem::BadAreaCode,
            Self::BadSubscriberNumber => PhoneProblem::NotBrazilianMobile,
            Self::NotAssigned => PhoneProblem::NoSuchNumber,
        }
    }
}

/// A phone value that cannot be used; the message masks the raw value ([`masked`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid phone number {}: {reason}", masked(raw))]
pub struct InvalidPhone {
    /// The value as the platform stored it (personal data: never print it).
    pub raw: String,
    /// What is wrong with it.
    pub reason: InvalidReason,
}

/// A phone value as logs and errors may show it: its last four digits and
/// how many digits it has (`…4321 (11 digits)`), only the length when it has
/// too few digits to hide the rest (`5 digits`), and whether letters or
/// symbols were mixed in — never the value itself.
pub fn masked(raw: &str) -> String {
    let digits: Vec<char> = raw.chars().filter(char::is_ascii_digit).collect();
    let foreign = raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || c.is_whitespace() || "+()-./–".contains(c)));
    let mut out = if digits.len() >= MIN_DIGITS_TO_SHOW {
        let tail: String = digits[digits.len() - SHOWN_DIGITS..].iter().collect();
        format!("…{tail} ({} digits", digits.len())
    } else {
        format!("({} digits", digits.len())
    };
    if foreign {
        out.push_str(&format!(
            " among {} characters with letters or symbols",
            raw.chars().count()
        ));
    }
    out.push(')');
    out
}

/// Why one of the customer's phones was passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneRejection {
    /// Not a usable number at all.
    Invalid(InvalidPhone),
    /// A valid number that cannot receive WhatsApp or SMS (landline, toll-free…).
    CannotReceiveMessages {
        /// The value as the platform stored it.
        raw: String,
        /// The normalised number.
        number: E164,
    },
}

impl PhoneRejection {
    /// The planner's category of this rejection.
    pub fn problem(&self) -> PhoneProblem {
        match self {
            Self::Invalid(e) => e.reason.problem(),
            Self::CannotReceiveMessages { number, .. } => match number.kind() {
                PhoneKind::Landline => PhoneProblem::Landline,
                _ => PhoneProblem::NotMobile,
            },
        }
    }
}

impl fmt::Display for PhoneRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::CannotReceiveMessages { raw, number } => {
                write!(
                    f,
                    "phone number {} is a {}, which cannot receive WhatsApp or SMS",
                    masked(raw),
                    number.kind()
                )
            }
        }
    }
}

/// None of the customer's phone numbers can receive messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NoUsablePhone {
    /// Every phone considered, with why it was passed over (empty: the
    /// customer has no phone number at all).
    pub rejected: Vec<PhoneRejection>,
}

impl NoUsablePhone {
    /// Why, in the planner's vocabulary: the problem of the first phone the
    /// platform listed (its best number), or [`PhoneProblem::NoPhone`].
    pub fn problem(&self) -> PhoneProblem {
        self.rejected
            .first()
            .map_or(PhoneProblem::NoPhone, PhoneRejection::problem)
    }
}

impl fmt::Display for NoUsablePhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rejected.is_empty() {
            return f.write_str("the customer has no phone number");
        }
        f.write_str("no usable mobile number among the customer's phones: ")?;
        for (i, rejection) in self.rejected.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            rejection.fmt(f)?;
        }
        Ok(())
    }
}

/// Normalise a phone number as a Brazilian shop stores it to E.164.
///
/// Numbers without a country code are Brazilian; `+<country>` or
/// `00<country>` numbers of other countries are validated by libphonenumber.
/// Brazilian rules, in order: keep digits only; strip a trunk `0` and a
/// carrier selection code (`0 21 11 9…`); strip `55`/`+55` when 10–11
/// digits remain; reject service numbers (0800, 0300, 4004…); check the
/// DDD; give 8-digit mobiles (first digit 6–9) their ninth digit; then
/// confirm with libphonenumber, whose number type wins when it knows it.
///
/// Landlines are returned as `Ok` with [`PhoneKind::Landline`].
pub fn normalize_br_phone(raw: &str) -> Result<E164, InvalidPhone> {
    let invalid = |reason| InvalidPhone {
        raw: raw.to_owned(),
        reason,
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid(InvalidReason::Empty));
    }
    // "(0xx11) 9876-5432": the old notation for "trunk 0 + any carrier".
    let without_xx;
    let parens = trimmed.len() - trimmed.trim_start_matches('(').len();
    let trimmed = match trimmed.get(parens..parens + 3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("0xx") => {
            // Keep the 0, drop the two x's (ASCII, so the byte offsets are char boundaries).
            without_xx = format!("{}{}", &trimmed[..=parens], &trimmed[parens + 3..]);
            without_xx.as_str()
        }
        _ => trimmed,
    };
    let allowed = |c: char| c.is_ascii_digit() || c.is_whitespace() || "+()-./–".contains(c);
    if !trimmed.chars().all(allowed) {
        return Err(invalid(InvalidReason::NotANumber));
    }
    // A '+' is only meaningful in front: "(+55) 11…" or "+55 11…".
    let has_plus = trimmed
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .starts_with('+');
    if trimmed.matches('+').count() > usize::from(has_plus) {
        return Err(invalid(InvalidReason::NotANumber));
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(invalid(InvalidReason::NotANumber));
    }

    let international = if has_plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    let national = match international {
        Some(rest) => match rest.strip_prefix("55") {
            Some(br) => br.to_owned(),
            None => return foreign(rest).map_err(invalid),
        },
        None => strip_national_prefixes(&digits).map_err(invalid)?,
    };
    brazilian(&national).map_err(invalid)
}

/// Pick the first of the customer's phones (best first, as the platform
/// lists them) that can receive WhatsApp or SMS.
pub fn first_usable_phone<S: AsRef<str>>(phones: &[S]) -> Result<E164, NoUsablePhone> {
    let mut rejected = Vec::new();
    for raw in phones.iter().map(AsRef::as_ref) {
        match normalize_br_phone(raw) {
            Ok(number) if number.can_receive_messages() => return Ok(number),
            Ok(number) => rejected.push(PhoneRejection::CannotReceiveMessages {
                raw: raw.to_owned(),
                number,
            }),
            // Empty strings are absent numbers, not errors worth reporting.
            Err(e) if e.reason == InvalidReason::Empty => {}
            Err(e) => rejected.push(PhoneRejection::Invalid(e)),
        }
    }
    Err(NoUsablePhone { rejected })
}

/// Trunk `0`, carrier selection code and country code `55` off a number
/// written without `+`.
fn strip_national_prefixes(digits: &str) -> Result<String, InvalidReason> {
    if let Some(rest) = digits.strip_prefix('0') {
        if is_service_number(rest) {
            return Err(InvalidReason::NonGeographic);
        }
        // 0 + carrier (2 digits) + DDD + 8 or 9 digits.
        if rest.len() == 12 || rest.len() == 13 {
            return Ok(rest[2..].to_owned());
        }
        return Ok(rest.to_owned());
    }
    match digits.strip_prefix("55") {
        Some(rest) if rest.len() == 10 || rest.len() == 11 => Ok(rest.to_owned()),
        _ => Ok(digits.to_owned()),
    }
}

/// 0800/0300/0500/0900 numbers once the trunk `0` is gone (800 123 4567).
fn is_service_number(national: &str) -> bool {
    ["800", "300", "500", "900"]
        .iter()
        .any(|p| national.starts_with(p))
        && (9..=10).contains(&national.len())
}

/// 4004-1234 / 3003-1234 style capital-wide numbers (8 digits).
fn is_shared_cost(subscriber: &str) -> bool {
    subscriber.len() == 8 && (subscriber.starts_with("40") || subscriber.starts_with("300"))
}

fn brazilian(national: &str) -> Result<E164, InvalidReason> {
    // "+55 (0xx11)…" still carries the trunk 0 after the country code.
    let national = match national.strip_prefix('0') {
        Some(rest) if rest.len() >= 10 => rest,
        _ => national,
    };
    if is_service_number(national) || is_shared_cost(national) {
        return Err(InvalidReason::NonGeographic);
    }
    match national.len() {
        0..=7 => {
            return Err(InvalidReason::TooShort {
                digits: national.len(),
            });
        }
        8 | 9 => return Err(InvalidReason::MissingAreaCode),
        10 | 11 => {}
        n => return Err(InvalidReason::TooLong { digits: n }),
    }
    let (ddd, subscriber) = national.split_at(2);
    if !ddd.parse::<u8>().is_ok_and(|d| VALID_DDDS.contains(&d)) {
        return Err(InvalidReason::BadAreaCode {
            ddd: ddd.to_owned(),
        });
    }
    if is_shared_cost(subscriber) {
        return Err(InvalidReason::NonGeographic);
    }
    let first = subscriber.as_bytes()[0];
    let (subscriber, our_kind) = match (subscriber.len(), first) {
        (9, b'9') => (subscriber.to_owned(), PhoneKind::Mobile),
        (8, b'2'..=b'5') => (subscriber.to_owned(), PhoneKind::Landline),
        // A mobile from before the ninth digit (2012–2016).
        (8, b'6'..=b'9') => (format!("9{subscriber}"), PhoneKind::Mobile),
        _ => return Err(InvalidReason::BadSubscriberNumber),
    };
    let number = format!("+55{ddd}{subscriber}");
    let kind = match library_opinion(&number) {
        None => return Err(InvalidReason::NotAssigned),
        Some(PhoneKind::Other) => our_kind,
        Some(kind) => kind,
    };
    Ok(E164 { number, kind })
}

fn foreign(international: &str) -> Result<E164, InvalidReason> {
    match international.len() {
        0..=6 => {
            return Err(InvalidReason::TooShort {
                digits: international.len(),
            });
        }
        7..=15 => {}
        n => return Err(InvalidReason::TooLong { digits: n }),
    }
    let number = format!("+{international}");
    let kind = library_opinion(&number).ok_or(InvalidReason::NotAssigned)?;
    Ok(E164 { number, kind })
}

/// libphonenumber's verdict on an E.164 string: `None` when invalid.
/// Remembered ([`OpinionMemo`]): the verdict depends on the string alone.
fn library_opinion(e164: &str) -> Option<PhoneKind> {
    let mut memo = OPINIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(opinion) = memo.get(e164) {
        return opinion;
    }
    drop(memo);
    let opinion = ask_the_library(e164);
    OPINIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(e164, opinion);
    opinion
}

/// Verdicts kept by [`OpinionMemo`] per generation.
const OPINIONS_PER_GENERATION: usize = 4096;

static OPINIONS: LazyLock<Mutex<OpinionMemo>> =
    LazyLock::new(|| Mutex::new(OpinionMemo::default()));

/// Recent verdicts of libphonenumber. Its parse is the costly step of a
/// phone check (it runs the metadata's regular expressions: 3.7 % of a
/// poll's CPU in `benches/poll_cost.rs`, docs/BENCHMARKS.md), and one
/// order's number is checked again and again: when the order is first seen,
/// at each status change, before each send. Two generations of at most
/// [`OPINIONS_PER_GENERATION`] entries: a full current generation becomes
/// the previous one and the previous one is dropped, so memory stays bounded
/// (well under 1 MiB) without per-entry bookkeeping, and a number in use
/// survives at least one turnover.
#[derive(Default)]
struct OpinionMemo {
    current: HashMap<Box<str>, Option<PhoneKind>>,
    previous: HashMap<Box<str>, Option<PhoneKind>>,
}

impl OpinionMemo {
    /// `Some(verdict)` when remembered (the verdict itself may be `None`).
    fn get(&mut self, e164: &str) -> Option<Option<PhoneKind>> {
        if let Some(opinion) = self.current.get(e164) {
            return Some(*opinion);
        }
        let opinion = *self.previous.get(e164)?;
        self.insert(e164, opinion);
        Some(opinion)
    }

    fn insert(&mut self, e164: &str, opinion: Option<PhoneKind>) {
        if self.current.len() >= OPINIONS_PER_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(e164.into(), opinion);
    }
}

/// libphonenumber's verdict, computed.
fn ask_the_library(e164: &str) -> Option<PhoneKind> {
    use phonenumber::Type;
    // The crate has panicked on odd input before (rust-phonenumber #32): a
    // customer's phone field must never take the daemon down.
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        let number = phonenumber::parse(None, e164).ok()?;
        number
            .is_valid()
            .then(|| number.number_type(&phonenumber::metadata::DATABASE))
    }))
    .ok()??;
    Some(match parsed {
        Type::Mobile => PhoneKind::Mobile,
        Type::FixedLine => PhoneKind::Landline,
        Type::FixedLineOrMobile => PhoneKind::MobileOrLandline,
        _ => PhoneKind::Other,
    })
}

/// Why an order has no phone that WhatsApp or SMS can reach: the first of its
/// phones' problems (the platform lists the best number first), as a small
/// stable vocabulary the phone checks below map their findings to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhoneProblem {
    /// The customer has no phone number at all.
    NoPhone,
    /// A valid landline: no WhatsApp or SMS.
    Landline,
    /// A valid number that is neither mobile nor landline (toll-free, VoIP, pager…).
    NotMobile,
    /// 0800/0300/4004-style service numbers.
    ServiceNumber,
    /// Letters or symbols that are not part of a phone number.
    NotANumber,
    /// Fewer digits than any number with area code.
    TooShort,
    /// More digits than any number (often two numbers in one field).
    TooLong,
    /// A local number without the area code (DDD).
    MissingAreaCode,
    /// An area code (DDD) that does not exist.
    BadAreaCode,
    /// Not shaped like a Brazilian mobile (9 digits starting with 9) or landline.
    NotBrazilianMobile,
    /// libphonenumber knows no such number.
    NoSuchNumber,
}

impl PhoneProblem {
    /// Every problem, in the order reports list them.
    pub const ALL: [PhoneProblem; 11] = [
        Self::NoPhone,
        Self::Landline,
        Self::NotMobile,
        Self::ServiceNumber,
        Self::NotANumber,
        Self::TooShort,
        Self::TooLong,
        Self::MissingAreaCode,
        Self::BadAreaCode,
        Self::NotBrazilianMobile,
        Self::NoSuchNumber,
    ];

    /// The kebab-case key (`landline`, `too-long`…), as serialised.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoPhone => "no-phone",
            Self::Landline => "landline",
            Self::NotMobile => "not-mobile",
            Self::ServiceNumber => "service-number",
            Self::NotANumber => "not-a-number",
            Self::TooShort => "too-short",
            Self::TooLong => "too-long",
            Self::MissingAreaCode => "missing-area-code",
            Self::BadAreaCode => "bad-area-code",
            Self::NotBrazilianMobile => "not-brazilian-mobile",
            Self::NoSuchNumber => "no-such-number",
        }
    }

    /// A few words for humans (`check`, `report`, logs).
    pub const fn label(self) -> &'static str {
        match self {
            Self::NoPhone => "no phone number",
            Self::Landline => "landline",
            Self::NotMobile => "not a mobile number",
            Self::ServiceNumber => "service number (0800, 4004…)",
            Self::NotANumber => "not a phone number",
            Self::TooShort => "too short",
            Self::TooLong => "too long",
            Self::MissingAreaCode => "no area code",
            Self::BadAreaCode => "unknown area code",
            Self::NotBrazilianMobile => "not a Brazilian mobile",
            Self::NoSuchNumber => "no such number",
        }
    }

    /// The human label of a stored key; the key itself if unknown (a newer
    /// version wrote it).
    pub fn label_of(key: &str) -> &str {
        Self::ALL
            .iter()
            .find(|p| p.as_str() == key)
            .map_or(key, |p| p.label())
    }
}

impl std::fmt::Display for PhoneProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn remembered_verdicts_stay_bounded_and_a_number_in_use_survives_a_turnover() {
        let mut memo = OpinionMemo::default();
        memo.insert("+5511987654321", Some(PhoneKind::Mobile));
        for n in 0..OPINIONS_PER_GENERATION {
            memo.insert(&format!("+55119{n:08}"), None);
        }
        // The first number went to the previous generation; asking for it
        // brings it back into the current one.
        assert_eq!(memo.current.len(), 1);
        assert_eq!(memo.previous.len(), OPINIONS_PER_GENERATION);
        assert_eq!(memo.get("+5511987654321"), Some(Some(PhoneKind::Mobile)));
        assert_eq!(memo.get("+5511000000000"), None);
        for n in 0..2 * OPINIONS_PER_GENERATION {
            memo.insert(&format!("+55219{n:08}"), None);
        }
        assert!(memo.current.len() + memo.previous.len() <= 2 * OPINIONS_PER_GENERATION);
        // Through the memo or not, the verdict is the library's.
        assert_eq!(
            library_opinion("+5511987654321"),
            ask_the_library("+5511987654321")
        );
        assert_eq!(
            library_opinion("+5511987654321"),
            ask_the_library("+5511987654321")
        );
    }

    use super::*;

    /// What a raw value must become.
    enum Expect {
        Ok(&'static str, PhoneKind),
        Err(InvalidReason),
    }
    use Expect::{Err as Bad, Ok as Good};
    use PhoneKind::{Landline, Mobile, MobileOrLandline};

    #[test]
    fn real_world_shapes_normalise_as_expected() {
        let table: Vec<(&str, Expect)> = vec![
            // Mobiles in every punctuation.
            ("11987654321", Good("+5511987654321", Mobile)),
            ("(11) 98765-4321", Good("+5511987654321", Mobile)),
            ("(11)98765-4321", Good("+5511987654321", Mobile)),
            ("11 9 8765 4321", Good("+5511987654321", Mobile)),
            ("11.98765.4321", Good("+5511987654321", Mobile)),
            ("  (21) 99876–5432 ", Good("+5521998765432", Mobile)),
            // Country code with and without +, with punctuation.
            ("+55 11 98765-4321", Good("+5511987654321", Mobile)),
            ("+55 (11) 98765-4321", Good("+5511987654321", Mobile)),
            ("5511987654321", Good("+5511987654321", Mobile)),
            ("55 11 98765 4321", Good("+5511987654321", Mobile)),
            ("(+55) 92 98765-4321", Good("+5592987654321", Mobile)),
            ("005511987654321", Good("+5511987654321", Mobile)),
            // DDD 55 (Santa Maria, RS) is not a country code.
            ("55 99876-5432", Good("+5555998765432", Mobile)),
            ("5555998765432", Good("+5555998765432", Mobile)),
            // Trunk 0 and carrier selection codes.
            ("011 98765-4321", Good("+5511987654321", Mobile)),
            ("(011) 98765-4321", Good("+5511987654321", Mobile)),
            ("0 21 11 98765-4321", Good("+5511987654321", Mobile)),
            ("(0xx11) 9876-5432", Good("+5511998765432", Mobile)),
            ("0XX21 3333-4444", Good("+552133334444", Landline)),
            ("0xx... no", Bad(InvalidReason::NotANumber)),
            ("015 31 3333-4444", Good("+553133334444", Landline)),
            ("+55 (011) 98765-4321", Good("+5511987654321", Mobile)),
            // Legacy 8-digit mobiles gain the ninth digit.
            ("(11) 8765-4321", Good("+5511987654321", Mobile)),
            ("+55 92 8765-4321", Good("+5592987654321", Mobile)),
            ("559187654321", Good("+5591987654321", Mobile)),
            ("71 7123-4567", Good("+5571971234567", Mobile)),
            // Landlines: valid, but not messageable.
            ("(11) 3333-4444", Good("+551133334444", Landline)),
            ("+55 48 3222-1100", Good("+554832221100", Landline)),
            ("551125551234", Good("+551125551234", Landline)),
            // Service numbers.
            ("0800 123 4567", Bad(InvalidReason::NonGeographic)),
            ("0300 789 1234", Bad(InvalidReason::NonGeographic)),
            ("4004-1234", Bad(InvalidReason::NonGeographic)),
            ("(11) 4004-1234", Bad(InvalidReason::NonGeographic)),
            ("3003 1234", Bad(InvalidReason::NonGeographic)),
            // Foreign numbers.
            ("+1 650 253 0000", Good("+16502530000", MobileOrLandline)),
            ("+351 912 345 678", Good("+351912345678", Mobile)),
            ("+44 7911 123456", Good("+447911123456", Mobile)),
            ("+44 20 7946 0958", Good("+442079460958", Landline)),
            ("+1 999 999 9999", Bad(InvalidReason::NotAssigned)),
            // Garbage.
            ("", Bad(InvalidReason::Empty)),
            ("   ", Bad(InvalidReason::Empty)),
            ("não tenho", Bad(InvalidReason::NotANumber)),
            ("11 98765-4321 ramal 2", Bad(InvalidReason::NotANumber)),
            ("----", Bad(InvalidReason::NotANumber)),
            ("11 98765+4321", Bad(InvalidReason::NotANumber)),
            ("12345", Bad(InvalidReason::TooShort { digits: 5 })),
            ("98765-4321", Bad(InvalidReason::MissingAreaCode)),
            ("8765-4321", Bad(InvalidReason::MissingAreaCode)),
            (
                "11 98765-4321 / 11 3333-4444",
                Bad(InvalidReason::TooLong { digits: 21 }),
            ),
            ("119876543210", Bad(InvalidReason::TooLong { digits: 12 })),
            ("+55 11 18765-432", Bad(InvalidReason::BadSubscriberNumber)),
            (
                "(20) 98765-4321",
                Bad(InvalidReason::BadAreaCode { ddd: "20".into() }),
            ),
            (
                "(10) 3333-4444",
                Bad(InvalidReason::BadAreaCode { ddd: "10".into() }),
            ),
            (
                "(52) 98765-4321",
                Bad(InvalidReason::BadAreaCode { ddd: "52".into() }),
            ),
            ("(11) 1234-5678", Bad(InvalidReason::BadSubscriberNumber)),
            ("(11) 88765-4321", Bad(InvalidReason::BadSubscriberNumber)),
            ("+55", Bad(InvalidReason::TooShort { digits: 0 })),
        ];
        assert!(table.len() >= 20);
        let mut failures = Vec::new();
        for (raw, expect) in &table {
            let got = normalize_br_phone(raw);
            let ok = match (expect, &got) {
                (Good(number, kind), Ok(e)) => e.as_str() == *number && e.kind() == *kind,
                (Bad(reason), Err(e)) => e.reason == *reason && e.raw == *raw,
                _ => false,
            };
            if !ok {
                failures.push(format!("{raw:?} → {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "unexpected results:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn the_error_masks_the_raw_value() {
        let e = normalize_br_phone("(20) 98765-4321").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("invalid phone number …4321 (11 digits): area code (DDD) 20 does not exist")
        );
        let long = "9".repeat(500);
        let message = normalize_br_phone(&long)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.len() < 120 && message.contains("(500 digits)"),
            "{message}"
        );
    }

    #[test]
    fn masking_shows_four_digits_and_the_length_only() {
        for (raw, shown) in [
            ("(11) 3333-4444", "…4444 (10 digits)"),
            ("+55 11 98765-4321", "…4321 (13 digits)"),
            ("12345", "(5 digits)"),
            ("", "(0 digits)"),
            (
                "não tenho",
                "(0 digits among 9 characters with letters or symbols)",
            ),
            (
                "11 98765-4321 ramal 2",
                "…3212 (12 digits among 21 characters with letters or symbols)",
            ),
        ] {
            assert_eq!(masked(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn each_unusable_phone_has_its_own_problem() {
        let problem = |phones: &[&str]| {
            first_usable_phone(phones)
                .err()
                .map(|e| (e.problem(), e.to_string()))
        };
        let table: [(&[&str], PhoneProblem, &str); 12] = [
            (&[], PhoneProblem::NoPhone, "no phone number"),
            (&["  "], PhoneProblem::NoPhone, "no phone number"),
            (
                &["(11) 3333-4444"],
                PhoneProblem::Landline,
                "…4444 (10 digits) is a landline",
            ),
            (
                &["0800 123 4567"],
                PhoneProblem::ServiceNumber,
                "0800/0300/4004",
            ),
            (
                &["não tenho"],
                PhoneProblem::NotANumber,
                "letters or symbols",
            ),
            (&["12345"], PhoneProblem::TooShort, "too short (5 digits)"),
            (
                &["11 98765-4321 / 11 3333-4444"],
                PhoneProblem::TooLong,
                "too long (21 digits",
            ),
            (
                &["98765-4321"],
                PhoneProblem::MissingAreaCode,
                "area code (DDD) is missing",
            ),
            (
                &["(20) 98765-4321"],
                PhoneProblem::BadAreaCode,
                "DDD) 20 does not exist",
            ),
            (
                &["(11) 1234-5678"],
                PhoneProblem::NotBrazilianMobile,
                "mobile numbers have 9 digits",
            ),
            (
                &["+1 999 999 9999"],
                PhoneProblem::NoSuchNumber,
                "no such number",
            ),
            // The best (first) number decides the category; all are reported.
            (
                &["abc", "(11) 3333-4444"],
                PhoneProblem::NotANumber,
                "is a landline",
            ),
        ];
        for (phones, expected, text) in table {
            let got = problem(phones);
            assert!(
                got.as_ref()
                    .is_some_and(|(p, message)| *p == expected && message.contains(text)),
                "{phones:?} → {got:?}, expected {expected:?} and {text:?}"
            );
        }
        assert_eq!(PhoneProblem::Landline.as_str(), "landline");
        assert_eq!(PhoneProblem::label_of("too-long"), "too long");
        assert_eq!(PhoneProblem::label_of("from-the-future"), "from-the-future");
    }

    #[test]
    fn e164_accessors() {
        let n = normalize_br_phone("(11) 98765-4321").unwrap();
        assert_eq!(
            (n.as_str(), n.digits(), n.to_string().as_str()),
            ("+5511987654321", "5511987654321", "+5511987654321")
        );
        assert!(n.is_brazilian() && n.can_receive_messages());
        let us = normalize_br_phone("+1 650 253 0000").unwrap();
        assert!(!us.is_brazilian() && us.can_receive_messages());
    }

    #[test]
    fn first_usable_phone_skips_landlines_and_garbage_and_reports_them() {
        let phones = [
            "",
            "(11) 3333-4444",
            "abc",
            "(11) 98765-4321",
            "(21) 99999-0000",
        ];
        assert_eq!(
            first_usable_phone(&phones)
                .map(|p| p.to_string())
                .as_deref(),
            Ok("+5511987654321")
        );

        let none: [&str; 0] = [];
        let e = first_usable_phone(&none).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("the customer has no phone number")
        );

        let e = first_usable_phone(&["(11) 3333-4444", "0800 123 4567", " "])
            .err()
            .unwrap_or(NoUsablePhone { rejected: vec![] });
        assert_eq!(e.rejected.len(), 2);
        let message = e.to_string();
        assert!(
            message.contains("phone number …4444 (10 digits) is a landline"),
            "{message}"
        );
        assert!(
            message.contains("invalid phone number …4567 (11 digits)"),
            "{message}"
        );
        assert!(
            !message.contains("3333"),
            "no more than the last 4 digits: {message}"
        );
    }

    #[test]
    fn normalising_is_idempotent() {
        for raw in [
            "(11) 8765-4321",
            "0 21 11 98765-4321",
            "+44 7911 123456",
            "(48) 3222-1100",
        ] {
            let once = normalize_br_phone(raw).unwrap();
            assert_eq!(normalize_br_phone(once.as_str()), Ok(once.clone()), "{raw}");
        }
    }

    proptest::proptest! {
        /// Any input: no panic, and every Ok is well-formed E.164 that normalises to itself.
        #[test]
        fn never_panics_and_only_returns_e164(raw in "\\PC{0,40}") {
            if let Ok(n) = normalize_br_phone(&raw) {
                proptest::prop_assert!(n.as_str().starts_with('+'));
                proptest::prop_assert!(n.digits().chars().all(|c| c.is_ascii_digit()));
                proptest::prop_assert!((8..=16).contains(&n.as_str().len()));
                proptest::prop_assert_eq!(normalize_br_phone(n.as_str()), Ok(n.clone()));
            }
        }

        /// Phone-shaped input (digits and punctuation) exercises the BR rules.
        #[test]
        fn phone_shaped_input_never_panics(raw in "[+]?[0-9 ().-]{0,24}") {
            let _ = normalize_br_phone(&raw);
        }
    }
}
