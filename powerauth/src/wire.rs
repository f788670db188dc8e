//! What PowerAuth puts on the wire besides ECIES: the `X-PowerAuth-*` headers and the normalized
//! request data a signature covers.
//!
//! Headers are read by key, never by position (the SDKs order them differently from the
//! documentation), a key given twice is refused (two values would let the signature check and
//! the lookup read different ones), and unknown keys are ignored as the reference server does.
//!
//! Owns: header syntax and the signature base string. Must never: decide whether a header's
//! values are acceptable (a version supported, an activation known): that is the appliance's.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::Error;

/// `X-PowerAuth-Authorization`: a signed request.
pub const AUTHORIZATION_HEADER: &str = "X-PowerAuth-Authorization";
/// `X-PowerAuth-Encryption`: an ECIES-encrypted request's context.
pub const ENCRYPTION_HEADER: &str = "X-PowerAuth-Encryption";
/// `X-PowerAuth-Token`: a MAC-token-authenticated request.
pub const TOKEN_HEADER: &str = "X-PowerAuth-Token";

/// The longest header value read: far above any real one (an activation id, keys and a
/// signature are under 300 bytes), so a huge header is refused before it is split.
const MAX_HEADER_LEN: usize = 2048;

/// The `key="value"` pairs of a `PowerAuth ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFields(BTreeMap<String, String>);

impl HeaderFields {
    /// Parses `PowerAuth k1="v1", k2="v2"`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if value.len() > MAX_HEADER_LEN {
            return Err(Error::Header(format!("the PowerAuth header is longer than {MAX_HEADER_LEN} bytes")));
        }
        let rest = value
            .trim()
            .strip_prefix("PowerAuth")
            .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
            .ok_or_else(|| Error::Header("a PowerAuth header starts with 'PowerAuth '".into()))?;
        let mut fields = BTreeMap::new();
        for pair in rest.split(',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (key, quoted) = pair
                .split_once('=')
                .ok_or_else(|| Error::Header(format!("'{}' is not key=\"value\"", truncate(pair))))?;
            let value = quoted
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.contains('"'))
                .ok_or_else(|| Error::Header(format!("the value of '{}' must be in double quotes", truncate(key))))?;
            if fields.insert(key.trim().to_owned(), value.to_owned()).is_some() {
                return Err(Error::Header(format!("'{}' is given twice", truncate(key))));
            }
        }
        Ok(Self(fields))
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key`, which must be given and not empty.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key).filter(|v| !v.is_empty()).ok_or_else(|| Error::Header(format!("the header lacks {key}")))
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The normalized request data a signature covers (without the application secret the verifier
/// appends): `METHOD & Base64(uriId) & nonce & Base64(body)`, where `nonce` is the header's
/// `pa_nonce` as sent (Base64).
pub fn normalized_data(method: &str, uri_id: &str, nonce_b64: &str, body: &[u8]) -> String {
    format!(
        "{}&{}&{}&{}",
        method.to_ascii_uppercase(),
        STANDARD.encode(uri_id.as_bytes()),
        nonce_b64,
        STANDARD.encode(body)
    )
}

/// What offline signatures append where online ones append APP_SECRET (the reference server's
/// `APPLICATION_SECRET_OFFLINE_MODE`).
pub const OFFLINE_SECRET: &str = "offline";

/// The bytes a signature is computed over: the normalized data, `&`, and APP_SECRET's Base64
/// text (the reference server's `data + "&" + applicationSecret`).
pub fn signed_bytes(normalized: &str, application_secret: &str) -> Vec<u8> {
    format!("{normalized}&{application_secret}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_key_in_any_order() {
        let h = HeaderFields::parse(
            r#"PowerAuth pa_version="3.1", pa_activation_id="a-1", pa_nonce="bm9uY2U=", pa_application_key="k==""#,
        )
        .unwrap();
        assert_eq!(h.get("pa_activation_id"), Some("a-1"));
        assert_eq!(h.require("pa_nonce").unwrap(), "bm9uY2U=");
        assert_eq!(h.require("pa_application_key").unwrap(), "k==");
        assert!(h.require("pa_signature").is_err());
    }

    #[test]
    fn malformed_and_ambiguous_headers_are_refused() {
        assert!(HeaderFields::parse(r#"Bearer x="y""#).is_err());
        assert!(HeaderFields::parse(r#"PowerAuthx a="b""#).is_err());
        assert!(HeaderFields::parse(r#"PowerAuth a=b"#).is_err());
        assert!(HeaderFields::parse(r#"PowerAuth a="b", a="c""#).is_err());
        assert!(HeaderFields::parse(&format!(r#"PowerAuth a="{}""#, "x".repeat(3000))).is_err());
    }

    #[test]
    fn normalized_data_is_the_reference_form() {
        assert_eq!(
            normalized_data("post", "/pa/signature/validate", "bm9uY2U=", b"{}"),
            "POST&L3BhL3NpZ25hdHVyZS92YWxpZGF0ZQ==&bm9uY2U=&e30="
        );
        assert_eq!(signed_bytes("D", "S=="), b"D&S==".to_vec());
    }
}
