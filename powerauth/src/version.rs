//! Protocol versions 3.0–3.3: their names as on the wire and what changes between them. Must
//! never accept protocol 2 (out of scope: its signatures use a numeric counter).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A PowerAuth protocol version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// 3.0: decimal online signatures, ECIES without a nonce.
    V3_0,
    /// 3.1: Base64 online signatures, ECIES nonce.
    V3_1,
    /// 3.2: ECIES timestamps, associated data and the response's own nonce.
    V3_2,
    /// 3.3: temporary ECIES keys (`temporaryKeyId` in the associated data).
    V3_3,
}

impl ProtocolVersion {
    /// The version as the wire writes it (`pa_version`, `X-PowerAuth-Encryption`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V3_0 => "3.0",
            Self::V3_1 => "3.1",
            Self::V3_2 => "3.2",
            Self::V3_3 => "3.3",
        }
    }
}

impl FromStr for ProtocolVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "3.0" => Ok(Self::V3_0),
            "3.1" => Ok(Self::V3_1),
            "3.2" => Ok(Self::V3_2),
            "3.3" => Ok(Self::V3_3),
            _ => Err(Error::Version),
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for v in [ProtocolVersion::V3_0, ProtocolVersion::V3_1, ProtocolVersion::V3_2, ProtocolVersion::V3_3] {
            assert_eq!(v.as_str().parse::<ProtocolVersion>(), Ok(v));
        }
        for bad in ["2.0", "2.1", "3", "3.4", "4.0", " 3.1", ""] {
            assert_eq!(bad.parse::<ProtocolVersion>(), Err(Error::Version), "{bad:?}");
        }
        assert!(ProtocolVersion::V3_1 < ProtocolVersion::V3_2);
    }
}
