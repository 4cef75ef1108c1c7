//! A Nuvemshop order document → `order-snapshot` (see
//! docs/platforms/nuvemshop.md §The order document). Only `id` and a
//! readable `updated_at` are required; every other field is read when it is
//! usable and reported (a warning naming the order and field) when not.

use arauto_plugin_sdk::connector::log::{self, Level};
use arauto_plugin_sdk::connector::{
    Customer, Item, Money, OrderSnapshot, OrderStatus, Payment, PaymentFamily, QUANTITY_UNKNOWN,
    Shipment,
};
use arauto_plugin_sdk::decimal::{self, Decimal};
use arauto_plugin_sdk::time::{format_rfc3339_ms, parse_offset_datetime_ms};
use serde_json::{Map, Value, json};

use crate::api::id_text;
use crate::catalogue::{self, StateFields};

/// What identifies one version of an order: its id and `updated_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeKey {
    /// `id` as text.
    pub id: String,
    /// `updated_at` in Unix ms.
    pub updated_ms: i64,
    /// `updated_at` as sent, for messages.
    pub updated_raw: String,
}

/// Why a row cannot become a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadRow {
    /// No usable `id`.
    NoId,
    /// `updated_at` absent or without a readable offset.
    BadUpdatedAt {
        /// The order.
        id: String,
        /// What arrived.
        raw: String,
    },
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRow::NoId => write!(f, "an order row without a usable `id`"),
            BadRow::BadUpdatedAt { id, raw } => write!(
                f,
                "order {id} has `updated_at` = {raw} which is not an ISO 8601 time with an offset"
            ),
        }
    }
}

/// The change key of a list row or detail.
pub fn change_key(doc: &Value) -> Result<ChangeKey, BadRow> {
    let id = doc.get("id").and_then(id_text).ok_or(BadRow::NoId)?;
    let raw = doc.get("updated_at");
    let updated_ms = raw
        .and_then(Value::as_str)
        .and_then(parse_offset_datetime_ms)
        .ok_or_else(|| BadRow::BadUpdatedAt {
            id: id.clone(),
            raw: raw.map_or_else(|| "(absent)".to_owned(), |v| excerpt(&v.to_string())),
        })?;
    Ok(ChangeKey {
        id,
        updated_ms,
        updated_raw: raw.and_then(Value::as_str).unwrap_or("").to_owned(),
    })
}

/// True when the row lacks the state fields, so the detail must be read.
pub fn needs_detail(doc: &Value) -> bool {
    ["status", "payment_status"]
        .iter()
        .any(|k| doc.get(*k).and_then(Value::as_str).is_none())
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

fn text<'v>(doc: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut at = doc;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn lower(doc: &Value, key: &str) -> String {
    text(doc, &[key]).unwrap_or("").to_ascii_lowercase()
}

/// The three state fields.
pub fn state_fields(doc: &Value) -> StateFields {
    StateFields {
        status: lower(doc, "status"),
        payment_status: lower(doc, "payment_status"),
        shipping_status: lower(doc, "shipping_status"),
    }
}

fn warn(order: &str, field: &str, value: &Value, what: &str) {
    log::log(
        Level::Warn,
        &format!(
            "order {order}: `{field}` = {} is {what}; it is left out",
            excerpt(&value.to_string())
        ),
        &[("order", order), ("field", field)],
    );
}

fn money(doc: &Value, order: &str, keys: &[&str]) -> Money {
    let Some((key, value)) = keys
        .iter()
        .find_map(|k| doc.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    else {
        return Money::UNKNOWN;
    };
    match decimal::cents(Some(value)) {
        Ok(Some(cents)) => Money { cents },
        Ok(None) => Money::UNKNOWN,
        Err(_) => {
            warn(order, key, value, "not a decimal amount");
            Money::UNKNOWN
        }
    }
}

fn time_text(doc: &Value, key: &str) -> Option<String> {
    text(doc, &[key])
        .and_then(parse_offset_datetime_ms)
        .map(format_rfc3339_ms)
}

fn customer(doc: &Value) -> Customer {
    let name = text(doc, &["customer", "name"])
        .or_else(|| text(doc, &["contact_name"]))
        .or_else(|| text(doc, &["billing_name"]))
        .or_else(|| text(doc, &["shipping_address", "name"]))
        .unwrap_or("")
        .to_owned();
    let first_name = name.split_whitespace().next().unwrap_or("").to_owned();
    let mut phones: Vec<String> = Vec::new();
    for path in [
        &["contact_phone"][..],
        &["customer", "phone"],
        &["billing_phone"],
        &["customer", "billing_phone"],
        &["shipping_address", "phone"],
        &["customer", "default_address", "phone"],
    ] {
        if let Some(phone) = text(doc, path)
            && !phones.iter().any(|p| p == phone)
        {
            phones.push(phone.to_owned());
        }
    }
    let email = text(doc, &["contact_email"])
        .or_else(|| text(doc, &["customer", "email"]))
        .map(str::to_owned);
    Customer {
        name,
        first_name,
        phones,
        email,
        chat_id: None,
    }
}

fn payment(doc: &Value) -> Option<Payment> {
    let method = text(doc, &["payment_details", "method"]).map(str::to_ascii_lowercase);
    let gateway = text(doc, &["gateway"]);
    if method.is_none() && gateway.is_none() {
        return None;
    }
    let family = match method.as_deref() {
        Some("pix") => PaymentFamily::Pix,
        Some("boleto" | "ticket") => PaymentFamily::Boleto,
        Some("credit_card" | "debit_card" | "card") => PaymentFamily::CreditCard,
        Some("wire_transfer" | "bank_transfer" | "deposit") => PaymentFamily::Deposit,
        Some("external" | "offline" | "cash") => PaymentFamily::External,
        _ => PaymentFamily::Other,
    };
    let code = method
        .clone()
        .or_else(|| gateway.map(str::to_owned))
        .unwrap_or_default();
    let name = text(doc, &["gateway_name"])
        .or(gateway)
        .unwrap_or(code.as_str())
        .to_owned();
    let installments = doc
        .get("payment_details")
        .and_then(|d| d.get("installments"))
        .and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .and_then(|n| u32::try_from(n).ok());
    Some(Payment {
        code,
        name,
        family,
        installments,
    })
}

fn shipments(doc: &Value) -> Vec<Shipment> {
    let mut out: Vec<Shipment> = Vec::new();
    let mut push = |shipment: Shipment| {
        let duplicate = out.iter().any(|s| {
            s.tracking_code.is_some() && s.tracking_code == shipment.tracking_code
                || s.id == shipment.id
        });
        if !duplicate {
            out.push(shipment);
        }
    };
    // Several shipments per order: the multi-inventory fulfillment orders,
    // and the legacy fulfillment events.
    if let Some(list) = doc.get("fulfillment_orders").and_then(Value::as_array) {
        for (index, fo) in list.iter().enumerate() {
            let code = text(fo, &["tracking_info", "code"]);
            let url = text(fo, &["tracking_info", "url"]);
            if code.is_none() && url.is_none() {
                continue;
            }
            push(Shipment {
                id: fo
                    .get("id")
                    .and_then(|v| v.as_str().map(str::to_owned).or_else(|| id_text(v)))
                    .unwrap_or_else(|| format!("fulfillment-{index}")),
                carrier: text(fo, &["tracking_info", "carrier"])
                    .or_else(|| text(fo, &["shipping", "carrier", "name"]))
                    .map(str::to_owned),
                method: text(fo, &["shipping", "option_name"]).map(str::to_owned),
                tracking_code: code.map(str::to_owned),
                tracking_url: url.map(str::to_owned),
            });
        }
    }
    if let Some(list) = doc.get("fulfillments").and_then(Value::as_array) {
        for (index, f) in list.iter().enumerate() {
            let code = text(f, &["tracking_number"]);
            let url = text(f, &["tracking_url"]);
            if code.is_none() && url.is_none() {
                continue;
            }
            push(Shipment {
                id: f
                    .get("id")
                    .and_then(id_text)
                    .unwrap_or_else(|| format!("legacy-{index}")),
                carrier: text(f, &["shipping_company"]).map(str::to_owned),
                method: None,
                tracking_code: code.map(str::to_owned),
                tracking_url: url.map(str::to_owned),
            });
        }
    }
    let code = text(doc, &["shipping_tracking_number"]);
    let url = text(doc, &["shipping_tracking_url"]);
    if code.is_some() || url.is_some() {
        push(Shipment {
            id: "order".to_owned(),
            carrier: text(doc, &["shipping"]).map(str::to_owned),
            method: text(doc, &["shipping_option"]).map(str::to_owned),
            tracking_code: code.map(str::to_owned),
            tracking_url: url.map(str::to_owned),
        });
    }
    out
}

fn items(doc: &Value, order: &str) -> Vec<Item> {
    let Some(products) = doc.get("products").and_then(Value::as_array) else {
        return Vec::new();
    };
    products
        .iter()
        .map(|p| {
            let quantity = p.get("quantity").and_then(Decimal::from_json);
            let unit = p.get("price").and_then(Decimal::from_json);
            if let Some(v) = p.get("price").filter(|v| !v.is_null())
                && unit.is_none()
            {
                warn(order, "products[].price", v, "not a decimal amount");
            }
            let total = quantity
                .zip(unit)
                .and_then(|(q, u)| q.checked_mul(u))
                .and_then(Decimal::to_cents);
            Item {
                sku: text(p, &["sku"]).map(str::to_owned),
                name: text(p, &["name"]).unwrap_or("").to_owned(),
                quantity: quantity
                    .map_or_else(|| QUANTITY_UNKNOWN.to_owned(), Decimal::to_plain_string),
                unit_price: unit
                    .and_then(Decimal::to_cents)
                    .map_or(Money::UNKNOWN, |cents| Money { cents }),
                total: total.map_or(Money::UNKNOWN, |cents| Money { cents }),
            }
        })
        .collect()
}

/// The snapshot of one order document whose change key is `key`.
pub fn snapshot(doc: &Value, key: &ChangeKey) -> OrderSnapshot {
    let order = key.id.as_str();
    let fields = state_fields(doc);
    let code = catalogue::stage(&fields);
    if let Some((field, value)) = catalogue::unknown_value(&fields) {
        log::log(
            Level::Info,
            &format!(
                "order {order}: `{field}` = {value:?} is not a value the Nuvemshop docs list; \
                 the order is recognised as `{code}`"
            ),
            &[("order", order), ("field", field)],
        );
    }
    let number = doc
        .get("number")
        .and_then(|n| match n {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| key.id.clone());
    let updated_at = format_rfc3339_ms(key.updated_ms);
    let mut extras = Map::new();
    extras.insert("status".into(), json!(fields.status));
    extras.insert("payment_status".into(), json!(fields.payment_status));
    extras.insert("shipping_status".into(), json!(fields.shipping_status));
    for key in [
        "gateway",
        "gateway_name",
        "next_action",
        "cancel_reason",
        "storefront",
    ] {
        if let Some(v) = text(doc, &[key]) {
            extras.insert(key.into(), json!(v));
        }
    }
    if let Some(method) = text(doc, &["payment_details", "method"]) {
        extras.insert("payment_method".into(), json!(method));
    }
    for key in ["paid_at", "shipped_at", "cancelled_at", "closed_at"] {
        if let Some(at) = time_text(doc, key) {
            extras.insert(key.into(), json!(at));
        }
    }
    OrderSnapshot {
        id: key.id.clone(),
        number,
        status: OrderStatus {
            code: code.to_owned(),
            name: catalogue::name_for_code(code).to_owned(),
        },
        created_at: time_text(doc, "created_at").unwrap_or_else(|| updated_at.clone()),
        updated_at,
        customer: customer(doc),
        subtotal: money(doc, order, &["subtotal"]),
        shipping: money(doc, order, &["shipping_cost_customer"]),
        discount: money(doc, order, &["discount"]),
        total: money(doc, order, &["total", "price"]),
        currency: text(doc, &["currency"])
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .unwrap_or("BRL")
            .to_ascii_uppercase(),
        payment: payment(doc),
        shipments: shipments(doc),
        items: items(doc, order),
        boleto: None,
        pix: None,
        detailed: true,
        extras_json: Value::Object(extras).to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use arauto_plugin_sdk::connector::testing::{Harness, install, logs};

    fn documented_order() -> Value {
        // The shape of the docs' example (resources/order.md), trimmed.
        json!({
            "id": 450789469,
            "number": 10872,
            "status": "open",
            "payment_status": "paid",
            "shipping_status": "shipped",
            "shipping_tracking_number": "BR123456789BR",
            "shipping_tracking_url": "https://rastreamento.correios.com.br/?objeto=BR123456789BR",
            "shipping": "correios",
            "shipping_option": "PAC",
            "created_at": "2022-02-23T12:25:18+0000",
            "updated_at": "2022-02-23T19:58:44+0000",
            "paid_at": "2022-02-23T12:25:18+0000",
            "subtotal": "5190.00",
            "discount": "0.00",
            "shipping_cost_customer": "470.00",
            "total": "5660.00",
            "currency": "BRL",
            "gateway": "mercadopago",
            "gateway_name": "Mercado Pago",
            "payment_details": {"method": "pix", "installments": 1},
            "contact_email": "ana@example.com",
            "contact_phone": "+55 11 98765-4321",
            "customer": {"name": "Ana Souza", "phone": "11987654321", "email": "ana@example.com"},
            "products": [{"name": "Pokeball", "price": "2595.00", "quantity": 2, "sku": "PB-1"}]
        })
    }

    #[test]
    fn the_documented_order_maps_field_by_field() {
        install(Harness::new());
        let doc = documented_order();
        let key = change_key(&doc).unwrap();
        assert_eq!(key.id, "450789469");
        let s = snapshot(&doc, &key);
        assert_eq!(s.number, "10872");
        assert_eq!(s.status.code, "fulfilled");
        assert_eq!(s.updated_at, "2022-02-23T19:58:44+00:00");
        assert_eq!(s.created_at, "2022-02-23T12:25:18+00:00");
        assert_eq!(s.total.cents, 566_000);
        assert_eq!(s.shipping.cents, 47_000);
        assert_eq!(s.customer.first_name, "Ana");
        assert_eq!(s.customer.phones, ["+55 11 98765-4321", "11987654321"]);
        assert_eq!(s.customer.email.as_deref(), Some("ana@example.com"));
        let p = s.payment.unwrap();
        assert_eq!(
            (p.family, p.name.as_str(), p.installments),
            (PaymentFamily::Pix, "Mercado Pago", Some(1))
        );
        assert_eq!(s.shipments.len(), 1);
        assert_eq!(
            s.shipments[0].tracking_code.as_deref(),
            Some("BR123456789BR")
        );
        assert_eq!(s.items[0].quantity, "2");
        assert_eq!(s.items[0].total.cents, 519_000);
        let extras: Value = serde_json::from_str(&s.extras_json).unwrap();
        assert_eq!(extras["payment_status"], "paid");
        assert_eq!(extras["shipping_status"], "shipped");
        assert_eq!(extras["paid_at"], "2022-02-23T12:25:18+00:00");
    }

    #[test]
    fn bad_amounts_are_unknown_and_named() {
        install(Harness::new());
        let mut doc = documented_order();
        doc["total"] = json!("cinquenta");
        let s = snapshot(&doc, &change_key(&doc).unwrap());
        assert!(s.total.is_unknown());
        assert!(
            logs()
                .iter()
                .any(|(_, m, _)| m.contains("`total`") && m.contains("450789469"))
        );
    }

    #[test]
    fn several_shipments_are_all_reported() {
        install(Harness::new());
        let mut doc = documented_order();
        doc["fulfillment_orders"] = json!([
            {"id": "fo-1", "tracking_info": {"code": "AA1BR", "url": null, "carrier": "Correios"}},
            {"id": "fo-2", "tracking_info": {"code": "BB2BR"}},
            {"id": "fo-3", "tracking_info": null}
        ]);
        let s = snapshot(&doc, &change_key(&doc).unwrap());
        let codes: Vec<_> = s
            .shipments
            .iter()
            .filter_map(|s| s.tracking_code.as_deref())
            .collect();
        assert_eq!(codes, ["AA1BR", "BB2BR", "BR123456789BR"]);
    }

    #[test]
    fn rows_without_id_or_offset_are_refused_by_name() {
        assert_eq!(
            change_key(&json!({"updated_at": "2024-05-10T12:00:00Z"})),
            Err(BadRow::NoId)
        );
        let err = change_key(&json!({"id": 7, "updated_at": "2024-05-10 12:00:00"})).unwrap_err();
        assert!(err.to_string().contains("order 7"), "{err}");
        assert!(needs_detail(&json!({"id": 7})));
        assert!(!needs_detail(&documented_order()));
    }
}
