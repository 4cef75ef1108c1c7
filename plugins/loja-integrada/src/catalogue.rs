//! LI's order statuses and how arauto recognises them by default (see
//! docs/platforms/loja-integrada.md §Statuses and §Default recognition).

use arauto_plugin_sdk::connector::{Capabilities, Capability, NotificationKind, StatusEntry};

/// One LI status: `(id, codigo, nome, notification, happy-path priority, terminal)`.
struct Row {
    id: u64,
    code: &'static str,
    name: &'static str,
    notification: Option<NotificationKind>,
    priority: u8,
    terminal: bool,
}

const fn row(
    id: u64,
    code: &'static str,
    name: &'static str,
    notification: Option<NotificationKind>,
    priority: u8,
    terminal: bool,
) -> Row {
    Row {
        id,
        code,
        name,
        notification,
        priority,
        terminal,
    }
}

/// The 16 codes of LI's current spec. Keyed by `codigo`, never by LI's flags
/// (`pedido_chargeback` is `aprovado`, `cancelamento_solicitado` is
/// `cancelado` but not final). Merchant-only states (dispute, chargeback,
/// cancellation requested) and the rare pre-payment `pedido_efetuado` notify
/// nobody by default. The names of 1018–1020 were never seen in a response;
/// stores show their own names and the connector passes those through.
const STATUSES: [Row; 16] = [
    row(9, "pedido_efetuado", "Pedido Efetuado", None, 0, false),
    row(
        2,
        "aguardando_pagamento",
        "Aguardando pagamento",
        Some(NotificationKind::WaitingPayment),
        1,
        false,
    ),
    row(
        3,
        "pagamento_em_analise",
        "Pagamento em análise",
        Some(NotificationKind::WaitingPayment),
        1,
        false,
    ),
    row(
        4,
        "pedido_pago",
        "Pedido Pago",
        Some(NotificationKind::OrderPaid),
        2,
        false,
    ),
    row(
        17,
        "em_producao",
        "Em produção",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    row(
        15,
        "pedido_em_separacao",
        "Pedido em separação",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    row(
        1018,
        "faturado",
        "Faturado",
        Some(NotificationKind::OrderProcessing),
        3,
        false,
    ),
    row(
        11,
        "pedido_enviado",
        "Pedido Enviado",
        Some(NotificationKind::OrderShipped),
        4,
        false,
    ),
    row(
        13,
        "pronto_para_retirada",
        "Pedido pronto para retirada",
        Some(NotificationKind::ReadyForPickup),
        4,
        false,
    ),
    row(
        14,
        "pedido_entregue",
        "Pedido Entregue",
        Some(NotificationKind::OrderDelivered),
        5,
        false,
    ),
    row(
        8,
        "pedido_cancelado",
        "Pedido Cancelado",
        Some(NotificationKind::OrderCanceled),
        0,
        true,
    ),
    row(
        7,
        "pagamento_devolvido",
        "Pagamento devolvido",
        Some(NotificationKind::OrderRefunded),
        0,
        true,
    ),
    row(
        1020,
        "pagamento_devolvido_sem_retorno",
        "Pagamento devolvido sem retorno",
        Some(NotificationKind::OrderRefunded),
        0,
        true,
    ),
    row(
        6,
        "pagamento_em_disputa",
        "Pagamento em disputa",
        None,
        0,
        false,
    ),
    row(
        16,
        "pedido_chargeback",
        "Pagamento em chargeback",
        None,
        0,
        false,
    ),
    row(
        1019,
        "cancelamento_solicitado",
        "Cancelamento solicitado",
        None,
        0,
        false,
    ),
];

/// The catalogue as the WIT `status-entry` list, happy path first.
pub fn statuses() -> Vec<StatusEntry> {
    STATUSES
        .iter()
        .map(|r| StatusEntry {
            code: r.code.to_owned(),
            name: r.name.to_owned(),
            notification: r.notification,
            happy_path_priority: r.priority,
            terminal: r.terminal,
        })
        .collect()
}

/// The code of a status id (for `situacao` given as a URI or bare id).
pub fn code_for_id(id: u64) -> Option<&'static str> {
    STATUSES.iter().find(|r| r.id == id).map(|r| r.code)
}

/// LI's usual name of a known code.
pub fn name_for_code(code: &str) -> Option<&'static str> {
    STATUSES.iter().find(|r| r.code == code).map(|r| r.name)
}

/// What this connector can and cannot produce, with the reason.
pub fn capabilities() -> Capabilities {
    Capabilities {
        tracking_codes: Capability {
            supported: true,
            reason: "every shipment of an order (envios[], split shipments included) carries its \
                     own tracking code in `objeto`; Correios codes get a tracking link"
                .to_owned(),
        },
        boleto_reminder: Capability {
            supported: false,
            reason: "Loja Integrada's order API exposes no boleto barcode (linha digitável), due \
                     date or payment link — `boleto_url` only appears in a PUT response, never in \
                     GET /v1/pedido — so a reminder would have nothing to remind the buyer with"
                .to_owned(),
        },
        pix_reminder: Capability {
            supported: false,
            reason: "Loja Integrada's order API exposes no PIX copy-and-paste code, QR code or \
                     expiry time in GET /v1/pedido, so a PIX reminder cannot be built"
                .to_owned(),
        },
        abandoned_cart: Capability {
            supported: false,
            reason: "Loja Integrada's API has no cart or checkout resource: abandoned carts are \
                     invisible to a connector (only placed orders can be polled)"
                .to_owned(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_unique_codes_and_ids() {
        let mut codes: Vec<_> = STATUSES.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 16);
        let mut ids: Vec<_> = STATUSES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 16);
        assert_eq!(code_for_id(1018), Some("faturado"));
        assert_eq!(name_for_code("pedido_pago"), Some("Pedido Pago"));
    }

    #[test]
    fn terminal_statuses_are_off_path_and_notifying_ones_are_status_kinds() {
        for r in &STATUSES {
            if r.terminal {
                assert_eq!(r.priority, 0, "{}", r.code);
            }
            if let Some(n) = r.notification {
                // Reminders, carts and tracking updates are not status steps.
                assert!(
                    !matches!(
                        n,
                        NotificationKind::TrackingUpdated
                            | NotificationKind::BoletoReminder
                            | NotificationKind::PixReminder
                            | NotificationKind::AbandonedCart
                    ),
                    "{}",
                    r.code
                );
            } else {
                assert_eq!(
                    r.priority, 0,
                    "{}: no notification, no happy-path step",
                    r.code
                );
            }
        }
    }
}
