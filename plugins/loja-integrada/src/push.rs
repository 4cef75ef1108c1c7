//! Loja Integrada's order webhooks (pushes): authenticating a delivery and
//! naming the order to look at (`verify-push`), and subscribing the store
//! (`register-push`/`unregister-push`). The facts relied on are in
//! docs/platforms/loja-integrada.md §Webhooks (push).
//!
//! A push is only a hint: the host polls the store at once and the order is
//! read from the API as always, so nothing of the body but its `numero` and
//! `situacao.situacao_alterada` is used.

use arauto_plugin_sdk::connector::{PluginError, misconfigured, permanent, settings};
use serde_json::Value;

use crate::api::as_u64;

/// The secret setting pushes are checked against (and that `register-push`
/// hands to LI as the subscription's `token`).
pub const TOKEN_KEY: &str = "webhook_token";
/// The subscription resource, on the API host (not under `api_prefix`).
pub const WEBHOOK_PATH: &str = "/webhooks/v1/pedido";

/// What a delivery asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look at this order (its `numero`).
    LookAt(String),
    /// Authentic, but not a status change: LI repeats deliveries and says to
    /// act only on `situacao_alterada: true`.
    Ignore(String),
}

/// The configured `webhook_token`, trimmed; `None` when unset or blank.
pub fn configured_token() -> Option<String> {
    settings::get(TOKEN_KEY)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Check one delivery: `Authorization: Bearer <webhook_token>` (compared in
/// constant time), then the body. Makes no HTTP request.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    token: Option<&str>,
) -> Result<Verdict, PluginError> {
    let Some(token) = token else {
        return Err(misconfigured(format!(
            "setting `{TOKEN_KEY}` is not set, so pushes cannot be authenticated and are refused; \
             set it (a long random secret) and register the webhook with it \
             (`arauto webhooks register`)"
        )));
    };
    let presented = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim());
    let Some(presented) = presented else {
        return Err(misconfigured("the push carries no Authorization header"));
    };
    let credential = presented
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| presented[7..].trim_start());
    let Some(credential) = credential else {
        return Err(misconfigured(
            "the push's Authorization header is not a Bearer token",
        ));
    };
    if !constant_time_eq(credential.as_bytes(), token.as_bytes()) {
        return Err(misconfigured(format!(
            "the push's bearer token does not match setting `{TOKEN_KEY}`"
        )));
    }
    read_body(body)
}

/// What the body says: the order's `numero` and whether its status changed.
fn read_body(body: &[u8]) -> Result<Verdict, PluginError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| permanent(format!("the push body is not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(permanent("the push body is not a JSON object"));
    }
    // `numero` addresses the order (GET pedido/{numero}); the top-level `id`
    // is an internal number that the API does not accept.
    let numero = doc
        .get("numero")
        .and_then(as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| permanent("the push body has no usable `numero` (order number)"))?;
    match doc.get("situacao").and_then(|s| s.get("situacao_alterada")) {
        Some(Value::Bool(false)) => Ok(Verdict::Ignore(format!(
            "order {numero}: situacao_alterada is false (a repeat or an edit that is not a \
             status change)"
        ))),
        // true, or absent / odd: look anyway. The poll reads the order from
        // the API and its dedupe drops anything already notified.
        _ => Ok(Verdict::LookAt(numero.to_string())),
    }
}

/// Shared with the other connectors (the SDK compares secrets in constant time).
pub use arauto_plugin_sdk::connector::constant_time_eq;

/// `scheme://host[:port]` of `base_url`: the webhook resource lives on the
/// API host itself, whatever path the REST resources sit under.
pub fn origin(base_url: &str) -> String {
    match base_url.find("://") {
        Some(at) => {
            let rest = &base_url[at + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &base_url[..at + 3], &rest[..host_end])
        }
        None => base_url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use arauto_plugin_sdk::connector::PluginError;

    fn bearer(token: &str) -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ]
    }

    fn is_misconfigured(result: Result<Verdict, PluginError>) -> bool {
        matches!(result, Err(PluginError::Misconfigured(_)))
    }

    fn is_permanent(result: Result<Verdict, PluginError>) -> bool {
        matches!(result, Err(PluginError::Permanent(_)))
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"segredo", b"segredo"));
        assert!(!constant_time_eq(b"segredo", b"segredO"));
        assert!(!constant_time_eq(b"segredo", b"segred"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_status_change_names_the_numero_not_the_internal_id() {
        let body = br#"{"id": 987654, "numero": 165, "token": "t", "tipo": "pedido_venda",
            "data_modificacao": "2024-12-11T21:09:38.888Z",
            "situacao": {"codigo": "pedido_pago", "id": 4, "situacao_alterada": true}}"#;
        assert_eq!(
            verify(&bearer("t"), body, Some("t")).unwrap(),
            Verdict::LookAt("165".into())
        );
    }

    #[test]
    fn a_numero_as_text_is_read_and_a_missing_flag_still_looks() {
        let body = br#"{"numero": "166", "situacao": {"codigo": "pedido_enviado"}}"#;
        assert_eq!(
            verify(&bearer("t"), body, Some("t")).unwrap(),
            Verdict::LookAt("166".into())
        );
    }

    #[test]
    fn an_unchanged_status_is_ignored() {
        let body = br#"{"numero": 167, "situacao": {"situacao_alterada": false}}"#;
        assert!(matches!(
            verify(&bearer("t"), body, Some("t")).unwrap(),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn wrong_missing_or_unset_credentials_are_misconfigured_and_never_quoted() {
        let body = br#"{"numero": 1}"#;
        let wrong = verify(&bearer("guess"), body, Some("segredo-certo"));
        match &wrong {
            Err(PluginError::Misconfigured(m)) => {
                assert!(!m.contains("guess") && !m.contains("segredo-certo"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(is_misconfigured(verify(&[], body, Some("t"))));
        let basic = vec![("authorization".to_owned(), "Basic dDp0".to_owned())];
        assert!(is_misconfigured(verify(&basic, body, Some("t"))));
        match verify(&bearer("t"), body, None) {
            Err(PluginError::Misconfigured(m)) => assert!(m.contains(TOKEN_KEY), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_without_a_usable_numero_or_not_json_is_permanent() {
        for body in [
            &b"not json"[..],
            br#"[1, 2]"#,
            br#"{"id": 987654}"#,
            br#"{"numero": null}"#,
            br#"{"numero": "abc"}"#,
            br#"{"numero": 0}"#,
        ] {
            assert!(is_permanent(verify(&bearer("t"), body, Some("t"))));
        }
    }

    #[test]
    fn the_webhook_resource_is_on_the_api_host() {
        assert_eq!(
            origin("https://api.awsli.com.br"),
            "https://api.awsli.com.br"
        );
        assert_eq!(origin("http://127.0.0.1:4000/api"), "http://127.0.0.1:4000");
    }
}
