use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An amount of money in cents (centavos). Platforms report money as decimal
/// strings or numbers; connectors convert to cents so arithmetic is exact.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    /// What a connector of contract 0.1 sends for an amount it could not read
    /// (`money.cents = i64::MIN`; see `plugins/wit/since_v0.2.0`).
    pub const UNKNOWN_CENTS: i64 = i64::MIN;

    /// The amount a connector reported, `None` for the "unknown" sentinel.
    pub fn from_plugin_cents(cents: i64) -> Option<Self> {
        (cents != Self::UNKNOWN_CENTS).then_some(Self(cents))
    }

    /// Brazilian format with thousands separators: `R$ 1.234,56`.
    pub fn format_brl(self) -> String {
        let negative = self.0 < 0;
        let cents = self.0.unsigned_abs();
        let (units, frac) = (cents / 100, cents % 100);
        let digits = units.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push('.');
            }
            grouped.push(ch);
        }
        format!("{}R$ {grouped},{frac:02}", if negative { "-" } else { "" })
    }
}

/// The platform status an order is in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderStatus {
    /// Platform code, e.g. `pedido_enviado`.
    pub code: String,
    /// Display name, e.g. `Pedido Enviado`.
    pub name: String,
}

/// The buyer, as far as notifications need to know.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Full name.
    pub name: String,
    /// First name, for greetings.
    pub first_name: String,
    /// Raw phone numbers as the platform stores them, best first.
    pub phones: Vec<String>,
    /// E-mail address, when known.
    pub email: Option<String>,
    /// The buyer's id on a chat app (e.g. a Telegram chat id collected at
    /// checkout), when the platform holds one. Absent from records stored
    /// before contract 0.2 and left out of the serde form when unknown, so
    /// stored snapshots and the 0.1 `event-json` keep their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
}

/// Normalised family of a payment method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentFamily {
    /// PIX instant payment.
    Pix,
    /// Boleto bancário.
    Boleto,
    /// Credit card.
    CreditCard,
    /// Bank deposit / transfer.
    Deposit,
    /// Paid outside the platform (marketplace hubs).
    External,
    /// Anything else.
    Other,
}

impl PaymentFamily {
    /// Parse the family string a connector reports; unknown strings are `Other`.
    pub fn from_plugin(s: &str) -> Self {
        match s {
            "pix" => Self::Pix,
            "boleto" => Self::Boleto,
            "credit-card" => Self::CreditCard,
            "deposit" => Self::Deposit,
            "external" => Self::External,
            _ => Self::Other,
        }
    }
}

/// How the order is (being) paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Platform code, e.g. `pagali-pix`.
    pub code: String,
    /// Display name, e.g. `Pix`.
    pub name: String,
    /// Normalised family.
    pub family: PaymentFamily,
    /// Number of installments, when paid in parcels.
    pub installments: Option<u32>,
}

/// One shipment of an order; split shipments have several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Stable id within the order.
    pub id: String,
    /// Carrier, e.g. `Correios`.
    pub carrier: Option<String>,
    /// Shipping method, e.g. `PAC`.
    pub method: Option<String>,
    /// Tracking code, once the shop has it.
    pub tracking_code: Option<String>,
    /// Tracking page, when the platform or connector can build one.
    pub tracking_url: Option<String>,
}

/// One order line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: Option<String>,
    /// Product name.
    pub name: String,
    /// Decimal quantity as text, e.g. `1` or `2.5`; `None` when the platform
    /// sent something unreadable (never guessed as 1).
    pub quantity: Option<String>,
    /// Price of one unit; `None` when unreadable (never read as zero).
    pub unit_price: Option<Money>,
    /// Line total; `None` when unreadable.
    pub total: Option<Money>,
}

/// Boleto payment data (only from platforms that expose it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boleto {
    /// Linha digitável / barcode.
    pub barcode: String,
    /// Link to the printable boleto.
    pub url: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: Option<String>,
}

/// PIX charge data (only from platforms that expose it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pix {
    /// Copia-e-cola code.
    pub code: String,
    /// QR code image link.
    pub qr_code_url: Option<String>,
    /// When the charge expires.
    pub expires_at: Option<Timestamp>,
}

/// A normalised order as a connector saw it at poll time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Stable identity within the store (Loja Integrada: the `numero`).
    pub id: String,
    /// Store-facing order number.
    pub number: String,
    /// Current platform status.
    pub status: OrderStatus,
    /// When the order was placed.
    pub created_at: Timestamp,
    /// When the platform last modified it.
    pub updated_at: Timestamp,
    /// The buyer.
    pub customer: Customer,
    /// Sum of the items. Amounts are `None` when the platform sent a value
    /// that cannot be read: a customer must never be told "R$ 0,00" for an
    /// amount nobody knows (templates test them with `{% if order.total %}`).
    pub subtotal: Option<Money>,
    /// Shipping fee.
    pub shipping: Option<Money>,
    /// Discount.
    pub discount: Option<Money>,
    /// Amount charged.
    pub total: Option<Money>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Payment method.
    pub payment: Option<Payment>,
    /// Shipments, with tracking codes once known.
    pub shipments: Vec<Shipment>,
    /// Order lines.
    pub items: Vec<Item>,
    /// Boleto data, when the platform exposes it.
    pub boleto: Option<Boleto>,
    /// PIX data, when the platform exposes it.
    pub pix: Option<Pix>,
    /// False when only a summary was read (orders seeded before the store's
    /// first-sync cutoff): customer, items, payment and shipments may be empty.
    pub detailed: bool,
    /// Platform-specific extras, available to templates as `order.extras`.
    pub extras: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brl_formatting_groups_thousands_and_uses_comma_decimals() {
        assert_eq!(Money(0).format_brl(), "R$ 0,00");
        assert_eq!(Money(5).format_brl(), "R$ 0,05");
        assert_eq!(Money(10880).format_brl(), "R$ 108,80");
        assert_eq!(Money(123456).format_brl(), "R$ 1.234,56");
        assert_eq!(Money(100000000).format_brl(), "R$ 1.000.000,00");
        assert_eq!(Money(-2550).format_brl(), "-R$ 25,50");
    }

    #[test]
    fn the_plugin_sentinel_is_an_unknown_amount_and_everything_else_is_kept() {
        assert_eq!(Money::from_plugin_cents(i64::MIN), None);
        assert_eq!(Money::from_plugin_cents(0), Some(Money(0)));
        assert_eq!(Money::from_plugin_cents(-1), Some(Money(-1)));
        assert_eq!(Money::from_plugin_cents(i64::MAX), Some(Money(i64::MAX)));
    }

    #[test]
    fn records_stored_before_amounts_became_optional_still_load() {
        let item: Item = serde_json::from_str(
            r#"{"sku":null,"name":"Caneca","quantity":"2","unit_price":990,"total":1980}"#,
        )
        .unwrap();
        assert_eq!(item.quantity.as_deref(), Some("2"));
        assert_eq!(item.total, Some(Money(1980)));
    }
}
