//! MAC tokens (`X-PowerAuth-Token`): the header a client sends with a token, and the token
//! digest, `HMAC-SHA256(TOKEN_SECRET, DATA)`, where `DATA` is
//!
//! - 3.0 and 3.1: `NONCE & TIMESTAMP`,
//! - 3.2 and 3.3: `NONCE & TIMESTAMP & VERSION`,
//!
//! with `NONCE` the nonce's bytes (the header carries them in Base64), `TIMESTAMP` the Unix time
//! in milliseconds as decimal ASCII, `VERSION` the protocol version's text (`3.3`) and `&` the one
//! byte 0x26. That is powerauth-crypto's `TokenUtils.computeTokenDigest` (the reference server
//! converts the timestamp with `String.valueOf(long)`, so a number with leading zeros is
//! digested without them) and the mobile SDK's `TokenDataToSign`.
//!
//! Owns the header's syntax and the digest's bytes, and compares a digest in constant time.
//! Must never judge a token's timestamp, nonce reuse or owner: the appliance's clock, replay
//! table and activations decide those.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::keys::hmac_sha256;
use crate::wire::HeaderFields;
use crate::{Error, ProtocolVersion};

/// Length of a token secret (16 random bytes).
pub const SECRET_LEN: usize = 16;
/// Length of a token digest (HMAC-SHA256).
pub const DIGEST_LEN: usize = 32;

/// What `X-PowerAuth-Token` says of a request: `PowerAuth version="3.3", token_id="...",
/// token_digest="...", nonce="...", timestamp="..."` (keys read by name, as the reference's
/// `PowerAuthTokenHttpHeader` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// `token_id`.
    pub token_id: String,
    /// `token_digest`, Base64 as sent.
    pub digest: String,
    /// `nonce`, Base64 as sent.
    pub nonce: String,
    /// `timestamp`, Unix milliseconds.
    pub timestamp_ms: u64,
    /// `version`.
    pub version: ProtocolVersion,
}

impl TokenHeader {
    /// Reads the header's value.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let f = HeaderFields::parse(value)?;
        Ok(TokenHeader {
            token_id: f.require("token_id")?.to_owned(),
            digest: f.require("token_digest")?.to_owned(),
            nonce: f.require("nonce")?.to_owned(),
            timestamp_ms: parse_timestamp(f.require("timestamp")?)?,
            version: f.require("version")?.parse()?,
        })
    }
}

/// A token timestamp as the header writes it: decimal digits only, at most what a Java `long`
/// holds (the reference reads it with `Long.parseLong`).
pub fn parse_timestamp(text: &str) -> Result<u64, Error> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Header("the token timestamp is not a number of milliseconds".into()));
    }
    text.parse::<u64>()
        .ok()
        .filter(|t| i64::try_from(*t).is_ok())
        .ok_or_else(|| Error::Header("the token timestamp is out of range".into()))
}

/// The bytes a token digest covers.
pub fn digest_data(nonce: &[u8], timestamp_ms: u64, version: ProtocolVersion) -> Vec<u8> {
    let timestamp = timestamp_ms.to_string();
    let mut data = Vec::with_capacity(nonce.len() + timestamp.len() + 5);
    data.extend_from_slice(nonce);
    data.push(b'&');
    data.extend_from_slice(timestamp.as_bytes());
    if version >= ProtocolVersion::V3_2 {
        data.push(b'&');
        data.extend_from_slice(version.as_str().as_bytes());
    }
    data
}

/// The digest a client holding `secret` writes for `nonce` and `timestamp_ms` in `version`.
pub fn compute(
    secret: &[u8],
    nonce: &[u8],
    timestamp_ms: u64,
    version: ProtocolVersion,
) -> Result<[u8; DIGEST_LEN], Error> {
    if secret.len() != SECRET_LEN {
        return Err(Error::Length { what: "token secret", expected: SECRET_LEN, got: secret.len() });
    }
    if nonce.is_empty() {
        return Err(Error::Header("the token nonce is empty".into()));
    }
    Ok(hmac_sha256(secret, &[&digest_data(nonce, timestamp_ms, version)]))
}

/// Whether `provided` (the digest's bytes) is the digest of `nonce` and `timestamp_ms` under
/// `secret`: computed, then compared in constant time (a digest's length is public).
pub fn verify(
    secret: &[u8],
    nonce: &[u8],
    timestamp_ms: u64,
    version: ProtocolVersion,
    provided: &[u8],
) -> Result<bool, Error> {
    let expected = compute(secret, nonce, timestamp_ms, version)?;
    Ok(bool::from(expected.as_slice().ct_eq(provided)))
}

/// [`verify`] of a header's Base64 digest and nonce: a digest or nonce that is not Base64
/// is an error, not a mismatch.
pub fn verify_header(secret: &[u8], header: &TokenHeader) -> Result<bool, Error> {
    let nonce =
        STANDARD.decode(header.nonce.as_bytes()).map_err(|_| Error::Header("the token nonce is not Base64".into()))?;
    let digest = STANDARD
        .decode(header.digest.as_bytes())
        .map_err(|_| Error::Header("the token digest is not Base64".into()))?;
    verify(secret, &nonce, header.timestamp_ms, header.version, &digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const NONCE: [u8; 16] = [0xAA; 16];
    const TS: u64 = 1_700_000_000_123;

    fn b64(d: &[u8]) -> String {
        STANDARD.encode(d)
    }

    /// Digests computed independently (Python's `hmac` over the reference's byte layout:
    /// `nonce & str(timestamp)` before 3.2, `& version` from 3.2).
    #[test]
    fn digests_match_an_independent_computation() {
        let expect = [
            (ProtocolVersion::V3_0, "5SAlUXmvGic5QKg1KhvxsCcXtFknV+ab9NqnfKUyXAc="),
            (ProtocolVersion::V3_1, "5SAlUXmvGic5QKg1KhvxsCcXtFknV+ab9NqnfKUyXAc="),
            (ProtocolVersion::V3_2, "HEDyJy5T9Kc/Zm3pNZLMPn/9RRdTvx2DgYaFcuTNXcY="),
            (ProtocolVersion::V3_3, "1tVwXBn6Eud8LzFWeSzKpB/mkqeNQWKB7h34ndywQqo="),
        ];
        for (version, digest) in expect {
            assert_eq!(b64(&compute(&SECRET, &NONCE, TS, version).unwrap()), digest, "{version}");
        }
        let mut data = NONCE.to_vec();
        data.extend_from_slice(b"&1700000000123&3.3");
        assert_eq!(digest_data(&NONCE, TS, ProtocolVersion::V3_3), data);
    }

    #[test]
    fn verification_refuses_any_other_input() {
        let v = ProtocolVersion::V3_3;
        let good = compute(&SECRET, &NONCE, TS, v).unwrap();
        assert!(verify(&SECRET, &NONCE, TS, v, &good).unwrap());
        assert!(!verify(&SECRET, &NONCE, TS + 1, v, &good).unwrap(), "another timestamp");
        assert!(!verify(&SECRET, &[0xAB; 16], TS, v, &good).unwrap(), "another nonce");
        assert!(!verify(&SECRET, &NONCE, TS, ProtocolVersion::V3_2, &good).unwrap(), "another version");
        assert!(!verify(&[9; 16], &NONCE, TS, v, &good).unwrap(), "another secret");
        assert!(!verify(&SECRET, &NONCE, TS, v, &good[..31]).unwrap(), "a truncated digest");
        assert!(compute(&SECRET[..15], &NONCE, TS, v).is_err());
        assert!(compute(&SECRET, &[], TS, v).is_err());
    }

    #[test]
    fn headers_are_read_by_key_and_checked() {
        let digest = b64(&compute(&SECRET, &NONCE, TS, ProtocolVersion::V3_3).unwrap());
        let value = format!(
            r#"PowerAuth version="3.3", token_id="t-1", token_digest="{digest}", nonce="{}", timestamp="{TS}""#,
            b64(&NONCE)
        );
        let h = TokenHeader::parse(&value).unwrap();
        assert_eq!(h.token_id, "t-1");
        assert_eq!(h.timestamp_ms, TS);
        assert_eq!(h.version, ProtocolVersion::V3_3);
        assert!(verify_header(&SECRET, &h).unwrap());
        // Leading zeros are read as the number (the reference's Long.parseLong), so the digest
        // is of the number's own text.
        let zeros = TokenHeader::parse(&value.replace(&format!("\"{TS}\""), &format!("\"00{TS}\""))).unwrap();
        assert_eq!(zeros.timestamp_ms, TS);
        for bad in [
            value.replace("timestamp=", "stamp="),
            value.replace(&format!("{TS}"), "-5"),
            value.replace(&format!("{TS}"), "99999999999999999999"),
            value.replace("3.3", "2.1"),
            value.replace("token_id=\"t-1\"", "token_id=\"\""),
        ] {
            assert!(TokenHeader::parse(&bad).is_err(), "{bad}");
        }
        let mut not_b64 = h.clone();
        not_b64.nonce = "***".into();
        assert!(verify_header(&SECRET, &not_b64).is_err());
    }
}
