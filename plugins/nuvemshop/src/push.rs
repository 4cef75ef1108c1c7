//! Pushed webhooks: `verify-push` checks `x-linkedstore-hmac-sha256` (hex
//! HMAC-SHA256 of the raw body keyed with the app secret) in constant time
//! and names the order; `register-push`/`unregister-push` manage the
//! store's order webhooks (see docs/platforms/nuvemshop.md §Webhooks).

use arauto_plugin_sdk::connector::{
    PluginError, constant_time_eq, misconfigured, permanent, settings,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::api::{id_text, kind_of};
use crate::settings::APP_SECRET_KEY;

/// The header carrying the signature (the host lower-cases header names).
pub const SIGNATURE_HEADER: &str = "x-linkedstore-hmac-sha256";

/// The order events the connector subscribes to: `order/updated` is the
/// only one that fires on a refund or a new tracking code.
pub const ORDER_EVENTS: [&str; 6] = [
    "order/created",
    "order/updated",
    "order/paid",
    "order/packed",
    "order/fulfilled",
    "order/cancelled",
];

/// What a verified push asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Read this order now.
    LookAt(String),
    /// Authentic, nothing to do (why).
    Ignore(String),
}

/// The configured app secret, if any.
pub fn configured_secret() -> Option<String> {
    settings::optional(APP_SECRET_KEY)
}

/// Lower-case hex of HMAC-SHA256(`secret`, `body`).
pub fn signature_hex(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Authenticate a delivery for store `store_id` and say what it asks for.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret: Option<&str>,
    store_id: &str,
) -> Result<Verdict, PluginError> {
    let secret = secret.ok_or_else(|| {
        misconfigured(format!(
            "setting `{APP_SECRET_KEY}` is not set, so pushes cannot be verified: set it to the \
             app's secret (partners' portal) or stop the webhooks"
        ))
    })?;
    let sent = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(SIGNATURE_HEADER))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .ok_or_else(|| {
            misconfigured(format!(
                "push without the `{SIGNATURE_HEADER}` header: not signed by Nuvemshop"
            ))
        })?;
    let expected = signature_hex(secret.as_bytes(), body);
    if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Err(misconfigured(format!(
            "push with a wrong `{SIGNATURE_HEADER}`: not signed with this store's `{APP_SECRET_KEY}` \
             (a different app, a changed secret, or a forgery)"
        )));
    }
    read_body(body, store_id)
}

fn read_body(body: &[u8], store_id: &str) -> Result<Verdict, PluginError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| permanent(format!("signed push whose body is not JSON: {e}")))?;
    let Value::Object(_) = doc else {
        return Err(permanent(format!(
            "signed push whose body is {} instead of an object",
            kind_of(&doc)
        )));
    };
    let event = doc
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| permanent("signed push without an `event`"))?;
    let pushed_store = doc.get("store_id").and_then(id_text);
    if pushed_store.as_deref() != Some(store_id) {
        return Err(permanent(format!(
            "signed push for store {} but this is store {store_id}: the app's webhooks point \
             at the wrong arauto store",
            pushed_store.as_deref().unwrap_or("(none)")
        )));
    }
    if !event.starts_with("order/") {
        return Ok(Verdict::Ignore(format!(
            "event {event} is not about an order"
        )));
    }
    match doc.get("id").and_then(id_text) {
        Some(id) => Ok(Verdict::LookAt(id)),
        None => Err(permanent(format!(
            "signed {event} push without a usable order `id`"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SECRET: &str = "app-secret";
    const BODY: &[u8] = br#"{"store_id":123456,"event":"order/paid","id":987}"#;

    fn signed(body: &[u8]) -> Vec<(String, String)> {
        vec![(
            SIGNATURE_HEADER.into(),
            signature_hex(SECRET.as_bytes(), body),
        )]
    }

    fn class(result: Result<Verdict, PluginError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(PluginError::Misconfigured(_)) => "misconfigured",
            Err(PluginError::Permanent(_)) => "permanent",
            Err(PluginError::Retryable(_)) => "retryable",
        }
    }

    #[test]
    fn a_signed_order_event_names_the_order() {
        assert_eq!(
            verify(&signed(BODY), BODY, Some(SECRET), "123456").unwrap(),
            Verdict::LookAt("987".into())
        );
        let upper: Vec<_> = signed(BODY)
            .into_iter()
            .map(|(k, v)| (k, v.to_ascii_uppercase()))
            .collect();
        assert_eq!(class(verify(&upper, BODY, Some(SECRET), "123456")), "ok");
    }

    #[test]
    fn the_hmac_is_the_documented_one() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn missing_or_wrong_signatures_and_secrets_are_misconfigured_and_never_quoted() {
        assert_eq!(
            class(verify(&signed(BODY), BODY, None, "123456")),
            "misconfigured"
        );
        assert_eq!(
            class(verify(&[], BODY, Some(SECRET), "123456")),
            "misconfigured"
        );
        let tampered = br#"{"store_id":123456,"event":"order/paid","id":988}"#;
        let result = verify(&signed(BODY), tampered, Some(SECRET), "123456");
        match result {
            Err(PluginError::Misconfigured(m)) => assert!(!m.contains(SECRET), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_stores_bad_bodies_and_other_events() {
        let other_store = br#"{"store_id":1,"event":"order/paid","id":987}"#;
        assert_eq!(
            class(verify(
                &signed(other_store),
                other_store,
                Some(SECRET),
                "123456"
            )),
            "permanent"
        );
        let product = br#"{"store_id":"123456","event":"product/created","id":5}"#;
        assert!(matches!(
            verify(&signed(product), product, Some(SECRET), "123456").unwrap(),
            Verdict::Ignore(_)
        ));
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"store_id":123456,"event":"order/paid"}"#,
            br#"{"store_id":123456}"#,
        ] {
            assert_eq!(
                class(verify(&signed(bad), bad, Some(SECRET), "123456")),
                "permanent",
                "{bad:?}"
            );
        }
    }
}
