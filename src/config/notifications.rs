//! `[notifications.<kind>]`: per notification kind, whether it is sent, its
//! message text (inline or from a file, per channel), its timing and its
//! attempt budget. Its types, its defaults, and how it is read.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::value::Value;
use jiff::SignedDuration;
use serde::Serialize;

use super::bounded_file::read_at_most;
use super::reader::{POSITIVE, Reader, Table, duration_min, field, optional, optional_section};
use super::source::KeyPath;
use super::values::{ByteSize, did_you_mean, serialize_duration};
use crate::model::NotificationKind;

/// Default `notifications.<kind>.delay`: send as soon as the event is seen.
pub const DEFAULT_DELAY: SignedDuration = SignedDuration::ZERO;
/// Default `notifications.<kind>.expiry`: a message not sent within a day is
/// no longer worth sending.
pub const DEFAULT_EXPIRY: SignedDuration = SignedDuration::from_hours(24);
/// Default `notifications.<kind>.quiet_hours`.
pub const DEFAULT_QUIET_HOURS: QuietHoursPolicy = QuietHoursPolicy::Defer;
/// Largest template file (`template_file`).
pub const MAX_TEMPLATE_FILE_BYTES: u64 = 1024 * 1024;

/// `[notifications.<kind>]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationConfig {
    /// Whether this kind is sent at all. Default: on, except the reserved kinds.
    pub enabled: bool,
    /// The message text for every channel; `None`: the built-in pt-BR default.
    pub template: Option<TemplateText>,
    /// Per-channel text overrides, by channel id.
    pub channels: BTreeMap<String, ChannelTemplate>,
    /// Wait this long after the event before sending. Default [`DEFAULT_DELAY`].
    #[serde(serialize_with = "serialize_duration")]
    pub delay: SignedDuration,
    /// Give up if not sent within this time after the event. Default [`DEFAULT_EXPIRY`].
    #[serde(serialize_with = "serialize_duration")]
    pub expiry: SignedDuration,
    /// What quiet hours do to this kind. Default [`DEFAULT_QUIET_HOURS`].
    pub quiet_hours: QuietHoursPolicy,
    /// Overrides the channel's `max_attempts`.
    pub max_attempts: Option<u32>,
}

impl NotificationConfig {
    /// A kind with no table: every key at its default, sent when `enabled`.
    pub const fn defaults(enabled: bool) -> Self {
        Self {
            enabled,
            template: None,
            channels: BTreeMap::new(),
            delay: DEFAULT_DELAY,
            expiry: DEFAULT_EXPIRY,
            quiet_hours: DEFAULT_QUIET_HOURS,
            max_attempts: None,
        }
    }

    /// The defaults of `kind`: reserved kinds (reminders, abandoned carts) are
    /// opt-in; everything else is on.
    pub fn default_for(kind: NotificationKind) -> Self {
        Self::defaults(!kind.is_reserved())
    }

    /// The template for `channel`: its override, else the kind's template.
    pub fn template_for(&self, channel: &str) -> Option<&TemplateText> {
        self.channels
            .get(channel)
            .and_then(|c| c.template.as_ref())
            .or(self.template.as_ref())
    }
}

/// `[notifications.<kind>.channels.<channel>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelTemplate {
    /// The text for this channel.
    pub template: Option<TemplateText>,
}

/// A message template's source text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateText {
    /// The template (minijinja syntax).
    pub text: String,
    /// The file it was read from (`template_file`), or `None` when inline.
    pub file: Option<PathBuf>,
}

/// What happens to a message due inside quiet hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuietHoursPolicy {
    /// Hold it until the quiet hours end.
    Defer,
    /// Send anyway.
    Ignore,
}

/// Why a `quiet_hours` policy is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(r#"expected "defer" (hold until quiet hours end) or "ignore" (send anyway)"#)]
pub struct QuietHoursPolicyError;

impl std::str::FromStr for QuietHoursPolicy {
    type Err = QuietHoursPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "defer" => Ok(Self::Defer),
            "ignore" => Ok(Self::Ignore),
            _ => Err(QuietHoursPolicyError),
        }
    }
}

/// Per kind: the path of its table (for cross-checks) and its settings.
pub(crate) type Notifications = BTreeMap<NotificationKind, (Option<KeyPath>, NotificationConfig)>;

/// The kind named `name` (a table name or a value), or an error naming the
/// closest kind. `value` is shown in the error when the name is a value.
pub(crate) fn notification_kind(
    r: &mut Reader<'_>,
    path: &KeyPath,
    name: &str,
    value: Option<&Value>,
) -> Option<NotificationKind> {
    match name.parse::<NotificationKind>() {
        Ok(kind) => Some(kind),
        Err(e) => {
            let mut message = e.to_string();
            if let Some(close) =
                did_you_mean(name, NotificationKind::ALL.iter().map(|k| k.as_str()))
            {
                message = format!("unknown notification kind {name:?} (did you mean {close:?}?)");
            }
            match value {
                Some(v) => r.error(path, v, message),
                None => r.error_at(path, message),
            }
            None
        }
    }
}

/// Read `[notifications]`: every kind, configured or at its defaults.
pub(crate) fn read_notifications(r: &mut Reader<'_>, mut t: Table) -> Notifications {
    let mut out: Notifications = NotificationKind::ALL
        .into_iter()
        .map(|kind| (kind, (None, NotificationConfig::default_for(kind))))
        .collect();
    for (name, path, value) in t.drain() {
        let Some(kind) = notification_kind(r, &path, &name, None) else {
            continue;
        };
        let Some(mut nt) = r.table(path.clone(), value) else {
            continue;
        };
        let defaults = NotificationConfig::default_for(kind);
        let enabled = field(r, &mut nt, "enabled", || defaults.enabled, Reader::boolean);
        let template = read_template_text(r, &mut nt);
        let mut channels = BTreeMap::new();
        if let Some(mut ct) = optional_section(r, &mut nt, "channels") {
            for (channel, cpath, cvalue) in ct.drain() {
                let Some(mut per) = r.table(cpath, cvalue) else {
                    continue;
                };
                let template = read_template_text(r, &mut per);
                r.finish(per);
                channels.insert(channel, ChannelTemplate { template });
            }
            r.finish(ct);
        }
        let delay = field(
            r,
            &mut nt,
            "delay",
            || defaults.delay,
            duration_min(SignedDuration::ZERO),
        );
        let expiry = field(
            r,
            &mut nt,
            "expiry",
            || defaults.expiry,
            duration_min(POSITIVE),
        );
        let quiet_hours = field(
            r,
            &mut nt,
            "quiet_hours",
            || defaults.quiet_hours,
            |r, p, v| r.parsed(p, v, str::parse::<QuietHoursPolicy>),
        );
        let max_attempts = optional(r, &mut nt, "max_attempts", |r, p, v| r.u32_min(p, v, 1));
        r.finish(nt);
        out.insert(
            kind,
            (
                Some(path),
                NotificationConfig {
                    enabled,
                    template,
                    channels,
                    delay,
                    expiry,
                    quiet_hours,
                    max_attempts,
                },
            ),
        );
    }
    r.finish(t);
    out
}

/// `template` / `template_file` of a table (never both).
fn read_template_text(r: &mut Reader<'_>, t: &mut Table) -> Option<TemplateText> {
    let both = t.has("template") && t.has("template_file");
    let inline = optional(r, t, "template", Reader::string);
    let file_entry = t.take("template_file");
    if both {
        r.error_at(
            &t.path.key("template_file"),
            "set either template (inline text) or template_file (a path), not both",
        );
        return None;
    }
    if let Some(text) = inline {
        return Some(TemplateText { text, file: None });
    }
    let (path, value) = file_entry?;
    let file = r.path(&path, value.clone())?;
    let read = read_at_most(&file, MAX_TEMPLATE_FILE_BYTES).and_then(|bytes| {
        if bytes.len() as u64 > MAX_TEMPLATE_FILE_BYTES {
            return Err(std::io::Error::other(format!(
                "larger than {}",
                ByteSize(MAX_TEMPLATE_FILE_BYTES)
            )));
        }
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
    });
    match read {
        Ok(text) => Some(TemplateText {
            text,
            file: Some(file),
        }),
        Err(e) => {
            r.error(
                &path,
                &value,
                format!("cannot read template file {}: {e}", file.display()),
            );
            None
        }
    }
}
