//! The two configuration layers — the TOML file and `ARAUTO_` environment
//! variables — as figment providers, plus the bookkeeping that lets every
//! diagnostic point back at a line of the file or at the variable that set it.
//!
//! The file is parsed with the `toml` crate itself (not figment's older toml
//! 0.8 parser) so syntax errors carry positions and TOML 1.1 syntax works;
//! figment then layers the environment on top. A file of many stores is
//! parsed a store block at a time (`store_blocks.rs`, `parse_by_store`),
//! anything unusual as one text.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider, Source};
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Origin, Severity};
use super::locations::{FilePositions, Lines, Locations, write_key};
use super::store_blocks::split as split_store_blocks;

/// Variables with this prefix override the file.
pub const ENV_PREFIX: &str = "ARAUTO_";
/// Separates nesting levels in variable names.
pub const ENV_SEPARATOR: &str = "__";
/// The variable naming the configuration file (not an override).
pub const ENV_CONFIG_FILE: &str = "ARAUTO_CONFIG";

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(Cow<'static, str>),
    Index(usize),
}

/// A full key path such as `stores.loja1.channels[0]`.
///
/// A linked list towards the root, shared: reading a 10,000-store file makes
/// a path for each of its ~300,000 values, and a child costs one allocation
/// (plus its key's, unless it is a known `&'static` key name) instead of a
/// copy of every segment above it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(Option<Arc<PathNode>>);

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PathNode {
    parent: KeyPath,
    seg: Seg,
    depth: usize,
}

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self(None)
    }

    fn child(&self, seg: Seg) -> Self {
        Self(Some(Arc::new(PathNode {
            parent: self.clone(),
            seg,
            depth: self.depth() + 1,
        })))
    }

    /// This path, then key `key`.
    pub(crate) fn key(&self, key: &str) -> Self {
        self.child(Seg::Key(Cow::Owned(key.to_owned())))
    }

    /// This path, then a key name known at compile time (no copy of it).
    pub(crate) fn known_key(&self, key: &'static str) -> Self {
        self.child(Seg::Key(Cow::Borrowed(key)))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        self.child(Seg::Index(index))
    }

    fn depth(&self) -> usize {
        self.0.as_ref().map_or(0, |node| node.depth)
    }

    fn parent(&self) -> Option<Self> {
        self.0.as_ref().map(|node| node.parent.clone())
    }

    /// The segments, root first.
    fn segments(&self) -> Vec<&Seg> {
        let mut out = Vec::with_capacity(self.depth());
        let mut cursor = self.0.as_deref();
        while let Some(node) = cursor {
            out.push(&node.seg);
            cursor = node.parent.0.as_deref();
        }
        out.reverse();
        out
    }

    fn starts_with(&self, prefix: &KeyPath) -> bool {
        let mut cursor = self;
        while cursor.depth() > prefix.depth() {
            match &cursor.0 {
                Some(node) => cursor = &node.parent,
                None => return false,
            }
        }
        cursor == prefix
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments().into_iter().enumerate() {
            write_segment(f, seg, i == 0)?;
        }
        Ok(())
    }
}

/// One segment of a rendered key path: `[2]`, `.key`, `."odd key"` (no dot
/// before the first). Keys through `locations.rs`'s `write_key`, which
/// also renders the paths of the file's position index, so both spell a path
/// the same way.
fn write_segment(out: &mut impl fmt::Write, seg: &Seg, first: bool) -> fmt::Result {
    match seg {
        Seg::Index(index) => write!(out, "[{index}]"),
        Seg::Key(key) => write_key(out, key, first),
    }
}

/// The parsed configuration file: its values, and its text to find where a
/// key was written when something is reported ([`FilePositions`]).
pub(crate) struct FileLayer {
    pub(crate) path: PathBuf,
    positions: Arc<FilePositions>,
    dict: Dict,
}

impl FileLayer {
    /// Parse `text`, collecting every syntax error the parser can recover from.
    ///
    /// A file of store tables is parsed a store block at a time
    /// ([`parse_by_store`]); any file that way does not parse cleanly is
    /// parsed whole, which gives every diagnostic its position in the file.
    pub(crate) fn parse(path: &Path, text: String) -> Result<Self, Vec<ConfigError>> {
        let dict = match parse_by_store(&text) {
            Some(dict) => dict,
            None => {
                let (table, errors) = DeTable::parse_recoverable(&text);
                if !errors.is_empty() {
                    let lines = Lines::new(&text);
                    return Err(errors
                        .iter()
                        .map(|e| syntax_error(path, &lines, e))
                        .collect());
                }
                // Consumed as it is converted: each store's parsed table is
                // freed before the next one's values are built, so the two
                // trees of a large file are not in memory whole at the same
                // time.
                convert_table(table.into_inner())
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            positions: Arc::new(FilePositions::new(text)),
            dict,
        })
    }

    /// The file's values, moved out (the layer keeps its positions). For a
    /// load without overrides: merging one layer through figment would only
    /// copy the tree twice (at 10,000 stores, about 150,000 values and a
    /// third of the start-up's peak memory).
    pub(crate) fn take_dict(&mut self) -> Dict {
        std::mem::take(&mut self.dict)
    }

    /// The variable names the file's `<key>_env` settings point at (anywhere in
    /// the tree: only `settings` tables accept such keys, the others reject them).
    pub(crate) fn env_secret_names(&self) -> BTreeSet<String> {
        fn walk(dict: &Dict, out: &mut BTreeSet<String>) {
            for (key, value) in dict {
                match value {
                    Value::String(_, name) if key.ends_with("_env") => {
                        out.insert(name.clone());
                    }
                    Value::Dict(_, inner) => walk(inner, out),
                    _ => {}
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.dict, &mut out);
        out
    }

    /// Position of the value at `path`, or of its nearest ancestor in the file.
    fn value_position(&self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut cursor = Some(path.clone());
        while let Some(p) = cursor {
            if let Some(position) = self.positions.value_position(&p.to_string()) {
                return Some(position);
            }
            cursor = p.parent();
        }
        None
    }

    /// Position of the key at `path` (for unknown keys), falling back to its value.
    fn key_position(&self, path: &KeyPath) -> Option<(usize, usize)> {
        self.positions
            .key_position(&path.to_string())
            .or_else(|| self.value_position(path))
    }

    fn has_value(&self, path: &KeyPath) -> bool {
        self.positions.contains(&path.to_string())
    }

    /// Where every key of the file (and every override) was written, for
    /// problems found after loading: the file's positions (the same text,
    /// not a copy) and the overrides' key paths.
    pub(crate) fn into_locations(self, env: &EnvLayer) -> Locations {
        let overrides = env
            .overrides
            .iter()
            .map(|o| (o.var.clone(), o.path.to_string()))
            .collect();
        Locations::new(self.positions, overrides)
    }
}

fn syntax_error(path: &Path, lines: &Lines<'_>, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    let position = span.as_ref().map(|s| lines.position(s.start));
    let source_line = position.and_then(|(line, _)| lines.line_text(line));
    let mut message = format!("TOML syntax error: {}", error.message());
    if error.message().starts_with("duplicate key") {
        message.push_str(
            " — this key or table is already defined earlier in the file; each store, \
             channel and key may be defined only once",
        );
    }
    ConfigError {
        severity: Severity::Error,
        origin: Origin::File {
            path: path.to_path_buf(),
            position,
        },
        key: String::new(),
        value: None,
        message,
        source_line,
    }
}

/// The file's values parsed one store block at a time (`store_blocks.rs`):
/// the rest of the file as one document, then each block on its own, its
/// stores added to the rest's. The `toml` parser's token and event vectors
/// then grow with one block, not with the file (at 100,000 stores, 229 MB of
/// address space for a 33 MB file), and each block's tree is converted while
/// it is in the cache.
///
/// `None`, to parse the whole text instead, when there is no store block,
/// when a piece does not parse on its own (a syntax error, or a cut inside a
/// multi-line value), when the rest defines anything under `stores`, when a block
/// defines anything else, or when two blocks define the same store (a
/// duplicate, or a store's tables written apart, which TOML allows): the
/// whole text's parse then decides, with the errors and the positions of
/// today. A file that parses whole parses to the same values either way.
fn parse_by_store(text: &str) -> Option<Dict> {
    let pieces = split_store_blocks(text);
    if pieces.stores.is_empty() {
        return None;
    }
    // A cut inside a multi-line value leaves the piece before it with that
    // value unterminated. The rest's pieces are joined below, which would
    // close it again (`k = """`, a block, `"""`), so each is checked alone
    // first; the blocks are parsed alone anyway.
    if pieces.rest.len() > 1
        && pieces
            .rest
            .iter()
            .any(|piece| !DeTable::parse_recoverable(piece).1.is_empty())
    {
        return None;
    }
    let rest = pieces.rest.concat();
    let (table, errors) = DeTable::parse_recoverable(&rest);
    if !errors.is_empty() {
        return None;
    }
    let mut root = convert_table(table.into_inner());
    if root.contains_key("stores") {
        return None;
    }
    let mut stores = Dict::new();
    for block in pieces.stores {
        let (table, errors) = DeTable::parse_recoverable(block);
        if !errors.is_empty() {
            return None;
        }
        for (key, value) in table.into_inner() {
            let (key, value) = (key.into_inner(), value.into_inner());
            let DeValue::Table(table) = value else {
                return None;
            };
            if key != "stores" {
                return None;
            }
            for (id, value) in table {
                let id = id.into_inner().into_owned();
                if stores.contains_key(&id) {
                    return None;
                }
                let value = convert_value(value.into_inner());
                stores.insert(id, value);
            }
        }
    }
    root.insert("stores".to_owned(), Value::from(stores));
    Some(root)
}

/// The parser's table as figment's, consumed as it is converted (strings
/// the parser already owns are moved, not copied).
fn convert_table(table: DeTable<'_>) -> Dict {
    let mut dict = Dict::new();
    for (key, value) in table {
        let converted = convert_value(value.into_inner());
        dict.insert(key.into_inner().into_owned(), converted);
    }
    dict
}

fn convert_value(value: DeValue<'_>) -> Value {
    match value {
        DeValue::String(s) => Value::from(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::from(n),
            // Out of i64 range: keep the digits so the type check can name them.
            Err(_) => Value::from(i.to_string()),
        },
        DeValue::Float(f) => Value::from(f.as_str().parse::<f64>().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::from(b),
        DeValue::Datetime(dt) => Value::from(dt.to_string()),
        DeValue::Array(items) => Value::from(
            items
                .into_iter()
                .map(|item| convert_value(item.into_inner()))
                .collect::<Vec<_>>(),
        ),
        DeValue::Table(table) => Value::from(convert_table(table)),
    }
}

impl Provider for FileLayer {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", Source::File(self.path.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// One `ARAUTO_…` override.
struct EnvOverride {
    path: KeyPath,
    var: String,
    value: String,
}

/// The `ARAUTO_` environment variables, nested by `__`.
pub(crate) struct EnvLayer {
    overrides: Vec<EnvOverride>,
}

impl EnvLayer {
    /// True when no variable overrides anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.overrides.is_empty()
    }

    /// Pick the overrides out of `vars`; malformed variables are reported, not skipped.
    ///
    /// Variables named in `secret_vars` (the values of the file's `<key>_env`
    /// settings) are secrets for a plugin, not overrides, even when their name
    /// starts with `ARAUTO_`.
    pub(crate) fn from_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        secret_vars: &BTreeSet<String>,
    ) -> (Self, Vec<ConfigError>) {
        let mut overrides = Vec::new();
        let mut errors = Vec::new();
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name == ENV_CONFIG_FILE || secret_vars.contains(name) {
                continue;
            }
            let problem = |message: String| ConfigError {
                severity: Severity::Error,
                origin: Origin::Env {
                    var: name.to_owned(),
                },
                key: String::new(),
                value: None,
                message,
                source_line: None,
            };
            let segments: Vec<&str> = rest.split(ENV_SEPARATOR).collect();
            if segments.iter().any(|s| s.is_empty()) {
                errors.push(problem(format!(
                    "malformed override name: after {ENV_PREFIX}, give the key path with \
                     {ENV_SEPARATOR} between levels, e.g. ARAUTO_STORES__LOJA1__POLL_INTERVAL"
                )));
                continue;
            }
            let Ok(value) = value.into_string() else {
                errors.push(problem("value is not valid UTF-8".to_owned()));
                continue;
            };
            let path = segments.iter().fold(KeyPath::root(), |path, seg| {
                path.key(&seg.to_ascii_lowercase())
            });
            overrides.push(EnvOverride {
                path,
                var: name.to_owned(),
                value,
            });
        }
        overrides.sort_by(|a, b| a.var.cmp(&b.var));
        (Self { overrides }, errors)
    }

    fn var_at_or_above(&self, path: &KeyPath) -> Option<&str> {
        self.overrides
            .iter()
            .find(|o| path.starts_with(&o.path))
            .map(|o| o.var.as_str())
    }

    fn var_below(&self, path: &KeyPath) -> Option<&str> {
        self.overrides
            .iter()
            .find(|o| o.path.starts_with(path))
            .map(|o| o.var.as_str())
    }

    /// Whether the value at `path` was set by a variable (so strings may stand for numbers…).
    pub(crate) fn sets(&self, path: &KeyPath) -> bool {
        self.var_at_or_above(path).is_some()
    }
}

fn nest(dict: &mut Dict, keys: &[&Seg], value: Value) {
    let Some((Seg::Key(first), rest)) = keys.split_first().map(|(first, rest)| (*first, rest))
    else {
        return;
    };
    if rest.is_empty() {
        dict.insert(first.to_string(), value);
        return;
    }
    let entry = dict
        .entry(first.to_string())
        .or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = entry {
        nest(inner, rest, value);
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::from(
            "environment variable",
            Source::Custom("environment".to_owned()),
        )
        .interpolater(|_: &Profile, keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", keys.join(ENV_SEPARATOR))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for o in &self.overrides {
            // Kept as strings: the typed reader converts them to what the key expects.
            nest(&mut dict, &o.path.segments(), Value::from(o.value.clone()));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Answers "where was this written?" for diagnostics.
pub(crate) struct Origins<'a> {
    pub(crate) file: &'a FileLayer,
    pub(crate) env: &'a EnvLayer,
}

impl Origins<'_> {
    /// Where the value at `path` came from.
    pub(crate) fn of_value(&self, path: &KeyPath) -> Origin {
        self.locate(path, false)
    }

    /// Where the key at `path` was written (for unknown keys).
    pub(crate) fn of_key(&self, path: &KeyPath) -> Origin {
        self.locate(path, true)
    }

    fn locate(&self, path: &KeyPath, key: bool) -> Origin {
        if let Some(var) = self.env.var_at_or_above(path) {
            return Origin::Env {
                var: var.to_owned(),
            };
        }
        let in_file = self.file.has_value(path);
        if !in_file && let Some(var) = self.env.var_below(path) {
            return Origin::Env {
                var: var.to_owned(),
            };
        }
        let position = if key {
            self.file.key_position(path)
        } else {
            self.file.value_position(path)
        };
        Origin::File {
            path: self.file.path.clone(),
            position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole text's values, or `None` when it has a syntax error.
    fn whole(text: &str) -> Option<Dict> {
        let (table, errors) = DeTable::parse_recoverable(text);
        errors.is_empty().then(|| convert_table(table.into_inner()))
    }

    const STORES: &str = "title = \"x\"\n[daemon]\nlog_level = \"info\"\n\
        [channels.c]\nplugin = \"webhook\"\n[channels.c.settings]\nurl = \"http://h\"\n\
        [stores.a]\nplatform = \"li\"\nchannels = [\n  \"c\",\n]\n\
        [stores.a.settings]\nkey = \"\"\"\nx\n\"\"\"\nn = 1.5\nd = 1979-05-27\n\
        [stores.b-2]\nplatform = \"li\" # a comment\r\n[stores.b-2.sandbox]\nallowed_hosts = []\n\
        [notifications.order_paid]\nmax_attempts = 3\n\
        [stores.c_3]\nx.y = { z = 1 }\n";

    #[test]
    fn a_file_of_store_tables_parses_by_store_to_the_same_values() {
        let by_store = parse_by_store(STORES).expect("parsed by store");
        assert_eq!(Some(by_store), whole(STORES));
    }

    /// Files whose pieces parse apart but not whole, or differently: the
    /// whole text decides (`None`), or both agree.
    #[test]
    fn whatever_the_cut_the_whole_text_decides() {
        let cases = [
            // Duplicates across blocks and with the rest.
            "[stores.a]\np = 1\n[stores.b]\np = 2\n[stores.a]\np = 3\n",
            "[stores.a]\np = 1\n[daemon]\n[stores.a.settings]\nk = 1\n",
            "[stores]\na.p = 1\n[stores.a]\nq = 1\n",
            "[stores]\n[stores.a]\nq = 1\n",
            "stores = 5\n[stores.a]\nq = 1\n",
            "stores = { a = { p = 1 } }\n[stores.b]\nq = 1\n",
            "stores.a.p = 1\n[stores.b]\nq = 1\n",
            "[[stores]]\nq = 1\n[stores.a]\nq = 1\n",
            "[stores.a]\nq = 1\n[[stores.b]]\nq = 2\n",
            "[stores.a]\nsettings.k = 1\n[stores.b]\n[stores.a.settings]\nj = 2\n",
            "[stores.a]\nq = 1\n  [stores.b]\nq = 2\n[stores.b]\n",
            "[stores.a]\nq = 1\n  [daemon]\nx = 1\n",
            "[stores.a]\nq = 1\n[stores.\"a\"]\nq = 2\n",
            // Cuts inside multi-line values.
            "[stores.a]\nk = \"\"\"\n[stores.b]\n\"\"\"\n",
            "[stores.a]\nk = '''\n[stores.b]\np = 1\n'''\n",
            "x = [\n[stores.b]\n]\n[stores.a]\n",
            "[stores.a]\nk = [\n[1],\n[stores.b]\n]\n",
            // Found by the property below: the rest's pieces, joined, close
            // the string the first one opened.
            "k = \"\"\"\n[stores.a]\n[stores]\nk = \"\"\"\n",
            // Syntax errors.
            "[stores.a]\np = \n[stores.b]\n",
            "[stores.a]\np = 1\n[stores.b\n",
            "[daemon\n[stores.a]\np = 1\n",
            // Legal layouts the cut does not handle: parsed whole.
            "[stores.a]\np = 1\n[stores.b]\np = 2\n[stores.a.settings]\nk = 1\n",
            "[stores.a.settings]\nk = 1\n[stores.b]\n[stores.a]\np = 1\n",
        ];
        for text in cases {
            let by_store = parse_by_store(text);
            if by_store.is_some() {
                assert_eq!(by_store, whole(text), "{text}");
            }
        }
        for text in &cases[..cases.len() - 2] {
            assert!(parse_by_store(text).is_none(), "{text}");
        }
    }

    proptest::proptest! {
        /// Random files built from lines that matter to the cut (store and
        /// other headers, duplicates, multi-line values opened and closed
        /// anywhere): parsed by store, they give the whole text's values,
        /// or fall back; a file that does not parse whole never parses by
        /// store.
        #[test]
        fn parsing_by_store_never_disagrees_with_the_whole_text(
            lines in proptest::collection::vec(proptest::sample::select(vec![
                "[stores.a]", "[stores.b]", "[stores.a.settings]", "[stores.b.sandbox]",
                "[stores]", "[[stores]]", "[stores.\"a\"]", "  [stores.b]", "[daemon]",
                "[channels.c]", "p = 1", "q = \"x\"", "settings.k = 2", "stores.c.p = 3",
                "k = \"\"\"", "\"\"\"", "k = , ", "k = [", "]", "[1],", "# c",
                "t = { a = 1 }", "",
            ]), 0..12)
        ) {
            let text = lines.join("\n");
            let by_store = parse_by_store(&text);
            let whole = whole(&text);
            if by_store.is_some() {
                proptest::prop_assert_eq!(by_store, whole, "{}", text);
            }
        }
    }
}
