//! Which plugin API (WIT package `arauto:plugin@X.Y.Z`) and which world a
//! component was built against, read from its import and export names.

use std::fmt;
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::model::PluginKind;

use super::error::PluginError;

/// The WIT package every plugin interface lives in.
pub(crate) const PACKAGE: &str = "arauto:plugin";

/// A plugin API version (the WIT package's semver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl ApiVersion {
    /// Parse `X.Y.Z` (a pre-release or build suffix is ignored).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let version = Self {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }

    /// The compatibility line: `1.x` from 1.0 on, `0.Y` before (semver treats
    /// every 0.Y as its own major).
    pub(crate) fn line(&self) -> String {
        if self.major == 0 {
            format!("0.{}", self.minor)
        } else {
            format!("{}.x", self.major)
        }
    }
}

/// The API lines this host has bindings for (one module each: `v0_1`, `v0_2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SupportedApi {
    /// `arauto:plugin@0.1.x`, bound in `v0_1.rs` (deprecated: its
    /// declarations come from `v0_1/fallback.rs`).
    V0_1,
    /// `arauto:plugin@0.2.x`, bound in `v0_2.rs`.
    V0_2,
}

impl SupportedApi {
    const ALL: [SupportedApi; 2] = [SupportedApi::V0_1, SupportedApi::V0_2];

    fn accepts(self, v: ApiVersion) -> bool {
        match self {
            Self::V0_1 => v.major == 0 && v.minor == 1,
            Self::V0_2 => v.major == 0 && v.minor == 2,
        }
    }

    fn line(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1",
            Self::V0_2 => "0.2",
        }
    }
}

/// What the component says about itself before any of its code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contract {
    pub(crate) kind: PluginKind,
    pub(crate) version: ApiVersion,
    pub(crate) api: SupportedApi,
}

/// Find the world (by its exported API interface) and the package version,
/// and refuse unsupported versions and foreign imports (WASI and the like:
/// plugins get no other door than the world's own imports).
pub(crate) fn detect(
    engine: &Engine,
    component: &Component,
    path: &Path,
) -> Result<Contract, PluginError> {
    let load_error = |reason: String| PluginError::Load {
        path: path.to_owned(),
        reason,
    };
    let ty = component.component_type();

    let mut found: Option<(PluginKind, ApiVersion)> = None;
    for (name, _) in ty.exports(engine) {
        let Some((interface, version)) = split_name(name) else {
            continue;
        };
        let kind = match interface {
            "connector-api" => PluginKind::Connector,
            "sender-api" => PluginKind::Sender,
            _ => continue,
        };
        let version = version.and_then(ApiVersion::parse).ok_or_else(|| {
            load_error(format!("export {name:?} carries no usable package version"))
        })?;
        if let Some((other, _)) = found
            && other != kind
        {
            return Err(load_error(
                "exports both arauto:plugin/connector-api and arauto:plugin/sender-api; a plugin implements exactly one world"
                    .to_owned(),
            ));
        }
        found = Some((kind, version));
    }
    let Some((kind, version)) = found else {
        let exports: Vec<&str> = ty.exports(engine).map(|(n, _)| n).collect();
        return Err(load_error(format!(
            "not an arauto plugin: it exports neither {PACKAGE}/connector-api nor {PACKAGE}/sender-api (exports: {})",
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        )));
    };

    let Some(api) = SupportedApi::ALL
        .into_iter()
        .find(|api| api.accepts(version))
    else {
        return Err(PluginError::UnsupportedApi {
            path: path.to_owned(),
            needs: version.line(),
            supported: SupportedApi::ALL.map(SupportedApi::line).join(", "),
        });
    };

    let foreign: Vec<&str> = ty
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| split_name(name).is_none())
        .collect();
    if !foreign.is_empty() {
        return Err(load_error(format!(
            "imports {} which arauto does not provide; plugins get only the {PACKAGE} interfaces \
             (build for wasm32-unknown-unknown, not a WASI target)",
            foreign.join(", ")
        )));
    }
    Ok(Contract { kind, version, api })
}

/// `arauto:plugin/http@0.1.0` → (`http`, Some(`0.1.0`)); `None` for other packages.
fn split_name(name: &str) -> Option<(&str, Option<&str>)> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let interface = path.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some((interface, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_name_their_line() {
        let v = ApiVersion::parse("0.1.3").expect("parse");
        assert_eq!((v.major, v.minor, v.patch), (0, 1, 3));
        assert_eq!(v.line(), "0.1");
        assert_eq!(
            ApiVersion::parse("1.4.0-rc.1").map(|v| v.line()),
            Some("1.x".to_owned())
        );
        assert_eq!(ApiVersion::parse("1.4"), None);
        assert_eq!(ApiVersion::parse("1.4.0.1"), None);
        assert!(SupportedApi::V0_1.accepts(ApiVersion {
            major: 0,
            minor: 1,
            patch: 9
        }));
        assert!(!SupportedApi::V0_1.accepts(ApiVersion {
            major: 0,
            minor: 2,
            patch: 0
        }));
        assert!(SupportedApi::V0_2.accepts(ApiVersion {
            major: 0,
            minor: 2,
            patch: 0
        }));
        assert!(!SupportedApi::V0_2.accepts(ApiVersion {
            major: 0,
            minor: 3,
            patch: 0
        }));
        assert!(!SupportedApi::V0_1.accepts(ApiVersion {
            major: 1,
            minor: 1,
            patch: 0
        }));
    }

    #[test]
    fn names_split_into_interface_and_version() {
        assert_eq!(
            split_name("arauto:plugin/http@0.1.0"),
            Some(("http", Some("0.1.0")))
        );
        assert_eq!(split_name("arauto:plugin/log"), Some(("log", None)));
        assert_eq!(split_name("wasi:cli/environment@0.2.0"), None);
        assert_eq!(split_name("arauto:pluginx/http@0.1.0"), None);
    }
}
