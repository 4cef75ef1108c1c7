//! A contract 0.2 sender with recipient `none`, like a staff notifier (ntfy,
//! Slack, the shop's inbox): POSTs `{"text", "key", "phone", "email",
//! "event"}` to `settings.url`, where `event` is the SDK's order-event JSON.
//! Tests check that orders without any phone still reach it.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;

struct Staff;

impl Sender for Staff {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: PluginInfo {
                name: "staff-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Test plugin: POSTs every notification to the staff's settings.url"
                    .into(),
                config_keys: vec![config_key("url", "Where to POST", true, false)],
                default_hosts: vec![],
            },
            recipient: RecipientNeed::None,
            default_min_interval_ms: 0,
            default_daily_cap: None,
            idempotent: true,
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

arauto_plugin_sdk::export_sender!(Staff);
