//! The JSON form of an [`OrderEvent`](crate::sender::OrderEvent), version 1:
//! what forwarding senders (webhooks, queues, chat bridges) send on.
//!
//! The form is public and versioned with the contract (`event_version`),
//! independent of how the daemon stores orders; `docs/events.md` in the
//! arauto repository documents every field with an example. Every sender
//! that forwards events uses this one function, so receivers see the same
//! document whichever channel delivers it.

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
    // The host sends a JSON object; anything else is shown as an empty one
    // rather than failing the delivery.
    let extras = serde_json::from_str::<Value>(&o.extras_json)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()));
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
