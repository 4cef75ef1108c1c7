//! Recognition over several fields: Nuvemshop describes an order's state
//! with three fields (`status`, `payment_status`, `shipping_status`) and a
//! tracking code, the plugin contract with one status code. [`stage`]
//! derives that code by a fixed precedence; [`statuses`] is the default
//! recognition table the host shows (`arauto plugins inspect nuvemshop`)
//! and a store overrides in `[stores.<id>.recognition]` (see
//! docs/platforms/nuvemshop.md §Recognition over several fields).

use arauto_plugin_sdk::connector::{Capabilities, Capability, NotificationKind, StatusEntry};

/// One stage: code, name (the rule, briefly), default notification,
/// happy-path priority, terminal.
struct Stage {
    code: &'static str,
    name: &'static str,
    notification: Option<NotificationKind>,
    priority: u8,
    terminal: bool,
}

/// Precedence order: [`stage`] returns the first that matches.
const STAGES: [Stage; 10] = [
    Stage {
        code: "cancelled",
        name: "Cancelado (status cancelled)",
        notification: Some(NotificationKind::OrderCanceled),
        priority: 0,
        terminal: true,
    },
    Stage {
        code: "refunded",
        name: "Reembolsado (payment refunded)",
        notification: Some(NotificationKind::OrderRefunded),
        priority: 0,
        terminal: true,
    },
    Stage {
        code: "voided",
        name: "Pagamento anulado (payment voided)",
        notification: Some(NotificationKind::OrderCanceled),
        priority: 0,
        terminal: true,
    },
    Stage {
        code: "fulfilled",
        name: "Enviado (shipping fulfilled/shipped)",
        notification: Some(NotificationKind::OrderShipped),
        priority: 4,
        terminal: false,
    },
    Stage {
        code: "closed",
        name: "Arquivado sem envio (status closed, not shipped)",
        notification: None,
        priority: 0,
        terminal: true,
    },
    Stage {
        code: "packed",
        name: "Embalado, não enviado (shipping unfulfilled)",
        notification: Some(NotificationKind::OrderProcessing),
        priority: 3,
        terminal: false,
    },
    Stage {
        code: "paid",
        name: "Pago (payment paid)",
        notification: Some(NotificationKind::OrderPaid),
        priority: 2,
        terminal: false,
    },
    Stage {
        code: "pending",
        name: "Aguardando pagamento (payment pending)",
        notification: Some(NotificationKind::WaitingPayment),
        priority: 1,
        terminal: false,
    },
    Stage {
        code: "authorized",
        name: "Cartão autorizado, não capturado (payment authorized)",
        notification: None,
        priority: 1,
        terminal: false,
    },
    Stage {
        code: "abandoned",
        name: "Abandonado ou desconhecido (payment abandoned, anything else)",
        notification: None,
        priority: 0,
        terminal: false,
    },
];

/// The three state fields of an order, as Nuvemshop sent them (lower-cased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateFields {
    /// `status`: open, closed, cancelled.
    pub status: String,
    /// `payment_status`: pending, authorized, paid, voided, refunded, abandoned.
    pub payment_status: String,
    /// `shipping_status`: unpacked, unfulfilled/unshipped, fulfilled/shipped…
    pub shipping_status: String,
}

/// Shipped: the documented value and its synonyms (the docs' examples print
/// `shipped`; other sources show `delivered` and `partially_fulfilled`).
fn is_shipped(shipping: &str) -> bool {
    matches!(
        shipping,
        "fulfilled" | "shipped" | "delivered" | "partially_fulfilled" | "partially_shipped"
    )
}

/// Packed and waiting for the carrier: `unfulfilled` is documented as
/// "unshipped", which follows packing in the order flow.
fn is_packed(shipping: &str) -> bool {
    matches!(
        shipping,
        "unfulfilled" | "unshipped" | "packed" | "partially_packed"
    )
}

/// The stage code of an order, first match of the precedence in
/// docs/platforms/nuvemshop.md §Recognition over several fields. A tracking
/// code alone does not make an order shipped (merchants type codes before
/// the carrier collects); it is reported as a shipment either way.
pub fn stage(fields: &StateFields) -> &'static str {
    let status = fields.status.as_str();
    let payment = fields.payment_status.as_str();
    let shipping = fields.shipping_status.as_str();
    if status == "cancelled" || status == "canceled" {
        "cancelled"
    } else if payment == "refunded" || payment == "partially_refunded" {
        "refunded"
    } else if payment == "voided" {
        "voided"
    } else if is_shipped(shipping) {
        "fulfilled"
    } else if status == "closed" {
        "closed"
    } else if is_packed(shipping) {
        "packed"
    } else if payment == "paid" || payment == "partially_paid" {
        "paid"
    } else if payment == "pending" {
        "pending"
    } else if payment == "authorized" {
        "authorized"
    } else {
        "abandoned"
    }
}

/// True when a value of any field is outside what the docs list, for a log
/// line (the order still gets a stage).
pub fn unknown_value(fields: &StateFields) -> Option<(&'static str, String)> {
    let known_status = ["", "open", "closed", "cancelled", "canceled"];
    let known_payment = [
        "",
        "pending",
        "authorized",
        "paid",
        "partially_paid",
        "voided",
        "refunded",
        "partially_refunded",
        "abandoned",
    ];
    if !known_status.contains(&fields.status.as_str()) {
        return Some(("status", fields.status.clone()));
    }
    if !known_payment.contains(&fields.payment_status.as_str()) {
        return Some(("payment_status", fields.payment_status.clone()));
    }
    let shipping = fields.shipping_status.as_str();
    if !(shipping.is_empty()
        || shipping == "unpacked"
        || is_shipped(shipping)
        || is_packed(shipping))
    {
        return Some(("shipping_status", fields.shipping_status.clone()));
    }
    None
}

/// The stage's name, for `order-status.name`.
pub fn name_for_code(code: &str) -> &'static str {
    STAGES
        .iter()
        .find(|s| s.code == code)
        .map_or("", |s| s.name)
}

/// The default recognition table (`connector-info.statuses`).
pub fn statuses() -> Vec<StatusEntry> {
    STAGES
        .iter()
        .map(|s| StatusEntry {
            code: s.code.to_owned(),
            name: s.name.to_owned(),
            notification: s.notification,
            happy_path_priority: s.priority,
            terminal: s.terminal,
        })
        .collect()
}

/// What the platform's API lets the connector offer.
pub fn capabilities() -> Capabilities {
    Capabilities {
        tracking_codes: Capability {
            supported: true,
            reason: "orders carry shipping_tracking_number/_url (and each fulfillment's \
                     tracking), reported as shipments"
                .to_owned(),
        },
        boleto_reminder: Capability {
            supported: false,
            reason: "Nuvemshop's order shows that a boleto was chosen (payment_details.method) \
                     but not its due date, barcode or payment link, which stay with the payment \
                     gateway, so a reminder would have nothing to remind the buyer with"
                .to_owned(),
        },
        pix_reminder: Capability {
            supported: false,
            reason: "Nuvemshop's order carries no PIX copy-and-paste code, QR code or expiry \
                     time (the gateway holds them), so a PIX reminder cannot be built"
                .to_owned(),
        },
        abandoned_cart: Capability {
            supported: false,
            reason: "abandoned checkouts are a separate resource (GET /checkouts), not orders; \
                     the connector polls orders only"
                .to_owned(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fields(status: &str, payment: &str, shipping: &str) -> StateFields {
        StateFields {
            status: status.into(),
            payment_status: payment.into(),
            shipping_status: shipping.into(),
        }
    }

    #[test]
    fn the_precedence_is_the_documented_one() {
        let cases = [
            (("cancelled", "refunded", "fulfilled"), "cancelled"),
            (("open", "refunded", "fulfilled"), "refunded"),
            (("open", "partially_refunded", "unpacked"), "refunded"),
            (("open", "voided", "unpacked"), "voided"),
            (("closed", "paid", "fulfilled"), "fulfilled"),
            (("open", "paid", "shipped"), "fulfilled"),
            (("open", "paid", "delivered"), "fulfilled"),
            (("closed", "paid", "unpacked"), "closed"),
            (("open", "paid", "unfulfilled"), "packed"),
            (("open", "paid", "unshipped"), "packed"),
            (("open", "paid", "unpacked"), "paid"),
            (("open", "pending", "unpacked"), "pending"),
            (("open", "authorized", "unpacked"), "authorized"),
            (("open", "abandoned", "unpacked"), "abandoned"),
            (("open", "", ""), "abandoned"),
            (("weird", "weird", "weird"), "abandoned"),
        ];
        for ((s, p, sh), want) in cases {
            assert_eq!(stage(&fields(s, p, sh)), want, "{s}/{p}/{sh}");
        }
    }

    #[test]
    fn every_stage_is_in_the_table_once_with_a_name() {
        let table = statuses();
        assert_eq!(table.len(), 10);
        for s in [
            "cancelled",
            "refunded",
            "voided",
            "fulfilled",
            "closed",
            "packed",
            "paid",
            "pending",
            "authorized",
            "abandoned",
        ] {
            assert_eq!(table.iter().filter(|e| e.code == s).count(), 1, "{s}");
            assert!(!name_for_code(s).is_empty());
        }
        let terminal: Vec<_> = table
            .iter()
            .filter(|e| e.terminal)
            .map(|e| e.code.as_str())
            .collect();
        assert_eq!(terminal, ["cancelled", "refunded", "voided", "closed"]);
    }

    #[test]
    fn unknown_values_are_named() {
        assert_eq!(unknown_value(&fields("open", "paid", "unpacked")), None);
        assert_eq!(
            unknown_value(&fields("open", "chargeback", "unpacked")),
            Some(("payment_status", "chargeback".into()))
        );
    }
}
