//! A typed reader over figment's merged value tree that keeps going after an
//! error, so one run reports every problem of the file.
//!
//! serde's derive stops at the first error and its `deny_unknown_fields`
//! rejects a table at the first stray key; a sysadmin fixing a file wants the
//! whole list at once. So each table is read key by key: every known key is
//! taken and converted (errors recorded, defaults kept to carry on), and what
//! is left over is an unknown key, reported with the closest known name.
//!
//! The free functions at the end ([`field`], [`required`], [`optional`],
//! [`section`]…) are the vocabulary every table's reader (`daemon.rs`,
//! `stores.rs`…) is written in.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Value};
use jiff::SignedDuration;

use super::error::{ConfigError, Severity};
use super::source::{KeyPath, Origins};
use super::values::{self, ByteSize, check_id};

/// The shortest duration that is "longer than zero": the lower bound of
/// timeouts and intervals that must not be zero.
pub(crate) const POSITIVE: SignedDuration = SignedDuration::from_nanos(1);

/// Collects diagnostics while converting values.
pub(crate) struct Reader<'a> {
    pub(crate) origins: Origins<'a>,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigError>,
    /// Relative paths in the file resolve against the file's directory.
    pub(crate) config_dir: PathBuf,
    /// The whole process environment (for `<key>_env` and `$CREDENTIALS_DIRECTORY`).
    pub(crate) env: &'a HashMap<OsString, OsString>,
}

/// A table being read: known keys are taken out, leftovers are unknown keys.
pub(crate) struct Table {
    pub(crate) path: KeyPath,
    entries: Dict,
    known: Vec<&'static str>,
}

impl Table {
    /// Take `key` (recording it as a known key of this table).
    pub(crate) fn take(&mut self, key: &'static str) -> Option<(KeyPath, Value)> {
        self.known.push(key);
        self.entries
            .remove(key)
            .map(|v| (self.path.known_key(key), v))
    }

    /// Take every remaining entry (for free-form tables: ids, settings, kinds).
    pub(crate) fn drain(&mut self) -> Vec<(String, KeyPath, Value)> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(k, v)| {
                let path = self.path.key(&k);
                (k, path, v)
            })
            .collect()
    }

    /// Whether `key` is present (without taking it).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }
}

/// A short rendering of a value for messages (strings quoted, tables summarised).
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match n.to_f64() {
            Some(f) if n.to_i128().is_none() => f.to_string(),
            _ => n
                .to_i128()
                .map_or_else(|| format!("{n:?}"), |i| i.to_string()),
        },
        Value::Empty(..) => "nothing".to_owned(),
        Value::Dict(..) => "a table".to_owned(),
        Value::Array(_, items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

pub(crate) fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::String(..) | Value::Char(..) => "a string",
        Value::Bool(..) => "a boolean",
        Value::Num(..) => "a number",
        Value::Empty(..) => "nothing",
        Value::Dict(..) => "a table",
        Value::Array(..) => "an array",
    }
}

impl Reader<'_> {
    fn push(
        &mut self,
        severity: Severity,
        origin_of_key: bool,
        path: &KeyPath,
        value: Option<String>,
        message: String,
    ) {
        let origin = if origin_of_key {
            self.origins.of_key(path)
        } else {
            self.origins.of_value(path)
        };
        let diagnostic = ConfigError {
            severity,
            origin,
            key: path.to_string(),
            value,
            message,
            source_line: None,
        };
        match severity {
            Severity::Error => self.errors.push(diagnostic),
            Severity::Warning => self.warnings.push(diagnostic),
        }
    }

    /// An error about the value at `path`.
    pub(crate) fn error(&mut self, path: &KeyPath, value: &Value, message: impl Into<String>) {
        self.push(
            Severity::Error,
            false,
            path,
            Some(render(value)),
            message.into(),
        );
    }

    /// An error about the value at `path` without showing it (secrets, or no value).
    pub(crate) fn error_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Error, false, path, None, message.into());
    }

    /// A warning about the value at `path`.
    pub(crate) fn warn(
        &mut self,
        path: &KeyPath,
        value: Option<&Value>,
        message: impl Into<String>,
    ) {
        self.push(
            Severity::Warning,
            false,
            path,
            value.map(render),
            message.into(),
        );
    }

    /// A required key that is absent from `table`.
    pub(crate) fn missing(&mut self, table: &Table, key: &str, what: &str) {
        let path = table.path.key(key);
        let origin = self.origins.of_value(&table.path);
        self.errors.push(ConfigError {
            severity: Severity::Error,
            origin,
            key: path.to_string(),
            value: None,
            message: format!("missing: {what}"),
            source_line: None,
        });
    }

    /// Open the table at `path`.
    pub(crate) fn table(&mut self, path: KeyPath, value: Value) -> Option<Table> {
        match value {
            Value::Dict(_, entries) => Some(Table {
                path,
                entries,
                known: Vec::new(),
            }),
            other => {
                self.error(
                    &path,
                    &other,
                    format!("expected a table, found {}", kind_name(&other)),
                );
                None
            }
        }
    }

    /// A table from an already-merged dictionary (the root).
    pub(crate) fn table_from_dict(path: KeyPath, entries: Dict) -> Table {
        Table {
            path,
            entries,
            known: Vec::new(),
        }
    }

    /// An empty table at `path` (for absent optional sections).
    pub(crate) fn empty_table(path: KeyPath) -> Table {
        Table {
            path,
            entries: Dict::new(),
            known: Vec::new(),
        }
    }

    /// Report whatever `table` still holds as unknown keys.
    pub(crate) fn finish(&mut self, table: Table) {
        for (key, _) in table.entries {
            let path = table.path.key(&key);
            let mut message = "unknown key".to_owned();
            match values::did_you_mean(&key, table.known.iter().copied()) {
                Some(close) => message.push_str(&format!(" (did you mean `{close}`?)")),
                None if !table.known.is_empty() => {
                    message.push_str(&format!(" (expected one of: {})", table.known.join(", ")))
                }
                None => {}
            }
            self.push(Severity::Error, true, &path, None, message);
        }
    }

    fn set_by_env(&self, path: &KeyPath) -> bool {
        self.origins.env.sets(path)
    }

    fn wrong_type(&mut self, path: &KeyPath, value: &Value, expected: &str) {
        self.error(
            path,
            value,
            format!("expected {expected}, found {}", kind_name(value)),
        );
    }

    /// A string.
    pub(crate) fn string(&mut self, path: &KeyPath, value: Value) -> Option<String> {
        match value {
            Value::String(_, s) => Some(s),
            Value::Char(_, c) => Some(c.to_string()),
            other => {
                self.wrong_type(path, &other, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub(crate) fn nonempty_string(&mut self, path: &KeyPath, value: Value) -> Option<String> {
        let s = self.string(path, value)?;
        if s.trim().is_empty() {
            self.error(path, &Value::from(s), "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean (`"true"`/`"false"` accepted from environment variables).
    pub(crate) fn boolean(&mut self, path: &KeyPath, value: Value) -> Option<bool> {
        match value {
            Value::Bool(_, b) => Some(b),
            Value::String(_, ref s) if self.set_by_env(path) => match s.trim() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => {
                    self.error(path, &value, "expected true or false");
                    None
                }
            },
            other => {
                self.wrong_type(path, &other, "true or false");
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub(crate) fn integer(
        &mut self,
        path: &KeyPath,
        value: Value,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let n = match &value {
            Value::Num(_, n) => n.to_i128(),
            Value::String(_, s) if self.set_by_env(path) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        let Some(n) = n else {
            if matches!(value, Value::Num(..) | Value::String(..)) {
                self.error(&path.clone(), &value, "expected a whole number");
            } else {
                self.wrong_type(path, &value, "a whole number");
            }
            return None;
        };
        if n < i128::from(min) || n > i128::from(max) {
            let range = if max == u64::from(u32::MAX) || max == u64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            self.error(path, &value, format!("must be {range}"));
            return None;
        }
        u64::try_from(n).ok()
    }

    /// A `u32` of at least `min`.
    pub(crate) fn u32_min(&mut self, path: &KeyPath, value: Value, min: u32) -> Option<u32> {
        self.integer(path, value, u64::from(min), u64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A number (integer or float) in `min..=max`.
    pub(crate) fn number(
        &mut self,
        path: &KeyPath,
        value: Value,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let n = match &value {
            #[allow(clippy::cast_precision_loss)] // thresholds, not money
            Value::Num(_, n) => n.to_f64().or_else(|| n.to_i128().map(|i| i as f64)),
            Value::String(_, s) if self.set_by_env(path) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && (min..=max).contains(&n) => Some(n),
            Some(_) => {
                let range = if max == f64::MAX {
                    format!("at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                self.error(path, &value, format!("must be {range}"));
                None
            }
            None => {
                self.wrong_type(path, &value, "a number");
                None
            }
        }
    }

    /// A duration of at least `min` (inclusive), with a message.
    pub(crate) fn duration(
        &mut self,
        path: &KeyPath,
        value: Value,
        min: SignedDuration,
    ) -> Option<SignedDuration> {
        self.duration_range(path, value, min, SignedDuration::MAX)
    }

    /// A duration in `min..=max`, with a message naming the bound.
    pub(crate) fn duration_range(
        &mut self,
        path: &KeyPath,
        value: Value,
        min: SignedDuration,
        max: SignedDuration,
    ) -> Option<SignedDuration> {
        let Value::String(_, ref text) = value else {
            let hint = if matches!(value, Value::Num(..)) {
                r#"expected a duration string with a unit, like "20s", "5m", "24h" or "7d""#
            } else {
                r#"expected a duration like "20s", "5m", "24h" or "7d""#
            };
            self.error(path, &value, format!("{hint}, found {}", kind_name(&value)));
            return None;
        };
        match values::parse_duration(text) {
            Ok(d) if d < min => {
                let message = if d.is_negative() {
                    "must not be negative".to_owned()
                } else if min == POSITIVE {
                    "must be longer than zero".to_owned()
                } else {
                    format!("must be at least {}", values::format_duration(min))
                };
                self.error(path, &value, message);
                None
            }
            Ok(d) if d > max => {
                self.error(
                    path,
                    &value,
                    format!("must be at most {}", values::format_duration(max)),
                );
                None
            }
            Ok(d) => Some(d),
            Err(problem) => {
                self.error(path, &value, problem.to_string());
                None
            }
        }
    }

    /// A size in bytes (`"64MiB"` or a number), in `min..=max`.
    pub(crate) fn size(
        &mut self,
        path: &KeyPath,
        value: Value,
        min: ByteSize,
        max: ByteSize,
    ) -> Option<ByteSize> {
        let parsed = match &value {
            Value::String(_, text) => values::parse_size(text),
            Value::Num(_, n) => match n.to_u128().and_then(|n| u64::try_from(n).ok()) {
                Some(n) => Ok(ByteSize(n)),
                None => {
                    self.error(path, &value, "expected a positive number of bytes");
                    return None;
                }
            },
            other => {
                self.error(
                    path,
                    other,
                    format!(
                        r#"expected a size like "64MiB", found {}"#,
                        kind_name(other)
                    ),
                );
                return None;
            }
        };
        match parsed {
            Ok(size) if size < min => {
                self.error(path, &value, format!("must be at least {min}"));
                None
            }
            Ok(size) if size > max => {
                self.error(path, &value, format!("must be at most {max}"));
                None
            }
            Ok(size) => Some(size),
            Err(problem) => {
                self.error(path, &value, problem.to_string());
                None
            }
        }
    }

    /// A string checked by `parse`, whose error text becomes the message.
    pub(crate) fn parsed<T, E: std::fmt::Display>(
        &mut self,
        path: &KeyPath,
        value: Value,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.string(path, value)?;
        match parse(&text) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(path, &Value::from(text), message.to_string());
                None
            }
        }
    }

    /// A list of strings (`"[a, b]"` or `"a,b"` accepted from environment variables).
    pub(crate) fn string_list(&mut self, path: &KeyPath, value: Value) -> Option<Vec<String>> {
        let items = match value {
            Value::Array(_, items) => items,
            Value::String(_, ref s) if self.set_by_env(path) => {
                let trimmed = s.trim();
                if trimmed.starts_with('[') {
                    match trimmed.parse::<Value>() {
                        Ok(Value::Array(_, items)) => items,
                        _ => {
                            self.error(path, &value, r#"expected a list like "[a, b]""#);
                            return None;
                        }
                    }
                } else {
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Value::from)
                        .collect()
                }
            }
            other => {
                self.wrong_type(path, &other, "a list of strings");
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            match self.string(&path.index(i), item) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A filesystem path; relative ones resolve against the configuration file's directory.
    pub(crate) fn path(&mut self, path: &KeyPath, value: Value) -> Option<PathBuf> {
        let text = self.nonempty_string(path, value)?;
        Some(self.resolve(Path::new(&text)))
    }

    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.config_dir.join(path)
        }
    }

    /// An environment variable from the process environment.
    pub(crate) fn env_var(&self, name: &str) -> Option<&OsString> {
        self.env.get(std::ffi::OsStr::new(name))
    }
}

/// Take sub-table `key` of `parent` (an empty one when absent).
pub(crate) fn section(r: &mut Reader<'_>, parent: &mut Table, key: &'static str) -> Table {
    match parent.take(key) {
        Some((path, value)) => r
            .table(path.clone(), value)
            .unwrap_or_else(|| Reader::empty_table(path)),
        None => Reader::empty_table(parent.path.key(key)),
    }
}

/// Take optional sub-table `key` of `parent`.
pub(crate) fn optional_section(
    r: &mut Reader<'_>,
    parent: &mut Table,
    key: &'static str,
) -> Option<Table> {
    let (path, value) = parent.take(key)?;
    r.table(path, value)
}

/// Read `key` with `convert`, or use `default` when absent or invalid (the error is recorded).
pub(crate) fn field<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    default: impl FnOnce() -> T,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> T {
    match t.take(key) {
        Some((path, value)) => convert(r, &path, value).unwrap_or_else(default),
        None => default(),
    }
}

/// Read required `key` with `convert`; when absent, report it as missing with `what`.
pub(crate) fn required<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    what: &str,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> Option<T> {
    match t.take(key) {
        Some((path, value)) => convert(r, &path, value),
        None => {
            r.missing(t, key, what);
            None
        }
    }
}

/// Read optional `key` with `convert`.
pub(crate) fn optional<'a, T>(
    r: &mut Reader<'a>,
    t: &mut Table,
    key: &'static str,
    convert: impl FnOnce(&mut Reader<'a>, &KeyPath, Value) -> Option<T>,
) -> Option<T> {
    let (path, value) = t.take(key)?;
    convert(r, &path, value)
}

/// A converter for durations of at least `min`.
pub(crate) fn duration_min(
    min: SignedDuration,
) -> impl Fn(&mut Reader<'_>, &KeyPath, Value) -> Option<SignedDuration> {
    move |r, p, v| r.duration(p, v, min)
}

/// A time zone by IANA name.
pub(crate) fn timezone(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<jiff::tz::TimeZone> {
    r.parsed(p, v, values::parse_timezone)
}

/// A local time of day, `"HH:MM"`.
pub(crate) fn time_of_day(r: &mut Reader<'_>, p: &KeyPath, v: Value) -> Option<jiff::civil::Time> {
    r.parsed(p, v, values::parse_time)
}

/// The entries of an id-keyed section (`[stores.*]`, `[channels.*]`), ids checked.
pub(crate) fn id_tables(r: &mut Reader<'_>, mut t: Table, what: &str) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    for (id, path, value) in t.drain() {
        if let Err(problem) = check_id(&id) {
            r.error_at(&path, format!("bad {what} id {id:?}: {problem}"));
            continue;
        }
        if let Some(table) = r.table(path, value) {
            out.push((id, table));
        }
    }
    r.finish(t);
    out
}
