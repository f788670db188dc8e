//! clientDataJSON (WebAuthn §5.8.1): its type, challenge, origin and crossOrigin checked against
//! what the relying party expects, and its SHA-256 (what the authenticator signed over). Must
//! never compare the challenge in any form but the exact bytes the caller issued, nor accept an
//! origin by prefix or pattern.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{bounded, Error};
use crate::limits;

/// base64url; the standard says without padding, and padding is tolerated.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which ceremony clientDataJSON must be from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// Registration: `webauthn.create`.
    Create,
    /// Authentication: `webauthn.get`.
    Get,
}

impl Ceremony {
    /// The clientDataJSON `type` of this ceremony.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Create => "webauthn.create",
            Self::Get => "webauthn.get",
        }
    }
}

/// What clientDataJSON must say.
#[derive(Debug, Clone, Copy)]
pub struct ClientDataExpectations<'a> {
    /// The ceremony.
    pub ceremony: Ceremony,
    /// The exact challenge bytes issued (see the crate documentation on challenges).
    pub challenge: &'a [u8],
    /// The allowed origins, compared exactly (e.g. `https://login.example.com`).
    pub origins: &'a [String],
    /// Whether `crossOrigin: true` (an iframe of another origin) is accepted.
    pub allow_cross_origin: bool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    ty: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Checks clientDataJSON against `expect`; returns SHA-256 of the raw bytes.
pub fn verify_client_data(expect: &ClientDataExpectations<'_>, client_data_json: &[u8]) -> Result<[u8; 32], Error> {
    bounded("clientDataJSON", client_data_json, limits::MAX_CLIENT_DATA)?;
    let raw: Raw = serde_json::from_slice(client_data_json).map_err(|e| Error::ClientDataJson(e.to_string()))?;
    if raw.ty != expect.ceremony.type_name() {
        return Err(Error::WrongCeremony { expected: expect.ceremony.type_name(), received: raw.ty });
    }
    let challenge = B64URL.decode(raw.challenge.as_bytes()).map_err(|e| Error::ChallengeEncoding(e.to_string()))?;
    if challenge != expect.challenge {
        return Err(Error::ChallengeMismatch);
    }
    if !expect.origins.contains(&raw.origin) {
        return Err(Error::OriginNotAllowed(raw.origin));
    }
    if raw.cross_origin == Some(true) && !expect.allow_cross_origin {
        return Err(Error::CrossOriginNotAllowed);
    }
    Ok(Sha256::digest(client_data_json).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{client_data, CHALLENGE, ORIGIN};

    fn expect(origins: &[String]) -> ClientDataExpectations<'_> {
        ClientDataExpectations { ceremony: Ceremony::Get, challenge: CHALLENGE, origins, allow_cross_origin: false }
    }

    #[test]
    fn returns_the_hash_of_the_raw_bytes() {
        let origins = [ORIGIN.to_owned()];
        let cd = client_data("webauthn.get", CHALLENGE, ORIGIN);
        assert_eq!(verify_client_data(&expect(&origins), &cd).unwrap(), <[u8; 32]>::from(Sha256::digest(&cd)));
    }

    #[test]
    fn passkey_challenges_are_the_utf8_bytes_of_the_string_sent() {
        // privacyIDEA's passkey: the client signs over the challenge string's UTF-8 bytes, so
        // clientDataJSON carries base64url(the string) and the caller expects the string's bytes.
        let sent = "d9c2f6c1a7e04b51";
        let origins = [ORIGIN.to_owned()];
        let e = ClientDataExpectations { challenge: sent.as_bytes(), ..expect(&origins) };
        verify_client_data(&e, &client_data("webauthn.get", sent.as_bytes(), ORIGIN)).unwrap();
    }

    #[test]
    fn padded_challenges_are_tolerated_and_bad_base64_refused() {
        let origins = [ORIGIN.to_owned()];
        let e = ClientDataExpectations { challenge: b"ab", ..expect(&origins) };
        let json = |c: &str| format!(r#"{{"type":"webauthn.get","challenge":"{c}","origin":"{ORIGIN}"}}"#).into_bytes();
        verify_client_data(&e, &json("YWI")).unwrap();
        verify_client_data(&e, &json("YWI=")).unwrap();
        assert!(matches!(verify_client_data(&e, &json("Y+I/")), Err(Error::ChallengeEncoding(_))));
    }

    #[test]
    fn origins_match_exactly() {
        let origins = [ORIGIN.to_owned()];
        for origin in
            ["https://example.com:443", "https://example.com/", "http://example.com", "https://sub.example.com"]
        {
            let err =
                verify_client_data(&expect(&origins), &client_data("webauthn.get", CHALLENGE, origin)).unwrap_err();
            assert_eq!(err, Error::OriginNotAllowed(origin.to_owned()));
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        let origins = [ORIGIN.to_owned()];
        for bad in [&b""[..], b"{}", b"[1]", b"{\"type\":1}", &[0xff, 0xfe]] {
            assert!(matches!(verify_client_data(&expect(&origins), bad), Err(Error::ClientDataJson(_))));
        }
        let big = vec![b' '; limits::MAX_CLIENT_DATA + 1];
        assert!(matches!(verify_client_data(&expect(&origins), &big), Err(Error::TooLarge { .. })));
    }
}
