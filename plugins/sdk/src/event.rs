//! The JSON form of an [`OrderEvent`](crate::sender::OrderEvent), version 1:
//! what forwarding senders (webhooks, queues, chat bridges) send on.
//!
//! The form is public and versioned with the contract (`event_version`),
//! independent of how the daemon stores orders; `docs/events.md` in the
//! arauto repository documents every field with an example. Every sender
//! that forwards events uses this one function, so receivers see the same
//! document whichever channel delivers it.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::sender::{
    EventCustomer, EventItem, EventOrder, EventPayment, EventShipment, OrderEvent, PaymentFamily,
};
pub use crate::support::notification_name;

/// The event as a JSON value (see the module docs for the shape).
pub fn to_value(event: &OrderEvent) -> Value {
    json!({
        "event_version": event.version,
        "notification": notification_name(event.notification),
        "job_id": event.job_id,
        "store": {
            "id": event.store.id,
            "description": event.store.description,
            "platform": event.store.platform,
        },
        "status_code": event.status_code,
        "tracking": event.tracking.as_ref().map(|t| json!({
            "shipment_id": t.shipment_id,
            "code": t.code,
        })),
        "order": order(&event.order),
    })
}

/// The event as JSON text, for a request body.
pub fn to_json(event: &OrderEvent) -> String {
    to_value(event).to_string()
}

/// The same document as [`to_value`], as something to serialize straight
/// into a request body: no intermediate [`Value`] tree (a map and a key
/// string per field), borrowed from the event. Byte for byte what
/// `to_value(event).to_string()` writes (keys in the same, sorted, order;
/// tested), so a sender may embed it in its own envelope.
pub fn serializable(event: &OrderEvent) -> impl Serialize + '_ {
    EventDoc::of(event)
}

// The borrowed mirror of the document. Fields are declared in the sorted
// key order a `serde_json::Map` (a BTreeMap) writes, so the output matches
// `to_value` byte for byte.

#[derive(Serialize)]
struct EventDoc<'a> {
    event_version: u32,
    job_id: &'a str,
    notification: &'static str,
    order: OrderDoc<'a>,
    status_code: &'a str,
    store: StoreDoc<'a>,
    tracking: Option<TrackingDoc<'a>>,
}

#[derive(Serialize)]
struct StoreDoc<'a> {
    description: &'a Option<String>,
    id: &'a str,
    platform: &'a str,
}

#[derive(Serialize)]
struct TrackingDoc<'a> {
    code: &'a str,
    shipment_id: &'a str,
}

#[derive(Serialize)]
struct OrderDoc<'a> {
    created_at: &'a str,
    currency: &'a str,
    customer: CustomerDoc<'a>,
    detailed: bool,
    discount: Option<i64>,
    extras: Value,
    id: &'a str,
    items: Vec<ItemDoc<'a>>,
    number: &'a str,
    payment: Option<PaymentDoc<'a>>,
    shipments: Vec<ShipmentDoc<'a>>,
    shipping: Option<i64>,
    status: StatusDoc<'a>,
    subtotal: Option<i64>,
    total: Option<i64>,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    code: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct CustomerDoc<'a> {
    chat_id: &'a Option<String>,
    email: &'a Option<String>,
    first_name: &'a str,
    name: &'a str,
    phones: &'a [String],
}

#[derive(Serialize)]
struct PaymentDoc<'a> {
    code: &'a str,
    family: &'static str,
    installments: Option<u32>,
    name: &'a str,
}

#[derive(Serialize)]
struct ShipmentDoc<'a> {
    carrier: &'a Option<String>,
    id: &'a str,
    method: &'a Option<String>,
    tracking_code: &'a Option<String>,
    tracking_url: &'a Option<String>,
}

#[derive(Serialize)]
struct ItemDoc<'a> {
    name: &'a str,
    quantity: &'a Option<String>,
    sku: &'a Option<String>,
    total: Option<i64>,
    unit_price: Option<i64>,
}

impl<'a> EventDoc<'a> {
    fn of(event: &'a OrderEvent) -> Self {
        let o = &event.order;
        let c = &o.customer;
        Self {
            event_version: event.version,
            job_id: &event.job_id,
            notification: notification_name(event.notification),
            order: OrderDoc {
                created_at: &o.created_at,
                currency: &o.currency,
                customer: CustomerDoc {
                    chat_id: &c.chat_id,
                    email: &c.email,
                    first_name: &c.first_name,
                    name: &c.name,
                    phones: &c.phones,
                },
                detailed: o.detailed,
                discount: o.discount_cents,
                extras: extras(&o.extras_json),
                id: &o.id,
                items: o
                    .items
                    .iter()
                    .map(|i| ItemDoc {
                        name: &i.name,
                        quantity: &i.quantity,
                        sku: &i.sku,
                        total: i.total_cents,
                        unit_price: i.unit_price_cents,
                    })
                    .collect(),
                number: &o.number,
                payment: o.payment.as_ref().map(|p| PaymentDoc {
                    code: &p.code,
                    family: payment_family_name(p.family),
                    installments: p.installments,
                    name: &p.name,
                }),
                shipments: o
                    .shipments
                    .iter()
                    .map(|s| ShipmentDoc {
                        carrier: &s.carrier,
                        id: &s.id,
                        method: &s.method,
                        tracking_code: &s.tracking_code,
                        tracking_url: &s.tracking_url,
                    })
                    .collect(),
                shipping: o.shipping_cents,
                status: StatusDoc {
                    code: &o.status.code,
                    name: &o.status.name,
                },
                subtotal: o.subtotal_cents,
                total: o.total_cents,
                updated_at: &o.updated_at,
            },
            status_code: &event.status_code,
            store: StoreDoc {
                description: &event.store.description,
                id: &event.store.id,
                platform: &event.store.platform,
            },
            tracking: event.tracking.as_ref().map(|t| TrackingDoc {
                code: &t.code,
                shipment_id: &t.shipment_id,
            }),
        }
    }
}

/// The order's extras: the host sends a JSON object; anything else is shown
/// as an empty one rather than failing the delivery.
fn extras(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// The payment family's name in events, e.g. `credit-card`.
pub fn payment_family_name(family: PaymentFamily) -> &'static str {
    match family {
        PaymentFamily::Pix => "pix",
        PaymentFamily::Boleto => "boleto",
        PaymentFamily::CreditCard => "credit-card",
        PaymentFamily::Deposit => "deposit",
        PaymentFamily::External => "external",
        PaymentFamily::Other => "other",
    }
}

fn order(o: &EventOrder) -> Value {
    let extras = extras(&o.extras_json);
    json!({
        "id": o.id,
        "number": o.number,
        "status": { "code": o.status.code, "name": o.status.name },
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "customer": customer(&o.customer),
        "subtotal": o.subtotal_cents,
        "shipping": o.shipping_cents,
        "discount": o.discount_cents,
        "total": o.total_cents,
        "currency": o.currency,
        "payment": o.payment.as_ref().map(payment),
        "shipments": o.shipments.iter().map(shipment).collect::<Vec<_>>(),
        "items": o.items.iter().map(item).collect::<Vec<_>>(),
        "detailed": o.detailed,
        "extras": extras,
    })
}

fn customer(c: &EventCustomer) -> Value {
    json!({
        "name": c.name,
        "first_name": c.first_name,
        "phones": c.phones,
        "email": c.email,
        "chat_id": c.chat_id,
    })
}

fn payment(p: &EventPayment) -> Value {
    json!({
        "code": p.code,
        "name": p.name,
        "family": payment_family_name(p.family),
        "installments": p.installments,
    })
}

fn shipment(s: &EventShipment) -> Value {
    json!({
        "id": s.id,
        "carrier": s.carrier,
        "method": s.method,
        "tracking_code": s.tracking_code,
        "tracking_url": s.tracking_url,
    })
}

fn item(i: &EventItem) -> Value {
    json!({
        "sku": i.sku,
        "name": i.name,
        "quantity": i.quantity,
        "unit_price": i.unit_price_cents,
        "total": i.total_cents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::{EventTracking, NotificationKind};

    fn sample() -> OrderEvent {
        let mut event = crate::sender::fixtures::event();
        event.notification = NotificationKind::OrderShipped;
        event.tracking = Some(EventTracking {
            shipment_id: "77".into(),
            code: "AA123456789BR".into(),
        });
        event.order.total_cents = None;
        event.order.extras_json = "not json".into();
        event
    }

    #[test]
    fn the_json_form_names_kinds_families_and_keeps_unknown_amounts_null() {
        let value = to_value(&sample());
        assert_eq!(value["event_version"], 1);
        assert_eq!(value["notification"], "order-shipped");
        assert_eq!(value["tracking"]["code"], "AA123456789BR");
        assert_eq!(value["order"]["payment"]["family"], "pix");
        assert_eq!(value["order"]["subtotal"], 8990);
        assert_eq!(value["order"]["customer"]["first_name"], "Maria");
        assert!(value["order"]["total"].is_null());
        assert_eq!(value["order"]["items"][0]["unit_price"], 8990);
        assert_eq!(value["order"]["extras"], json!({}));
        assert_eq!(value["store"]["description"], "Loja Exemplo");
    }

    /// The borrowed form writes exactly the bytes of the value form, with
    /// and without the optional parts.
    #[test]
    fn the_serializable_form_writes_the_same_bytes_as_the_value_form() {
        let mut bare = crate::sender::fixtures::event();
        bare.tracking = None;
        bare.order.payment = None;
        bare.order.shipments.clear();
        bare.order.extras_json = r#"{"z":1,"a":{"y":[1,2],"b":null}}"#.into();
        for event in [sample(), crate::sender::fixtures::event(), bare] {
            let fast = serde_json::to_string(&serializable(&event)).unwrap_or_default();
            assert_eq!(fast, to_value(&event).to_string());
        }
    }

    /// The example in docs/events.md is what this module writes, so the
    /// public documentation cannot drift from the code.
    #[test]
    fn the_documented_example_is_what_the_sdk_writes() {
        let doc = include_str!("../../../docs/events.md");
        let example = doc
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_default();
        let documented: Value = serde_json::from_str(example).unwrap_or_else(|e| {
            panic!("the first JSON block of docs/events.md does not parse: {e}")
        });
        let mut event = crate::sender::fixtures::event();
        event.order.shipping_cents = None;
        event.order.extras_json = r#"{"platform":"loja-integrada","cliente_id":4821}"#.into();
        assert_eq!(to_value(&event), documented);
    }
}
