//! Names typed once: a token's serial ([`Serial`]), a user's login ([`Login`]), the name of an
//! object an admin defines ([`ObjectName`]: applications, integrations, gateways, resolvers,
//! realms) and a policy's name ([`PolicyName`]). Each is checked where it is made
//! (`TryFrom<String>`, `FromStr`, and serde through `try_from`), with the one rule the appliance
//! applies to it, so code that holds one need not check it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that breaks its rule; the message says the rule and quotes the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(String);

/// The conversions every name type shares: from and to `String`, `&str`, display.
macro_rules! name_type {
    ($name:ident) => {
        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, InvalidName> {
                $name::check(&s)?;
                Ok($name(s))
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, InvalidName> {
                $name::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A token's serial: 1-64 characters `A-Z a-z 0-9 - _ .` (safe in URLs, labels and the
/// seal's associated data).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    /// Whether `s` is a valid serial; the error says why not.
    pub fn check(s: &str) -> Result<(), InvalidName> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(InvalidName(format!("serial '{s}' is not valid: use 1-64 characters A-Z a-z 0-9 - _ .")))
        }
    }
}
name_type!(Serial);

/// A user's login. Logins come from people and directories: any printable text without
/// spaces, 1-128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Login(String);

impl Login {
    /// Whether `login` is a valid login; the error says why not.
    pub fn check(login: &str) -> Result<(), InvalidName> {
        if login.is_empty() || login.len() > 128 || login.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidName(format!(
                "login '{}' is not valid: 1-128 characters, no spaces",
                login.escape_debug()
            )));
        }
        Ok(())
    }
}
name_type!(Login);

/// The name of an object an admin defines (application, integration, gateway, resolver,
/// realm): 1-64 characters `a-z 0-9 - _ .` starting with a letter or digit, short and
/// lowercase so it is safe in HSM labels and URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectName(String);

impl ObjectName {
    /// Whether `name` is a valid object name; the error names it as a `name`.
    pub fn check(name: &str) -> Result<(), InvalidName> {
        ObjectName::check_as("object", name)
    }

    /// Whether `name` is a valid name of a `kind` (`application`, `gateway`, ...); the error
    /// names the kind.
    pub fn check_as(kind: &str, name: &str) -> Result<(), InvalidName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(InvalidName(format!(
                "{kind} name '{name}' is not valid: use 1-64 characters a-z 0-9 - _ . starting with a letter or digit"
            )))
        }
    }
}
name_type!(ObjectName);

/// A policy's name: 1-64 characters `A-Z a-z 0-9 - _ .` starting with a letter or digit, and
/// not `check` or `actions` (those are routes under `/v1/admin/policies`). Policies keep
/// privacyIDEA's mixed-case names, so this rule is not [`ObjectName`]'s.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyName(String);

impl PolicyName {
    /// Whether `name` is a valid policy name; the error says why not.
    pub fn check(name: &str) -> Result<(), InvalidName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "check"
            && name != "actions";
        if ok {
            Ok(())
        } else {
            Err(InvalidName(format!(
                "policy name '{}' is not valid: 1-64 characters A-Z a-z 0-9 - _ . starting with a letter or digit \
                 (not 'check' or 'actions')",
                name.escape_debug()
            )))
        }
    }
}
name_type!(PolicyName);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Each name type against its rule: (input, accepted).
    #[test]
    fn serials() {
        let long = "A".repeat(64);
        let too_long = "A".repeat(65);
        for (s, ok) in [
            ("OATH0001", true),
            ("a-b_c.d", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("has space", false),
            ("slash/es", false),
            ("ümlaut", false),
        ] {
            assert_eq!(Serial::try_from(s.to_owned()).is_ok(), ok, "{s:?}");
            assert_eq!(s.parse::<Serial>().is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn logins() {
        let long = "é".repeat(64);
        let too_long = "a".repeat(129);
        for (s, ok) in [
            ("alice", true),
            ("Alice.Smith@example.org", true),
            ("ümlaut", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("two words", false),
            ("tab\there", false),
            ("nul\0", false),
        ] {
            assert_eq!(Login::try_from(s.to_owned()).is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn object_names() {
        for (s, ok) in [
            ("billing", true),
            ("0day", true),
            ("a-b_c.d", true),
            ("", false),
            ("Billing", false),
            ("-lead", false),
            (".hidden", false),
            ("sp ace", false),
        ] {
            assert_eq!(ObjectName::try_from(s.to_owned()).is_ok(), ok, "{s:?}");
        }
        let e = ObjectName::check_as("gateway", "Bad").unwrap_err();
        assert!(e.to_string().starts_with("gateway name 'Bad' is not valid"), "{e}");
    }

    #[test]
    fn policy_names() {
        for (s, ok) in [
            ("MFA-for-admins", true),
            ("p1", true),
            ("", false),
            ("_lead", false),
            ("check", false),
            ("actions", false),
            ("Check", true),
            ("sp ace", false),
        ] {
            assert_eq!(PolicyName::try_from(s.to_owned()).is_ok(), ok, "{s:?}");
        }
    }

    /// Serde goes through the same rule, both ways.
    #[test]
    fn serde_checks() {
        let s: Serial = serde_json::from_str("\"T1\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"T1\"");
        assert_eq!(s.to_string(), "T1");
        assert_eq!(s.as_ref(), "T1");
        let e = serde_json::from_str::<Serial>("\"a b\"").unwrap_err();
        assert!(e.to_string().contains("serial 'a b' is not valid"), "{e}");
        assert!(serde_json::from_str::<Login>("\"\"").is_err());
    }
}
