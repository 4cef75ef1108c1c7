//! Secret values and plugin `settings` tables (`[stores.<id>.settings]`,
//! `[channels.<id>.settings]`), and how such a table is read.
//!
//! A secret can be written inline, read from a file (`<key>_file`, e.g. a systemd
//! credential) or from an environment variable (`<key>_env`). Whatever the
//! source, it ends up as a [`Secret`], which never prints its content: `Debug`,
//! `Display` and `Serialize` all show `<redacted>`. Only [`Secret::expose`]
//! reveals it, and only the plugin host should call that.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use figment::value::Value;
use serde::{Serialize, Serializer};

use super::bounded_file::read_at_most;
use super::reader::{Reader, Table, kind_name, render};
use super::source::KeyPath;
use super::values::ByteSize;

/// What every redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// Largest secret file (`<key>_file`): credentials are short; /dev/zero is not one.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

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
///
/// A vector sorted by key rather than a `BTreeMap`: every store keeps one for
/// the daemon's lifetime, and a map's node is sized for 11 entries (about
/// 630 bytes for the usual four), a sorted boxed slice for exactly its own.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings(Box<[(String, Setting)]>);

impl Settings {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.position(key).ok().map(|index| &self.0[index].1)
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
        let Ok(index) = self.position(key) else {
            return false;
        };
        let setting = &mut self.0[index].1;
        if let Setting::Plain(value) = setting {
            let value = std::mem::take(value);
            *setting = Setting::Secret(Secret::new(value));
        }
        true
    }
}

impl Serialize for Settings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, Setting)> for Settings {
    /// Like a map: of two entries with the same key, the later one wins.
    fn from_iter<I: IntoIterator<Item = (String, Setting)>>(iter: I) -> Self {
        let mut entries: Vec<(String, Setting)> = iter.into_iter().collect();
        // Stable, so equal keys keep their order and the last is the later one.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        entries.reverse();
        Self(entries.into_boxed_slice())
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

/// Read a `settings` table: plain values as text, secrets (by key name, or
/// from `<key>_file` / `<key>_env`) as [`Secret`]s.
pub(crate) fn read_settings(r: &mut Reader<'_>, mut t: Table) -> Settings {
    let entries = t.drain();
    r.finish(t);
    let present: BTreeSet<String> = entries.iter().map(|(k, _, _)| k.clone()).collect();
    // Collected, then sorted once into the table.
    let mut settings: Vec<(String, Setting)> = Vec::with_capacity(entries.len());
    for (key, path, value) in entries {
        let indirect =
            [("_file", true), ("_env", false)]
                .into_iter()
                .find_map(|(suffix, is_file)| {
                    key.strip_suffix(suffix)
                        .map(|base| (base.to_owned(), is_file))
                });
        if let Some((base, is_file)) = indirect.filter(|(base, _)| !base.is_empty()) {
            let others: Vec<String> = [base.clone(), format!("{base}_file"), format!("{base}_env")]
                .into_iter()
                .filter(|k| *k != key && present.contains(k))
                .collect();
            if !others.is_empty() {
                r.error_at(
                    &path,
                    format!("{base} is given more than once (also as {}); keep only one of {base}, {base}_file, {base}_env", others.join(", ")),
                );
                continue;
            }
            let secret = if is_file {
                secret_from_file(r, &path, value)
            } else {
                secret_from_env(r, &path, value)
            };
            if let Some(secret) = secret {
                settings.push((base, Setting::Secret(secret)));
            }
            continue;
        }
        // Plugins receive every setting as text and parse it themselves: a
        // bare number or boolean (`page_size = 50`, `verbose = true`) is
        // passed as its text. An endpoint (`url`, `…_url`) must be a quoted
        // URL: `base_url = 5` is a slip. Tables and arrays are passed as JSON
        // text (for settings documented as JSON, like the webhook's `headers`).
        let text = match &value {
            Value::String(_, s) => s.clone(),
            Value::Char(_, c) => c.to_string(),
            Value::Empty(..) => String::new(),
            Value::Num(..) | Value::Bool(..) if !key.ends_with("url") => render(&value),
            Value::Num(..) | Value::Bool(..) => {
                let message = format!(
                    "{key} is an address the plugin calls: write an http(s) URL in quotes, \
                     like {key} = \"https://…\" (found {})",
                    kind_name(&value)
                );
                if looks_secret(&key) {
                    r.error_at(&path, message);
                } else {
                    r.error(&path, &value, message);
                }
                continue;
            }
            Value::Dict(..) | Value::Array(..) => match serde_json::to_string(&value) {
                Ok(json) => json,
                Err(e) => {
                    r.error_at(&path, format!("cannot pass this value to the plugin: {e}"));
                    continue;
                }
            },
        };
        let setting = if looks_secret(&key) {
            Setting::Secret(Secret::new(text))
        } else {
            Setting::Plain(text)
        };
        settings.push((key, setting));
    }
    settings.into_iter().collect()
}

fn nonempty_secret(r: &mut Reader<'_>, path: &KeyPath, text: String, from: &str) -> Option<Secret> {
    if text.is_empty() {
        r.error_at(path, format!("{from} is empty"));
        return None;
    }
    Some(Secret::new(text))
}

/// `<key>_file`: relative paths resolve against `$CREDENTIALS_DIRECTORY` (systemd
/// `LoadCredential=`) when set, else against the configuration file's directory.
pub(crate) fn secret_from_file(r: &mut Reader<'_>, path: &KeyPath, value: Value) -> Option<Secret> {
    let name = r.nonempty_string(path, value.clone())?;
    let file = Path::new(&name);
    let resolved = if file.is_absolute() {
        file.to_path_buf()
    } else if let Some(dir) = r.env_var("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Path::new(dir).join(file)
    } else {
        r.resolve(file)
    };
    match read_at_most(&resolved, MAX_SECRET_FILE_BYTES) {
        Ok(bytes) if bytes.len() as u64 > MAX_SECRET_FILE_BYTES => {
            r.error(
                path,
                &value,
                format!(
                    "secret file {} is larger than {}: not a credential",
                    resolved.display(),
                    ByteSize(MAX_SECRET_FILE_BYTES)
                ),
            );
            None
        }
        Ok(bytes) => {
            let Ok(mut text) = String::from_utf8(bytes) else {
                r.error(
                    path,
                    &value,
                    format!("secret file {} is not valid UTF-8", resolved.display()),
                );
                return None;
            };
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            nonempty_secret(
                r,
                path,
                text,
                &format!("secret file {}", resolved.display()),
            )
        }
        Err(e) => {
            r.error(
                path,
                &value,
                format!("cannot read secret file {}: {e}", resolved.display()),
            );
            None
        }
    }
}

pub(crate) fn secret_from_env(r: &mut Reader<'_>, path: &KeyPath, value: Value) -> Option<Secret> {
    let name = r.nonempty_string(path, value.clone())?;
    match r.env_var(&name).map(|v| v.to_str().map(str::to_owned)) {
        Some(Some(text)) => nonempty_secret(r, path, text, &format!("environment variable {name}")),
        Some(None) => {
            r.error(
                path,
                &value,
                format!("environment variable {name} is not valid UTF-8"),
            );
            None
        }
        None => {
            r.error(
                path,
                &value,
                format!("environment variable {name} is not set"),
            );
            None
        }
    }
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
        let mut settings: Settings = [
            ("user".to_owned(), Setting::Plain("alice".to_owned())),
            ("pin".to_owned(), Setting::Secret(secret)),
            ("user".to_owned(), Setting::Plain("bob".to_owned())),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            format!("{settings:?}"),
            r#"{"pin": <redacted>, "user": "bob"}"#
        );
        assert!(settings.mark_secret("user"));
        assert!(!format!("{settings:?}").contains("bob"));
        assert_eq!(settings.get("user").map(Setting::expose), Some("bob"));
    }
}
