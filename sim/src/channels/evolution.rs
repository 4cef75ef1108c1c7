//! Fake Evolution API v2.
//!
//! * Send: `POST /message/sendText/{instance}` with header `apikey` and JSON
//!   `{"number","text",…}`; both fields are required (else 400
//!   `instance requires property "text"`). Success is HTTP **201**
//!   `{"key":{"remoteJid":"<number>@s.whatsapp.net","fromMe":true,"id":"BAE5…"},
//!   "message":{"extendedTextMessage":{"text":…}},"messageTimestamp":"…","status":"PENDING"}`.
//! * Check: `GET /instance/connectionState/{instance}` →
//!   `{"instance":{"instanceName":…,"state":"open"}}` ([`connection_state`] for others).
//! * Errors: `{"status":N,"error":"…","response":{"message":[…]}}`, e.g.
//!   [`not_on_whatsapp`] (400 with `exists:false`), [`bad_request`],
//!   [`instance_not_found`], [`server_error`].

use serde_json::{Value, json};

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success, hex_id};

pub(crate) struct Behaviour;

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        let (method, path) = (req.method.as_str(), req.path.as_str());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["message", "sendText", instance]) if !instance.is_empty() => {
                Some(Endpoint::Send)
            }
            ("GET", ["instance", "connectionState", instance]) if !instance.is_empty() => {
                Some(Endpoint::Check)
            }
            _ => None,
        }
    }

    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse> {
        if req.header("apikey") == Some(secret) {
            Ok(())
        } else {
            Err(envelope(401, "Unauthorized", json!("Unauthorized")))
        }
    }

    fn unreachable(&self, req: &RecordedRequest) -> Option<(String, Reply)> {
        let number = req.body_json()["number"].as_str().map(super::digits)?;
        Some((number, not_on_whatsapp()))
    }

    fn not_found(&self, req: &RecordedRequest) -> CannedResponse {
        envelope(
            404,
            "Not Found",
            json!([format!("Cannot {} {}", req.method, req.path)]),
        )
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        let instance = req.path.rsplit('/').next().unwrap_or_default();
        match endpoint {
            Endpoint::Check => Success {
                response: CannedResponse::json(
                    200,
                    &json!({"instance": {"instanceName": instance, "state": "open"}}),
                ),
                delivered: None,
            },
            Endpoint::Send => {
                let body = req.body_json();
                let number = body.get("number").and_then(Value::as_str);
                let text = body.get("text").and_then(Value::as_str);
                let (Some(number), Some(text)) = (number, text) else {
                    let missing = if number.is_none() { "number" } else { "text" };
                    return Success {
                        response: envelope(
                            400,
                            "Bad Request",
                            json!([format!("instance requires property \"{missing}\"")]),
                        ),
                        delivered: None,
                    };
                };
                let id = hex_id("BAE5", serial, 12);
                Success {
                    response: CannedResponse::json(
                        201,
                        &json!({
                            "key": {"remoteJid": format!("{number}@s.whatsapp.net"), "fromMe": true, "id": id},
                            "message": {"extendedTextMessage": {"text": text}},
                            "messageTimestamp": jiff::Timestamp::now().as_second().to_string(),
                            "status": "PENDING",
                        }),
                    ),
                    delivered: Some(Delivered {
                        to: number.to_owned(),
                        text: text.to_owned(),
                        id,
                    }),
                }
            }
        }
    }
}

fn envelope(status: u16, error: &str, message: Value) -> CannedResponse {
    CannedResponse::json(
        status,
        &json!({"status": status, "error": error, "response": {"message": message}}),
    )
}

/// 400: the number the client sent has no WhatsApp account
/// (`{"jid":"<n>@s.whatsapp.net","exists":false,"number":"<n>"}`).
pub fn not_on_whatsapp() -> Reply {
    Reply::respond(|req| {
        let number = req.body_json()["number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        envelope(
            400,
            "Bad Request",
            json!([{"jid": format!("{number}@s.whatsapp.net"), "exists": false, "number": number}]),
        )
    })
}

/// 400 with these validation messages.
pub fn bad_request(messages: &[&str]) -> Reply {
    Reply::canned(envelope(400, "Bad Request", json!(messages)))
}

/// 404: the instance in the path does not exist.
pub fn instance_not_found() -> Reply {
    Reply::respond(|req| {
        let instance = req.path.rsplit('/').next().unwrap_or_default();
        envelope(
            404,
            "Not Found",
            json!([format!("The \"{instance}\" instance does not exist")]),
        )
    })
}

/// 500 as Evolution answers when the WhatsApp session dropped mid-send.
pub fn server_error() -> Reply {
    Reply::canned(envelope(
        500,
        "Internal Server Error",
        json!("Connection Closed"),
    ))
}

/// A check answer with this connection `state` (`open`, `connecting`, `close`).
pub fn connection_state(state: &str) -> Reply {
    let state = state.to_owned();
    Reply::respond(move |req| {
        let instance = req.path.rsplit('/').next().unwrap_or_default();
        CannedResponse::json(
            200,
            &json!({"instance": {"instanceName": instance, "state": state}}),
        )
    })
}
