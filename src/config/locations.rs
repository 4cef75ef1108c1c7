//! Where each key of a configuration was written — its line and column in
//! the file, or the `ARAUTO_…` variable that set it — for every diagnostic:
//! the reader's while loading, and the checks after loading (plugin
//! settings, templates, recognition rules: `Config::origin_of`).
//!
//! Found on demand, not recorded while reading. A configuration without a
//! problem never asks, and a 10,000-store file has about 150,000 keys: a
//! rendered key path and a line and column for each of them were a large
//! share of the start-up's allocations and, at 100,000 stores, of its peak
//! memory. So a [`FilePositions`] keeps only the file's text; the first
//! question parses it again and indexes every key path it holds (built once,
//! then shared by every later question). The text is dropped with the
//! [`Config`](super::Config)'s locations once the configuration has passed
//! its checks (`Config::forget_locations`, called by `state::build`).
//!
//! Key paths are rendered here ([`write_key`]) and by `source.rs`'s
//! `KeyPath`, which uses the same function, so both spell a path the same way.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use toml::de::{DeTable, DeValue};

use super::error::Origin;

/// A table keyed by rendered key path. Hashed with foldhash rather than
/// std's SipHash: a 10,000-store file has about 150,000 keys, and SipHash
/// was a tenth of the daemon's start-up (perf, 2026-12-07). The keys come
/// from the operator's own file, so hash flooding is no concern.
pub(crate) type KeyMap<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// One key of a rendered key path: `.key`, `."odd key"` (no dot before the
/// first segment).
pub(crate) fn write_key(out: &mut impl fmt::Write, key: &str, first: bool) -> fmt::Result {
    if !first {
        out.write_str(".")?;
    }
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        out.write_str(key)
    } else {
        write!(out, "{key:?}")
    }
}

/// `path` followed by key `key`, rendered as `KeyPath` displays it.
fn child_key(path: &str, key: &str) -> String {
    let mut out = String::with_capacity(path.len() + key.len() + 1);
    out.push_str(path);
    // Writing into a String cannot fail.
    let _ = write_key(&mut out, key, path.is_empty());
    out
}

/// `path` followed by item `index`, rendered as `KeyPath` displays it.
fn child_index(path: &str, index: usize) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    out.push_str(path);
    let _ = write!(out, "[{index}]");
    out
}

/// The file's lines, to turn byte offsets into line and column.
pub(crate) struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    /// 1-based (line, column) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub(crate) fn line_text(&self, line: usize) -> Option<String> {
        self.text
            .lines()
            .nth(line.checked_sub(1)?)
            .map(|l| l.trim_end().to_owned())
    }
}

/// Where a key and its value start in the file: 1-based (line, column),
/// as `u32`s to keep the table small (a 48 MiB file has far fewer than 2³²
/// lines; larger numbers would saturate).
#[derive(Clone, Copy, Debug)]
struct Spot {
    /// The key's position; `None` for array items, which have no key.
    key: Option<(u32, u32)>,
    value: (u32, u32),
}

fn compact((line, column): (usize, usize)) -> (u32, u32) {
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

fn widen((line, column): (u32, u32)) -> (usize, usize) {
    (line as usize, column as usize)
}

/// The text of a configuration file that parsed, and — once asked — where
/// each of its key paths (`stores.loja1.channels[0]`) starts. Its `Debug`
/// shows the text's size only: the text holds the file's inline secrets.
pub(crate) struct FilePositions {
    text: String,
    spots: OnceLock<KeyMap<Spot>>,
}

impl FilePositions {
    /// Positions in `text`, a file the TOML parser accepted.
    pub(crate) fn new(text: String) -> Self {
        Self {
            text,
            spots: OnceLock::new(),
        }
    }

    /// The table of every key path, built on the first call by parsing the
    /// text again: paid only when something is reported (at 10,000 stores,
    /// a few hundred milliseconds and some 40 MiB more at the peak than the
    /// table that used to be built on every load; see docs/BENCHMARKS.md).
    fn spots(&self) -> &KeyMap<Spot> {
        self.spots.get_or_init(|| {
            let lines = Lines::new(&self.text);
            let mut spots = KeyMap::default();
            // The text parsed when it was loaded, so it parses again; were it
            // not to, nothing would be located (the file is still named).
            if let Ok(table) = DeTable::parse(&self.text) {
                index_table(&lines, &mut spots, "", table.get_ref());
            }
            spots
        })
    }

    /// Position of the value at rendered key path `key`.
    pub(crate) fn value_position(&self, key: &str) -> Option<(usize, usize)> {
        self.spots().get(key).map(|spot| widen(spot.value))
    }

    /// Position of the key at `key` (its value's for array items).
    pub(crate) fn key_position(&self, key: &str) -> Option<(usize, usize)> {
        self.spots()
            .get(key)
            .map(|spot| widen(spot.key.unwrap_or(spot.value)))
    }

    /// Whether the file holds a value at `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.spots().contains_key(key)
    }
}

impl fmt::Debug for FilePositions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePositions")
            .field("text_bytes", &self.text.len())
            .field("indexed", &self.spots.get().map(KeyMap::len))
            .finish()
    }
}

fn index_table(lines: &Lines<'_>, spots: &mut KeyMap<Spot>, path: &str, table: &DeTable<'_>) {
    for (key, value) in table.iter() {
        let child = child_key(path, key.get_ref());
        let key_at = compact(lines.position(key.span().start));
        index_value(lines, spots, child, Some(key_at), value);
    }
}

fn index_value(
    lines: &Lines<'_>,
    spots: &mut KeyMap<Spot>,
    path: String,
    key: Option<(u32, u32)>,
    value: &toml::Spanned<DeValue<'_>>,
) {
    let value_at = compact(lines.position(value.span().start));
    match value.get_ref() {
        DeValue::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                index_value(lines, spots, child_index(&path, i), None, item);
            }
        }
        DeValue::Table(table) => index_table(lines, spots, &path, table),
        _ => {}
    }
    spots.insert(
        path.into_boxed_str(),
        Spot {
            key,
            value: value_at,
        },
    );
}

/// Where one key was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    /// In the file, at this 1-based line and column.
    File {
        /// 1-based line.
        line: u32,
        /// 1-based column (in characters).
        column: u32,
    },
    /// Set by the variable at this index of [`Locations::vars`].
    Env(usize),
}

/// Every key path of a configuration (`stores.loja1.settings.base_url`,
/// `stores.loja1.channels[0]`) with where it was written: the file's
/// positions, and the paths the overriding variables set.
#[derive(Clone, Debug, Default)]
pub(crate) struct Locations {
    /// The file's; `None` once forgotten (and in configurations built by tests).
    file: Option<Arc<FilePositions>>,
    /// The rendered key path each variable of [`Locations::vars`] sets.
    overridden: Vec<Box<str>>,
    /// The names of the overriding variables, sorted.
    vars: Vec<String>,
}

/// Two configurations' locations are the same when they come from the same
/// text and the same variables (the index is only a cache of the text).
impl PartialEq for Locations {
    fn eq(&self, other: &Self) -> bool {
        fn text(l: &Locations) -> Option<&str> {
            l.file.as_ref().map(|f| f.text.as_str())
        }
        text(self) == text(other) && self.overridden == other.overridden && self.vars == other.vars
    }
}

impl Locations {
    /// `file`'s positions, with `overrides` (variable name, rendered key path
    /// it sets) on top.
    pub(crate) fn new(file: Arc<FilePositions>, overrides: Vec<(String, String)>) -> Self {
        let (vars, overridden) = overrides
            .into_iter()
            .map(|(var, path)| (var, path.into_boxed_str()))
            .unzip();
        Self {
            file: Some(file),
            overridden,
            vars,
        }
    }

    fn written(&self, key: &str) -> Option<Written> {
        // A variable's own key is the variable's (the last of two variables
        // naming the same key, as the overrides were applied).
        if let Some(index) = self.overridden.iter().rposition(|o| &**o == key) {
            return Some(Written::Env(index));
        }
        let (line, column) = self.file.as_ref()?.key_position(key)?;
        // A key of the file at or under an override: the first such variable
        // by name (as the loader's diagnostics answer).
        Some(
            match self.overridden.iter().position(|o| at_or_below(key, o)) {
                Some(index) => Written::Env(index),
                None => Written::File {
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    column: u32::try_from(column).unwrap_or(u32::MAX),
                },
            },
        )
    }

    /// Where `key` (rendered as `KeyPath` displays it) was written; `file`
    /// is the configuration file these positions are in.
    pub(crate) fn get(&self, key: &str, file: &Path) -> Option<Origin> {
        Some(match self.written(key)? {
            Written::File { line, column } => Origin::File {
                path: file.to_path_buf(),
                position: Some((line as usize, column as usize)),
            },
            Written::Env(index) => Origin::Env {
                var: self.vars.get(index)?.clone(),
            },
        })
    }

    /// Whether `key` was written at all (in the file or by a variable).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.overridden.iter().any(|o| &**o == key)
            || self.file.as_ref().is_some_and(|file| file.contains(key))
    }
}

/// Whether rendered key path `key` is `prefix` or lies under it.
pub(crate) fn at_or_below(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use crate::config::{Origin, load_with_env};

    const FILE: &str = r#"[stores.a]
platform = "loja-integrada"
channels = []
[stores.a.settings]
base_url = "https://loja.example"
store_url = "https://loja.example/shop"
"#;

    fn var(name: &str, value: &str) -> (OsString, OsString) {
        (name.into(), value.into())
    }

    /// Where keys were written, as the checks after loading ask: the file's
    /// line and column, the overriding variable (also for a key the file
    /// has), the nearest written table for a key nobody wrote.
    #[test]
    fn keys_are_located_in_the_file_or_at_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, FILE).unwrap();
        let config = load_with_env(
            Some(&path),
            [
                var("ARAUTO_STORES__A__SETTINGS__TOKEN", "t"),
                var(
                    "ARAUTO_STORES__A__SETTINGS__BASE_URL",
                    "https://other.example",
                ),
            ],
        )
        .unwrap();
        let line_of = |key: &str| match config.origin_of(key) {
            Origin::File { position, .. } => position.map(|(line, _)| line),
            Origin::Env { var } => panic!("{key}: set by {var}"),
        };
        let var_of = |key: &str| match config.origin_of(key) {
            Origin::Env { var } => var,
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(
            config.origin_of("stores.a.settings.store_url"),
            Origin::File {
                path: config.source_path().to_path_buf(),
                position: Some((6, 1)),
            }
        );
        assert_eq!(line_of("stores.a.channels"), Some(3));
        assert_eq!(line_of("stores.a.settings.nothing"), Some(4));
        assert_eq!(
            var_of("stores.a.settings.token"),
            "ARAUTO_STORES__A__SETTINGS__TOKEN"
        );
        assert_eq!(
            var_of("stores.a.settings.base_url"),
            "ARAUTO_STORES__A__SETTINGS__BASE_URL"
        );
        assert!(config.locations.contains("stores.a.settings.token"));
        assert!(config.locations.contains("stores.a.settings.store_url"));
        assert!(!config.locations.contains("stores.a.settings.token_file"));

        // Forgotten after the checks: the file is still named, without a line.
        let mut config = config;
        config.forget_locations();
        assert_eq!(line_of_forgotten(&config), None);
    }

    fn line_of_forgotten(config: &crate::config::Config) -> Option<usize> {
        match config.origin_of("stores.a.settings.store_url") {
            Origin::File { position, .. } => position.map(|(line, _)| line),
            Origin::Env { .. } => Some(0),
        }
    }
}
