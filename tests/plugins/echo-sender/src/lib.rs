//! A healthy sender: POSTs the message text as JSON to `settings.url`.

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use arauto_plugin_sdk::sender::prelude::*;

struct Echo;

impl Sender for Echo {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "echo-sender".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Sender,
            description: "Test plugin: POSTs the text to settings.url".into(),
            config_keys: vec![config_key("url", "Where to POST", true, false)],
            default_hosts: vec![],
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
        Message {
            idempotency_key: "job-1".into(),
            attempt: 1,
            recipient: Recipient {
                phone: None,
                email: None,
                name: None,
                first_name: None,
            },
            text: "olá".into(),
            template: None,
            meta: MessageMeta {
                store: "s".into(),
                order_id: "1".into(),
                order_number: "1".into(),
                notification: "order-paid".into(),
                job_id: "job-1".into(),
                channel: "c".into(),
            },
            event_json: "{}".into(),
        }
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
