//! Names of the JetStream buckets and streams, and how store, channel, order
//! and dedupe-key names become KV keys and subject tokens.
//!
//! A KV key may only hold `[-/_=.a-zA-Z0-9]` and `.` separates its tokens; a
//! subject token may not hold `.`, `*`, `>` or whitespace. Store and channel
//! ids are config ids (`[a-z0-9_-]`, see `src/config/`), but order ids come
//! from the shop platform and dedupe keys hold `/`, `:` and anything an order
//! id holds, so every name is escaped: `[A-Za-z0-9_-]` stay as they are and
//! every other byte becomes `=XX` (two uppercase hex digits). `=` is not a
//! name character, so the escape is unambiguous and reversible. Dedupe keys
//! whose escaped form would be long are replaced by a SHA-256 digest, which
//! keeps the subject short (NATS bounds a message's control line).

use sha2::{Digest, Sha256};

use crate::queue::JobId;

/// Escaped dedupe keys longer than this are stored by digest.
const MAX_ESCAPED_DEDUPE_KEY: usize = 240;

/// The bucket and stream names of one arauto cluster (all start with the prefix).
#[derive(Clone, Debug)]
pub(super) struct Names {
    pub(super) prefix: String,
}

impl Names {
    pub(super) fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }

    /// The history stream.
    pub(super) fn history_stream(&self) -> String {
        format!("{}_history", self.prefix)
    }

    /// Every subject of the history stream.
    pub(super) fn history_subjects(&self) -> String {
        format!("{}.history.>", self.prefix)
    }

    /// The history subject of one outcome: `<prefix>.history.<channel>.<store>`
    /// (layout 2), so a report of one store or one channel reads only its
    /// own outcomes (a subject filter, [`Names::history_filter`]).
    pub(super) fn history_subject(&self, channel: &str, store: &str) -> String {
        format!(
            "{}.history.{}.{}",
            self.prefix,
            escape(channel),
            escape(store)
        )
    }

    /// The history subjects of layout 1 (`<prefix>.history.<channel>`, one
    /// token fewer): what `arauto state migrate` copies and then purges.
    pub(super) fn history_subjects_layout1(&self) -> String {
        format!("{}.history.*", self.prefix)
    }

    /// The history subjects of layout 2 (one per channel and store).
    pub(super) fn history_subjects_layout2(&self) -> String {
        format!("{}.history.*.*", self.prefix)
    }

    /// The history subjects `scope` selects (empty: every subject).
    pub(super) fn history_filter(&self, scope: &ViewScope) -> Option<String> {
        match scope {
            ViewScope::All => Some(String::new()),
            ViewScope::Store(store) => Some(format!("{}.history.*.{}", self.prefix, escape(store))),
            ViewScope::Channel(channel) => {
                Some(format!("{}.history.{}.*", self.prefix, escape(channel)))
            }
            ViewScope::Nothing => None,
        }
    }
}

/// What part of a bucket or stream a node's view follows: a daemon follows
/// everything; an operator command without a local daemon only what it
/// shows (`queue list --store s`: the jobs of `s`, no history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewScope {
    /// Every job or outcome.
    All,
    /// Those of one store.
    Store(String),
    /// Those of one channel.
    Channel(String),
    /// None at all (the view stays empty; reads by id go to the bucket).
    Nothing,
}

/// The key of a job (layout 2): `<channel>.<store>.<id>`, each escaped, so
/// a key filter selects the jobs of one channel (`<channel>.*.*`) or one
/// store (`*.<store>.*`). A job never changes channel or store, so its key
/// is fixed for its life.
pub(super) fn job_key(channel: &str, store: &str, id: JobId) -> String {
    format!("{}.{}.{id}", escape(channel), escape(store))
}

/// The job id a layout-2 job key ends with; `None` for any other key (a
/// layout-1 key, which is the bare id, or the layout record).
pub(super) fn job_id_of_key(key: &str) -> Option<JobId> {
    let mut tokens = key.split('.');
    let (Some(_channel), Some(_store), Some(id), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return None;
    };
    id.parse().ok()
}

/// The key filter of the jobs `scope` selects (`>`: all; `None`: none).
pub(super) fn job_filter(scope: &ViewScope) -> Option<String> {
    match scope {
        ViewScope::All => Some(">".to_owned()),
        ViewScope::Store(store) => Some(format!("*.{}.*", escape(store))),
        ViewScope::Channel(channel) => Some(format!("{}.*.*", escape(channel))),
        ViewScope::Nothing => None,
    }
}

/// The key filter that matches the one key of job `id`, whatever its
/// channel and store.
pub(super) fn job_key_pattern(id: JobId) -> String {
    format!("*.*.{id}")
}

/// The key of the jobs bucket recording the state layout (two tokens: no
/// job key, which has three, nor a layout-1 key, which has one, is it).
pub(super) const LAYOUT_KEY: &str = "arauto.layout";

/// True if `prefix` can start a bucket name (`[A-Za-z0-9_-]`, not empty).
pub(super) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// One name as a single key or subject token.
pub(super) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    if name.is_empty() {
        // An empty token is not allowed; `=` alone is no escape of anything.
        out.push('=');
        return out;
    }
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for a token no name escapes to.
pub(super) fn unescape(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' {
            let hex = token.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The key of a store's cursor, status (one token).
pub(super) fn store_key(store: &str) -> String {
    escape(store)
}

/// The key of a channel's status (one token).
pub(super) fn channel_key(channel: &str) -> String {
    escape(channel)
}

/// The key of an order record: `<store>.<order>`.
pub(super) fn order_key(store: &str, order_id: &str) -> String {
    format!("{}.{}", escape(store), escape(order_id))
}

/// The key of a dedupe key: its escape, or `sha256.<hex>` when that is long.
pub(super) fn dedupe_key(key: &str) -> String {
    let escaped = escape(key);
    if escaped.len() <= MAX_ESCAPED_DEDUPE_KEY {
        return escaped;
    }
    format!("sha256.{}", hex::encode(Sha256::digest(key.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_escape_and_only_use_key_characters() {
        for name in [
            "loja-1",
            "whats_app",
            "a.b c/d:é>*",
            "",
            "=3D",
            "pedido 12/34",
        ] {
            let escaped = escape(name);
            assert!(
                escaped
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{escaped}"
            );
            assert_eq!(unescape(&escaped).as_deref(), Some(name));
        }
    }

    #[test]
    fn job_keys_carry_channel_and_store_and_give_the_id_back() {
        let id: JobId = "01hzzzzzzzzzzzzzzzzzzzzzzz".parse().expect("a job id");
        let key = job_key("whats app", "loja-1", id);
        assert_eq!(key, format!("whats=20app.loja-1.{id}"));
        assert_eq!(job_id_of_key(&key), Some(id));
        assert_eq!(job_id_of_key(&id.to_string()), None, "a layout-1 key");
        assert_eq!(job_id_of_key(LAYOUT_KEY), None);
        assert_eq!(
            job_filter(&ViewScope::Store("loja-1".to_owned())).as_deref(),
            Some("*.loja-1.*")
        );
        assert_eq!(
            job_filter(&ViewScope::Channel("wa".to_owned())).as_deref(),
            Some("wa.*.*")
        );
    }

    #[test]
    fn long_dedupe_keys_are_stored_by_digest() {
        let long = "x/".repeat(200);
        let key = dedupe_key(&long);
        assert!(key.starts_with("sha256.") && key.len() < 80, "{key}");
        assert_eq!(dedupe_key("loja/1/paid"), "loja=2F1=2Fpaid");
    }
}
