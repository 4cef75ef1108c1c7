//! Secret values and plugin `settings` tables.
//!
//! A secret can be written inline, read from a file (`<key>_file`, e.g. a systemd
//! credential) or from an environment variable (`<key>_env`). Whatever the
//! source, it ends up as a [`Secret`], which never prints its content: `Debug`,
//! `Display` and `Serialize` all show `<redacted>`. Only [`Secret::expose`]
//! reveals it, and only the plugin host should call that.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

/// What every redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A secret string (API token, password, signing key…).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value leaves for its destination
    /// (the plugin that needs it), never to log or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// One value of a plugin `settings` table, as the plugin receives it (plugins get
/// strings: numbers and booleans in their TOML spelling, arrays and tables as JSON).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    /// An ordinary value.
    Plain(String),
    /// A secret: from `<key>_file`, `<key>_env`, a secret-looking key name, or
    /// declared secret by the plugin.
    Secret(Secret),
}

impl Setting {
    /// The value to hand to the plugin.
    pub fn expose(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(secret) => secret.expose(),
        }
    }

    /// Whether the value must be redacted.
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret(_))
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(value) => fmt::Debug::fmt(value, f),
            Self::Secret(secret) => fmt::Debug::fmt(secret, f),
        }
    }
}

/// A store's or channel's `settings` table with secrets resolved.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Settings(BTreeMap<String, Setting>);

impl Settings {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.0.get(key)
    }

    /// All keys and values, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Treat `key` as secret from now on (the plugin host calls this for keys
    /// the plugin declares secret). Returns whether the key exists.
    pub fn mark_secret(&mut self, key: &str) -> bool {
        match self.0.get_mut(key) {
            Some(setting @ Setting::Plain(_)) => {
                let value = std::mem::replace(setting, Setting::Plain(String::new()));
                *setting = Setting::Secret(Secret::new(value.expose()));
                true
            }
            Some(Setting::Secret(_)) => true,
            None => false,
        }
    }

    pub(crate) fn insert(&mut self, key: String, value: Setting) {
        self.0.insert(key, value);
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl FromIterator<(String, Setting)> for Settings {
    fn from_iter<I: IntoIterator<Item = (String, Setting)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Whether a settings key names something secret by convention (`token`,
/// `api_key`, `password`, `client_secret`, `auth`…). Errs on the side of hiding.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const SUBSTRINGS: [&str; 8] = [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "apikey",
        "private",
        "bearer",
    ];
    const WORDS: [&str; 6] = ["key", "pass", "pwd", "auth", "authorization", "signature"];
    SUBSTRINGS.iter().any(|s| key.contains(s))
        || key.split(['_', '-', '.']).any(|word| WORDS.contains(&word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys() {
        for key in [
            "token",
            "api_key",
            "access-token",
            "client_secret",
            "password",
            "auth",
            "app_key",
        ] {
            assert!(looks_secret(key), "{key}");
        }
        for key in ["store_url", "phone_number_id", "monkey", "language"] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
        assert_eq!(
            serde_json::to_string(&secret).ok().as_deref(),
            Some("\"<redacted>\"")
        );
        let mut settings: Settings = [("user".to_owned(), Setting::Plain("bob".to_owned()))]
            .into_iter()
            .collect();
        settings.insert("pin".to_owned(), Setting::Secret(secret));
        assert_eq!(
            format!("{settings:?}"),
            r#"{"pin": <redacted>, "user": "bob"}"#
        );
        assert!(settings.mark_secret("user"));
        assert!(!format!("{settings:?}").contains("bob"));
        assert_eq!(settings.get("user").map(Setting::expose), Some("bob"));
    }
}
