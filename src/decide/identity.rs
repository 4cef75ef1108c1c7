//! Which shop account a store entry reads from, as the platform sees it.
//!
//! The duplicate rule ([`super::fingerprint`]) must catch one shop configured
//! twice (two `[stores.*]` entries with the same credentials would otherwise
//! message every customer twice) without swallowing a *different* shop's
//! message whose customer, order number, total and status happen to coincide
//! (order numbers start at the same value in every Loja Integrada shop, and
//! a customer who buys from two shops is the same person). The config id
//! cannot tell the two cases apart, so the rule is keyed on the platform's
//! own store identity instead.
//!
//! The host derives it from what identifies the account to the platform: the
//! platform name, the API root (`base_url`, the connector's default when
//! unset) and the values of the settings that name the account. A contract
//! 0.2 connector declares those (`connector-info.account-keys`: its
//! credentials, not a webhook token the operator chose); for a 0.1 connector,
//! whose contract cannot say, every setting it declares `secret` counts (API
//! keys, tokens: the platform maps them to exactly one shop account). The result is the hex
//! SHA-256 of those values; the credentials are long random tokens, so the
//! digest reveals nothing usable, and it is never logged on its own (it only
//! enters the fingerprint hash). A connector that declares no secret setting
//! with a value gives no evidence of the account, so its stores fall back to
//! the config id and are never merged.
//!
//! Limits: the same shop reached through two different credentials (LI's
//! `api_key` + `application_key` in one entry, a `personal_token` in another)
//! counts as two shops; a later contract may let connectors report the
//! platform's own store id, which would replace this derivation.

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::model::ConfigKey;

/// The setting that names a connector's API root, by convention of the
/// first-party connectors.
const BASE_URL: &str = "base_url";

/// Hex SHA-256 naming the platform account behind a store entry (see the
/// module docs): `platform`, `config_keys` and `account_keys` as the
/// connector's `info()` reports them (`account_keys` `None`: a 0.1 connector,
/// every secret key counts), `settings` as configured. `store_id` is used
/// only when none of those settings has a value.
pub fn store_identity(
    store_id: &str,
    platform: &str,
    config_keys: &[ConfigKey],
    account_keys: Option<&[String]>,
    settings: &Settings,
) -> String {
    let value = |name: &str| -> Option<String> {
        settings
            .get(name)
            .map(|s| s.expose().to_owned())
            .or_else(|| {
                config_keys
                    .iter()
                    .find(|key| key.name == name)
                    .and_then(|key| key.default_value.clone())
            })
            .filter(|v| !v.trim().is_empty())
    };
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update(value.as_bytes());
        hasher.update([0u8]);
    };
    field("arauto store identity v1");
    field(platform);
    let base_url = value(BASE_URL)
        .map(|url| url.trim().trim_end_matches('/').to_lowercase())
        .unwrap_or_default();
    field(&base_url);
    let mut secret_keys: Vec<&str> = match account_keys {
        Some(declared) => declared.iter().map(String::as_str).collect(),
        None => config_keys
            .iter()
            .filter(|key| key.secret)
            .map(|key| key.name.as_str())
            .collect(),
    };
    secret_keys.sort_unstable();
    secret_keys.dedup();
    let mut any_credential = false;
    for name in secret_keys {
        field(name);
        match value(name) {
            Some(secret) => {
                any_credential = true;
                field("=");
                field(secret.trim());
            }
            None => field("-"),
        }
    }
    if !any_credential {
        field("config id");
        field(store_id);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Setting;

    /// Loja Integrada's keys, as its connector declares them.
    fn li_keys() -> Vec<ConfigKey> {
        let key = |name: &str, secret: bool, default: Option<&str>| ConfigKey {
            name: name.to_owned(),
            description: String::new(),
            required: false,
            secret,
            default_value: default.map(str::to_owned),
        };
        vec![
            key("api_key", true, None),
            key("application_key", true, None),
            key("personal_token", true, None),
            key("webhook_token", true, None),
            key("base_url", false, Some("https://api.awsli.com.br")),
            key("page_size", false, Some("50")),
        ]
    }

    /// The account keys Loja Integrada's 0.2 connector declares.
    fn li_account_keys() -> Vec<String> {
        ["api_key", "application_key", "personal_token"]
            .map(String::from)
            .to_vec()
    }

    fn identity(store_id: &str, platform: &str, settings: &Settings) -> String {
        store_identity(
            store_id,
            platform,
            &li_keys(),
            Some(&li_account_keys()),
            settings,
        )
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Setting::Plain((*v).to_owned())))
            .collect()
    }

    #[test]
    fn the_same_credentials_name_the_same_shop_whatever_the_config_id_and_knobs() {
        let li = "loja-integrada";
        let a = identity(
            "loja",
            li,
            &settings(&[("api_key", "k1"), ("application_key", "app")]),
        );
        let b = identity(
            "loja-copia",
            li,
            &settings(&[
                ("api_key", "k1"),
                ("application_key", "app"),
                ("base_url", "https://API.awsli.com.br/"),
                ("page_size", "20"),
            ]),
        );
        assert_eq!(
            a, b,
            "explicit default base_url and other knobs change nothing"
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn different_credentials_platforms_or_hosts_name_different_shops() {
        let li = "loja-integrada";
        let base = identity("x", li, &settings(&[("api_key", "k1")]));
        for other in [
            identity("x", li, &settings(&[("api_key", "k2")])),
            identity("x", li, &settings(&[("personal_token", "k1")])),
            identity(
                "x",
                li,
                &settings(&[("api_key", "k1"), ("base_url", "http://127.0.0.1:9")]),
            ),
            identity("x", "nuvemshop", &settings(&[("api_key", "k1")])),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn without_credentials_the_config_id_keeps_stores_apart() {
        let li = "loja-integrada";
        let none = settings(&[("page_size", "10")]);
        assert_ne!(identity("a", li, &none), identity("b", li, &none));
    }

    #[test]
    fn a_webhook_token_is_not_part_of_the_account() {
        let li = "loja-integrada";
        let plain = identity("a", li, &settings(&[("api_key", "k1")]));
        let with_token = identity(
            "b",
            li,
            &settings(&[("api_key", "k1"), ("webhook_token", "escolhido")]),
        );
        assert_eq!(plain, with_token, "one shop, pushes on for one entry only");
    }

    #[test]
    fn the_declared_account_keys_give_what_the_01_derivation_gave() {
        // Upgrading the connector to contract 0.2 must not change the
        // fingerprints of queued jobs: without a webhook token, the declared
        // keys are exactly the secret ones.
        let li = "loja-integrada";
        let creds = settings(&[("api_key", "k1"), ("application_key", "app")]);
        let declared = identity("x", li, &creds);
        let keys_01: Vec<ConfigKey> = li_keys()
            .into_iter()
            .filter(|k| k.name != "webhook_token")
            .collect();
        let derived = store_identity("x", li, &keys_01, None, &creds);
        assert_eq!(declared, derived);
    }

    #[test]
    fn the_identity_does_not_contain_the_secret() {
        let li = "loja-integrada";
        let id = identity("x", li, &settings(&[("api_key", "0123456789abcdef")]));
        assert!(!id.contains("0123456789abcdef"));
    }
}
