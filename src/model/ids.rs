//! Identifiers shared by every stage: [`ChannelId`], the name of a configured
//! channel instance (`[channels.whatsapp]` → `whatsapp`). Decide plans jobs
//! for it, the queue keeps one queue per channel, and the channel's
//! dispatcher claims from it; a newtype keeps it from being mixed up with a
//! store id or an order id on the way.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The configured name of one channel instance. Serialises as a plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(String);

impl ChannelId {
    /// Wraps a configured channel name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the empty name (never a configured channel).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for ChannelId {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(name))
    }
}

impl From<&str> for ChannelId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for ChannelId {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl From<&String> for ChannelId {
    fn from(name: &String) -> Self {
        Self(name.clone())
    }
}

impl AsRef<str> for ChannelId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ChannelId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ChannelId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ChannelId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for ChannelId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_a_plain_string() -> Result<(), serde_json::Error> {
        let id = ChannelId::from("whatsapp");
        assert_eq!(serde_json::to_string(&id)?, "\"whatsapp\"");
        assert_eq!(serde_json::from_str::<ChannelId>("\"sms\"")?, "sms");
        assert_eq!(id.to_string(), "whatsapp");
        assert_eq!(format!("{id:?}"), "\"whatsapp\"");
        Ok(())
    }
}
