//! Scrub secret values out of text a plugin hands to the host (log lines,
//! panic messages) before it reaches journald.

use std::borrow::Cow;

/// What replaces a secret value.
pub(crate) const REDACTED: &str = "<redacted>";

/// Replaces every occurrence of any secret value with [`REDACTED`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        // Kept for the instance's lifetime, one per store.
        secrets.shrink_to_fit();
        Self { secrets }
    }

    /// Length in bytes of the longest secret (0 without secrets).
    pub(crate) fn longest_secret(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// `text` with every secret value replaced.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(
            r.redact("k=abcdef; again abc; none"),
            "k=<redacted>; again <redacted>; none"
        );
        assert!(matches!(r.redact("clean"), Cow::Borrowed("clean")));
        assert_eq!(Redactor::default().redact("abc"), "abc");
    }
}
