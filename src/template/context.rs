//! The variables a template sees, built from the normalised order.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value};
use serde::{Serialize, Serializer};

use crate::decide::TrackingRef;
use crate::model::{Money, NotificationKind, Order, PaymentFamily, Shipment};

/// A value the platform may have sent unreadable (an amount of `"abc"`, a
/// quantity of `null`). Known values behave as the plain value. An unknown
/// one is falsy in `{% if %}` (so `{% if order.total %}…{% endif %}` skips
/// it) and refuses to be printed or computed with: a message that needs it
/// fails to render, naming the variable, and is held instead of telling the
/// customer "R$ 0,00" (see [`UnknownValue`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Maybe<T> {
    /// Read from the platform.
    Known(T),
    /// Unreadable; the variable's name as templates spell it.
    Unknown(&'static str),
}

impl<T> Maybe<T> {
    fn from_option(value: Option<T>, variable: &'static str) -> Self {
        value.map_or(Self::Unknown(variable), Self::Known)
    }

    /// The value, if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Unknown(_) => None,
        }
    }
}

impl<T: Serialize> Serialize for Maybe<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(value) => value.serialize(serializer),
            // Inside minijinja the marker object survives serialisation;
            // anywhere else (JSON) an unknown value is plainly null.
            Self::Unknown(variable) if minijinja::value::serializing_for_value() => {
                Value::from_object(UnknownValue { variable }).serialize(serializer)
            }
            Self::Unknown(_) => serializer.serialize_none(),
        }
    }
}

/// The template-side form of [`Maybe::Unknown`]: falsy, prints nothing by
/// itself, and makes the formatter and the `brl` filter fail with
/// [`UnknownValue::message`].
#[derive(Debug)]
pub struct UnknownValue {
    /// e.g. `order.total`.
    pub variable: &'static str,
}

/// Part of every [`UnknownValue::message`], so a render error can be told apart.
pub(crate) const UNKNOWN_VALUE_MARKER: &str = "is unknown: the platform sent a value";

impl UnknownValue {
    /// Why a template that uses this value cannot be rendered.
    pub fn message(&self) -> String {
        format!(
            "`{}` {UNKNOWN_VALUE_MARKER} that cannot be read; test it with `{{% if {} %}}` \
             if the message makes sense without it",
            self.variable, self.variable
        )
    }
}

impl Object for UnknownValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn is_true(self: &Arc<Self>) -> bool {
        false
    }

    fn render(self: &Arc<Self>, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// The store, as templates and date formatting need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// Store id as configured.
    pub id: String,
    /// The store's display name (`description` in the config).
    pub description: String,
    /// The store's time zone (dates are shown in it).
    pub time_zone: TimeZone,
}

/// Everything a template can use. Serialises to the variable tree documented
/// in the `template` module's own doc; optional values are `none` (printed
/// as nothing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateContext {
    /// The buyer.
    pub customer: CustomerVars,
    /// The order.
    pub order: OrderVars,
    /// The relevant shipment's tracking (see [`TemplateContext::new`]).
    pub tracking: TrackingVars,
    /// The store.
    pub store: StoreVars,
    /// The notification being rendered.
    pub notification: NotificationVars,
}

/// `customer.*`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomerVars {
    /// Full name.
    pub name: String,
    /// First name (falls back to the first word of the name).
    pub first_name: String,
    /// E-mail, if known.
    pub email: Option<String>,
    /// The first phone as the platform stores it, if any.
    pub phone: Option<String>,
}

/// `order.*`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderVars {
    /// Platform identity.
    pub id: String,
    /// Store-facing number.
    pub number: String,
    /// Status display name.
    pub status: String,
    /// Status code.
    pub status_code: String,
    /// `dd/mm/aaaa HH:MM` in the store's zone.
    pub created_at: String,
    /// `dd/mm/aaaa`.
    pub created_date: String,
    /// `dd/mm/aaaa HH:MM` in the store's zone.
    pub updated_at: String,
    /// `R$ 1.234,56`.
    pub total: Maybe<String>,
    /// Total in cents.
    pub total_cents: Maybe<i64>,
    /// Items sum, formatted.
    pub subtotal: Maybe<String>,
    /// Items sum in cents.
    pub subtotal_cents: Maybe<i64>,
    /// Shipping fee, formatted.
    pub shipping: Maybe<String>,
    /// Shipping fee in cents.
    pub shipping_cents: Maybe<i64>,
    /// Discount, formatted (positive).
    pub discount: Maybe<String>,
    /// Discount in cents.
    pub discount_cents: Maybe<i64>,
    /// ISO 4217 code.
    pub currency: String,
    /// Payment method display name.
    pub payment_method: Option<String>,
    /// Payment method platform code.
    pub payment_code: Option<String>,
    /// `pix`, `boleto`, `credit-card`, `deposit`, `external`, `other`.
    pub payment_family: Option<&'static str>,
    /// `Pix`, `Boleto`, `Cartão de crédito`, …
    pub payment_family_label: Option<&'static str>,
    /// Number of installments.
    pub installments: Option<u32>,
    /// Order lines.
    pub items: Vec<ItemVars>,
    /// Sum of the quantities (whole units); unknown when any quantity is.
    pub item_count: Maybe<u64>,
    /// Shipments.
    pub shipments: Vec<ShipmentVars>,
    /// Boleto data, when the platform exposes it.
    pub boleto: Option<BoletoVars>,
    /// PIX data, when the platform exposes it.
    pub pix: Option<PixVars>,
    /// Platform-specific extras (JSON).
    pub extras: serde_json::Value,
}

/// One of `order.items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemVars {
    /// Product name.
    pub name: String,
    /// SKU.
    pub sku: Option<String>,
    /// Quantity, Brazilian style (`2`, `2,5`).
    pub quantity: Maybe<String>,
    /// Unit price, formatted.
    pub unit_price: Maybe<String>,
    /// Unit price in cents.
    pub unit_price_cents: Maybe<i64>,
    /// Line total, formatted.
    pub total: Maybe<String>,
    /// Line total in cents.
    pub total_cents: Maybe<i64>,
}

/// One of `order.shipments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShipmentVars {
    /// Shipment id.
    pub id: String,
    /// Carrier.
    pub carrier: Option<String>,
    /// Shipping method.
    pub method: Option<String>,
    /// Tracking code.
    pub tracking_code: Option<String>,
    /// Tracking page.
    pub tracking_url: Option<String>,
}

/// `order.boleto`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BoletoVars {
    /// Linha digitável.
    pub barcode: String,
    /// Printable boleto.
    pub url: Option<String>,
    /// `dd/mm/aaaa`.
    pub due_date: Option<String>,
}

/// `order.pix`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PixVars {
    /// Copia-e-cola code.
    pub code: String,
    /// QR code image.
    pub qr_code_url: Option<String>,
    /// `dd/mm/aaaa HH:MM`.
    pub expires_at: Option<String>,
}

/// `tracking.*`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrackingVars {
    /// Tracking code.
    pub code: Option<String>,
    /// Tracking page.
    pub url: Option<String>,
    /// Carrier.
    pub carrier: Option<String>,
    /// Shipping method.
    pub method: Option<String>,
    /// Shipment id.
    pub shipment_id: Option<String>,
}

/// `store.*`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreVars {
    /// Store id.
    pub id: String,
    /// Display name.
    pub description: String,
}

/// `notification.*`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationVars {
    /// e.g. `order-shipped`.
    pub kind: &'static str,
    /// e.g. `Pedido enviado`.
    pub label: &'static str,
}

impl TemplateContext {
    /// Build the variables for a notification of `kind` about `order`.
    ///
    /// `tracking` picks the shipment for `tracking.*` (tracking-updated jobs
    /// carry it); without it the first shipment with a tracking code is used.
    pub fn new(
        order: &Order,
        kind: NotificationKind,
        store: &StoreInfo,
        tracking: Option<&TrackingRef>,
    ) -> Self {
        let tz = &store.time_zone;
        let first_name = if order.customer.first_name.trim().is_empty() {
            order
                .customer
                .name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            order.customer.first_name.trim().to_owned()
        };
        let payment = order.payment.as_ref();
        let items: Vec<ItemVars> = order
            .items
            .iter()
            .map(|item| ItemVars {
                name: item.name.clone(),
                sku: item.sku.clone(),
                quantity: Maybe::from_option(
                    item.quantity.as_deref().map(quantity_pt),
                    "item.quantity",
                ),
                unit_price: formatted(item.unit_price, "item.unit_price"),
                unit_price_cents: cents(item.unit_price, "item.unit_price_cents"),
                total: formatted(item.total, "item.total"),
                total_cents: cents(item.total, "item.total_cents"),
            })
            .collect();
        let item_count = Maybe::from_option(
            order
                .items
                .iter()
                .map(|i| {
                    i.quantity
                        .as_deref()
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .filter(|q| q.is_finite())
                        .map(|q| q.round().max(0.0) as u64)
                })
                .try_fold(0u64, |sum, q| q.map(|q| sum.saturating_add(q))),
            "order.item_count",
        );
        TemplateContext {
            customer: CustomerVars {
                name: order.customer.name.trim().to_owned(),
                first_name,
                email: order
                    .customer
                    .email
                    .clone()
                    .filter(|e| !e.trim().is_empty()),
                phone: order.customer.phones.first().cloned(),
            },
            order: OrderVars {
                id: order.id.clone(),
                number: order.number.clone(),
                status: order.status.name.clone(),
                status_code: order.status.code.clone(),
                created_at: format_datetime(order.created_at, tz),
                created_date: format_date(order.created_at, tz),
                updated_at: format_datetime(order.updated_at, tz),
                total: formatted(order.total, "order.total"),
                total_cents: cents(order.total, "order.total_cents"),
                subtotal: formatted(order.subtotal, "order.subtotal"),
                subtotal_cents: cents(order.subtotal, "order.subtotal_cents"),
                shipping: formatted(order.shipping, "order.shipping"),
                shipping_cents: cents(order.shipping, "order.shipping_cents"),
                discount: formatted(
                    order.discount.map(|d| Money(d.0.saturating_abs())),
                    "order.discount",
                ),
                discount_cents: cents(
                    order.discount.map(|d| Money(d.0.saturating_abs())),
                    "order.discount_cents",
                ),
                currency: order.currency.clone(),
                payment_method: payment.map(|p| p.name.clone()),
                payment_code: payment.map(|p| p.code.clone()),
                payment_family: payment.map(|p| family_name(p.family)),
                payment_family_label: payment.map(|p| family_label(p.family)),
                installments: payment.and_then(|p| p.installments),
                items,
                item_count,
                shipments: order.shipments.iter().map(shipment_vars).collect(),
                boleto: order.boleto.as_ref().map(|b| BoletoVars {
                    barcode: b.barcode.clone(),
                    url: b.url.clone(),
                    due_date: b.due_date.as_deref().map(|d| {
                        d.parse::<Date>().map_or_else(
                            |_| d.to_owned(),
                            |date| date.strftime("%d/%m/%Y").to_string(),
                        )
                    }),
                }),
                pix: order.pix.as_ref().map(|p| PixVars {
                    code: p.code.clone(),
                    qr_code_url: p.qr_code_url.clone(),
                    expires_at: p.expires_at.map(|t| format_datetime(t, tz)),
                }),
                extras: order.extras.clone(),
            },
            tracking: tracking_vars(order, tracking),
            store: StoreVars {
                id: store.id.clone(),
                description: store.description.clone(),
            },
            notification: NotificationVars {
                kind: kind.as_str(),
                label: kind.label_pt(),
            },
        }
    }
}

/// `R$ 1.234,56`, or unknown.
fn formatted(amount: Option<Money>, variable: &'static str) -> Maybe<String> {
    Maybe::from_option(amount.map(Money::format_brl), variable)
}

/// Cents, or unknown.
fn cents(amount: Option<Money>, variable: &'static str) -> Maybe<i64> {
    Maybe::from_option(amount.map(|m| m.0), variable)
}

fn shipment_vars(s: &Shipment) -> ShipmentVars {
    ShipmentVars {
        id: s.id.clone(),
        carrier: s.carrier.clone(),
        method: s.method.clone(),
        tracking_code: s.tracking_code.clone().filter(|c| !c.trim().is_empty()),
        tracking_url: s.tracking_url.clone(),
    }
}

fn tracking_vars(order: &Order, tracking: Option<&TrackingRef>) -> TrackingVars {
    let shipment = match tracking {
        Some(t) => order.shipments.iter().find(|s| s.id == t.shipment_id),
        None => order.shipments.iter().find(|s| {
            s.tracking_code
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
        }),
    };
    let mut vars = shipment.map_or_else(TrackingVars::default, |s| TrackingVars {
        code: s.tracking_code.clone().filter(|c| !c.trim().is_empty()),
        url: s.tracking_url.clone(),
        carrier: s.carrier.clone(),
        method: s.method.clone(),
        shipment_id: Some(s.id.clone()),
    });
    if let Some(t) = tracking {
        // The job announces this code; the shipment may carry a newer one by now.
        if vars.code.as_deref() != Some(t.code.as_str()) {
            vars.url = None;
        }
        vars.code = Some(t.code.clone());
        vars.shipment_id = Some(t.shipment_id.clone());
    }
    vars
}

/// `dd/mm/aaaa HH:MM` in `tz`.
pub fn format_datetime(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%d/%m/%Y %H:%M")
        .to_string()
}

/// `dd/mm/aaaa` in `tz`.
pub fn format_date(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%d/%m/%Y")
        .to_string()
}

/// `"2.000"` → `"2"`, `"2.5"` → `"2,5"`.
fn quantity_pt(quantity: &str) -> String {
    let q = quantity.trim();
    match q.split_once('.') {
        Some((whole, frac))
            if whole.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit()) =>
        {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole},{frac}")
            }
        }
        _ => q.to_owned(),
    }
}

fn family_name(family: PaymentFamily) -> &'static str {
    match family {
        PaymentFamily::Pix => "pix",
        PaymentFamily::Boleto => "boleto",
        PaymentFamily::CreditCard => "credit-card",
        PaymentFamily::Deposit => "deposit",
        PaymentFamily::External => "external",
        PaymentFamily::Other => "other",
    }
}

fn family_label(family: PaymentFamily) -> &'static str {
    match family {
        PaymentFamily::Pix => "Pix",
        PaymentFamily::Boleto => "Boleto",
        PaymentFamily::CreditCard => "Cartão de crédito",
        PaymentFamily::Deposit => "Depósito bancário",
        PaymentFamily::External => "Pagamento externo",
        PaymentFamily::Other => "Outro",
    }
}
