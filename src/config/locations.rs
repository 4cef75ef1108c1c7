//! Where each key of a loaded configuration was written — its line and
//! column in the file, or the `ARAUTO_…` variable that set it — kept with the
//! [`Config`](super::Config) for problems found after loading (plugin
//! settings, templates, recognition rules: `Config::origin_of`).
//!
//! Compact on purpose: a 100,000-store file has over a million keys, so each
//! entry is its rendered key path and two integers (the file's path is held
//! once, by the `Config`, and each variable's name once here). The table is
//! only needed while the configuration is checked against its plugins;
//! `state::build` drops it once that has passed (see `Config::forget_locations`).

use std::path::Path;

use super::error::Origin;
use super::source::KeyMap;

/// Where one key was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// In the file, at this 1-based line and column.
    File {
        /// 1-based line.
        line: u32,
        /// 1-based column (in characters).
        column: u32,
    },
    /// Set by the variable at this index of [`Locations::vars`].
    Env(u32),
}

/// Every key path of a configuration (`stores.loja1.settings.base_url`,
/// `stores.loja1.channels[0]`) with where it was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Locations {
    by_key: KeyMap<Written>,
    /// The names of the overriding variables, indexed by [`Written::Env`].
    vars: Vec<String>,
}

impl Locations {
    pub(crate) fn new(by_key: KeyMap<Written>, vars: Vec<String>) -> Self {
        Self { by_key, vars }
    }

    /// Where `key` (rendered as `KeyPath` displays it) was written; `file`
    /// is the configuration file these positions are in.
    pub(crate) fn get(&self, key: &str, file: &Path) -> Option<Origin> {
        Some(match *self.by_key.get(key)? {
            Written::File { line, column } => Origin::File {
                path: file.to_path_buf(),
                position: Some((line as usize, column as usize)),
            },
            Written::Env(index) => Origin::Env {
                var: self.vars.get(index as usize)?.clone(),
            },
        })
    }

    /// Whether `key` was written at all (in the file or by a variable).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }
}
