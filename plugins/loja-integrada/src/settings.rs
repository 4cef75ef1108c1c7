//! The store's `settings` table: credentials, endpoint and polling knobs.

use arauto_plugin_sdk::connector::{ConfigKey, PluginError, misconfigured, settings};
use jiff::SignedDuration;

use crate::time::parse_duration;

/// LI's production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.awsli.com.br";
const DEFAULT_API_PREFIX: &str = "/v1";
const DEFAULT_OVERLAP: &str = "10m";
/// How far past the connector's clock an order's `data_modificacao` may lie
/// before the cursor stops following it (see `cursor.rs`, future timestamps).
const DEFAULT_FUTURE_TOLERANCE: &str = "10m";
/// Long enough to cover most orders still in flight when a store is added: the
/// first sync reads them as summaries only (no detail calls below the host's
/// cutoff), so their later steps are compared against a baseline and orders
/// placed before this window are never announced as news.
const DEFAULT_INITIAL_LOOKBACK: &str = "30d";
const DEFAULT_PAGE_SIZE: &str = "50";
const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// LI's documented maximum `limit` for `pedido/search`.
const MAX_PAGE_SIZE: u32 = 50;

/// The settings that identify the shop account (`info().account_keys`): the
/// credentials. `webhook_token` is secret too but chosen by the operator, so
/// it says nothing about which shop this is.
pub const ACCOUNT_KEYS: [&str; 3] = ["api_key", "application_key", "personal_token"];

/// Every setting, for `info().plugin.config_keys`.
pub fn config_keys() -> Vec<ConfigKey> {
    let key = |name: &str, description: &str, secret: bool, default: Option<&str>| ConfigKey {
        name: name.to_owned(),
        description: description.to_owned(),
        // Either credential pair may be used, so no single key is required;
        // `check`/`poll` say precisely what is missing.
        required: false,
        secret,
        default_value: default.map(str::to_owned),
    };
    vec![
        key(
            "api_key",
            "Chave de API of the store (LI panel: Configurações > Chave para API). \
             Used together with application_key; alternative to personal_token.",
            true,
            None,
        ),
        key(
            "application_key",
            "Chave de aplicação issued by Loja Integrada to the integrator (bound to the \
             server's IP). Used together with api_key.",
            true,
            None,
        ),
        key(
            "personal_token",
            "Personal token of the store (LI panel: Configurações > Chave para API > Personal \
             token). Expires every 3 months unless renewed. Alternative to api_key + \
             application_key; never set both.",
            true,
            None,
        ),
        key(
            "base_url",
            "Loja Integrada API root.",
            false,
            Some(DEFAULT_BASE_URL),
        ),
        key(
            "api_prefix",
            "Path prefix of the REST resources (\"/v1\"; \"/api/v1\" also works on LI).",
            false,
            Some(DEFAULT_API_PREFIX),
        ),
        key(
            "overlap",
            "How far before Loja Integrada's clock at the previous poll's start (its Date \
             header) and before the newest data_modificacao already seen each poll looks \
             again, to catch late commits (duration, e.g. \"10m\").",
            false,
            Some(DEFAULT_OVERLAP),
        ),
        key(
            "future_tolerance",
            "How far ahead of the daemon's clock an order's data_modificacao may be before it \
             is treated as a wrong date: the order is still processed, but the cursor does not \
             follow it past now + this tolerance, and a warning names the order (duration).",
            false,
            Some(DEFAULT_FUTURE_TOLERANCE),
        ),
        key(
            "initial_lookback",
            "How far back the first poll of a store looks (duration, e.g. \"7d\").",
            false,
            Some(DEFAULT_INITIAL_LOOKBACK),
        ),
        key(
            "page_size",
            "Orders per search page, 1 to 50 (LI's maximum); one poll call reads one page.",
            false,
            Some(DEFAULT_PAGE_SIZE),
        ),
        key(
            "request_timeout",
            "Timeout of each API request (duration, e.g. \"30s\"; the daemon's own deadline \
             still applies).",
            false,
            Some(DEFAULT_REQUEST_TIMEOUT),
        ),
        key(
            crate::push::TOKEN_KEY,
            "Secret that Loja Integrada sends back as `Authorization: Bearer <token>` with every \
             order push; `arauto webhooks register` subscribes with it. Pushes are refused \
             (401) while it is unset. A long random string.",
            true,
            None,
        ),
        key(
            "tracking_url_template",
            "Tracking link for codes that are not Correios objects, with {code} where the code \
             goes (e.g. \"https://www.jadlog.com.br/tracking?cte={code}\"). Correios codes \
             always link to rastreamento.correios.com.br.",
            false,
            None,
        ),
    ]
}

/// How requests authenticate (see docs/platforms/loja-integrada.md §Authentication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: chave_api <key> aplicacao <app>`.
    ApiKey {
        /// The store's chave_api.
        api_key: String,
        /// The integrator's chave de aplicação.
        application_key: String,
    },
    /// `Authorization: Basic <token>`, the token sent raw (not base64).
    PersonalToken(String),
}

impl Auth {
    /// The `Authorization` header value.
    pub fn header_value(&self) -> String {
        match self {
            Self::ApiKey {
                api_key,
                application_key,
            } => {
                format!("chave_api {api_key} aplicacao {application_key}")
            }
            Self::PersonalToken(token) => format!("Basic {token}"),
        }
    }

    /// The mode and the settings it came from, for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => {
                "chave_api + chave de aplicação (settings `api_key` and `application_key`)"
            }
            Self::PersonalToken(_) => "personal token (setting `personal_token`)",
        }
    }

    /// What the sysadmin should check when LI rejects these credentials.
    pub fn rejection_hint(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => {
                "check that the store's chave de API still exists in the LI panel (Configurações > \
                 Chave para API), that the chave de aplicação is valid, and that this server's IP \
                 is registered for it"
            }
            Self::PersonalToken(_) => {
                "personal tokens expire every 3 months unless renewed: renew it or generate a new \
                 one in the LI panel (Configurações > Chave para API > Personal token)"
            }
        }
    }

    /// The secret values, to scrub them from any text quoted in messages.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Self::ApiKey {
                api_key,
                application_key,
            } => vec![api_key, application_key],
            Self::PersonalToken(token) => vec![token],
        }
    }
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Credentials.
    pub auth: Auth,
    /// API root without trailing slash.
    pub base_url: String,
    /// Resource prefix with a leading and no trailing slash (may be empty).
    pub api_prefix: String,
    /// Look-back before the newest modification already seen.
    pub overlap: SignedDuration,
    /// Look-back of a store's first poll.
    pub initial_lookback: SignedDuration,
    /// How far past now a modification time may advance the cursor.
    pub future_tolerance: SignedDuration,
    /// Requested page size.
    pub page_size: u32,
    /// Per-request timeout.
    pub timeout_ms: u32,
    /// Link template for non-Correios tracking codes.
    pub tracking_url_template: Option<String>,
}

fn value(key: &str) -> Option<String> {
    settings::get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn credential(key: &str) -> Result<Option<String>, PluginError> {
    match value(key) {
        Some(v) if v.chars().any(char::is_whitespace) => Err(misconfigured(format!(
            "setting `{key}` contains whitespace; paste the key exactly as the LI panel shows it"
        ))),
        other => Ok(other),
    }
}

fn duration(key: &str, default: &str) -> Result<SignedDuration, PluginError> {
    let text = value(key).unwrap_or_else(|| default.to_owned());
    parse_duration(&text).map_err(|why| {
        misconfigured(format!(
            "setting `{key}` = {text:?} is not a valid duration (e.g. \"10m\", \"7d\"): {why}"
        ))
    })
}

impl Settings {
    /// Read and validate the settings; every error names the key at fault.
    pub fn load() -> Result<Self, PluginError> {
        let auth = Self::auth()?;
        let base_url = value("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = base_url.trim_end_matches('/').to_owned();
        let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
        if !scheme_ok
            || base_url.contains(['?', '#'])
            || base_url.split("://").nth(1).is_none_or(str::is_empty)
        {
            return Err(misconfigured(format!(
                "setting `base_url` = {base_url:?} must be an http(s) URL without query, e.g. \"{DEFAULT_BASE_URL}\""
            )));
        }
        let prefix = value("api_prefix").unwrap_or_else(|| DEFAULT_API_PREFIX.to_owned());
        let prefix = prefix.trim_matches('/');
        let api_prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };

        let page_text = value("page_size").unwrap_or_else(|| DEFAULT_PAGE_SIZE.to_owned());
        let page_size = page_text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                misconfigured(format!(
                    "setting `page_size` = {page_text:?} must be a whole number from 1 to {MAX_PAGE_SIZE} (LI's maximum)"
                ))
            })?;

        let overlap = duration("overlap", DEFAULT_OVERLAP)?;
        let initial_lookback = duration("initial_lookback", DEFAULT_INITIAL_LOOKBACK)?;
        let future_tolerance = duration("future_tolerance", DEFAULT_FUTURE_TOLERANCE)?;
        let timeout = duration("request_timeout", DEFAULT_REQUEST_TIMEOUT)?;
        let timeout_ms = u32::try_from(timeout.as_millis())
            .ok()
            .filter(|ms| *ms >= 100)
            .ok_or_else(|| {
                misconfigured(format!(
                    "setting `request_timeout` = {timeout} must be between 100ms and about 49 days"
                ))
            })?;

        let tracking_url_template = value("tracking_url_template");
        if let Some(t) = &tracking_url_template
            && !t.contains("{code}")
        {
            return Err(misconfigured(format!(
                "setting `tracking_url_template` = {t:?} has no {{code}} placeholder"
            )));
        }

        Ok(Self {
            auth,
            base_url,
            api_prefix,
            overlap,
            initial_lookback,
            future_tolerance,
            page_size,
            timeout_ms,
            tracking_url_template,
        })
    }

    fn auth() -> Result<Auth, PluginError> {
        let api_key = credential("api_key")?;
        let application_key = credential("application_key")?;
        let token = credential("personal_token")?;
        match (api_key, application_key, token) {
            (Some(api_key), Some(application_key), None) => Ok(Auth::ApiKey {
                api_key,
                application_key,
            }),
            (None, None, Some(token)) => Ok(Auth::PersonalToken(token)),
            (None, None, None) => Err(misconfigured(
                "no Loja Integrada credentials: set `personal_token` (LI panel: Configurações > \
                 Chave para API > Personal token), or `api_key` together with `application_key`",
            )),
            (_, _, Some(_)) => Err(misconfigured(
                "set either `personal_token` or `api_key` + `application_key`, not both: Loja \
                 Integrada rejects requests that mix credential types",
            )),
            (Some(_), None, None) => Err(misconfigured(
                "setting `api_key` is set but `application_key` is missing: the chave de API \
                 identifies the store, the chave de aplicação identifies the integrator, and LI \
                 needs both (or use `personal_token` instead)",
            )),
            (None, Some(_), None) => Err(misconfigured(
                "setting `application_key` is set but `api_key` is missing: add the store's chave \
                 de API (LI panel: Configurações > Chave para API), or use `personal_token` instead",
            )),
        }
    }

    /// `{base_url}{api_prefix}/{rest}`.
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}{}/{}",
            self.base_url,
            self.api_prefix,
            rest.trim_start_matches('/')
        )
    }

    /// `text` with every credential value replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        self.auth
            .secrets()
            .into_iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_owned(), |acc, secret| {
                acc.replace(secret, "<redacted>")
            })
    }
}
