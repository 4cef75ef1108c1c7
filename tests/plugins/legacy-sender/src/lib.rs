//! A sender built against the deprecated contract `arauto:plugin@0.1.0`
//! (wit-bindgen directly, no SDK): keeps the host's 0.1 path tested. It POSTs
//! `{"text", "key", "phone", "event"}` to `settings.url`, where `event` is the
//! 0.1 `event-json` parsed, so tests can check its shape.

wit_bindgen::generate!({ world: "sender", path: "../../../plugins/wit/since_v0.1.0" });

use arauto::plugin::{config, http, types};
use exports::arauto::plugin::sender_api::{Guest, Message, Receipt};

struct Legacy;

fn misconfigured(why: &str) -> types::PluginError {
    types::PluginError::Misconfigured(why.to_owned())
}

fn post(url: &str, body: String) -> Result<http::Response, types::PluginError> {
    http::send(&http::Request {
        method: http::Method::Post,
        url: url.to_owned(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.into_bytes()),
        timeout_ms: None,
    })
    .map_err(|e| {
        types::PluginError::Retryable(types::RetryableError {
            message: format!("{e:?}"),
            retry_after_ms: None,
        })
    })
}

impl Guest for Legacy {
    fn info() -> types::PluginInfo {
        types::PluginInfo {
            name: "legacy-sender".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: types::PluginKind::Sender,
            description:
                "Test plugin on contract 0.1: POSTs the text and event-json to settings.url".into(),
            config_keys: vec![types::ConfigKey {
                name: "url".into(),
                description: "Where to POST".into(),
                required: true,
                secret: false,
                default_value: None,
            }],
            default_hosts: vec![],
        }
    }

    fn check() -> Result<(), types::PluginError> {
        config::get("url")
            .map(|_| ())
            .ok_or_else(|| misconfigured("url is not set"))
    }

    fn send(msg: Message) -> Result<Receipt, types::PluginError> {
        let url = config::get("url").ok_or_else(|| misconfigured("url is not set"))?;
        let event = if msg.event_json.is_empty() {
            "null".to_owned()
        } else {
            msg.event_json
        };
        let body = format!(
            r#"{{"text":{},"key":{},"phone":{},"event":{event}}}"#,
            json_string(&msg.text),
            json_string(&msg.idempotency_key),
            msg.recipient
                .phone
                .as_deref()
                .map_or("null".to_owned(), json_string),
        );
        let response = post(&url, body)?;
        if !(200..300).contains(&response.status) {
            return Err(types::PluginError::Retryable(types::RetryableError {
                message: format!("HTTP {}", response.status),
                retry_after_ms: None,
            }));
        }
        Ok(Receipt {
            provider_message_id: Some(msg.idempotency_key),
            recipient_id: None,
        })
    }
}

/// A JSON string literal (no serde: this plugin keeps to wit-bindgen alone).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export!(Legacy);
