//! Fake Meta WhatsApp Cloud API.
//!
//! * Send: `POST /{version}/{phone-number-id}/messages` (JSON; `messaging_product`
//!   and `to` are required, as Meta answers code 100 otherwise). Success is
//!   HTTP 200 `{"messaging_product":"whatsapp","contacts":[{"input":<to>,
//!   "wa_id":<to digits>}],"messages":[{"id":"wamid.…","message_status":"accepted"}]}`.
//! * Check: `GET /{version}/{phone-number-id}` → the phone-number object
//!   (`verified_name`, `display_phone_number`, `quality_rating`, `id`).
//! * Errors use Meta's envelope `{"error":{"message","type","code",
//!   "error_data":{"messaging_product","details"},"fbtrace_id"}}`: build them
//!   with [`error`] (documented HTTP status, message and details per code) or
//!   [`error_with`].

use serde_json::{Value, json};

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success, digits, hex_id};

pub(crate) struct Behaviour;

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        let (method, path) = (req.method.as_str(), req.path.as_str());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", [version, id, "messages"]) if version.starts_with('v') && !id.is_empty() => {
                Some(Endpoint::Send)
            }
            ("GET", [version, id]) if version.starts_with('v') && !id.is_empty() => {
                Some(Endpoint::Check)
            }
            _ => None,
        }
    }

    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse> {
        if req.header("authorization") == Some(format!("Bearer {secret}").as_str()) {
            Ok(())
        } else {
            Err(envelope(
                401,
                190,
                "Invalid OAuth access token - Cannot parse access token",
                None,
                "OAuthException",
            ))
        }
    }

    fn unreachable(&self, req: &RecordedRequest) -> Option<(String, Reply)> {
        let to = req.body_json()["to"].as_str().map(super::digits)?;
        Some((to, error(131026)))
    }

    fn not_found(&self, req: &RecordedRequest) -> CannedResponse {
        envelope(
            400,
            2500,
            &format!("Unknown path components: {}", req.path),
            None,
            "OAuthException",
        )
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        match endpoint {
            Endpoint::Check => {
                let id = req.path.rsplit('/').next().unwrap_or_default();
                Success {
                    response: CannedResponse::json(
                        200,
                        &json!({
                            "verified_name": "Loja Fake",
                            "code_verification_status": "VERIFIED",
                            "display_phone_number": "+55 11 4004-0000",
                            "quality_rating": "GREEN",
                            "platform_type": "CLOUD_API",
                            "throughput": {"level": "STANDARD"},
                            "id": id,
                        }),
                    ),
                    delivered: None,
                }
            }
            Endpoint::Send => send_success(req, serial),
        }
    }
}

fn send_success(req: &RecordedRequest, serial: u64) -> Success {
    let body = req.body_json();
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return reject(envelope(
            400,
            100,
            "(#100) The parameter messaging_product is required.",
            None,
            "OAuthException",
        ));
    }
    let Some(to) = body
        .get("to")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return reject(envelope(
            400,
            100,
            "(#100) The parameter to is required.",
            None,
            "OAuthException",
        ));
    };
    let text = match body.get("type").and_then(Value::as_str) {
        Some("template") => render_template(&body["template"]),
        Some("text") => body["text"]["body"].as_str().unwrap_or_default().to_owned(),
        other => format!("[{} message]", other.unwrap_or("untyped")),
    };
    let wamid = format!("wamid.{}", hex_id("HBgN", serial, 44));
    Success {
        response: CannedResponse::json(
            200,
            &json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": digits(to)}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }),
        ),
        delivered: Some(Delivered {
            to: to.to_owned(),
            text,
            id: wamid,
        }),
    }
}

fn reject(response: CannedResponse) -> Success {
    Success {
        response,
        delivered: None,
    }
}

/// `[template pedido_enviado pt_BR] Maria | #1234` (named: `name=Maria | …`).
fn render_template(template: &Value) -> String {
    let name = template["name"].as_str().unwrap_or("?");
    let language = template["language"]["code"].as_str().unwrap_or("?");
    let params: Vec<String> = template["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            let text = p["text"].as_str().unwrap_or_default();
            match p["parameter_name"].as_str() {
                Some(name) => format!("{name}={text}"),
                None => text.to_owned(),
            }
        })
        .collect();
    format!("[template {name} {language}] {}", params.join(" | "))
}

fn envelope(
    status: u16,
    code: i64,
    message: &str,
    details: Option<&str>,
    kind: &str,
) -> CannedResponse {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    });
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    CannedResponse::json(status, &json!({ "error": error }))
}

/// Meta's error response for `code` with the HTTP status, message and details
/// the Cloud API documents for it (unknown codes: HTTP 400, a generic message).
pub fn error(code: i64) -> Reply {
    let (status, title, details) = documented(code);
    let message = format!("(#{code}) {title}");
    Reply::canned(envelope(
        status,
        code,
        &message,
        Some(details),
        "OAuthException",
    ))
}

/// Meta's error envelope with every field chosen by the caller.
pub fn error_with(http_status: u16, code: i64, message: &str, details: &str) -> Reply {
    Reply::canned(envelope(
        http_status,
        code,
        message,
        Some(details),
        "OAuthException",
    ))
}

/// HTTP status, title and `error_data.details` per documented code.
fn documented(code: i64) -> (u16, &'static str, &'static str) {
    match code {
        0 => (
            401,
            "AuthException",
            "We were unable to authenticate the app user.",
        ),
        190 => (
            401,
            "Error validating access token: Session has expired",
            "The access token has expired.",
        ),
        1 => (
            500,
            "An unknown error occurred",
            "Invalid request or possible server error.",
        ),
        2 => (
            503,
            "Service temporarily unavailable",
            "Temporary due to downtime or due to being overloaded.",
        ),
        3 => (
            403,
            "Capability or permissions issue",
            "The app lacks the capability for this API.",
        ),
        4 => (
            400,
            "Application request limit reached",
            "The app has reached its API call rate limit.",
        ),
        10 => (
            403,
            "Permission denied",
            "Permission is either not granted or has been removed.",
        ),
        100 => (
            400,
            "Invalid parameter",
            "The request included one or more unsupported or misspelled parameters.",
        ),
        200..=299 => (
            403,
            "API Permission",
            "Permission is either not granted or has been removed.",
        ),
        368 => (
            403,
            "Temporarily blocked for policies violations",
            "The WhatsApp Business Account is restricted for violating a platform policy.",
        ),
        80007 => (
            400,
            "Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit.",
        ),
        130403 => (
            400,
            "Recipient blocked",
            "The business has blocked this user.",
        ),
        130429 => (
            400,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
        131000 => (
            500,
            "Something went wrong",
            "Message failed to send due to an unknown error.",
        ),
        131008 => (
            400,
            "Required parameter is missing",
            "The request is missing a required parameter.",
        ),
        131009 => (
            400,
            "Parameter value is not valid",
            "One or more parameter values are invalid.",
        ),
        131016 => (
            503,
            "Service unavailable",
            "A service is temporarily unavailable.",
        ),
        131021 => (
            400,
            "Recipient cannot be sender",
            "Sender and recipient phone number is the same.",
        ),
        131026 => (
            400,
            "Message undeliverable",
            "Unable to deliver message. The recipient is not a WhatsApp user, has not accepted the terms or uses an old app.",
        ),
        131030 => (
            400,
            "Recipient phone number not in allowed list",
            "Add the recipient to the allowed list.",
        ),
        131031 => (
            403,
            "Account has been locked",
            "The WhatsApp Business Account is restricted or disabled.",
        ),
        131042 => (
            400,
            "Business eligibility payment issue",
            "There was an error related to your payment method.",
        ),
        131045 => (
            400,
            "Incorrect certificate",
            "Message failed to send due to a phone number registration error.",
        ),
        131047 => (
            400,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        131048 => (
            400,
            "Spam rate limit hit",
            "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
        ),
        131049 => (
            400,
            "Meta chose not to deliver",
            "This message was not delivered to maintain healthy ecosystem engagement.",
        ),
        131050 => (
            400,
            "Unable to deliver the message",
            "The user has stopped marketing messages from the business.",
        ),
        131051 => (400, "Unsupported message type", "Unsupported message type."),
        131056 => (
            400,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        ),
        131057 => (
            400,
            "Account in maintenance mode",
            "Business Account is in maintenance mode.",
        ),
        131064 => (
            400,
            "Messaging limited",
            "Messaging is limited because of template classification violations.",
        ),
        132000 => (
            400,
            "Number of parameters does not match the expected number of params",
            "The number of variable parameter values does not match the template.",
        ),
        132001 => (
            400,
            "Template does not exist",
            "The template does not exist in the specified language.",
        ),
        132005 => (
            400,
            "Translated text too long",
            "Translated text is too long.",
        ),
        132007 => (
            400,
            "Template Format Character Policy Violated",
            "Template content violates a WhatsApp policy.",
        ),
        132012 => (
            400,
            "Parameter format does not match format in the created template",
            "Variable parameter values formatted incorrectly.",
        ),
        2494100 => (
            400,
            "Account in maintenance mode",
            "The number is being migrated or upgraded.",
        ),
        _ => (400, "Error", "Unrecognised error."),
    }
}
