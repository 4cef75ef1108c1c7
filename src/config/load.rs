//! Loading: which file (`--config`, `$ARAUTO_CONFIG`, the default), reading it
//! with a size cap, layering `ARAUTO_` variables over it, reading the merged
//! tree into a [`Config`], and what `arauto validate` can still check when
//! there are errors. Also the lenient lookups the CLI needs before (or
//! without) a valid configuration: the file's path and the control socket.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::{Figment, Provider};

use super::bounded_file::read_at_most;
use super::daemon::DEFAULT_CONTROL_SOCKET;
use super::error::{ConfigError, ConfigErrors, Origin};
use super::reader::Reader;
use super::root::{Config, read as read_config};
use super::source::{ENV_CONFIG_FILE, ENV_PREFIX, ENV_SEPARATOR, EnvLayer, FileLayer, Origins};
use super::values::ByteSize;

/// Default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/arauto/arauto.toml";

/// Largest configuration file accepted (48 MiB): a shop's is a few KiB, but
/// one machine is meant to poll up to 100,000 stores (issue 16), about 35 MB
/// of `[stores.*]` tables; anything larger is a mistake (a log or a dump given
/// by accident).
pub const MAX_CONFIG_BYTES: u64 = 48 * 1024 * 1024;

/// Load and validate the configuration, with overrides from the process environment.
///
/// `path` is `--config`; `None` falls back to `$ARAUTO_CONFIG`, then
/// [`DEFAULT_CONFIG_PATH`]. Unlike [`load_with_env`], a configuration with no
/// store and no channel is refused: the daemon would run and do nothing.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    load_with_env(path, std::env::vars_os()).and_then(require_something_configured)
}

/// Refuse a configuration that configures nothing to do (an empty file, or only
/// `[daemon]` settings): running it would look healthy and notify no one.
pub fn require_something_configured(config: Config) -> Result<Config, ConfigErrors> {
    if !config.stores.is_empty() || !config.channels.is_empty() {
        return Ok(config);
    }
    Err(ConfigErrors::file_level(
        &config.source_path,
        "no stores or channels configured: add a [stores.<id>] table and a [channels.<id>] \
         table (config/arauto.toml documents them)"
            .to_owned(),
    ))
}

/// Read at most one byte more than [`MAX_CONFIG_BYTES`], so a huge file (or an
/// endless one such as /dev/zero) is not read whole to be refused.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    read_at_most(path, MAX_CONFIG_BYTES)
}

/// [`load`] with an explicit environment instead of the process's (for tests,
/// and anything that must not depend on ambient variables).
pub fn load_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Config, ConfigErrors> {
    load_inner(path, env).map_err(|(errors, _)| errors)
}

/// [`load`] for `arauto validate`: on errors, also what can still be checked
/// against the plugins and templates (the second phase), so one run reports
/// both phases. That is the configuration with every store and channel that
/// has an error left out (bad values elsewhere hold their defaults); `None`
/// when the file could not be read or parsed, or `[daemon]` itself is wrong.
pub fn load_for_validation(
    path: Option<&Path>,
) -> Result<Config, (ConfigErrors, Option<Box<Config>>)> {
    let loaded = load_inner(path, std::env::vars_os())?;
    require_something_configured(loaded).map_err(|errors| (errors, None))
}

type Loaded = Result<Config, (ConfigErrors, Option<Box<Config>>)>;

fn load_inner(path: Option<&Path>, env: impl IntoIterator<Item = (OsString, OsString)>) -> Loaded {
    let env: HashMap<OsString, OsString> = env.into_iter().collect();
    let path = resolve_path(path, &env);
    let text = match read_capped(&path) {
        Ok(bytes) if bytes.len() as u64 > MAX_CONFIG_BYTES => {
            // Name the real size when the file system knows it.
            let size = std::fs::metadata(&path)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map_or_else(
                    || format!("more than {}", ByteSize(MAX_CONFIG_BYTES)),
                    |meta| format!("{} bytes", meta.len()),
                );
            return Err(no_partial(ConfigErrors::file_level(
                &path,
                format!(
                    "the file is {size}, over the {} limit for a configuration file: is this \
                     the right file?",
                    ByteSize(MAX_CONFIG_BYTES)
                ),
            )));
        }
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            no_partial(ConfigErrors::file_level(
                &path,
                "file is not valid UTF-8".to_owned(),
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_partial(ConfigErrors::file_level(
                &path,
                format!(
                    "configuration file not found; give its path with --config or \
                     ${ENV_CONFIG_FILE} (a commented example ships as arauto.toml.example)"
                ),
            )));
        }
        Err(e) => {
            return Err(no_partial(ConfigErrors::file_level(
                &path,
                format!("cannot read configuration file: {e}"),
            )));
        }
    };
    let mut file = FileLayer::parse(&path, text).map_err(|errors| {
        no_partial(ConfigErrors {
            path: path.clone(),
            errors,
            warnings: Vec::new(),
        })
    })?;
    let (env_layer, env_errors) = EnvLayer::from_vars(
        env.iter().map(|(k, v)| (k.clone(), v.clone())),
        &file.env_secret_names(),
    );

    let root = if env_layer.is_empty() {
        // Nothing to merge: the file's tree as it is (figment's merge of a
        // single layer gives the same values, copied twice on the way).
        file.take_dict()
    } else {
        let figment = Figment::new().merge(&file).merge(&env_layer);
        match figment.data() {
            Ok(mut profiles) => profiles
                .remove(&figment::Profile::Default)
                .unwrap_or_default(),
            Err(e) => {
                return Err(no_partial(ConfigErrors::file_level(
                    &path,
                    format!("cannot merge configuration: {e}"),
                )));
            }
        }
    };

    let config_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut reader = Reader {
        origins: Origins {
            file: &file,
            env: &env_layer,
        },
        errors: env_errors,
        warnings: Vec::new(),
        config_dir,
        env: &env,
    };
    let config = read_config(&mut reader, root, path.clone());
    let Reader {
        mut errors,
        mut warnings,
        ..
    } = reader;
    // The file's position table becomes the configuration's: moved, not rebuilt.
    let locations = file.into_locations(&env_layer);
    match config {
        Some(mut config) if errors.is_empty() => {
            sort_by_origin(&mut config.warnings);
            config.locations = locations;
            Ok(config)
        }
        config => {
            sort_by_origin(&mut errors);
            sort_by_origin(&mut warnings);
            let partial = config.and_then(|mut config| {
                config.locations = locations;
                config.warnings.clear();
                without_faulty_parts(config, &errors).map(Box::new)
            });
            Err((
                ConfigErrors {
                    path,
                    errors,
                    warnings,
                },
                partial,
            ))
        }
    }
}

fn no_partial(errors: ConfigErrors) -> (ConfigErrors, Option<Box<Config>>) {
    (errors, None)
}

/// `config` without the stores and channels that have an error; `None` when an
/// error outside them (file level, `[daemon]`) makes any further check moot.
fn without_faulty_parts(mut config: Config, errors: &[ConfigError]) -> Option<Config> {
    let under = |key: &str, prefix: &str| {
        key == prefix
            || key.starts_with(&format!("{prefix}."))
            || key.starts_with(&format!("{prefix}["))
    };
    if errors
        .iter()
        .any(|e| e.key.is_empty() || under(&e.key, "daemon"))
    {
        return None;
    }
    let faulty = |section: &str, id: &str| {
        let prefix = format!("{section}.{id}");
        errors.iter().any(|e| under(&e.key, &prefix))
    };
    config.stores.retain(|id, _| !faulty("stores", id));
    config.channels.retain(|id, _| !faulty("channels", id));
    Some(config)
}

/// In file order, then the environment's (a stable sort keeps each group's order).
fn sort_by_origin(diagnostics: &mut [ConfigError]) {
    diagnostics.sort_by_key(|d| match &d.origin {
        Origin::File { position, .. } => (0, position.unwrap_or((0, 0))),
        Origin::Env { .. } => (1, (0, 0)),
    });
}

/// The configuration file that [`load`] reads for `path` (absolute).
pub fn resolve_config_path(path: Option<&Path>) -> PathBuf {
    let env: HashMap<OsString, OsString> = std::env::vars_os().collect();
    resolve_path(path, &env)
}

fn resolve_path(path: Option<&Path>, env: &HashMap<OsString, OsString>) -> PathBuf {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => env
            .get(std::ffi::OsStr::new(ENV_CONFIG_FILE))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// The control socket path, read leniently: `arauto status` must find a running
/// daemon even when the file on disk has since been broken by an edit.
///
/// Precedence as in [`load`]: `$ARAUTO_DAEMON__CONTROL_SOCKET`, then
/// `daemon.control_socket` in the file (if it parses), then the default.
pub fn control_socket_path(path: Option<&Path>) -> PathBuf {
    let env_var = format!("{ENV_PREFIX}DAEMON{ENV_SEPARATOR}CONTROL_SOCKET");
    if let Some(socket) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        return PathBuf::from(socket);
    }
    let path = resolve_config_path(path);
    let from_file = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| {
            table
                .get("daemon")?
                .get("control_socket")?
                .as_str()
                .map(PathBuf::from)
        })
        .map(|socket| match path.parent() {
            Some(dir) if socket.is_relative() => dir.join(socket),
            _ => socket,
        });
    from_file.unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET))
}
