//! The connector's settings (`[stores.<id>.settings]`): declared for
//! `info()`, read and validated for every call. Every error names the key
//! at fault, and the value too unless it is a secret (see
//! docs/platforms/nuvemshop.md §Credentials).

use arauto_plugin_sdk::connector::{ConfigKey, PluginError, config_key, misconfigured, settings};
use arauto_plugin_sdk::time::parse_duration_ms;

/// Everything before `/{store_id}` in every URL.
pub const DEFAULT_BASE_URL: &str = "https://api.nuvemshop.com.br/v1";
/// The hosts the sandbox lets the connector reach by default.
pub const DEFAULT_HOSTS: [&str; 2] = ["https://api.nuvemshop.com.br", "https://api.tiendanube.com"];
/// The API's maximum `per_page`.
pub const MAX_PAGE_SIZE: u32 = 200;
const DEFAULT_PAGE_SIZE: &str = "200";
const DEFAULT_INITIAL_LOOKBACK: &str = "30d";
const DEFAULT_OVERLAP: &str = "2m";
/// Each request's own timeout; the host's per-call deadline still applies.
pub const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Settings that identify the shop (`connector-info.account-keys`): with
/// `base_url`, the store id names one Nuvemshop store; the token only
/// authenticates it.
pub const ACCOUNT_KEYS: [&str; 2] = ["store_id", "base_url"];

/// The secret used to verify pushes.
pub const APP_SECRET_KEY: &str = "app_secret";

/// Every setting, for `info().plugin.config_keys`.
pub fn config_keys() -> Vec<ConfigKey> {
    vec![
        config_key(
            "store_id",
            "The store's id (the `user_id` Nuvemshop returned when the app was installed); \
             every API URL is {base_url}/{store_id}/…",
            true,
            false,
        ),
        config_key(
            "access_token",
            "The app's access token for this store (sent as `Authentication: bearer <token>`). \
             It does not expire; it stops working when the app is reinstalled or removed.",
            true,
            true,
        ),
        config_key(
            APP_SECRET_KEY,
            "The app's secret (client secret in the partners' portal): pushes are signed with \
             it (x-linkedstore-hmac-sha256). Needed only for webhooks; pushes are refused (401) \
             while it is unset.",
            false,
            true,
        ),
        config_key(
            "user_agent",
            "Required by Nuvemshop on every request: your app's name and a contact, e.g. \
             \"Loja da Ana notificações (ti@example.com)\". Requests without it are refused.",
            true,
            false,
        ),
        config_key(
            "base_url",
            "API root before the store id: https://api.nuvemshop.com.br/v1 (or a dated version \
             such as …/2025-03, or https://api.tiendanube.com/v1).",
            false,
            false,
        )
        .with_default(DEFAULT_BASE_URL),
        config_key(
            "page_size",
            "Orders per list page (per_page), 1 to 200; one poll call reads one page.",
            false,
            false,
        )
        .with_default(DEFAULT_PAGE_SIZE),
        config_key(
            "initial_lookback",
            "How far back the first poll of a store looks (e.g. \"7d\", \"12h\").",
            false,
            false,
        )
        .with_default(DEFAULT_INITIAL_LOOKBACK),
        config_key(
            "overlap",
            "How far before the newest updated_at already seen each sweep looks again, to \
             catch late writes (e.g. \"2m\").",
            false,
            false,
        )
        .with_default(DEFAULT_OVERLAP),
    ]
}

/// Just the store id, for `verify-push` (which needs no other setting).
pub fn settings_store_id() -> Result<String, PluginError> {
    let store_id = settings::require("store_id")?;
    if store_id.bytes().all(|b| b.is_ascii_digit()) && store_id.len() <= 20 {
        Ok(store_id)
    } else {
        Err(misconfigured(format!(
            "setting `store_id` = {store_id:?} must be the store's numeric id (the `user_id` \
             of the app installation), e.g. \"123456\""
        )))
    }
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The store's id, digits only.
    pub store_id: String,
    /// The bearer token (secret).
    pub access_token: String,
    /// `User-Agent` of every request.
    pub user_agent: String,
    /// API root without trailing slash.
    pub base_url: String,
    /// `per_page`.
    pub page_size: u32,
    /// Look-back of a store's first sweep, ms.
    pub initial_lookback_ms: i64,
    /// Look-back before the high-water mark, ms.
    pub overlap_ms: i64,
}

/// A duration setting in milliseconds (the SDK's grammar: `"30d"`, `"12h"`,
/// `"90m"`, `"45s"`, `"500ms"`, `"1h 30m"`, `"PT10M"`).
fn duration(key: &str, default: &str) -> Result<i64, PluginError> {
    let text = settings::get_or(key, default);
    parse_duration_ms(&text)
        .and_then(|ms| i64::try_from(ms).map_err(|_| "too long".to_owned()))
        .map_err(|why| {
            misconfigured(format!(
                "setting `{key}` = {text:?} is not a duration such as \"2m\", \"12h\" or \
                 \"7d\": {why}"
            ))
        })
}

impl Settings {
    /// Read and validate the settings that every API call needs.
    pub fn load() -> Result<Self, PluginError> {
        let store_id = settings_store_id()?;
        let access_token = settings::optional("access_token").ok_or_else(|| {
            misconfigured(
                "setting `access_token` is not set: it is the token Nuvemshop issued to the app \
                 when the store installed it",
            )
        })?;
        if access_token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(misconfigured(
                "setting `access_token` contains whitespace; paste the token alone, without \
                 the word `bearer`",
            ));
        }
        let user_agent = settings::optional("user_agent").ok_or_else(|| {
            misconfigured(
                "setting `user_agent` is not set: Nuvemshop refuses requests without a \
                 User-Agent naming the app and a contact, e.g. \"Loja da Ana notificações \
                 (ti@example.com)\"",
            )
        })?;
        if user_agent.chars().any(char::is_control) {
            return Err(misconfigured(format!(
                "setting `user_agent` = {user_agent:?} contains control characters"
            )));
        }
        let base_url = settings::base_url("base_url", DEFAULT_BASE_URL)?;
        if !https_or_loopback(&base_url) {
            return Err(misconfigured(format!(
                "setting `base_url` = {base_url:?} must be an https:// URL (the access token \
                 travels in every request); plain http is accepted only for a test rig on \
                 127.0.0.1, localhost or [::1]"
            )));
        }
        let page_text = settings::get_or("page_size", DEFAULT_PAGE_SIZE);
        let page_size = page_text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                misconfigured(format!(
                    "setting `page_size` = {page_text:?} must be a whole number from 1 to \
                     {MAX_PAGE_SIZE} (Nuvemshop's maximum per_page)"
                ))
            })?;
        let initial_lookback_ms = duration("initial_lookback", DEFAULT_INITIAL_LOOKBACK)?;
        let overlap_ms = duration("overlap", DEFAULT_OVERLAP)?;
        Ok(Self {
            store_id,
            access_token,
            user_agent,
            base_url,
            page_size,
            initial_lookback_ms,
            overlap_ms,
        })
    }

    /// `{base_url}/{store_id}/{rest}`.
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base_url,
            self.store_id,
            rest.trim_start_matches('/')
        )
    }

    /// `text` with the token replaced by `<redacted>` (error bodies may echo
    /// request headers).
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.access_token, "<redacted>")
    }
}

/// True for an `https://` URL, or an `http://` one whose host is the
/// loopback interface (the fake in `sim/`, a local proxy).
fn https_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use arauto_plugin_sdk::connector::testing::{Harness, install};

    fn base() -> Harness {
        Harness::new()
            .setting("store_id", "123456")
            .setting("access_token", "tok-secret")
            .setting("user_agent", "arauto tests (ti@example.com)")
    }

    fn message(err: PluginError) -> String {
        match err {
            PluginError::Misconfigured(m) => m,
            other => panic!("expected misconfigured, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_everything_but_the_credentials() {
        install(base());
        let s = Settings::load().unwrap();
        assert_eq!(
            s.url("/orders"),
            "https://api.nuvemshop.com.br/v1/123456/orders"
        );
        assert_eq!(s.page_size, 200);
        assert_eq!(s.initial_lookback_ms, 30 * 86_400_000);
        assert_eq!(s.overlap_ms, 120_000);
    }

    #[test]
    fn each_bad_setting_is_named_and_secrets_are_not_quoted() {
        install(
            Harness::new()
                .setting("store_id", "1")
                .setting("access_token", "t"),
        );
        assert!(message(Settings::load().unwrap_err()).contains("`user_agent`"));
        install(base().setting("store_id", "loja-da-ana"));
        assert!(message(Settings::load().unwrap_err()).contains("\"loja-da-ana\""));
        install(base().setting("page_size", "500"));
        assert!(message(Settings::load().unwrap_err()).contains("`page_size` = \"500\""));
        install(base().setting("overlap", "soon"));
        assert!(message(Settings::load().unwrap_err()).contains("`overlap`"));
        install(
            Harness::new()
                .setting("store_id", "1")
                .setting("user_agent", "x (y)")
                .setting("access_token", "bearer secret-token"),
        );
        let m = message(Settings::load().unwrap_err());
        assert!(
            m.contains("`access_token`") && !m.contains("secret-token"),
            "{m}"
        );
    }

    #[test]
    fn base_url_is_https_except_on_loopback() {
        for ok in [
            "https://api.nuvemshop.com.br/v1",
            "http://127.0.0.1:18935/v1",
            "http://localhost:8080/v1",
            "http://[::1]:8080/v1",
        ] {
            install(base().setting("base_url", ok));
            assert!(Settings::load().is_ok(), "{ok}");
        }
        for bad in [
            "http://api.nuvemshop.com.br/v1",
            "http://127.0.0.1.example.com/v1",
            "http://localhost.example.com/v1",
        ] {
            install(base().setting("base_url", bad));
            let m = message(Settings::load().unwrap_err());
            assert!(m.contains("`base_url`") && m.contains(bad), "{m}");
        }
    }

    #[test]
    fn durations_read_their_unit() {
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("12 h"), Ok(43_200_000));
        for bad in ["", "m", "5", "5y", "-5m", "99999999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
