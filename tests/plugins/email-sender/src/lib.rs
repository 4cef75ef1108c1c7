//! A contract 0.2 sender that declares recipient `customer-email`, like an
//! e-mail gateway: POSTs `{"text", "key", "phone", "email", "event"}` to
//! `settings.url`. Tests check that orders without an e-mail are skipped with
//! a reason and orders with one are delivered.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;

struct Email;

impl Sender for Email {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: PluginInfo {
                name: "email-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description:
                    "Test plugin: POSTs each notification for the customer's e-mail to settings.url"
                        .into(),
                config_keys: vec![config_key("url", "Where to POST", true, false)],
                default_hosts: vec![],
            },
            recipient: RecipientNeed::CustomerEmail,
            default_min_interval_ms: 1_000,
            default_daily_cap: None,
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        settings::require("url").map(|_| ())
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let url = settings::require("url")?;
        let body = serde_json::json!({
            "text": msg.text,
            "key": msg.idempotency_key,
            "phone": msg.recipient.phone,
            "email": msg.recipient.email,
            "event": arauto_plugin_sdk::event::to_value(&msg.event),
        });
        http::post(&url).json(&body)?.send()?.ok_or_error()?;
        Ok(Receipt {
            provider_message_id: Some(msg.idempotency_key),
            recipient_id: None,
        })
    }
}

arauto_plugin_sdk::export_sender!(Email);
