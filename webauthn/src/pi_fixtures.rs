//! Test-only: real authenticator output (a YubiKey 5, packed attestation by a Yubico U2F
//! attestation certificate, then two ES256 assertions) published by privacyIDEA in
//! `tests/passkey_base.py` of github.com/privacyidea/privacyidea (commit
//! 17e8145cd23ba0fcfbef30a93bf6aaaec6894d03, class `PasskeyTestBase`). Only the data values are
//! copied. Its passkey challenges are the UTF-8 bytes of the challenge string sent. Must never be
//! used outside `#[cfg(test)]`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::{
    verify_assertion, verify_registration, AssertionExpectations, AttestationFormat, AttestationType, CounterPolicy,
    CounterStatus, Error, Expected, RegistrationExpectations, StoredCredential,
};

const ORIGIN: &str = "https://cool.nils:5000";
const RP_ID: &str = "cool.nils";
const NOW: u64 = 1_893_456_000; // 2030-01-01, inside the Yubico certificate's 2014–2050

const REGISTRATION_ATTESTATION: &str = concat!(
    "o2NmbXRmcGFja2VkZ2F0dFN0bXSjY2FsZyZjc2lnWEYwRAIgTvRUAlwwtn9kmWGvIDZSdeIuOK/g8nK8icbnroQT2M8CIAqv3A0nH0m8j1",
    "yuNvgfTHt3FOgItHgcqYqefBVoU7zYY3g1Y4FZAt0wggLZMIIBwaADAgECAgkA8Oq7fWgETIowDQYJKoZIhvcNAQELBQAwLjEsMCoGA1UE",
    "AxMjWXViaWNvIFUyRiBSb290IENBIFNlcmlhbCA0NTcyMDA2MzEwIBcNMTQwODAxMDAwMDAwWhgPMjA1MDA5MDQwMDAwMDBaMG8xCzAJBg",
    "NVBAYTAlNFMRIwEAYDVQQKDAlZdWJpY28gQUIxIjAgBgNVBAsMGUF1dGhlbnRpY2F0b3IgQXR0ZXN0YXRpb24xKDAmBgNVBAMMH1l1Ymlj",
    "byBVMkYgRUUgU2VyaWFsIDIxMDk0NjczNzYwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATmZ9M7upxFm4Ce/MtqC64sXPxL14HVc0g9lv",
    "3pJR9kLM3mwgZVFPMzgkasmVKAACrSOK+8A3G21/rDv8ueedIwo4GBMH8wEwYKKwYBBAGCxAoNAQQFBAMFBAMwIgYJKwYBBAGCxAoCBBUx",
    "LjMuNi4xLjQuMS40MTQ4Mi4xLjcwEwYLKwYBBAGC5RwCAQEEBAMCBDAwIQYLKwYBBAGC5RwBAQQEEgQQL8BXn4ETR+qxFrtajbkgKjAMBg",
    "NVHRMBAf8EAjAAMA0GCSqGSIb3DQEBCwUAA4IBAQC2Mago15M4rSkAig1/eaOgPc8uDJsfYvrPtIqeVZV3p1FslZtkKxjwDEx3Io0Z+dRC",
    "IlwSaL0jGKCMahdzBk8CmcmbskOKR7tnsdDbJSuUln4SAVqaK+nkLdRUJoiQYf4fIlb++Hbdc5kyRoNxGrBt6rxvRWhq+e7hgXlsIzs+2e",
    "w9wKy98vkNqE8ZJ+lz1jIA0bj05AE5miU0XcwEoquyk4AjtF9bQlJBjQ1SdYVjH2HEVs25iwoU3g1uUn9nP20yTVhhKRMnpV/EdOjm18hx",
    "ot9nV0isx5jXb5Z6+My58Vb+oHgStjkaN+3dxuJkEQuZtD1AtTItfvyUeIsL2kkiaGF1dGhEYXRhWLS0+nxz7BejqEVRt152Qdw4/Wz7GT",
    "A6sezF+81+EjvBV0UAAAAEL8BXn4ETR+qxFrtajbkgKgAwT9TJpDbUuq0TIdIpErltERuboEdR1GBa7pVtdYMQYTQZ582wmBwp5TWuZ/sE",
    "/Ag4pQECAyYgASFYIE/UyaQ21LqtEyHSKRJpShO+wOGDv7qDWURk30/U26xtIlgglAzzrE4UkAFqhrNdg2OToNFk6it8EAzLuZwfWM8ney",
    "c=",
);
const REGISTRATION_CLIENT_DATA: &str = concat!(
    "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiUWtZeU16Uk5iV3hwVFVwb05re",
    "FhOVUZpT0RoUWJpMWtUVXBXUjBvMk5qQkxibEpoTTJaR2QwNVdVUSIsIm9yaWdpbiI6Imh0dHBzOi",
    "8vY29vbC5uaWxzOjUwMDAifQ==",
);
const REGISTRATION_CHALLENGE: &str = "BF234MmliMJh6LW5Ab88Pn-dMJVGJ660KnRa3fFwNVQ";
const CREDENTIAL_ID_B64URL: &str = "T9TJpDbUuq0TIdIpErltERuboEdR1GBa7pVtdYMQYTQZ582wmBwp5TWuZ_sE_Ag4";

const CHALLENGE_NO_UV: &str = "SPRITfnl8pStiyaHx4v0kgdmNy5HdLCUvBjIsd5PUV0";
const AUTH_DATA_NO_UV: &str = "tPp8c+wXo6hFUbdedkHcOP1s+xkwOrHsxfvNfhI7wVcBAAAABg==";
const CLIENT_DATA_NO_UV: &str = concat!(
    "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiVTFCU1NWUm1ibXc0Y0ZOM",
    "GFYbGhTSGcwZGpCcloyUnRUbmsxU0dSTVExVjJRbXBKYzJRMVVGVldNQSIsIm9yaWdpbi",
    "I6Imh0dHBzOi8vY29vbC5uaWxzOjUwMDAifQ==",
);
const SIGNATURE_NO_UV: &str =
    concat!("MEUCIQCDrNi+Jf50YslBH7qXSQIaieA9kgHdUvefxuMYeFcSvgIgfZado1mzhj/ORaawpyv", "RIAXJRmaD1sruO5PVlJRi6xg=");

const CHALLENGE_UV: &str = "MisSxHzhdilz_l3f_qH6YkR1eQkmPQ7DDWsvrPkMDJQ";
const AUTH_DATA_UV: &str = "tPp8c+wXo6hFUbdedkHcOP1s+xkwOrHsxfvNfhI7wVcFAAAADw==";
const CLIENT_DATA_UV: &str = concat!(
    "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiVFdselUzaEllbWhrYVd4Nlgy",
    "d3pabDl4U0RaWmExSXhaVkZyYlZCUk4wUkVWM04yY2xCclRVUktVUSIsIm9yaWdpbiI6Imh0",
    "dHBzOi8vY29vbC5uaWxzOjUwMDAifQ==",
);
const SIGNATURE_UV: &str =
    concat!("MEYCIQDoJIuFrZKda+kKerNnSIVpUgb6dGHKTF6chAKN+ZUJGgIhAJP+nmIP1YOKBQ3HbJh7vv", "wKUSFZgxRODFg+Bm2vPPMR");

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

/// What privacyIDEA's test relying party expects, with `challenge`.
fn expected(challenge: &[u8]) -> Expected {
    crate::testkit::expected(RP_ID, ORIGIN, challenge)
}

fn registration() -> crate::RegisteredCredential {
    let expected = RegistrationExpectations {
        common: expected(REGISTRATION_CHALLENGE.as_bytes()),
        trust_anchors: vec![],
        now_unix: NOW,
    };
    verify_registration(&expected, &b64(REGISTRATION_ATTESTATION), &b64(REGISTRATION_CLIENT_DATA)).unwrap()
}

fn assertion_expectations(challenge: &str, require_uv: bool) -> AssertionExpectations {
    let mut common = expected(challenge.as_bytes());
    common.require_user_verification = require_uv;
    AssertionExpectations { common, counter_policy: CounterPolicy::Reject }
}

#[test]
fn privacyidea_yubikey_packed_registration_verifies() {
    let cred = registration();
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(CREDENTIAL_ID_B64URL).unwrap();
    assert_eq!(cred.credential_id, id);
    assert_eq!(cred.format, AttestationFormat::Packed);
    // Signed by "Yubico U2F EE Serial 2109467376"; the Yubico U2F root is not passed.
    assert_eq!(cred.attestation, AttestationType::Basic { trusted: false });
    assert_eq!(cred.alg, -7);
    assert_eq!(cred.sign_count, 4);
    assert_eq!(cred.aaguid[..4], [0x2f, 0xc0, 0x57, 0x9f]);
    assert!(cred.flags.user_verified());
}

#[test]
fn privacyidea_yubikey_registration_refuses_another_challenge_or_origin() {
    let mut expected = RegistrationExpectations {
        // The base64url-decoded nonce is not what a passkey client signed over.
        common: expected(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(REGISTRATION_CHALLENGE).unwrap()),
        trust_anchors: vec![],
        now_unix: NOW,
    };
    let att = b64(REGISTRATION_ATTESTATION);
    let cd = b64(REGISTRATION_CLIENT_DATA);
    assert_eq!(verify_registration(&expected, &att, &cd).unwrap_err(), Error::ChallengeMismatch);
    expected.common.challenge = REGISTRATION_CHALLENGE.as_bytes().to_vec();
    expected.common.origins = vec!["https://cool.nils".to_owned()];
    assert!(matches!(verify_registration(&expected, &att, &cd), Err(Error::OriginNotAllowed(_))));
}

#[test]
fn privacyidea_yubikey_assertions_verify_in_order() {
    let cred = registration();
    let stored = StoredCredential { cose_key: cred.cose_key.clone(), sign_count: cred.sign_count };
    let out = verify_assertion(
        &assertion_expectations(CHALLENGE_NO_UV, false),
        &stored,
        &b64(AUTH_DATA_NO_UV),
        &b64(CLIENT_DATA_NO_UV),
        &b64(SIGNATURE_NO_UV),
    )
    .unwrap();
    assert_eq!((out.sign_count, out.counter, out.user_verified()), (6, CounterStatus::Advanced, false));

    let stored = StoredCredential { cose_key: cred.cose_key.clone(), sign_count: out.sign_count };
    let out = verify_assertion(
        &assertion_expectations(CHALLENGE_UV, true),
        &stored,
        &b64(AUTH_DATA_UV),
        &b64(CLIENT_DATA_UV),
        &b64(SIGNATURE_UV),
    )
    .unwrap();
    assert_eq!((out.sign_count, out.user_verified()), (15, true));

    // The first assertion again, after the second: its counter (6) no longer advances.
    let stored = StoredCredential { cose_key: cred.cose_key, sign_count: out.sign_count };
    let err = verify_assertion(
        &assertion_expectations(CHALLENGE_NO_UV, false),
        &stored,
        &b64(AUTH_DATA_NO_UV),
        &b64(CLIENT_DATA_NO_UV),
        &b64(SIGNATURE_NO_UV),
    )
    .unwrap_err();
    assert_eq!(err, Error::CounterRegressed { stored: 15, received: 6 });
}

#[test]
fn privacyidea_yubikey_assertion_without_uv_is_refused_when_uv_is_required() {
    let cred = registration();
    let stored = StoredCredential { cose_key: cred.cose_key, sign_count: 4 };
    let err = verify_assertion(
        &assertion_expectations(CHALLENGE_NO_UV, true),
        &stored,
        &b64(AUTH_DATA_NO_UV),
        &b64(CLIENT_DATA_NO_UV),
        &b64(SIGNATURE_NO_UV),
    )
    .unwrap_err();
    assert_eq!(err, Error::UserNotVerified);
}
