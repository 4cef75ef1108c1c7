//! A sender that does whatever its `mode` setting says, to probe the sandbox:
//! behave (`receipt`), spin forever, allocate without bound, panic, make HTTP
//! requests and report the raw host outcome, log a secret, dump its settings,
//! read the clock, count its calls in a static, scribble over its memory,
//! fail with a chosen error class, or hand the host huge output (`huge-error`,
//! `huge-receipt`, `log-fields`, sized by `size`).

// Natively (unit tests) nothing exports the plugin type.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::sync::atomic::{AtomicU32, Ordering};

use arauto_plugin_sdk::imports::arauto::plugin::http as raw_http;
use arauto_plugin_sdk::imports::arauto::plugin::log as raw_log;
use arauto_plugin_sdk::sender::ConfigKey;
use arauto_plugin_sdk::sender::prelude::*;

struct Probe;

/// Calls this instance of the plugin has seen: 1 on every call if each call
/// really gets a fresh sandbox.
static CALLS: AtomicU32 = AtomicU32::new(0);

fn key(name: &str, description: &str, secret: bool) -> ConfigKey {
    config_key(name, description, false, secret)
}

impl Sender for Probe {
    fn info() -> SenderInfo {
        let mut greeting = key(
            "greeting",
            "Text prefixed to receipts in `receipt` mode",
            false,
        );
        greeting.default_value = Some("olá".into());
        let plugin = PluginInfo {
            name: "probe-sender".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test plugin: misbehaves on request".into(),
            config_keys: vec![
                key(
                    "mode",
                    "receipt | spin | memory-bomb | panic | fetch | log-secret | settings | clock | count | scribble | fail | huge-error | huge-receipt | log-fields",
                    false,
                ),
                key("url", "Target of `fetch`", false),
                key(
                    "timeout_ms",
                    "Per-request timeout the plugin asks for in `fetch`",
                    false,
                ),
                key("repeat", "How many requests `fetch` makes", false),
                key(
                    "body",
                    "`length`: `fetch` reports a body over 128 bytes by its length",
                    false,
                ),
                key("token", "A credential (logged by `log-secret`)", true),
                key(
                    "class",
                    "Error class for `fail`: retryable | permanent | misconfigured",
                    false,
                ),
                key("retry_after_ms", "Retry hint for `fail`", false),
                key(
                    "size",
                    "Bytes of `huge-error`/`huge-receipt` output, fields of `log-fields`",
                    false,
                ),
                greeting,
            ],
            default_hosts: vec!["https://api.probe.example".into()],
        };
        SenderInfo {
            plugin,
            recipient: RecipientNeed::CustomerPhone,
            default_min_interval_ms: 1_000,
            default_daily_cap: None,
            idempotent: false,
        }
    }

    fn check() -> Result<(), PluginError> {
        match settings::get_or("mode", "receipt").as_str() {
            "fail" => Err(failure()),
            "spin" => spin(),
            _ => Ok(()),
        }
    }

    fn send(msg: Message) -> Result<Receipt, PluginError> {
        match settings::get_or("mode", "receipt").as_str() {
            "receipt" => Ok(Receipt {
                provider_message_id: Some(format!(
                    "{} {}",
                    settings::get_or("greeting", "?"),
                    msg.idempotency_key
                )),
                recipient_id: msg.recipient.phone,
            }),
            "spin" => spin().map(|()| unreachable_receipt()),
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![7u8; 1 << 20]));
                }
            }
            "panic" => panic!("probe panicked on purpose: {}", msg.text),
            "fetch" => Ok(fetch()),
            "log-secret" => {
                let token = settings::get("token").unwrap_or_default();
                log::log(
                    log::Level::Warn,
                    &format!("calling the provider with token {token}"),
                    &[("token", token.as_str()), ("note", "visible")],
                );
                Ok(unreachable_receipt())
            }
            "settings" => {
                let all: serde_json::Map<String, serde_json::Value> = settings::all()
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                Ok(Receipt {
                    provider_message_id: Some(serde_json::Value::Object(all).to_string()),
                    recipient_id: None,
                })
            }
            "clock" => Ok(Receipt {
                provider_message_id: Some(clock::now_unix_ms().to_string()),
                recipient_id: None,
            }),
            "count" => Ok(Receipt {
                provider_message_id: Some((CALLS.fetch_add(1, Ordering::Relaxed) + 1).to_string()),
                recipient_id: None,
            }),
            "scribble" => {
                // Dirty several MiB of heap and the statics, then report the
                // counter: the next call must see none of it.
                let junk: Vec<Vec<u8>> = (0..6).map(|_| vec![0xA5u8; 1 << 20]).collect();
                std::hint::black_box(&junk);
                CALLS.store(1_000, Ordering::Relaxed);
                Ok(Receipt {
                    provider_message_id: Some(CALLS.load(Ordering::Relaxed).to_string()),
                    recipient_id: None,
                })
            }
            "fail" => Err(failure()),
            "huge-error" => Err(permanent("E".repeat(size()))),
            "huge-receipt" => Ok(Receipt {
                provider_message_id: Some("I".repeat(size())),
                recipient_id: Some("R".repeat(size())),
            }),
            "log-fields" => {
                // The raw import: the SDK's helper would copy the list once more.
                let fields: Vec<(String, String)> = (0..size())
                    .map(|i| (format!("k{i}"), format!("v{i}")))
                    .collect();
                raw_log::log(raw_log::Level::Info, "many fields", &fields);
                Ok(unreachable_receipt())
            }
            other => Err(misconfigured(format!("unknown mode {other:?}"))),
        }
    }
}

/// The `size` setting (default 100 MB).
fn size() -> usize {
    settings::get("size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000_000)
}

fn unreachable_receipt() -> Receipt {
    Receipt {
        provider_message_id: None,
        recipient_id: None,
    }
}

fn spin() -> Result<(), PluginError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn failure() -> PluginError {
    let message = "the probe failed on purpose";
    match settings::get_or("class", "retryable").as_str() {
        "permanent" => permanent(message),
        "misconfigured" => misconfigured(message),
        _ => match settings::get("retry_after_ms").and_then(|v| v.parse().ok()) {
            Some(ms) => retry_after(message, ms),
            None => retryable(message),
        },
    }
}

/// `repeat` GETs of `url`; the receipt lists each raw outcome ("200" or
/// "err:<HttpError debug>") and carries the last body received (with
/// `body = length`, `<N bytes>` for a body over 128 bytes).
fn fetch() -> Receipt {
    let url = settings::get("url").unwrap_or_default();
    let timeout_ms = settings::get("timeout_ms").and_then(|v| v.parse().ok());
    let repeat: u32 = settings::get("repeat")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let by_length = settings::get("body").as_deref() == Some("length");
    let mut outcomes = Vec::new();
    let mut last_body = None;
    for _ in 0..repeat {
        let request = raw_http::Request {
            method: raw_http::Method::Get,
            url: url.clone(),
            headers: vec![("accept".into(), "text/plain".into())],
            body: None,
            timeout_ms,
        };
        match raw_http::send(&request) {
            Ok(response) => {
                outcomes.push(response.status.to_string());
                // Receipt ids are capped at 256 bytes by the host: with
                // `body = length` a long body is reported by its length.
                last_body = Some(if by_length && response.body.len() > 128 {
                    format!("<{} bytes>", response.body.len())
                } else {
                    String::from_utf8_lossy(&response.body).into_owned()
                });
            }
            Err(error) => outcomes.push(format!("err:{error:?}")),
        }
    }
    Receipt {
        provider_message_id: Some(outcomes.join(",")),
        recipient_id: last_body,
    }
}

arauto_plugin_sdk::export_sender!(Probe);
