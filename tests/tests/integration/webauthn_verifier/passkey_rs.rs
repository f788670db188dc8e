//! The verifier against 1Password's passkey-rs (`passkey-authenticator` as the authenticator,
//! `passkey-client` as the browser: it builds clientDataJSON and the attestationObject), an
//! implementation written apart from the verifier and from our other test authenticators. It is
//! driven as a program, `tests/tools/passkey-rs-authenticator` (its own workspace: this one does
//! not depend on passkey-rs, see docs/testing.md), which `make test` builds first.
//!
//! `countersign-webauthn` accepts what it sends honestly: registrations with its `none`
//! attestation (the only format it makes) for ES256 and EdDSA, then two assertions each, with
//! user verification set and unset, with and without its sign counter, and with the user
//! handle it returns; and it refuses what a relying party must refuse of the same bytes
//! (another origin, another challenge, UV missing where required, an assertion replayed after
//! its counter moved on).

use countersign_tests::webauthn::{b64url, field, PasskeyRs, PASSKEY_RS_AAGUID};
use countersign_webauthn::{
    AssertionExpectations, AttestationFormat, AttestationType, CounterPolicy, CounterStatus, Error, Expected,
    RegistrationExpectations, COSE_ALG_EDDSA, COSE_ALG_ES256, COSE_ALG_RS256,
};
use serde_json::{json, Value};

use super::{stored, verify_created, verify_got, REGISTRATION_CHALLENGE, USER_ID};

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";

/// The AAGUID the harness gives passkey-rs, as the registration reports it.
fn aaguid() -> [u8; 16] {
    hex::decode(PASSKEY_RS_AAGUID).unwrap().try_into().unwrap()
}

/// One passkey-rs authenticator (its state file in a directory of its own) behind passkey-rs's
/// client, as a browser at [`ORIGIN`] unless its origin is changed.
struct Device {
    _dir: tempfile::TempDir,
    passkey_rs: PasskeyRs,
}

impl Device {
    fn new(can_verify: bool, counter: bool) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let passkey_rs = PasskeyRs::new(dir.path().join("authenticator.json"), can_verify, counter);
        assert_eq!(passkey_rs.origin, ORIGIN);
        Device { _dir: dir, passkey_rs }
    }

    /// `navigator.credentials.create({publicKey})` with the options as an RP sends them
    /// (PublicKeyCredentialCreationOptionsJSON).
    fn create(&self, public_key: Value) -> Value {
        self.passkey_rs.create(&public_key)
    }

    /// `navigator.credentials.get({publicKey})` with PublicKeyCredentialRequestOptionsJSON.
    fn get(&self, public_key: Value) -> Value {
        self.passkey_rs.get(&public_key)
    }
}

/// The creation options for `algs` (in the RP's order of preference) and `user_verification`.
fn creation_options(algs: &[i64], user_verification: &str) -> Value {
    json!({
        "rp": { "id": RP_ID, "name": "Example Corp" },
        "user": { "id": b64url(USER_ID), "name": "alice", "displayName": "Alice" },
        "challenge": b64url(REGISTRATION_CHALLENGE),
        "pubKeyCredParams": algs.iter().map(|alg| json!({ "type": "public-key", "alg": alg })).collect::<Vec<_>>(),
        "timeout": 60000,
        "authenticatorSelection": { "userVerification": user_verification },
        // Asked for; passkey-rs attests `none` whatever is asked.
        "attestation": "direct",
    })
}

fn request_options(challenge: &[u8], credential_id: &[u8], user_verification: &str) -> Value {
    json!({
        "challenge": b64url(challenge),
        "rpId": RP_ID,
        "allowCredentials": [{ "type": "public-key", "id": b64url(credential_id) }],
        "userVerification": user_verification,
        "timeout": 60000,
    })
}

fn expected(challenge: &[u8], require_user_verification: bool) -> Expected {
    super::expected(RP_ID, ORIGIN, challenge, require_user_verification)
}

fn registration(require_user_verification: bool) -> RegistrationExpectations {
    RegistrationExpectations {
        common: expected(REGISTRATION_CHALLENGE, require_user_verification),
        trust_anchors: vec![],
        now_unix: 1_750_000_000,
    }
}

fn assertion(challenge: &[u8], counter_policy: CounterPolicy) -> AssertionExpectations {
    AssertionExpectations { common: expected(challenge, false), counter_policy }
}

/// Registers a credential of the first of `algs` passkey-rs supports, checks what the
/// registration reports, then two assertions of it (UV asked for and given).
fn registers_and_asserts_twice(algs: &[i64], expected_alg: i64) {
    let what = format!("algorithms offered {algs:?}");
    let device = Device::new(true, false);
    let created = device.create(creation_options(algs, "preferred"));
    assert_eq!(created["alg"], expected_alg, "{what}");
    let credential = verify_created(&registration(true), &created).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(credential.alg, expected_alg, "{what}");
    assert_eq!(credential.format, AttestationFormat::None, "{what}");
    assert_eq!(credential.attestation, AttestationType::None, "{what}");
    assert_eq!(credential.aaguid, aaguid(), "{what}: passkey-rs reports its AAGUID even under `none`");
    assert_eq!(credential.credential_id, field(&created, "credential_id"), "{what}");
    // A synced passkey: backup eligible and backed up; no counter (0) unless asked for.
    let flags = credential.flags;
    assert!(flags.user_present() && flags.user_verified() && flags.attested(), "{what}: {flags:?}");
    assert!(flags.backup_eligible() && flags.backed_up(), "{what}: {flags:?}");
    assert_eq!(credential.sign_count, 0, "{what}");

    let mut store = stored(&credential);
    for challenge in [b"first assertion challenge, 32 b!", b"second assertion challenge, 32b!"] {
        let got = device.get(request_options(challenge, &credential.credential_id, "required"));
        assert_eq!(field(&got, "credential_id"), credential.credential_id, "{what}");
        // Every credential is discoverable: the user handle is the user.id given.
        assert_eq!(field(&got, "user_handle"), USER_ID, "{what}");
        let e = AssertionExpectations { common: expected(challenge, true), counter_policy: CounterPolicy::Reject };
        let out = verify_got(&e, &store, &got).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((out.sign_count, out.counter), (0, CounterStatus::NotUsed), "{what}");
        assert!(out.user_verified() && out.backup_eligible() && out.backed_up(), "{what}: {:?}", out.flags);
        store.sign_count = out.sign_count;
    }
}

#[test]
fn es256_registers_with_none_attestation_and_asserts_twice() {
    // privacyIDEA's default order: the first one passkey-rs makes is chosen.
    registers_and_asserts_twice(&[COSE_ALG_ES256, COSE_ALG_EDDSA, COSE_ALG_RS256], COSE_ALG_ES256);
}

#[test]
fn eddsa_registers_with_none_attestation_and_asserts_twice() {
    // passkey-rs makes no RSA keys: RS256 first in the list is passed over.
    registers_and_asserts_twice(&[COSE_ALG_RS256, COSE_ALG_EDDSA], COSE_ALG_EDDSA);
}

#[test]
fn passkey_rs_client_data_is_read_as_a_browser_writes_it() {
    let device = Device::new(true, false);
    let created = device.create(creation_options(&[COSE_ALG_ES256], "preferred"));
    let client_data: Value = serde_json::from_slice(&field(&created, "client_data_json")).unwrap();
    assert_eq!(client_data["type"], "webauthn.create", "{client_data}");
    assert_eq!(client_data["challenge"], b64url(REGISTRATION_CHALLENGE), "{client_data}");
    assert_eq!(client_data["origin"], ORIGIN, "{client_data}");
    assert_ne!(client_data["crossOrigin"], true, "{client_data}");
    let att: ciborium::Value = ciborium::from_reader(field(&created, "attestation_object").as_slice()).unwrap();
    let fmt = att.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("fmt")).map(|(_, v)| v.clone());
    assert_eq!(fmt, Some(ciborium::Value::Text("none".into())));
}

#[test]
fn without_user_verification_uv_is_unset_and_refused_where_required() {
    // An authenticator that cannot verify its user (no PIN, no biometrics).
    let device = Device::new(false, false);
    let created = device.create(creation_options(&[COSE_ALG_ES256], "discouraged"));
    assert_eq!(verify_created(&registration(true), &created).unwrap_err(), Error::UserNotVerified);
    let credential = verify_created(&registration(false), &created).unwrap();
    assert!(credential.flags.user_present() && !credential.flags.user_verified(), "{:?}", credential.flags);

    let challenge = b"assertion without UV, 32 bytes!!";
    let got = device.get(request_options(challenge, &credential.credential_id, "discouraged"));
    let out = verify_got(&assertion(challenge, CounterPolicy::Reject), &stored(&credential), &got).unwrap();
    assert!(!out.user_verified(), "{:?}", out.flags);
    let required = AssertionExpectations { common: expected(challenge, true), counter_policy: CounterPolicy::Reject };
    assert_eq!(verify_got(&required, &stored(&credential), &got).unwrap_err(), Error::UserNotVerified);

    // One that can verify but is told not to: UV unset too.
    let device = Device::new(true, false);
    let created = device.create(creation_options(&[COSE_ALG_EDDSA], "discouraged"));
    let credential = verify_created(&registration(false), &created).unwrap();
    assert!(!credential.flags.user_verified(), "{:?}", credential.flags);
    let got = device.get(request_options(challenge, &credential.credential_id, "discouraged"));
    assert!(!verify_got(&assertion(challenge, CounterPolicy::Reject), &stored(&credential), &got)
        .unwrap()
        .user_verified());
}

#[test]
fn a_counting_passkey_advances_and_an_older_assertion_is_refused_after() {
    let device = Device::new(true, true);
    let created = device.create(creation_options(&[COSE_ALG_ES256], "preferred"));
    let credential = verify_created(&registration(false), &created).unwrap();
    assert_eq!(credential.sign_count, 0, "passkey-rs starts its counter at 0");
    let challenge = b"counting assertion challenge 32b";
    let mut store = stored(&credential);
    let mut answers = Vec::new();
    for expected_count in [1, 2] {
        let got = device.get(request_options(challenge, &credential.credential_id, "preferred"));
        let out = verify_got(&assertion(challenge, CounterPolicy::Reject), &store, &got).unwrap();
        assert_eq!((out.sign_count, out.counter), (expected_count, CounterStatus::Advanced));
        store.sign_count = out.sign_count;
        answers.push(got);
    }
    // The first assertion again, after the second: its counter (1) did not advance past 2.
    let replayed = &answers[0];
    let err = verify_got(&assertion(challenge, CounterPolicy::Reject), &store, replayed).unwrap_err();
    assert_eq!(err, Error::CounterRegressed { stored: 2, received: 1 });
    let out = verify_got(&assertion(challenge, CounterPolicy::Report), &store, replayed).unwrap();
    assert_eq!(out.counter, CounterStatus::Regressed { stored: 2, received: 1 });
}

#[test]
fn passkey_rs_answers_for_another_origin_or_challenge_are_refused() {
    // passkey-rs's client allows a subdomain of the RP id as the origin; this RP lists only
    // https://example.com.
    let mut device = Device::new(true, false);
    device.passkey_rs.origin = "https://login.example.com".to_owned();
    let created = device.create(creation_options(&[COSE_ALG_ES256], "preferred"));
    assert_eq!(
        verify_created(&registration(false), &created).unwrap_err(),
        Error::OriginNotAllowed("https://login.example.com".to_owned())
    );
    let mut allowed = registration(false);
    allowed.common.origins.push("https://login.example.com".to_owned());
    let credential = verify_created(&allowed, &created).unwrap();

    // An assertion made for one challenge does not answer another.
    device.passkey_rs.origin = ORIGIN.to_owned();
    let got = device.get(request_options(b"the challenge signed for, 32 byt", &credential.credential_id, "preferred"));
    let err =
        verify_got(&assertion(b"the challenge issued, 32 bytes!!", CounterPolicy::Reject), &stored(&credential), &got)
            .unwrap_err();
    assert_eq!(err, Error::ChallengeMismatch);
    // Nor does it verify with another credential's key.
    let other = Device::new(true, false);
    let other_credential =
        verify_created(&registration(false), &other.create(creation_options(&[COSE_ALG_ES256], "preferred"))).unwrap();
    let challenge = b"the challenge signed for, 32 byt";
    let err = verify_got(&assertion(challenge, CounterPolicy::Reject), &stored(&other_credential), &got).unwrap_err();
    assert!(matches!(err, Error::BadSignature(_)), "{err}");
}
