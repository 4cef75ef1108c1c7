//! A healthy sender: POSTs the message text as JSON to `settings.url`.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;

struct Echo;

impl Sender for Echo {
    fn info() -> SenderInfo {
        SenderInfo {
            plugin: PluginInfo {
                name: "echo-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Test plugin: POSTs the text to settings.url".into(),
                config_keys: vec![config_key("url", "Where to POST", true, false)],
                default_hosts: vec![],
            },
            recipient: RecipientNeed::CustomerPhone,
            default_min_interval_ms: 1_000,
            default_daily_cap: None,
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        let url = settings::require("url")?;
        http::get(&url).send()?.ok_or_error()?;
        Ok(())
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        let url = settings::require("url")?;
        let body = serde_json::json!({ "text": msg.text, "key": msg.idempotency_key });
        http::post(&url).json(&body)?.send()?.ok_or_error()?;
        Ok(Receipt {
            provider_message_id: Some(msg.idempotency_key),
            recipient_id: None,
        })
    }
}

arauto_plugin_sdk::export_sender!(Echo);

#[cfg(test)]
mod tests {
    use super::*;
    use arauto_plugin_sdk::sender::testing;

    fn message() -> Message {
        let mut msg = arauto_plugin_sdk::sender::fixtures::message();
        msg.idempotency_key = "job-1".into();
        msg.text = "olá".into();
        msg
    }

    #[test]
    fn posts_the_text_and_maps_server_errors_to_retryable() {
        testing::install(
            testing::Harness::new()
                .setting("url", "http://127.0.0.1:9/x")
                .transport(|req| {
                    assert_eq!(
                        req.body.as_deref(),
                        Some(r#"{"key":"job-1","text":"olá"}"#.as_bytes())
                    );
                    Ok(http::Response {
                        status: 503,
                        headers: vec![],
                        body: b"busy".to_vec(),
                    })
                }),
        );
        match Echo::send(message()) {
            Err(PluginError::Retryable(e)) => {
                assert!(e.message.contains("HTTP 503"), "{}", e.message)
            }
            other => panic!("expected retryable, got {other:?}"),
        }
        assert_eq!(testing::requests().len(), 1);
    }
}
