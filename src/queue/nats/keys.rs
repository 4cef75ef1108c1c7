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

    /// The history subject of one channel.
    pub(super) fn history_subject(&self, channel: &str) -> String {
        format!("{}.history.{}", self.prefix, escape(channel))
    }
}

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
    fn long_dedupe_keys_are_stored_by_digest() {
        let long = "x/".repeat(200);
        let key = dedupe_key(&long);
        assert!(key.starts_with("sha256.") && key.len() < 80, "{key}");
        assert_eq!(dedupe_key("loja/1/paid"), "loja=2F1=2Fpaid");
    }
}
