//! The `sender` world: bindings, the [`Sender`] trait a channel sender
//! implements, and helpers only senders need (the recipient's phone, the
//! event's JSON form).
//!
//! Export an implementation with [`crate::export_sender!`].

wit_bindgen::generate!({
    world: "sender",
    path: "../wit/since_v0.2.0",
    default_bindings_module: "arauto_plugin_sdk::sender",
    pub_export_macro: true,
    export_macro_name: "__export_sender_world",
    with: {
        "arauto:plugin/types@0.2.0": crate::imports::arauto::plugin::types,
        "arauto:plugin/http@0.2.0": crate::imports::arauto::plugin::http,
        "arauto:plugin/log@0.2.0": crate::imports::arauto::plugin::log,
        "arauto:plugin/config@0.2.0": crate::imports::arauto::plugin::config,
        "arauto:plugin/clock@0.2.0": crate::imports::arauto::plugin::clock,
    },
});

pub use self::exports::arauto::plugin::sender_api::*;
pub use crate::support::*;
// Named explicitly: the world's own aliases of these types (from its `use
// types.{…}`) would otherwise make the two glob imports ambiguous.
pub use crate::support::{
    ConfigKey, NotificationKind, PaymentFamily, PluginError, PluginInfo, RetryableError,
};

/// What a channel sender implements.
pub trait Sender {
    /// The plugin and what it declares: whom it delivers to, its default
    /// pace and daily cap, whether it passes the idempotency key on. Called
    /// once when the daemon loads the file, without settings.
    fn info() -> SenderInfo;
    /// Live credential test (one cheap authenticated call).
    fn check() -> Result<(), PluginError>;
    /// Deliver one message.
    fn send(msg: Message) -> Result<Receipt, PluginError>;
}

/// Everything a sender usually needs, in one import.
pub mod prelude {
    pub use super::exports::arauto::plugin::sender_api::*;
    pub use super::{
        NotificationKind, PaymentFamily, PluginError, PluginInfo, RetryableError, Sender, clock,
        config_key, http, log, misconfigured, permanent, recipient_e164, recipient_unreachable,
        retry_after, retryable, settings,
    };
}

/// The customer's phone as the host resolved it: E.164 (`+`, then 8 to 15
/// digits), ready for a provider that wants the `+` form. A message without
/// one, or with something else there, cannot be delivered by a phone channel
/// however often it is retried, so the error is permanent and names the value.
///
/// `channel` completes the sentence "… `channel` needs one", e.g. "WhatsApp".
/// Providers that want bare digits take `&phone[1..]`.
pub fn recipient_e164(msg: &Message, channel: &str) -> Result<String, PluginError> {
    let Some(phone) = msg
        .recipient
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|phone| !phone.is_empty())
    else {
        return Err(permanent(format!(
            "the customer has no usable mobile phone number: {channel} needs one (order without phone, or only landlines)"
        )));
    };
    match phone.strip_prefix('+') {
        Some(digits)
            if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(phone.to_owned())
        }
        _ => Err(permanent(format!(
            "recipient phone {phone:?} is not an E.164 number (+<country><number>)"
        ))),
    }
}

/// A realistic [`Message`] (and its [`OrderEvent`]) for native unit tests of
/// senders: order 1001 of store `loja`, paid by PIX, customer Maria Silva
/// with phone `+5511987654321`. Change the fields a test is about.
#[cfg(not(target_arch = "wasm32"))]
pub mod fixtures {
    use super::*;

    /// The sample message (notification `order-paid`, attempt 1).
    pub fn message() -> Message {
        let event = event();
        Message {
            idempotency_key: "job-0001".into(),
            attempt: 1,
            recipient: Recipient {
                phone: Some("+5511987654321".into()),
                email: Some("maria@example.com".into()),
                chat_id: None,
                name: Some("Maria Silva".into()),
                first_name: Some("Maria".into()),
            },
            text: "Olá Maria, recebemos o pagamento do pedido 1001.".into(),
            template: None,
            meta: MessageMeta {
                store: event.store.id.clone(),
                order_id: event.order.id.clone(),
                order_number: event.order.number.clone(),
                notification: event.notification,
                job_id: event.job_id.clone(),
                channel: "canal".into(),
            },
            event,
        }
    }

    /// The sample message's event.
    pub fn event() -> OrderEvent {
        OrderEvent {
            version: 1,
            notification: NotificationKind::OrderPaid,
            job_id: "job-0001".into(),
            store: EventStore {
                id: "loja".into(),
                description: Some("Loja Exemplo".into()),
                platform: "loja-integrada".into(),
            },
            status_code: "pedido_pago".into(),
            tracking: None,
            order: EventOrder {
                id: "1001".into(),
                number: "1001".into(),
                status: EventStatus {
                    code: "pedido_pago".into(),
                    name: "Pedido Pago".into(),
                },
                created_at: "2024-05-10T12:12:41Z".into(),
                updated_at: "2024-05-10T12:20:03Z".into(),
                customer: EventCustomer {
                    name: "Maria Silva".into(),
                    first_name: "Maria".into(),
                    phones: vec!["11987654321".into()],
                    email: Some("maria@example.com".into()),
                    chat_id: None,
                },
                subtotal_cents: Some(8990),
                shipping_cents: Some(1890),
                discount_cents: Some(0),
                total_cents: Some(10880),
                currency: "BRL".into(),
                payment: Some(EventPayment {
                    code: "pagali-pix".into(),
                    name: "Pix".into(),
                    family: PaymentFamily::Pix,
                    installments: None,
                }),
                shipments: Vec::new(),
                items: vec![EventItem {
                    sku: Some("CAN-01".into()),
                    name: "Caneca".into(),
                    quantity: Some("1".into()),
                    unit_price_cents: Some(8990),
                    total_cents: Some(8990),
                }],
                detailed: true,
                extras_json: "{}".into(),
            },
        }
    }
}

#[cfg(test)]
mod recipient_tests {
    use super::*;

    fn message(phone: Option<&str>) -> Message {
        let mut msg = fixtures::message();
        msg.recipient.phone = phone.map(str::to_owned);
        msg
    }

    fn refusal(phone: Option<&str>) -> String {
        match recipient_e164(&message(phone), "WhatsApp") {
            Err(PluginError::Permanent(why)) => why,
            other => panic!("{phone:?}: expected a permanent error, got {other:?}"),
        }
    }

    #[test]
    fn e164_phones_pass_unchanged() {
        for phone in ["+5511987654321", "+12025550123", "+35191234567"] {
            assert_eq!(
                recipient_e164(&message(Some(phone)), "WhatsApp")
                    .ok()
                    .as_deref(),
                Some(phone)
            );
        }
        assert_eq!(
            recipient_e164(&message(Some(" +5511987654321 ")), "SMS")
                .ok()
                .as_deref(),
            Some("+5511987654321")
        );
    }

    #[test]
    fn missing_or_malformed_phones_are_permanent_and_named() {
        assert!(refusal(None).contains("WhatsApp needs one"));
        assert!(refusal(Some("  ")).contains("no usable mobile phone"));
        for bad in [
            "5511987654321",
            "+55 11 98765-4321",
            "+1234567",
            "+1234567890123456",
        ] {
            let why = refusal(Some(bad));
            assert!(why.contains(&format!("{bad:?}")), "{why}");
        }
    }
}
