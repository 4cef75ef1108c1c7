//! `arauto plugins inspect FILE`: what a plugin file is and what it expects,
//! as JSON (`--json`, via `Serialize`) or as text (`Display`). Loading the
//! file is [`super::host::inspect`]; this file only shapes the answer.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{
    Capabilities, Capability, ConnectorInfo, DeclaredBy, PluginInfo, PluginKind, PushSupport,
    RecipientNeed, SenderInfo, StatusEntry,
};

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
    /// The contract line it speaks, e.g. `0.2`; `0.1` is deprecated.
    pub contract: String,
    /// Name, version, kind, description, config keys, default hosts.
    #[serde(flatten)]
    pub plugin: PluginInfo,
    /// Platform, capabilities and status catalogue (connectors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorDetails>,
    /// Recipient need, default pace and idempotency (senders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<SenderDetails>,
}

/// The sender-only part of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SenderDetails {
    /// Whom it delivers to.
    pub recipient: RecipientNeed,
    /// Default minimum interval between two sends of a channel, e.g. `20s`.
    pub default_min_interval: String,
    /// Default daily cap of a channel; `None`: no cap.
    pub default_daily_cap: Option<u32>,
    /// It passes the idempotency key on to a provider that drops repeats.
    pub idempotent: bool,
    /// `plugin` (contract 0.2) or `name-table-0.1` (deprecated).
    pub declared_by: DeclaredBy,
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
    /// Default request budget per store, requests per minute (`None`: no budget).
    pub requests_per_minute: Option<u32>,
    /// What it does with the platform's pushed webhooks.
    pub push: PushSupport,
    /// The settings that identify the shop account (`None`: a 0.1
    /// connector, every secret setting counts).
    pub account_keys: Option<Vec<String>>,
    /// `plugin` (contract 0.2) or `name-table-0.1` (deprecated: the budget
    /// came from the platform's name).
    pub declared_by: DeclaredBy,
}

impl InspectReport {
    pub(crate) fn new(
        file: &Path,
        sha256: &str,
        version: ApiVersion,
        plugin: PluginInfo,
        connector: Option<ConnectorInfo>,
        sender: Option<SenderInfo>,
    ) -> Self {
        // A connector has no `declared_by` of its own: contract 0.1 ones got
        // their budget from the name table, later ones declare it.
        let connector_declared_by = if version.major == 0 && version.minor < 2 {
            DeclaredBy::NameTable
        } else {
            DeclaredBy::Plugin
        };
        Self {
            file: file.to_owned(),
            sha256: sha256.to_owned(),
            wit_package: format!("{PACKAGE}@{version}"),
            api_version: version.to_string(),
            contract: version.line(),
            plugin,
            connector: connector.map(|c| ConnectorDetails {
                platform: c.platform,
                capabilities: c.capabilities,
                statuses: c.statuses,
                requests_per_minute: c.requests_per_minute,
                push: c.push,
                account_keys: c.account_keys,
                declared_by: connector_declared_by,
            }),
            sender: sender.map(|s| SenderDetails {
                recipient: s.recipient,
                default_min_interval: format!("{:#}", s.default_min_interval),
                default_daily_cap: s.default_daily_cap,
                idempotent: s.idempotent,
                declared_by: s.declared_by,
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
        if self.contract == "0.1" {
            facts.push(vec![
                "contract".to_owned(),
                "0.1 (deprecated: rebuild against 0.2)".to_owned(),
            ]);
        }
        let declared = |by: DeclaredBy| match by {
            DeclaredBy::Plugin => "",
            DeclaredBy::NameTable => " (from arauto's 0.1 name table)",
        };
        if let Some(c) = &self.connector {
            facts.push(vec!["platform".to_owned(), c.platform.clone()]);
            facts.push(vec![
                "rate limit".to_owned(),
                match c.requests_per_minute {
                    Some(n) => format!("{n} requests/min{}", declared(c.declared_by)),
                    None => format!("none{}", declared(c.declared_by)),
                },
            ]);
            facts.push(vec![
                "pushes".to_owned(),
                match (c.push.verify, c.push.register) {
                    (false, _) => "not supported".to_owned(),
                    (true, false) => "verified (subscribe by hand)".to_owned(),
                    (true, true) => "verified, registers itself".to_owned(),
                },
            ]);
            facts.push(vec![
                "account".to_owned(),
                match &c.account_keys {
                    Some(keys) if keys.is_empty() => "every store entry is its own".to_owned(),
                    Some(keys) => format!("identified by {}", keys.join(", ")),
                    None => "identified by every secret setting (0.1)".to_owned(),
                },
            ]);
        }
        if let Some(s) = &self.sender {
            let why = declared(s.declared_by);
            facts.push(vec![
                "recipient".to_owned(),
                format!("{}{why}", s.recipient.as_str()),
            ]);
            facts.push(vec![
                "min interval".to_owned(),
                format!("{}{why}", s.default_min_interval),
            ]);
            facts.push(vec![
                "daily cap".to_owned(),
                match s.default_daily_cap {
                    Some(n) => format!("{n}{why}"),
                    None => format!("none{why}"),
                },
            ]);
            facts.push(vec![
                "idempotent".to_owned(),
                format!("{}{why}", if s.idempotent { "yes" } else { "no" }),
            ]);
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
