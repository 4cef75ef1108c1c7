//! `arauto plugins list` (what the configuration loads) and
//! `arauto plugins inspect FILE|NAME` (a plugin's contract).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::config_arg::ConfigArg;
use super::exit::{Exit, print_json};
use crate::config;
use crate::model::PluginKind;
use crate::plugin::{HostConfig, InspectReport, PluginHost};

/// `arauto plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PluginsCommand,
}

/// The `plugins` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// The plugins the configuration loads, for which stores and channels, and whether they load.
    List(ListPluginsArgs),
    /// A plugin's contract: version, plugin API, settings, default hosts, capabilities, statuses.
    Inspect(InspectArgs),
}

/// `arauto plugins list`.
#[derive(Debug, Args)]
pub struct ListPluginsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `arauto plugins inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A `.wasm` file, or a plugin name looked up in the configuration's `plugin_dir`.
    #[arg(value_name = "FILE|NAME")]
    pub plugin: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArg,
    /// Print the contract as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run an `arauto plugins` command.
pub fn run(args: PluginsArgs) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("arauto: cannot start the async runtime: {error}");
            return Exit::Failure;
        }
    };
    match args.command {
        PluginsCommand::List(args) => runtime.block_on(list(args)),
        PluginsCommand::Inspect(args) => runtime.block_on(inspect(args)),
    }
}

/// One plugin file the configuration uses.
#[derive(Debug, Serialize)]
struct ListedPlugin {
    /// The `.wasm` file.
    file: PathBuf,
    /// Config tables that use it (`stores.loja1`, `channels.whatsapp`).
    used_by: Vec<String>,
    /// What the configuration expects it to be.
    expected_kind: PluginKind,
    /// Its report, when it loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<InspectReport>,
    /// Why it does not load.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn list(args: ListPluginsArgs) -> Exit {
    let config = match config::load(args.config.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("arauto: {errors}");
            return Exit::Failure;
        }
    };
    let mut files: BTreeMap<PathBuf, (PluginKind, Vec<String>)> = BTreeMap::new();
    for store in config.stores.values() {
        files
            .entry(store.plugin_path.clone())
            .or_insert_with(|| (PluginKind::Connector, Vec::new()))
            .1
            .push(format!("stores.{}", store.id));
    }
    for channel in config.channels.values() {
        files
            .entry(channel.plugin_path.clone())
            .or_insert_with(|| (PluginKind::Sender, Vec::new()))
            .1
            .push(format!("channels.{}", channel.id));
    }
    let host = match PluginHost::new(HostConfig::reading_cache(&config.daemon.cache_dir)) {
        Ok(host) => host,
        Err(error) => {
            eprintln!("arauto: cannot start the plugin host: {error}");
            return Exit::Failure;
        }
    };
    let mut listed = Vec::new();
    for (file, (expected_kind, used_by)) in files {
        let (plugin, error) = match host.inspect(&file).await {
            Ok(report) if report.plugin.kind == expected_kind => (Some(report), None),
            Ok(report) => {
                let error = format!(
                    "is a {:?} plugin, but {} need(s) a {:?}",
                    report.plugin.kind,
                    used_by.join(", "),
                    expected_kind
                )
                .to_lowercase();
                (Some(report), Some(error))
            }
            Err(error) => (None, Some(error.to_string())),
        };
        listed.push(ListedPlugin {
            file,
            used_by,
            expected_kind,
            plugin,
            error,
        });
    }
    let failed = listed.iter().any(|p| p.error.is_some());
    if args.json {
        if let Err(exit) = print_json(&listed) {
            return exit;
        }
    } else {
        print!("{}", list_text(&listed));
    }
    if failed { Exit::Failure } else { Exit::Ok }
}

fn list_text(listed: &[ListedPlugin]) -> String {
    let mut rows = vec![vec![
        "PLUGIN".to_owned(),
        "VERSION".to_owned(),
        "KIND".to_owned(),
        "API".to_owned(),
        "USED BY".to_owned(),
        "FILE".to_owned(),
    ]];
    for p in listed {
        let (name, version, api) = match &p.plugin {
            Some(r) => (
                r.plugin.name.clone(),
                r.plugin.version.clone(),
                r.api_version.clone(),
            ),
            None => ("?".into(), "?".into(), "?".into()),
        };
        let kind = match p.expected_kind {
            PluginKind::Connector => "connector",
            PluginKind::Sender => "sender",
        };
        rows.push(vec![
            name,
            version,
            kind.to_owned(),
            api,
            p.used_by.join(", "),
            p.file.display().to_string(),
        ]);
    }
    let mut out = String::new();
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for p in listed {
        if let Some(error) = &p.error {
            out.push_str(&format!("error: {}: {error}\n", p.file.display()));
        }
    }
    out
}

async fn inspect(args: InspectArgs) -> Exit {
    let path = match resolve(&args.plugin, args.config.config.as_deref()) {
        Ok(path) => path,
        Err(message) => {
            eprintln!("arauto: {message}");
            return Exit::Usage;
        }
    };
    match crate::plugin::inspect(&path).await {
        Ok(report) => {
            if args.json {
                if let Err(exit) = print_json(&report) {
                    return exit;
                }
            } else {
                print!("{report}");
            }
            Exit::Ok
        }
        Err(error) => {
            eprintln!("arauto: {error}");
            Exit::Failure
        }
    }
}

/// A file path as given, or a bare plugin name looked up in `plugin_dir`.
fn resolve(plugin: &str, config: Option<&Path>) -> Result<PathBuf, String> {
    let as_path = PathBuf::from(plugin);
    if as_path.exists() || plugin.contains('/') || plugin.ends_with(".wasm") {
        return Ok(as_path);
    }
    let plugin_dir = match config::load(config) {
        Ok(config) => config.daemon.plugin_dir,
        Err(_) => config::default_plugin_dir(),
    };
    let candidate = plugin_dir.join(format!("{plugin}.wasm"));
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "no plugin file {plugin:?} and no {} (plugin_dir)",
            candidate.display()
        ))
    }
}
