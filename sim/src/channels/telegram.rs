//! Fake Telegram Bot API.
//!
//! * Send: `POST /bot{token}/sendMessage` (JSON or form) with `chat_id` and
//!   `text`. Success: `{"ok":true,"result":{"message_id":N,"chat":{"id":…},"date":…,"text":…}}`.
//! * Check: `GET`/`POST /bot{token}/getMe` →
//!   `{"ok":true,"result":{"id":…,"is_bot":true,"username":"loja_fake_bot",…}}`.
//! * Errors: `{"ok":false,"error_code":N,"description":…,"parameters":{…}}`:
//!   [`retry_after`] (429 with `parameters.retry_after`), [`migrated`]
//!   (`parameters.migrate_to_chat_id`), [`blocked`] (403), [`chat_not_found`]
//!   (400), [`error`] for anything else.

use serde_json::{Value, json};

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success};

pub(crate) struct Behaviour;

/// `(token, method)` from `/bot<token>/<method>`.
fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    (!token.is_empty() && !method.contains('/')).then_some((token, method))
}

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        match (req.method.as_str(), route(&req.path)?.1) {
            ("POST", "sendMessage") => Some(Endpoint::Send),
            ("GET" | "POST", "getMe") => Some(Endpoint::Check),
            _ => None,
        }
    }

    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse> {
        match route(&req.path) {
            Some((token, _)) if token == secret => Ok(()),
            _ => Err(envelope(401, "Unauthorized", None)),
        }
    }

    fn unreachable(&self, req: &RecordedRequest) -> Option<(String, Reply)> {
        let chat = match params(req).get("chat_id")? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some((chat, blocked()))
    }

    fn not_found(&self, _req: &RecordedRequest) -> CannedResponse {
        envelope(404, "Not Found", None)
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        match endpoint {
            Endpoint::Check => Success {
                response: CannedResponse::json(200, &json!({"ok": true, "result": bot()})),
                delivered: None,
            },
            Endpoint::Send => {
                let params = params(req);
                let chat_id = match params.get("chat_id") {
                    Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
                    Some(Value::Number(n)) => Value::Number(n.clone()),
                    _ => return reject(envelope(400, "Bad Request: chat_id is empty", None)),
                };
                let Some(text) = params
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                else {
                    return reject(envelope(400, "Bad Request: message text is empty", None));
                };
                let chat_type = if chat_id.as_i64().is_some_and(|id| id < 0) {
                    "supergroup"
                } else {
                    "private"
                };
                let to = match &chat_id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Success {
                    response: CannedResponse::json(
                        200,
                        &json!({"ok": true, "result": {
                            "message_id": serial,
                            "from": bot(),
                            "chat": {"id": chat_id, "type": chat_type},
                            "date": jiff::Timestamp::now().as_second(),
                            "text": text,
                        }}),
                    ),
                    delivered: Some(Delivered {
                        to,
                        text: text.to_owned(),
                        id: serial.to_string(),
                    }),
                }
            }
        }
    }
}

/// The call's parameters from a JSON or form body.
fn params(req: &RecordedRequest) -> serde_json::Map<String, Value> {
    match req.body_json() {
        Value::Object(map) => map,
        _ => req
            .form()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    }
}

fn bot() -> Value {
    json!({
        "id": 7_000_000_001_i64,
        "is_bot": true,
        "first_name": "Loja Fake",
        "username": "loja_fake_bot",
        "can_join_groups": true,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false,
    })
}

fn reject(response: CannedResponse) -> Success {
    Success {
        response,
        delivered: None,
    }
}

fn envelope(code: u16, description: &str, parameters: Option<Value>) -> CannedResponse {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    CannedResponse::json(code, &body)
}

/// `{"ok":false,"error_code":code,"description":description}` with HTTP status `code`.
pub fn error(code: u16, description: &str) -> Reply {
    Reply::canned(envelope(code, description, None))
}

/// 429 `Too Many Requests: retry after N` with `parameters.retry_after = N` (seconds).
pub fn retry_after(seconds: u64) -> Reply {
    Reply::canned(envelope(
        429,
        &format!("Too Many Requests: retry after {seconds}"),
        Some(json!({"retry_after": seconds})),
    ))
}

/// 400: the group became a supergroup with id `new_chat_id`.
pub fn migrated(new_chat_id: i64) -> Reply {
    Reply::canned(envelope(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        Some(json!({"migrate_to_chat_id": new_chat_id})),
    ))
}

/// 403: the user blocked the bot.
pub fn blocked() -> Reply {
    error(403, "Forbidden: bot was blocked by the user")
}

/// 400: unknown chat id.
pub fn chat_not_found() -> Reply {
    error(400, "Bad Request: chat not found")
}
