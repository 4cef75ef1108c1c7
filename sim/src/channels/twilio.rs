//! Fake Twilio Programmable Messaging (SMS and WhatsApp).
//!
//! * Send: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//!   form-encoded, Basic auth. `To` (21604), `From` or `MessagingServiceSid`
//!   (21603) and `Body` or `ContentSid` (21602) are required as at Twilio.
//!   Success is HTTP 201 with a Message resource (`sid` `SM…`, `status`
//!   `queued`, or `accepted` with a Messaging Service; `to`, `from`, `body`,
//!   `error_code: null`…).
//! * Check: `GET /2010-04-01/Accounts/{AccountSid}.json` → the Account
//!   resource with `"status":"active"` ([`account_status`] for others).
//! * Errors: `{"code":N,"message":…,"more_info":"https://www.twilio.com/docs/errors/N","status":H}`;
//!   [`error`] knows the documented HTTP status and message of the common
//!   codes, [`error_with`] takes every field.

use serde_json::json;

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success, hex_id};

pub(crate) struct Behaviour;

const API: &str = "2010-04-01";

fn account_of(path: &str, suffix: &str) -> Option<String> {
    let rest = path.strip_prefix(&format!("/{API}/Accounts/"))?;
    let sid = rest.strip_suffix(suffix)?;
    (!sid.is_empty() && !sid.contains('/')).then(|| sid.to_owned())
}

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        let (method, path) = (req.method.as_str(), req.path.as_str());
        match method {
            "POST" if account_of(path, "/Messages.json").is_some() => Some(Endpoint::Send),
            "GET" if account_of(path, ".json").is_some() => Some(Endpoint::Check),
            _ => None,
        }
    }

    fn check_auth(&self, req: &RecordedRequest, secret: &str) -> Result<(), CannedResponse> {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        if req.header("authorization") == Some(expected.as_str()) {
            Ok(())
        } else {
            Err(body(401, 20003, "Authenticate"))
        }
    }

    fn unreachable(&self, req: &RecordedRequest) -> Option<(String, Reply)> {
        let to = req.form_value("To").map(|to| super::digits(&to))?;
        Some((to, error(21614)))
    }

    fn not_found(&self, req: &RecordedRequest) -> CannedResponse {
        body(
            404,
            20404,
            &format!("The requested resource {} was not found", req.path),
        )
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        match endpoint {
            Endpoint::Check => {
                let sid = account_of(&req.path, ".json").unwrap_or_default();
                Success {
                    response: account(&sid, "active"),
                    delivered: None,
                }
            }
            Endpoint::Send => send_success(req, serial),
        }
    }
}

fn send_success(req: &RecordedRequest, serial: u64) -> Success {
    let reject = |code, message: &str| Success {
        response: body(400, code, message),
        delivered: None,
    };
    let account_sid = account_of(&req.path, "/Messages.json").unwrap_or_default();
    let Some(to) = req.form_value("To") else {
        return reject(21604, "A 'To' phone number is required.");
    };
    let from = req.form_value("From");
    let service = req.form_value("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return reject(
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    let text = match (req.form_value("Body"), req.form_value("ContentSid")) {
        (Some(body), _) => body,
        (None, Some(content)) => {
            format!(
                "[template {content}] {}",
                req.form_value("ContentVariables").unwrap_or_default()
            )
        }
        (None, None) => return reject(21602, "Message body is required."),
    };
    let sid = format!("SM{}", hex_id("", serial, 32).to_ascii_lowercase());
    let now = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string();
    let response = CannedResponse::json(
        201,
        &json!({
            "account_sid": account_sid,
            "api_version": API,
            "body": req.form_value("Body").unwrap_or_default(),
            "date_created": now,
            "date_sent": null,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": from,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": if service.is_some() { "accepted" } else { "queued" },
            "subresource_uris": {"media": format!("/{API}/Accounts/{account_sid}/Messages/{sid}/Media.json")},
            "to": to,
            "uri": format!("/{API}/Accounts/{account_sid}/Messages/{sid}.json"),
        }),
    );
    Success {
        response,
        delivered: Some(Delivered { to, text, id: sid }),
    }
}

fn account(sid: &str, status: &str) -> CannedResponse {
    CannedResponse::json(
        200,
        &json!({
            "sid": sid,
            "friendly_name": "Loja Fake",
            "status": status,
            "type": "Full",
            "uri": format!("/{API}/Accounts/{sid}.json"),
        }),
    )
}

fn body(status: u16, code: u32, message: &str) -> CannedResponse {
    CannedResponse::json(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Twilio's error response for `code` with its documented HTTP status and
/// message (unknown codes: HTTP 400).
pub fn error(code: u32) -> Reply {
    let (status, message) = match code {
        20003 => (401, "Authenticate"),
        20404 => (404, "The requested resource was not found"),
        20429 => (429, "Too Many Requests"),
        21211 => (400, "The 'To' number is not a valid phone number."),
        21212 => (
            400,
            "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID.",
        ),
        21408 => (
            400,
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.",
        ),
        21606 => (
            400,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
        ),
        21608 => (
            400,
            "The number is unverified. Trial accounts cannot send messages to unverified numbers; verify it at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number to send messages to unverified numbers.",
        ),
        21610 => (400, "Attempt to send to unsubscribed recipient"),
        21612 => (
            400,
            "The 'To' phone number is not currently reachable via SMS.",
        ),
        21614 => (400, "'To' number is not a valid mobile number"),
        21617 => (
            400,
            "The concatenated message body exceeds the 1600 character limit.",
        ),
        63016 => (
            400,
            "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
        ),
        63018 => (429, "Rate limit exceeded for Channel"),
        _ => (400, "Error"),
    };
    Reply::canned(body(status, code, message))
}

/// An error response with every field chosen by the caller.
pub fn error_with(http_status: u16, code: u32, message: &str) -> Reply {
    Reply::canned(body(http_status, code, message))
}

/// A check answer whose Account `status` is `status` (`active`, `suspended`, `closed`).
pub fn account_status(status: &str) -> Reply {
    let status = status.to_owned();
    Reply::respond(move |req| {
        let sid = account_of(&req.path, ".json").unwrap_or_default();
        account(&sid, &status)
    })
}
