//! `arauto plugins inspect FILE`: what a plugin file is and what it expects,
//! as JSON (`--json`, via `Serialize`) or as text (`Display`). Loading the
//! file is [`super::host::inspect`]; this file only shapes the answer.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{Capabilities, Capability, ConnectorInfo, PluginInfo, PluginKind, StatusEntry};

use super::api_version::{ApiVersion, PACKAGE};

/// Everything `plugins inspect` shows about one plugin file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    /// The `.wasm` file.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The WIT package it was built against, e.g. `arauto:plugin@0.1.0`.
    pub wit_package: String,
    /// The plugin API version, e.g. `0.1.0`.
    pub api_version: String,
    /// Name, version, kind, description, config keys, default hosts.
    #[serde(flatten)]
    pub plugin: PluginInfo,
    /// Platform, capabilities and status catalogue (connectors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorDetails>,
}

/// The connector-only part of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectorDetails {
    /// Platform identifier.
    pub platform: String,
    /// What the platform can provide.
    pub capabilities: Capabilities,
    /// Status catalogue with default recognition.
    pub statuses: Vec<StatusEntry>,
}

impl InspectReport {
    pub(crate) fn new(
        file: &Path,
        sha256: &str,
        version: ApiVersion,
        plugin: PluginInfo,
        connector: Option<ConnectorInfo>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            sha256: sha256.to_owned(),
            wit_package: format!("{PACKAGE}@{version}"),
            api_version: version.to_string(),
            plugin,
            connector: connector.map(|c| ConnectorDetails {
                platform: c.platform,
                capabilities: c.capabilities,
                statuses: c.statuses,
            }),
        }
    }
}

/// Left-aligned columns, two spaces apart, trailing blanks trimmed.
fn table(f: &mut fmt::Formatter<'_>, rows: &[Vec<String>]) -> fmt::Result {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from("  ");
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.extend(std::iter::repeat_n(
                    ' ',
                    widths[c] - cell.chars().count() + 2,
                ));
            }
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}

fn capability_row(name: &str, c: &Capability) -> Vec<String> {
    vec![
        name.to_owned(),
        if c.supported {
            "yes".into()
        } else {
            "no".into()
        },
        c.reason.clone(),
    ]
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plugin;
        let kind = match p.kind {
            PluginKind::Connector => "connector",
            PluginKind::Sender => "sender",
        };
        writeln!(f, "{} {} ({kind})", p.name, p.version)?;
        if !p.description.is_empty() {
            writeln!(f, "{}", p.description)?;
        }
        writeln!(f)?;
        let hosts = if p.default_hosts.is_empty() {
            "(none)".to_owned()
        } else {
            p.default_hosts.join(", ")
        };
        let mut facts = vec![
            vec!["file".to_owned(), self.file.display().to_string()],
            vec!["sha256".to_owned(), self.sha256.clone()],
            vec!["plugin API".to_owned(), self.wit_package.clone()],
        ];
        if let Some(c) = &self.connector {
            facts.push(vec!["platform".to_owned(), c.platform.clone()]);
        }
        facts.push(vec!["default hosts".to_owned(), hosts]);
        table(f, &facts)?;

        writeln!(f, "\nconfig keys")?;
        if p.config_keys.is_empty() {
            writeln!(f, "  (none)")?;
        } else {
            let rows: Vec<Vec<String>> = p
                .config_keys
                .iter()
                .map(|k| {
                    let mut description = k.description.clone();
                    if let Some(default) = &k.default_value {
                        description.push_str(&format!(" (default: {default})"));
                    }
                    vec![
                        k.name.clone(),
                        if k.required {
                            "required".into()
                        } else {
                            "optional".into()
                        },
                        if k.secret {
                            "secret".into()
                        } else {
                            String::new()
                        },
                        description,
                    ]
                })
                .collect();
            table(f, &rows)?;
        }

        if let Some(c) = &self.connector {
            writeln!(f, "\ncapabilities")?;
            let caps = &c.capabilities;
            table(
                f,
                &[
                    capability_row("tracking codes", &caps.tracking_codes),
                    capability_row("boleto reminder", &caps.boleto_reminder),
                    capability_row("pix reminder", &caps.pix_reminder),
                    capability_row("abandoned cart", &caps.abandoned_cart),
                ],
            )?;
            writeln!(f, "\nstatus catalogue")?;
            let mut rows = vec![vec![
                "code".to_owned(),
                "name".to_owned(),
                "notification".to_owned(),
                "happy path".to_owned(),
                "terminal".to_owned(),
            ]];
            rows.extend(c.statuses.iter().map(|s| {
                vec![
                    s.code.clone(),
                    s.name.clone(),
                    s.notification
                        .map_or_else(|| "-".to_owned(), |n| n.as_str().to_owned()),
                    if s.happy_path_priority == 0 {
                        "-".to_owned()
                    } else {
                        s.happy_path_priority.to_string()
                    },
                    if s.terminal {
                        "yes".into()
                    } else {
                        String::new()
                    },
                ]
            }));
            table(f, &rows)?;
        }
        Ok(())
    }
}
