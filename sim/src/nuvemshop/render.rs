//! Orders, webhooks and errors in Nuvemshop's JSON shapes.
//!
//! The order is the documented object: a top-level array for lists, no
//! envelope, snake_case keys, money as decimal strings, timestamps with an
//! offset, the customer nested, the three state fields side by side. List
//! rows and the detail are the same object (the API's list carries full
//! orders).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::model::{Order, money};
use super::{TimeFormat, Webhook};

/// São Paulo has been UTC−03:00 all year since 2019.
fn sao_paulo() -> jiff::tz::Offset {
    jiff::tz::Offset::constant(-3)
}

/// A timestamp as the API renders it.
pub(crate) fn time(at: Timestamp, format: TimeFormat) -> String {
    let (offset, suffix) = match format {
        TimeFormat::ColonOffset => (sao_paulo(), "-03:00"),
        TimeFormat::BasicOffset => (sao_paulo(), "-0300"),
        TimeFormat::Utc => (jiff::tz::Offset::UTC, "+0000"),
    };
    format!(
        "{}{suffix}",
        offset.to_datetime(at).strftime("%Y-%m-%dT%H:%M:%S")
    )
}

fn opt_time(at: Option<Timestamp>, format: TimeFormat) -> Value {
    at.map_or(Value::Null, |t| Value::String(time(t, format)))
}

/// One order (list row or detail).
pub(crate) fn order(order: &Order, format: TimeFormat, overrides: &[(String, Value)]) -> Value {
    let created = opt_time(order.created_at, format);
    let updated = opt_time(order.updated_at, format);
    let customer = &order.customer;
    let products: Vec<Value> = order
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "id": order.id.unwrap_or_default() * 10 + i as u64,
                "product_id": p.product_id,
                "variant_id": p.variant_id,
                "name": p.name,
                "price": money(p.price_cents),
                "quantity": p.quantity,
                "sku": p.sku,
            })
        })
        .collect();
    let mut body = json!({
        "id": order.id,
        "token": format!("{:040x}", order.id.unwrap_or_default()),
        "number": order.number,
        "status": order.status,
        "payment_status": order.payment_status,
        "shipping_status": order.shipping_status,
        "next_action": next_action(order),
        "cancel_reason": order.cancel_reason,
        "contact_name": customer.name,
        "contact_email": customer.email,
        "contact_phone": order.contact_phone,
        "contact_identification": customer.identification,
        "billing_phone": order.billing_phone,
        "customer": {
            "id": customer.id,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "identification": customer.identification,
            "created_at": created,
            "updated_at": created,
        },
        "products": products,
        "currency": order.currency,
        "language": "pt",
        "gateway": order.gateway,
        "gateway_name": order.gateway_name,
        "payment_details": {
            "method": order.payment_method,
            "credit_card_company": Value::Null,
            "installments": order.installments,
        },
        "subtotal": money(order.subtotal_cents()),
        "discount": money(order.discount_cents),
        "shipping_cost_customer": money(order.shipping_cents),
        "total": money(order.total_cents()),
        "shipping_option": order.shipping_option,
        "shipping_pickup_type": "ship",
        "shipping_tracking_number": order.tracking_number,
        "shipping_tracking_url": order.tracking_url,
        "created_at": created,
        "updated_at": updated,
        "paid_at": opt_time(order.paid_at, format),
        "shipped_at": opt_time(order.shipped_at, format),
        "cancelled_at": opt_time(order.cancelled_at, format),
    });
    if !order.fulfillment_orders.is_empty()
        && let Some(map) = body.as_object_mut()
    {
        let shipments: Vec<Value> = order
            .fulfillment_orders
            .iter()
            .map(|f| {
                json!({
                    "id": f.id,
                    "status": f.status,
                    "tracking_info": {
                        "code": f.tracking_code,
                        "url": f.tracking_url,
                        "carrier": f.carrier,
                    },
                })
            })
            .collect();
        map.insert("fulfillment_orders".to_owned(), Value::Array(shipments));
    }
    for (pointer, value) in overrides {
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value.clone();
        }
    }
    body
}

/// `next_action`, derived as the docs describe it.
fn next_action(order: &Order) -> &'static str {
    use super::model::{payment, shipping, status};
    if order.status != status::OPEN {
        "noop"
    } else if order.payment_status != payment::PAID {
        "waiting_manual_confirmation"
    } else if order.shipping_status == shipping::UNPACKED {
        "waiting_packing"
    } else if order.shipping_status == shipping::UNFULFILLED {
        "waiting_shipment"
    } else {
        "close"
    }
}

/// A webhook registration.
pub(crate) fn webhook(webhook: &Webhook, format: TimeFormat) -> Value {
    json!({
        "id": webhook.id,
        "event": webhook.event,
        "url": webhook.url,
        "created_at": time(webhook.created_at, format),
        "updated_at": time(webhook.created_at, format),
    })
}

/// Nuvemshop's error body: `{"code": 404, "message": "Not Found", "description": "..."}`.
pub(crate) fn error(code: u16, message: &str, description: Value) -> Value {
    json!({ "code": code, "message": message, "description": description })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_the_three_documented_forms() {
        let at = Timestamp::from_second(1_715_342_400).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            time(at, TimeFormat::ColonOffset),
            "2024-05-10T09:00:00-03:00"
        );
        assert_eq!(
            time(at, TimeFormat::BasicOffset),
            "2024-05-10T09:00:00-0300"
        );
        assert_eq!(time(at, TimeFormat::Utc), "2024-05-10T12:00:00+0000");
    }
}
