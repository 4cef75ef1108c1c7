//! Fake Z-API.
//!
//! * Send: `POST /instances/{id}/token/{token}/send-text`, header
//!   `Client-Token`, JSON `{"phone","message",…}`. Success is HTTP 200
//!   `{"zaapId":"…","messageId":"…","id":"…"}`. The two errors Z-API documents
//!   are reproduced: another method → 405, a body without
//!   `Content-Type: application/json` → 415.
//! * Check: `GET /instances/{id}/token/{token}/status` →
//!   `{"connected":true,"error":null,"smartphoneConnected":true}`
//!   ([`disconnected`] for a dropped session).
//! * Other errors are not documented by Z-API; [`error`] builds its usual
//!   `{"error":…,"message":…}` shape.

use serde_json::{Value, json};

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success, hex_id};

pub(crate) struct Behaviour;

fn route(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["instances", id, "token", token, action] if !id.is_empty() && !token.is_empty() => {
            Some(action)
        }
        _ => None,
    }
}

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        let (method, path) = (req.method.as_str(), req.path.as_str());
        match (method, route(path)?) {
            // Any method reaches send-text so that the documented 405 can be answered.
            (_, "send-text") => Some(Endpoint::Send),
            ("GET", "status") => Some(Endpoint::Check),
            _ => None,
        }
    }

    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse> {
        match req.header("client-token") {
            Some(token) if token == secret => Ok(()),
            Some(_) => Err(CannedResponse::json(
                400,
                &json!({"error": "Client-Token not allowed"}),
            )),
            None => Err(CannedResponse::json(
                400,
                &json!({"error": "your client-token is not configured"}),
            )),
        }
    }

    fn unreachable(&self, req: &RecordedRequest) -> Option<(String, Reply)> {
        let phone = req.body_json()["phone"].as_str().map(super::digits)?;
        Some((
            phone,
            error(400, "Bad Request", "Phone number does not exist"),
        ))
    }

    fn not_found(&self, _req: &RecordedRequest) -> CannedResponse {
        CannedResponse::json(
            404,
            &json!({"error": "NOT_FOUND", "message": "Unable to find matching target resource method"}),
        )
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        match endpoint {
            Endpoint::Check => Success {
                response: CannedResponse::json(
                    200,
                    &json!({"connected": true, "error": null, "smartphoneConnected": true}),
                ),
                delivered: None,
            },
            Endpoint::Send => {
                if req.method != "POST" {
                    return reject(405, "Method Not Allowed", "use POST for send-text");
                }
                if !req
                    .header("content-type")
                    .is_some_and(|ct| ct.starts_with("application/json"))
                {
                    return reject(
                        415,
                        "Unsupported Media Type",
                        "send the header Content-Type: application/json",
                    );
                }
                let body = req.body_json();
                let phone = body.get("phone").and_then(Value::as_str);
                let message = body.get("message").and_then(Value::as_str);
                let (Some(phone), Some(message)) = (phone, message) else {
                    return reject(400, "Bad Request", "phone and message are required");
                };
                let message_id = hex_id("D241", serial, 16);
                let zaap_id = hex_id("3999", serial ^ 0xFFFF, 28);
                Success {
                    response: CannedResponse::json(
                        200,
                        &json!({"zaapId": zaap_id, "messageId": message_id, "id": message_id}),
                    ),
                    delivered: Some(Delivered {
                        to: phone.to_owned(),
                        text: message.to_owned(),
                        id: message_id,
                    }),
                }
            }
        }
    }
}

fn reject(status: u16, error: &str, message: &str) -> Success {
    Success {
        response: CannedResponse::json(status, &json!({"error": error, "message": message})),
        delivered: None,
    }
}

/// An error in Z-API's usual `{"error":…,"message":…}` shape.
pub fn error(status: u16, error: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": error, "message": message}))
}

/// A check answer for an instance whose WhatsApp session dropped.
pub fn disconnected() -> Reply {
    Reply::json(
        200,
        json!({"connected": false, "error": "You need to restore the session.", "smartphoneConnected": false}),
    )
}
