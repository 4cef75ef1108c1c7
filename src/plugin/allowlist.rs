//! Which hosts a plugin instance may call, in Spin's `allowed_outbound_hosts`
//! grammar: `scheme://host[:port]`.
//!
//! * the scheme is required: `http`, `https` or `*`;
//! * the host is a name, an IP literal (`[::1]` for IPv6), `*` (any host) or a
//!   `*.example.com` prefix wildcard, which matches subdomains only;
//! * the port is a number or `*`; without one, the scheme's default port;
//! * no user info, path, query or fragment (a lone trailing `/` is tolerated).

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

/// An allowlist entry that does not parse, named as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?}: {problem}")]
pub(crate) struct AllowListError {
    /// The entry as written.
    pub(crate) entry: String,
    /// What is wrong with it.
    pub(crate) problem: AllowedHostError,
}

/// Why one `scheme://host[:port]` entry does not parse. The texts are what
/// the config check and the plugin loader show the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AllowedHostError {
    #[error("a scheme is required, e.g. https://api.example.com")]
    MissingScheme,
    #[error("unsupported scheme {0:?} (use http, https or *)")]
    UnsupportedScheme(String),
    #[error("paths are not allowed, only scheme://host[:port]")]
    Path,
    #[error("user info is not allowed, only scheme://host[:port]")]
    UserInfo,
    #[error("the host is missing")]
    MissingHost,
    #[error("unclosed [ in an IPv6 address")]
    UnclosedIpv6,
    #[error("unexpected {0:?} after the IPv6 address")]
    AfterIpv6(String),
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    #[error("wildcards are only allowed as a leading `*.` (e.g. https://*.example.com)")]
    MisplacedWildcard,
    #[error("{0:?} is not a valid host name")]
    InvalidHostName(String),
}

/// A parsed allowlist. Cheap to clone: every store of a platform usually
/// has the same list, and the plugin host hands each instance a clone of
/// the last one parsed for the plugin instead of parsing it again (about
/// 260 bytes per store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    entries: Arc<[AllowedHost]>,
}

impl AllowList {
    /// Parse every entry; the error names the entry at fault.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        let entries = entries
            .iter()
            .map(|e| {
                AllowedHost::parse(e.as_ref()).map_err(|problem| AllowListError {
                    entry: e.as_ref().to_owned(),
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// Whether a request to `url` is allowed.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        self.entries.iter().any(|e| e.matches(url))
    }

    /// The entries as written, for error messages.
    pub(crate) fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "no hosts at all".to_owned();
        }
        self.entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Http,
    Https,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com` is stored as `.example.com`.
    Subdomains(String),
    Exact(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The default port of the request's scheme.
    SchemeDefault,
    Exact(u16),
}

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllowedHost {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
    written: String,
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl AllowedHost {
    /// Parse one `scheme://host[:port]` entry.
    pub(crate) fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        let trimmed = entry.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(AllowedHostError::MissingScheme);
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => SchemePattern::Any,
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            other => return Err(AllowedHostError::UnsupportedScheme(other.to_owned())),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(AllowedHostError::Path);
        }
        if authority.contains('@') {
            return Err(AllowedHostError::UserInfo);
        }
        if authority.is_empty() {
            return Err(AllowedHostError::MissingHost);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => PortPattern::SchemeDefault,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| AllowedHostError::InvalidPort(p.to_owned()))?,
            ),
        };
        let host = parse_host_pattern(host)?;
        Ok(Self {
            scheme,
            host,
            port,
            written: trimmed.to_owned(),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let scheme = url.scheme();
        let scheme_ok = match self.scheme {
            SchemePattern::Any => scheme == "http" || scheme == "https",
            SchemePattern::Http => scheme == "http",
            SchemePattern::Https => scheme == "https",
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = normalise_host(host);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => host == *h,
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => url.port_or_known_default() == Some(p),
            PortPattern::SchemeDefault => {
                url.port().is_none_or(|p| Some(p) == default_port(scheme))
            }
        };
        scheme_ok && host_ok && port_ok
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Lower-case, without a trailing dot, IPv6 without brackets.
fn normalise_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), AllowedHostError> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(AllowedHostError::UnclosedIpv6);
        };
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(AllowedHostError::AfterIpv6(after.to_owned())),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, AllowedHostError> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(HostPattern::Exact(normalise_host(host)));
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    if name.contains('*') {
        return Err(AllowedHostError::MisplacedWildcard);
    }
    let name = normalise_host(name);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(AllowedHostError::InvalidHostName(host.to_owned()));
    }
    Ok(if wildcard {
        HostPattern::Subdomains(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        let list = AllowList::parse(entries).unwrap();
        list.allows(&Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")))
    }

    #[test]
    fn exact_host_matches_scheme_and_default_port() {
        let list = ["https://api.example.com"];
        assert!(allows(&list, "https://api.example.com/v1/pedido?x=1"));
        assert!(allows(&list, "https://API.example.com:443/"));
        assert!(!allows(&list, "http://api.example.com/"));
        assert!(!allows(&list, "https://api.example.com:8443/"));
        assert!(!allows(&list, "https://api.example.com.evil.net/"));
        assert!(!allows(&list, "https://example.com/"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let list = ["https://*.example.com"];
        assert!(allows(&list, "https://a.example.com/"));
        assert!(allows(&list, "https://a.b.example.com/"));
        assert!(!allows(&list, "https://example.com/"));
        assert!(!allows(&list, "https://evilexample.com/"));
        assert!(allows(&["*://*:*"], "http://anything.test:8080/"));
        assert!(allows(&["*://api.example.com"], "http://api.example.com/"));
        assert!(!allows(
            &["*://api.example.com"],
            "http://api.example.com:443/"
        ));
    }

    #[test]
    fn ports_and_ip_literals() {
        assert!(allows(
            &["http://127.0.0.1:8080"],
            "http://127.0.0.1:8080/x"
        ));
        assert!(!allows(
            &["http://127.0.0.1:8080"],
            "http://127.0.0.1:8081/x"
        ));
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:8081/x"));
        assert!(allows(&["http://[::1]:9000"], "http://[::1]:9000/"));
        assert!(allows(
            &["https://api.example.com/"],
            "https://api.example.com/"
        ));
    }

    #[test]
    fn bad_entries_are_rejected_with_a_reason() {
        let err = |e: &str| {
            AllowList::parse(&[e])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("api.example.com").contains("scheme is required"));
        assert!(err("https://api.example.com/v1").contains("paths are not allowed"));
        assert!(err("https://api.*.com").contains("leading `*.`"));
        assert!(err("ftp://api.example.com").contains("unsupported scheme"));
        assert!(err("https://api.example.com:99999").contains("invalid port"));
        assert!(err("https://user@api.example.com").contains("user info"));
        assert!(err("https://").contains("host is missing"));
        assert!(err("https://exa mple.com").contains("not a valid host name"));
        assert!(err("api.example.com").starts_with("\"api.example.com\""));
    }

    #[test]
    fn empty_list_allows_nothing() {
        assert!(!allows(&[], "https://api.example.com/"));
        assert_eq!(AllowList::default().describe(), "no hosts at all");
    }
}
