//! Fake webhook receiver: records every request and verifies nothing (tests
//! verify the signature themselves).
//!
//! * Send: any `POST` except a ping → HTTP 204 (no body). The recorded
//!   message's `to` is the request path, its `text` the raw body and its id
//!   the `webhook-id` header.
//! * Check: any other method, or a `POST` whose JSON `type` is `"ping"` → 204.
//! * Scripted answers: [`status`], [`gone`] (410), [`too_many_requests`] (429
//!   with `Retry-After`), [`redirect`] (307 with `Location`).

use super::{CannedResponse, Delivered, Endpoint, RecordedRequest, Reply, Success};

pub(crate) struct Behaviour;

impl super::ProviderBehaviour for Behaviour {
    fn endpoint(&self, req: &RecordedRequest) -> Option<Endpoint> {
        let is_ping = req
            .body_json()
            .get("type")
            .and_then(serde_json::Value::as_str)
            == Some("ping");
        Some(if req.method == "POST" && !is_ping {
            Endpoint::Send
        } else {
            Endpoint::Check
        })
    }

    fn check_auth(&self, _req: &RecordedRequest, _secret: &str) -> Result<(), CannedResponse> {
        Ok(())
    }

    fn not_found(&self, _req: &RecordedRequest) -> CannedResponse {
        CannedResponse::raw(404, "text/plain", "not found")
    }

    fn success(&self, req: &RecordedRequest, endpoint: Endpoint, serial: u64) -> Success {
        let response = CannedResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let delivered = (endpoint == Endpoint::Send).then(|| Delivered {
            to: req.path.clone(),
            text: req.body_text(),
            id: req
                .header("webhook-id")
                .map_or_else(|| serial.to_string(), str::to_owned),
        });
        Success {
            response,
            delivered,
        }
    }
}

/// A plain-text response with this status.
pub fn status(code: u16) -> Reply {
    Reply::raw(code, "text/plain", "")
}

/// 410 Gone: the receiver disabled this endpoint.
pub fn gone() -> Reply {
    Reply::raw(410, "text/plain", "endpoint disabled")
}

/// 429 with `Retry-After: <seconds>`.
pub fn too_many_requests(retry_after_seconds: u64) -> Reply {
    Reply::raw(429, "text/plain", "slow down")
        .with_header("retry-after", &retry_after_seconds.to_string())
}

/// 307 Temporary Redirect to `location`.
pub fn redirect(location: &str) -> Reply {
    Reply::raw(307, "text/plain", "").with_header("location", location)
}
