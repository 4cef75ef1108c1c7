//! Exact decimal parsing of platform money and quantities, shared by the
//! connectors (Loja Integrada, Nuvemshop).
//!
//! Platforms send amounts as decimal strings (`"106.38"`, LI's `"139.9000"`,
//! Nuvemshop's `"5660.00"`) or as JSON numbers (`78.14`). Both are read as
//! decimal text — a JSON number through its shortest round-trip form — so no
//! binary floating point touches an amount, and rounding to cents is half
//! away from zero. A value that is not a decimal is an error the connector
//! turns into [`crate::connector::Money::UNKNOWN`], never zero.

use serde_json::Value;

/// A decimal number: `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// More fractional digits than any amount needs; keeps `10^scale` in range.
const MAX_SCALE: u32 = 18;

impl Decimal {
    /// Parse `[-+]digits[.digits]` (a lone `,` is taken as the decimal
    /// separator, as Brazilian text writes it). No exponents, no thousands separators.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = if text.contains(',') && !text.contains('.') {
            text.replace(',', ".")
        } else {
            text.to_owned()
        };
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text.as_str()),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        let scale = u32::try_from(fraction.len())
            .ok()
            .filter(|s| *s <= MAX_SCALE)?;
        let mut mantissa: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        Some(Self {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// A JSON number or numeric string.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Self::parse(s),
            // serde_json prints f64 in its shortest round-trip form ("78.14").
            Value::Number(n) => Self::parse(&n.to_string()).or_else(|| {
                // Past 10^15 no amount or quantity is meant; the cast below
                // would saturate into a nonsense value.
                let f = n.as_f64().filter(|f| f.abs() < 1e15)?;
                // Exponent forms ("1e-7"): tiny or huge numbers only; cents precision is enough.
                Some(Self {
                    mantissa: (f * 1e6).round() as i128,
                    scale: 6,
                })
            }),
            _ => None,
        }
    }

    /// Rounded half away from zero to `decimals` decimals, as an integer of that unit.
    pub fn to_units(self, decimals: u32) -> Option<i128> {
        if self.scale <= decimals {
            return self
                .mantissa
                .checked_mul(10i128.checked_pow(decimals - self.scale)?);
        }
        let divisor = 10i128.checked_pow(self.scale - decimals)?;
        let quotient = self.mantissa / divisor;
        let remainder = (self.mantissa % divisor).abs();
        let round_away = remainder * 2 >= divisor;
        Some(match (round_away, self.mantissa < 0) {
            (false, _) => quotient,
            (true, false) => quotient + 1,
            (true, true) => quotient - 1,
        })
    }

    /// Whole cents.
    pub fn to_cents(self) -> Option<i64> {
        self.to_units(2).and_then(|c| i64::try_from(c).ok())
    }

    /// `self × other`, exact.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let scale = self
            .scale
            .checked_add(other.scale)
            .filter(|s| *s <= 2 * MAX_SCALE)?;
        Some(Self {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale,
        })
    }

    /// Plain text without trailing zeros: `"1"`, `"2.5"`, `"-0.25"`.
    pub fn to_plain_string(self) -> String {
        let negative = self.mantissa < 0;
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let (whole, fraction) = if digits.len() > scale {
            let (w, f) = digits.split_at(digits.len() - scale);
            (w.to_owned(), f.to_owned())
        } else {
            ("0".to_owned(), format!("{digits:0>scale$}"))
        };
        let fraction = fraction.trim_end_matches('0');
        let sign = if negative && (whole != "0" || !fraction.is_empty()) {
            "-"
        } else {
            ""
        };
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction}")
        }
    }
}

/// What went wrong reading an amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAmount(pub String);

/// Cents of an optional money field: absent or null → `Ok(None)`; a value that
/// is not a decimal → `Err` with what arrived.
pub fn cents(value: Option<&Value>) -> Result<Option<i64>, BadAmount> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => Decimal::from_json(v)
            .and_then(Decimal::to_cents)
            // i64::MIN is the "unknown amount" sentinel of the contract.
            .filter(|c| *c != i64::MIN)
            .map(Some)
            .ok_or_else(|| BadAmount(v.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_with_two_or_four_decimals_and_numbers_become_exact_cents() {
        assert_eq!(cents(Some(&json!("106.38"))), Ok(Some(10638)));
        assert_eq!(cents(Some(&json!("139.9000"))), Ok(Some(13990)));
        assert_eq!(cents(Some(&json!("0.0000"))), Ok(Some(0)));
        assert_eq!(cents(Some(&json!(78.14))), Ok(Some(7814)));
        assert_eq!(
            cents(Some(&json!(0.29))),
            Ok(Some(29)),
            "0.29 * 100 is 28.999… in f64"
        );
        assert_eq!(
            cents(Some(&json!(1.005))),
            Ok(Some(101)),
            "half away from zero on the decimal text"
        );
        assert_eq!(cents(Some(&json!(100))), Ok(Some(10000)));
        assert_eq!(cents(Some(&json!("89,90"))), Ok(Some(8990)));
        assert_eq!(cents(Some(&json!("-5.00"))), Ok(Some(-500)));
        assert_eq!(cents(Some(&json!("12.345"))), Ok(Some(1235)));
        assert_eq!(cents(Some(&json!("-12.345"))), Ok(Some(-1235)));
        assert_eq!(cents(Some(&json!(".5"))), Ok(Some(50)));
    }

    #[test]
    fn absent_null_and_empty_are_none_and_garbage_is_an_error() {
        assert_eq!(cents(None), Ok(None));
        assert_eq!(cents(Some(&Value::Null)), Ok(None));
        assert_eq!(cents(Some(&json!(""))), Ok(None));
        assert_eq!(
            cents(Some(&json!("R$ 10,00"))),
            Err(BadAmount("\"R$ 10,00\"".into()))
        );
        assert_eq!(
            cents(Some(&json!("1,234.56"))),
            Err(BadAmount("\"1,234.56\"".into()))
        );
        assert_eq!(cents(Some(&json!({}))), Err(BadAmount("{}".into())));
        assert!(cents(Some(&json!(-1e300))).is_err(), "found by src/fuzz.rs");
        assert!(
            cents(Some(&json!("-92233720368547758.08"))).is_err(),
            "the unknown sentinel"
        );
    }

    #[test]
    fn quantities_print_without_trailing_zeros() {
        let q = |v: Value| Decimal::from_json(&v).map(Decimal::to_plain_string);
        assert_eq!(q(json!("1.000")).as_deref(), Some("1"));
        assert_eq!(q(json!("2.500")).as_deref(), Some("2.5"));
        assert_eq!(q(json!("0.250")).as_deref(), Some("0.25"));
        assert_eq!(q(json!(3)).as_deref(), Some("3"));
        assert_eq!(q(json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(q(json!("10")).as_deref(), Some("10"));
    }

    #[test]
    fn products_are_exact() {
        let price =
            Decimal::parse("139.9000").and_then(|d| d.checked_mul(Decimal::parse("2.500")?));
        assert_eq!(price.and_then(Decimal::to_cents), Some(34975));
        let third = Decimal::parse("0.333").and_then(|d| d.checked_mul(Decimal::parse("10.00")?));
        assert_eq!(third.and_then(Decimal::to_cents), Some(333));
    }
}
