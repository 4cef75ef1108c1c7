//! A healthy sender: POSTs the message text as JSON to `settings.url`.

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
        Ok(Receipt { provider_message_id: Some(msg.idempotency_key), recipient_id: None })
    }
}

arauto_plugin_sdk::export_sender!(Echo);
