//! The checks that need a plugin's own description (`info()`): settings the
//! plugin does not declare, endpoint URLs (settings named `url` or `…_url`)
//! its allowlist would refuse, recognition rules
//! for status codes its platform does not have. Settings named
//! `<prefix>.<name>` are open-ended families a plugin documents itself (the
//! webhook's `header.<Header-Name>`) and are not checked against the list. They run once the plugins are
//! loaded (`arauto validate`, start, reload) and report like the loader does:
//! file and line, full key path, value.

use reqwest::Url;

use super::error::{ConfigError, Severity};
use super::plugins::SandboxConfig;
use super::root::Config;
use super::secret::{Setting, Settings};
use super::values::did_you_mean;
use crate::model::{ConnectorInfo, PluginInfo};
use crate::plugin::allowlist::AllowList;

/// Problems of store `store_id`'s settings and recognition rules against its connector.
pub fn check_store(config: &Config, store_id: &str, info: &ConnectorInfo) -> Vec<ConfigError> {
    let Some(store) = config.stores.get(store_id) else {
        return Vec::new();
    };
    let prefix = format!("stores.{store_id}");
    let mut out = check_settings(
        config,
        &prefix,
        &store.settings,
        &store.sandbox,
        &info.plugin,
    );
    for code in store.recognition.keys() {
        if info.status(code).is_some() {
            continue;
        }
        let known: Vec<&str> = info.statuses.iter().map(|s| s.code.as_str()).collect();
        let mut message = format!(
            "status code {code:?} is not one that platform {} knows",
            info.platform
        );
        match did_you_mean(code, known.iter().copied()) {
            Some(close) => message.push_str(&format!(" (did you mean {close:?}?)")),
            None => message.push_str(&format!(" (its codes: {})", known.join(", "))),
        }
        out.push(problem(
            config,
            format!("{prefix}.recognition.{code}"),
            None,
            message,
        ));
    }
    out
}

/// Problems of channel `channel_id`'s settings against its sender.
pub fn check_channel(config: &Config, channel_id: &str, info: &PluginInfo) -> Vec<ConfigError> {
    let Some(channel) = config.channels.get(channel_id) else {
        return Vec::new();
    };
    check_settings(
        config,
        &format!("channels.{channel_id}"),
        &channel.settings,
        &channel.sandbox,
        info,
    )
}

fn check_settings(
    config: &Config,
    prefix: &str,
    settings: &Settings,
    sandbox: &SandboxConfig,
    info: &PluginInfo,
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let declared: Vec<&str> = info.config_keys.iter().map(|k| k.name.as_str()).collect();
    let hosts = sandbox
        .allowed_hosts
        .as_ref()
        .unwrap_or(&info.default_hosts);
    // An unparsable allowlist is reported by the loader (configured) or the
    // plugin loader (declared); nothing to compare URLs against here. Parsed
    // only once a URL setting needs it: most stores have none, and parsing
    // it per store was 2 % of a 10,000-store start-up.
    let allowlist = std::cell::OnceCell::new();
    for (key, setting) in settings.iter() {
        // Which of `key`, `key_file`, `key_env` was written is looked up only
        // for a problem: it asks the file's positions, which a configuration
        // without problems never needs (see `locations.rs`).
        let written = || written_key(config, prefix, key);
        // `<prefix>.<name>` keys are open-ended families a plugin documents
        // itself (the webhook's `header.<Header-Name>`): not checked here.
        if !declared.contains(&key) && !key.contains('.') {
            let mut message = format!("plugin {} has no setting {key:?}", info.name);
            match did_you_mean(key, declared.iter().copied()) {
                Some(close) => message.push_str(&format!(" (did you mean {close:?}?)")),
                None if declared.is_empty() => message.push_str(" (it takes no settings)"),
                None => message.push_str(&format!(" (its settings: {})", declared.join(", "))),
            }
            out.push(problem(config, written(), None, message));
            continue;
        }
        // Only endpoints the plugin calls: `url`, `base_url`, `api_url`… Other
        // URL-valued settings are links for customers or callbacks for the
        // provider (`tracking_url_template`, `status_callback`).
        if !key.ends_with("url") {
            continue;
        }
        let Setting::Plain(text) = setting else {
            continue;
        };
        let Some(url) = http_url(text) else { continue };
        if let Some(allowlist) = allowlist.get_or_init(|| AllowList::parse(hosts).ok())
            && !allowlist.allows(&url)
        {
            let origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
            let allowed_from = if sandbox.allowed_hosts.is_some() {
                format!("{prefix}.sandbox.allowed_hosts")
            } else {
                format!("the plugin's default hosts; set {prefix}.sandbox.allowed_hosts")
            };
            // Only the origin is shown: a URL's path or query may carry a token.
            out.push(problem(
                config,
                written(),
                None,
                format!(
                    "the plugin may not call {origin}: it is not in the allowed hosts ({}); \
                     allowed hosts come from {allowed_from}",
                    allowlist.describe()
                ),
            ));
        }
    }
    out
}

/// A setting that is an http(s) URL, the plugin will presumably call it.
fn http_url(text: &str) -> Option<Url> {
    let trimmed = text.trim();
    let lower = trimmed.get(..8).unwrap_or(trimmed).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    Url::parse(trimmed).ok()
}

/// The key as written: a secret `token` may come from `token_file` or `token_env`.
fn written_key(config: &Config, prefix: &str, key: &str) -> String {
    let base = format!("{prefix}.settings.{key}");
    for suffix in ["", "_file", "_env"] {
        let candidate = format!("{base}{suffix}");
        if config.locations.contains(&candidate) {
            return candidate;
        }
    }
    base
}

fn problem(config: &Config, key: String, value: Option<String>, message: String) -> ConfigError {
    ConfigError {
        severity: Severity::Error,
        origin: config.origin_of(&key),
        key,
        value,
        message,
        source_line: None,
    }
}
