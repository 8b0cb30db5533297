//! Identifiers of the domain: tags, orders, zones and victims.
//!
//! Identifiers travel in MQTT topics, DynamoDB keys and log lines, so they are restricted to a
//! small safe alphabet; a wrong one is refused where it enters the system.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted, in bytes. IoT thing names allow 128; 64 keeps keys compact.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier.
        kind: &'static str,
    },
    /// The identifier is longer than [`MAX_ID_LEN`].
    #[error("{kind} is {len} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The identifier holds a character outside `A-Z a-z 0-9 - _ .`.
    #[error("{kind} contains {found:?}; use only letters, digits, '-', '_' and '.'")]
    BadCharacter {
        /// Which identifier.
        kind: &'static str,
        /// The first character refused.
        found: char,
    },
}

fn check_id(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, len: s.len() });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(IdError::BadCharacter { kind, found });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `s` and wraps it; fails with the reason when it is not a valid identifier.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_id($kind, &s)?;
                Ok(Self(s))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The identifier of a GPS tag; equal to its AWS IoT thing name and the second topic level.
    TagId,
    "tag id"
);
id_type!(
    /// The identifier of a protection order (one offender, one victim).
    OrderId,
    "order id"
);
id_type!(
    /// The identifier of a protected zone.
    ZoneId,
    "zone id"
);
id_type!(
    /// The identifier of a protected person.
    VictimId,
    "victim id"
);
id_type!(
    /// The identifier of a police force (docs/FORCES.md): every order, tag and device belongs
    /// to exactly one.
    ForceId,
    "force id"
);
id_type!(
    /// The identifier of a victim's own device (a phone app or a dedicated unit): its AWS IoT
    /// thing name, as a tag's is.
    DeviceId,
    "device id"
);

/// A zone's key across the deployment: the order it belongs to and its id within that order.
/// Two orders may each have a zone `home`; they are two zones. Written `<order_id>/<zone_id>`
/// (neither id may contain `/`), which is how storage keys name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ZoneKey {
    /// The order the zone belongs to.
    pub order_id: OrderId,
    /// The zone's id within the order.
    pub zone_id: ZoneId,
}

/// Why a `<order_id>/<zone_id>` string is not a zone key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a zone key: expected <order_id>/<zone_id>")]
pub struct ZoneKeyError(pub String);

impl ZoneKey {
    /// The key of zone `zone_id` of order `order_id`.
    pub fn new(order_id: OrderId, zone_id: ZoneId) -> Self {
        Self { order_id, zone_id }
    }

    /// Parses `<order_id>/<zone_id>`.
    pub fn parse(s: &str) -> Result<Self, ZoneKeyError> {
        let bad = || ZoneKeyError(s.chars().take(140).collect());
        let (o, z) = s.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            order_id: OrderId::new(o).map_err(|_| bad())?,
            zone_id: ZoneId::new(z).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.order_id, self.zone_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_keys_round_trip_and_refuse_junk() {
        let k = ZoneKey::new(OrderId::new("o-1").unwrap(), ZoneId::new("home").unwrap());
        assert_eq!(k.to_string(), "o-1/home");
        assert_eq!(ZoneKey::parse("o-1/home").unwrap(), k);
        for bad in ["o-1", "o-1/", "/home", "o/1/home", ""] {
            assert!(ZoneKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_thing_name_alphabet() {
        assert_eq!(TagId::new("tag-001_a.b").unwrap().as_str(), "tag-001_a.b");
    }

    #[test]
    fn rejects_topic_wildcards_and_separators() {
        for bad in ["a/b", "a+b", "a#", "a b", "ü"] {
            assert!(
                matches!(TagId::new(bad), Err(IdError::BadCharacter { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_empty_and_long() {
        assert_eq!(OrderId::new(""), Err(IdError::Empty { kind: "order id" }));
        assert!(matches!(
            ZoneId::new("x".repeat(65)),
            Err(IdError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn serde_validates() {
        let err = serde_json::from_str::<TagId>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("'-'"), "{err}");
        let ok: VictimId = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"v1\"");
    }
}
