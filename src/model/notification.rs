use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The fixed vocabulary of customer notifications, the same for every platform.
///
/// Connectors map their platform's status codes to these kinds (see
/// [`super::plugin_info::StatusEntry`]); stores may override the mapping in their config.
/// The string forms (`"order-shipped"`, …) are what appears in TOML, logs,
/// metrics labels, reports and template file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// Order placed, payment pending (deposit, card in analysis, PIX, boleto).
    WaitingPayment,
    /// Payment approved.
    OrderPaid,
    /// Being prepared: in production, picking, invoiced.
    OrderProcessing,
    /// Dispatched, usually with a tracking code.
    OrderShipped,
    /// Ready to be picked up by the customer.
    ReadyForPickup,
    /// Delivered.
    OrderDelivered,
    /// Cancelled (or payment failed).
    OrderCanceled,
    /// Payment refunded.
    OrderRefunded,
    /// A new or changed tracking code on a shipment (split shipments: one per code).
    TrackingUpdated,
    /// Reminder of an unpaid boleto; needs barcode, due date and link from the platform.
    BoletoReminder,
    /// Reminder of an unpaid PIX charge; needs the PIX code and expiry from the platform.
    PixReminder,
    /// Abandoned cart recovery; needs cart data from the platform.
    AbandonedCart,
}

impl NotificationKind {
    /// Every kind, in happy-path order first, then the off-path and reserved kinds.
    pub const ALL: [NotificationKind; 12] = [
        Self::WaitingPayment,
        Self::OrderPaid,
        Self::OrderProcessing,
        Self::OrderShipped,
        Self::ReadyForPickup,
        Self::OrderDelivered,
        Self::OrderCanceled,
        Self::OrderRefunded,
        Self::TrackingUpdated,
        Self::BoletoReminder,
        Self::PixReminder,
        Self::AbandonedCart,
    ];

    /// The kebab-case name used in configs, logs and templates.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WaitingPayment => "waiting-payment",
            Self::OrderPaid => "order-paid",
            Self::OrderProcessing => "order-processing",
            Self::OrderShipped => "order-shipped",
            Self::ReadyForPickup => "ready-for-pickup",
            Self::OrderDelivered => "order-delivered",
            Self::OrderCanceled => "order-canceled",
            Self::OrderRefunded => "order-refunded",
            Self::TrackingUpdated => "tracking-updated",
            Self::BoletoReminder => "boleto-reminder",
            Self::PixReminder => "pix-reminder",
            Self::AbandonedCart => "abandoned-cart",
        }
    }

    /// Off-path end states: sent once, and they cancel the order's pending
    /// happy-path notifications.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::OrderCanceled | Self::OrderRefunded)
    }

    /// Kinds only connectors that declare the matching capability can produce.
    pub const fn is_reserved(self) -> bool {
        matches!(
            self,
            Self::BoletoReminder | Self::PixReminder | Self::AbandonedCart
        )
    }

    /// A short Portuguese label for reports and the checklist.
    pub const fn label_pt(self) -> &'static str {
        match self {
            Self::WaitingPayment => "Aguardando pagamento",
            Self::OrderPaid => "Pedido pago",
            Self::OrderProcessing => "Pedido em processamento",
            Self::OrderShipped => "Pedido enviado",
            Self::ReadyForPickup => "Pronto para retirada",
            Self::OrderDelivered => "Pedido entregue",
            Self::OrderCanceled => "Pedido cancelado",
            Self::OrderRefunded => "Pagamento estornado",
            Self::TrackingUpdated => "Código de rastreio atualizado",
            Self::BoletoReminder => "Lembrete de boleto",
            Self::PixReminder => "Lembrete de PIX",
            Self::AbandonedCart => "Carrinho abandonado",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`NotificationKind`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notification kind {0:?} (expected one of: {list})", list = NotificationKind::ALL.map(|k| k.as_str()).join(", "))]
pub struct UnknownNotificationKind(pub String);

impl FromStr for NotificationKind {
    type Err = UnknownNotificationKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownNotificationKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for kind in NotificationKind::ALL {
            assert_eq!(kind.as_str().parse::<NotificationKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn unknown_name_lists_the_vocabulary() {
        let Err(err) = "order-sent".parse::<NotificationKind>() else {
            panic!("\"order-sent\" parsed as a notification kind");
        };
        let msg = err.to_string();
        assert!(msg.contains("\"order-sent\""), "{msg}");
        assert!(msg.contains("order-shipped"), "{msg}");
    }
}
