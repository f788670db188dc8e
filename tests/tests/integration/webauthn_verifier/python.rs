//! The verifier against an independent client: `tests/tools/soft_authenticator.py` (Python and
//! its `cryptography` package, written apart from the verifier) registers credentials and signs
//! assertions as a browser and an authenticator do, and these tests check that
//! `countersign-webauthn` accepts what it sends honestly, for each algorithm and attestation
//! format, and refuses what it is told to get wrong (origin, challenge, RP id, ceremony type,
//! flags, tampered bytes, a counter going backwards).

use countersign_tests::webauthn::{b64url, field, python, soft_authenticator, try_soft, with};
use countersign_webauthn::{
    AssertionExpectations, AttestationFormat, AttestationType, CounterPolicy, CounterStatus, Error, Expected,
    RegisteredCredential, RegistrationExpectations, COSE_ALG_EDDSA, COSE_ALG_ES256, COSE_ALG_RS256,
};
use serde_json::{json, Value};

use super::{now, stored, verify_created, verify_got, REGISTRATION_CHALLENGE, USER_ID};

const RP_ID: &str = "login.example.com";
const ORIGIN: &str = "https://login.example.com";
const ASSERTION_CHALLENGE: &[u8] = b"assertion challenge of 32 bytes!";
const AAGUID: [u8; 16] =
    [0xc5, 0xef, 0x55, 0xff, 0xad, 0x9a, 0x4b, 0x9f, 0xb5, 0x80, 0xad, 0xeb, 0xaf, 0xe7, 0x9e, 0xf4];
const ALGS: [i64; 3] = [COSE_ALG_ES256, COSE_ALG_EDDSA, COSE_ALG_RS256];
/// authenticatorData's offset of the signCount's last byte (after rpIdHash and flags).
const COUNTER_LAST_BYTE: i64 = 36;

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body is base64")
}

fn root_der(answer: &Value) -> Vec<u8> {
    pem_to_der(answer["root_pem"].as_str().unwrap_or_else(|| panic!("no root_pem in {answer}")))
}

fn expected(challenge: &[u8]) -> Expected {
    super::expected(RP_ID, ORIGIN, challenge, false)
}

fn registration(anchors: &[&[u8]]) -> RegistrationExpectations {
    RegistrationExpectations {
        common: expected(REGISTRATION_CHALLENGE),
        trust_anchors: anchors.iter().map(|a| a.to_vec()).collect(),
        now_unix: now(),
    }
}

fn assertion(counter_policy: CounterPolicy) -> AssertionExpectations {
    AssertionExpectations { common: expected(ASSERTION_CHALLENGE), counter_policy }
}

/// One credential of the soft authenticator, its state file in a temporary directory.
struct Authenticator {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
}

impl Authenticator {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("cs-soft-authenticator-").tempdir().unwrap();
        let state = dir.path().join("credential.json");
        Self { _dir: dir, state }
    }

    /// `create` for this test RP, challenge and user, with `extra` options.
    fn try_create(&self, extra: Value) -> Result<Value, String> {
        let base = json!({
            "rp_id": RP_ID,
            "origin": ORIGIN,
            "challenge": b64url(REGISTRATION_CHALLENGE),
            "user_id": b64url(USER_ID),
            "user_name": "alice",
            "state": self.state,
        });
        try_soft("create", &with(base, extra))
    }

    fn create(&self, extra: Value) -> Value {
        self.try_create(extra).unwrap_or_else(|e| panic!("the soft authenticator refused create: {e}"))
    }

    /// Creates a credential with `extra` options and registers it (no trust anchors).
    fn register(&self, extra: Value) -> RegisteredCredential {
        let created = self.create(extra);
        verify_created(&registration(&[]), &created).unwrap_or_else(|e| panic!("registration refused: {e}"))
    }

    /// `get` for this test's assertion challenge, with `extra` options.
    fn get(&self, extra: Value) -> Value {
        let base = json!({ "state": self.state, "origin": ORIGIN, "challenge": b64url(ASSERTION_CHALLENGE) });
        try_soft("get", &with(base, extra)).unwrap_or_else(|e| panic!("the soft authenticator refused get: {e}"))
    }
}

/// Registers a credential of `alg` with the attestations `none`, `packed` self and `packed` x5c
/// (its generated root trusted), and asserts twice with each.
fn registers_with_each_attestation_and_asserts(alg: i64) {
    for (attestation, format, kind) in [
        ("none", AttestationFormat::None, AttestationType::None),
        ("packed-self", AttestationFormat::Packed, AttestationType::SelfAttestation),
        ("packed-x5c", AttestationFormat::Packed, AttestationType::Basic { trusted: true }),
    ] {
        let what = format!("alg {alg}, attestation {attestation}");
        let auth = Authenticator::new();
        let created = auth.create(json!({ "alg": alg, "attestation": attestation, "aaguid": hex::encode(AAGUID) }));
        let anchors = if created["root_pem"].is_null() { vec![] } else { vec![root_der(&created)] };
        assert_eq!(anchors.is_empty(), attestation != "packed-x5c", "{what}: root_pem only for packed-x5c");
        let e = registration(&anchors.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let credential = verify_created(&e, &created).unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(credential.format, format, "{what}");
        assert_eq!(credential.attestation, kind, "{what}");
        assert_eq!(credential.alg, alg, "{what}");
        assert_eq!(credential.credential_id, field(&created, "credential_id"), "{what}");
        assert_eq!(credential.cose_key, field(&created, "public_key_cose"), "{what}");
        assert_eq!(credential.aaguid, AAGUID, "{what}");
        assert_eq!(credential.sign_count, 0, "{what}");
        assert!(credential.flags.user_present() && credential.flags.user_verified(), "{what}");
        assert!(!credential.flags.backup_eligible() && !credential.flags.backed_up(), "{what}");

        let mut store = stored(&credential);
        for expected_count in [1, 2] {
            let got = auth.get(json!({}));
            assert_eq!(field(&got, "credential_id"), credential.credential_id, "{what}");
            assert_eq!(field(&got, "user_handle"), USER_ID, "{what}");
            let out = verify_got(&assertion(CounterPolicy::Reject), &store, &got)
                .unwrap_or_else(|err| panic!("{what}: assertion refused: {err}"));
            assert_eq!(out.sign_count, expected_count, "{what}");
            assert_eq!(out.counter, CounterStatus::Advanced, "{what}");
            assert!(out.user_verified(), "{what}");
            store.sign_count = out.sign_count;
        }
    }
}

#[test]
fn es256_registers_with_none_packed_self_and_packed_x5c_and_asserts() {
    registers_with_each_attestation_and_asserts(COSE_ALG_ES256);
}

#[test]
fn eddsa_registers_with_none_packed_self_and_packed_x5c_and_asserts() {
    registers_with_each_attestation_and_asserts(COSE_ALG_EDDSA);
}

#[test]
fn rs256_registers_with_none_packed_self_and_packed_x5c_and_asserts() {
    registers_with_each_attestation_and_asserts(COSE_ALG_RS256);
}

#[test]
fn packed_x5c_is_trusted_only_through_its_own_root() {
    let auth = Authenticator::new();
    let created = auth.create(json!({ "attestation": "packed-x5c", "aaguid": hex::encode(AAGUID) }));
    let root = root_der(&created);
    let other = root_der(&Authenticator::new().create(json!({ "attestation": "packed-x5c" })));
    assert_ne!(root, other);

    let err = verify_created(&registration(&[&other]), &created).unwrap_err();
    assert!(matches!(err, Error::UntrustedAttestation(_)), "{err}");
    let credential = verify_created(&registration(&[&other, &root]), &created).unwrap();
    assert_eq!(credential.attestation, AttestationType::Basic { trusted: true });
    // No anchors asked for: verified as far as it goes, reported untrusted.
    let credential = verify_created(&registration(&[]), &created).unwrap();
    assert_eq!(credential.attestation, AttestationType::Basic { trusted: false });
}

#[test]
fn packed_x5c_leaves_from_a_given_root_of_each_key_type_are_trusted() {
    for key_type in ["p256", "p384", "rsa2048"] {
        let root = try_soft("make-root", &json!({ "key_type": key_type })).unwrap();
        let auth = Authenticator::new();
        let created = auth.create(json!({
            "alg": COSE_ALG_EDDSA,
            "attestation": "packed-x5c",
            "aaguid": hex::encode(AAGUID),
            "ca_key_pem": root["key_pem"],
            "ca_cert_pem": root["cert_pem"],
        }));
        assert_eq!(created["root_pem"], root["cert_pem"], "{key_type}");
        let root_der = pem_to_der(root["cert_pem"].as_str().unwrap());
        let credential =
            verify_created(&registration(&[&root_der]), &created).unwrap_or_else(|e| panic!("root of {key_type}: {e}"));
        assert_eq!(credential.attestation, AttestationType::Basic { trusted: true }, "{key_type}");
        assert_eq!(credential.aaguid, AAGUID, "{key_type}");
        // The certificates' validity is judged at the caller's clock.
        let e = RegistrationExpectations { now_unix: now() + 100 * 365 * 86_400, ..registration(&[&root_der]) };
        let err = verify_created(&e, &created).unwrap_err();
        assert!(matches!(err, Error::Certificate(_)), "{key_type}: {err}");
    }
}

#[test]
fn fido_u2f_registers_trusted_through_its_root_and_asserts() {
    let auth = Authenticator::new();
    let created = auth.create(json!({ "attestation": "fido-u2f" }));
    let root = root_der(&created);
    let credential = verify_created(&registration(&[&root]), &created).unwrap();
    assert_eq!(credential.format, AttestationFormat::FidoU2f);
    assert_eq!(credential.attestation, AttestationType::Basic { trusted: true });
    assert_eq!(credential.alg, COSE_ALG_ES256);
    assert_eq!(credential.aaguid, [0; 16]);
    assert_eq!(credential.credential_id, field(&created, "credential_id"));
    assert!(!credential.flags.user_verified());

    let other = root_der(&Authenticator::new().create(json!({ "attestation": "fido-u2f" })));
    let err = verify_created(&registration(&[&other]), &created).unwrap_err();
    assert!(matches!(err, Error::UntrustedAttestation(_)), "{err}");

    let out = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &auth.get(json!({}))).unwrap();
    assert_eq!(out.counter, CounterStatus::Advanced);
    assert!(!out.user_verified());
}

#[test]
fn fido_u2f_is_es256_without_user_verification_in_the_authenticator() {
    for alg in [COSE_ALG_EDDSA, COSE_ALG_RS256] {
        let err = Authenticator::new().try_create(json!({ "attestation": "fido-u2f", "alg": alg })).unwrap_err();
        assert!(err.contains("ES256"), "{err}");
    }
    let err = Authenticator::new().try_create(json!({ "attestation": "fido-u2f", "uv": true })).unwrap_err();
    assert!(err.contains("uv"), "{err}");
}

#[test]
fn required_user_verification_absent_is_refused() {
    let auth = Authenticator::new();
    let created = auth.create(json!({ "uv": false }));
    let mut e = registration(&[]);
    e.common.require_user_verification = true;
    assert_eq!(verify_created(&e, &created).unwrap_err(), Error::UserNotVerified);
    let credential = verify_created(&registration(&[]), &created).unwrap();
    assert!(!credential.flags.user_verified());

    let mut e = assertion(CounterPolicy::Reject);
    e.common.require_user_verification = true;
    let got = auth.get(json!({ "uv": false }));
    assert_eq!(verify_got(&e, &stored(&credential), &got).unwrap_err(), Error::UserNotVerified);
    let out = verify_got(&e, &stored(&credential), &auth.get(json!({ "uv": true }))).unwrap();
    assert!(out.user_verified());
}

#[test]
fn absent_user_presence_is_refused() {
    let auth = Authenticator::new();
    let created = auth.create(json!({ "up": false }));
    assert_eq!(verify_created(&registration(&[]), &created).unwrap_err(), Error::UserNotPresent);
    let credential = auth.register(json!({}));
    let got = auth.get(json!({ "up": false }));
    assert_eq!(
        verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err(),
        Error::UserNotPresent
    );
}

#[test]
fn wrong_origin_is_refused_in_both_ceremonies() {
    let evil = "https://login.example.com.evil.net";
    let auth = Authenticator::new();
    let err = verify_created(&registration(&[]), &auth.create(json!({ "origin": evil }))).unwrap_err();
    assert_eq!(err, Error::OriginNotAllowed(evil.to_owned()));
    let credential = auth.register(json!({}));
    let got = auth.get(json!({ "origin": evil }));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
    assert_eq!(err, Error::OriginNotAllowed(evil.to_owned()));
}

#[test]
fn wrong_challenge_is_refused_in_both_ceremonies() {
    let auth = Authenticator::new();
    let stale = json!({ "challenge": b64url(b"a challenge issued to someone else") });
    let err = verify_created(&registration(&[]), &auth.create(stale.clone())).unwrap_err();
    assert_eq!(err, Error::ChallengeMismatch);
    let credential = auth.register(json!({}));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &auth.get(stale)).unwrap_err();
    assert_eq!(err, Error::ChallengeMismatch);
    // The registration challenge does not serve an assertion either.
    let got = auth.get(json!({ "challenge": b64url(REGISTRATION_CHALLENGE) }));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
    assert_eq!(err, Error::ChallengeMismatch);
}

#[test]
fn wrong_rp_id_is_refused_in_both_ceremonies() {
    let auth = Authenticator::new();
    let err = verify_created(&registration(&[]), &auth.create(json!({ "rp_id": "evil.net" }))).unwrap_err();
    assert_eq!(err, Error::RpIdMismatch(RP_ID.to_owned()));
    let credential = auth.register(json!({}));
    let got = auth.get(json!({ "rp_id": "example.com" }));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
    assert_eq!(err, Error::RpIdMismatch(RP_ID.to_owned()));
}

#[test]
fn wrong_ceremony_type_is_refused() {
    let auth = Authenticator::new();
    let err = verify_created(&registration(&[]), &auth.create(json!({ "type": "webauthn.get" }))).unwrap_err();
    assert!(matches!(err, Error::WrongCeremony { expected: "webauthn.create", .. }), "{err}");
    let credential = auth.register(json!({}));
    for ty in ["webauthn.create", "payment.get"] {
        let got = auth.get(json!({ "type": ty }));
        let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
        assert!(matches!(&err, Error::WrongCeremony { expected: "webauthn.get", received } if received == ty), "{err}");
    }
}

#[test]
fn cross_origin_is_refused_unless_allowed() {
    let auth = Authenticator::new();
    let credential = auth.register(json!({}));
    let got = auth.get(json!({ "cross_origin": true, "top_origin": "https://portal.example.org" }));
    let mut e = assertion(CounterPolicy::Reject);
    assert_eq!(verify_got(&e, &stored(&credential), &got).unwrap_err(), Error::CrossOriginNotAllowed);
    e.common.allow_cross_origin = true;
    verify_got(&e, &stored(&credential), &got).unwrap();
}

#[test]
fn tampered_authenticator_data_is_refused_for_each_algorithm() {
    for alg in ALGS {
        let auth = Authenticator::new();
        let credential = auth.register(json!({ "alg": alg }));
        let e = assertion(CounterPolicy::Reject);
        // The counter: still well-formed, so only the signature can tell.
        let got = auth.get(json!({ "tamper_authenticator_data": COUNTER_LAST_BYTE }));
        let err = verify_got(&e, &stored(&credential), &got).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "alg {alg}: {err}");
        // The rpIdHash: caught before the signature.
        let got = auth.get(json!({ "tamper_authenticator_data": 0 }));
        assert_eq!(verify_got(&e, &stored(&credential), &got).unwrap_err(), Error::RpIdMismatch(RP_ID.to_owned()));
        // The untampered next one still verifies.
        verify_got(&e, &stored(&credential), &auth.get(json!({}))).unwrap();
    }
}

#[test]
fn tampered_signature_is_refused_for_each_algorithm() {
    for alg in ALGS {
        let auth = Authenticator::new();
        let credential = auth.register(json!({ "alg": alg }));
        let got = auth.get(json!({ "tamper_signature": true }));
        let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "alg {alg}: {err}");
    }
}

#[test]
fn signature_of_another_credential_is_refused() {
    let auth = Authenticator::new();
    let credential = auth.register(json!({}));
    let other = Authenticator::new();
    other.register(json!({}));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &other.get(json!({}))).unwrap_err();
    assert!(matches!(err, Error::BadSignature(_)), "{err}");
}

#[test]
fn counter_going_backwards_is_refused_or_reported() {
    let auth = Authenticator::new();
    let credential = auth.register(json!({ "counter": 10 }));
    assert_eq!(credential.sign_count, 10);
    let store = stored(&credential);

    for received in [5, 10] {
        let got = auth.get(json!({ "counter": received }));
        assert_eq!(got["sign_count"], received);
        let err = verify_got(&assertion(CounterPolicy::Reject), &store, &got).unwrap_err();
        assert_eq!(err, Error::CounterRegressed { stored: 10, received });
        let out = verify_got(&assertion(CounterPolicy::Report), &store, &got).unwrap();
        assert_eq!(out.counter, CounterStatus::Regressed { stored: 10, received });
        assert_eq!(out.sign_count, received);
    }
    // The authenticator goes on from what it sent last.
    let out = verify_got(&assertion(CounterPolicy::Reject), &store, &auth.get(json!({}))).unwrap();
    assert_eq!((out.counter, out.sign_count), (CounterStatus::Advanced, 11));
}

#[test]
fn zero_counters_are_reported_as_not_used() {
    let auth = Authenticator::new();
    let credential = auth.register(json!({ "counter": 0, "keep_zero": true }));
    assert_eq!(credential.sign_count, 0);
    let mut store = stored(&credential);
    for _ in 0..2 {
        let out = verify_got(&assertion(CounterPolicy::Reject), &store, &auth.get(json!({}))).unwrap();
        assert_eq!((out.counter, out.sign_count), (CounterStatus::NotUsed, 0));
    }
    // Once a counter was seen, zero is a counter going backwards.
    let out = verify_got(&assertion(CounterPolicy::Reject), &store, &auth.get(json!({ "counter": 1 }))).unwrap();
    assert_eq!(out.counter, CounterStatus::Advanced);
    store.sign_count = out.sign_count;
    let err = verify_got(&assertion(CounterPolicy::Reject), &store, &auth.get(json!({ "counter": 0 }))).unwrap_err();
    assert_eq!(err, Error::CounterRegressed { stored: 1, received: 0 });
}

#[test]
fn backup_flags_are_reported_and_backup_state_without_eligibility_refused() {
    let auth = Authenticator::new();
    let credential = auth.register(json!({ "be": true, "bs": true }));
    assert!(credential.flags.backup_eligible() && credential.flags.backed_up());
    let out = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &auth.get(json!({}))).unwrap();
    assert!(out.backup_eligible() && out.backed_up());
    let got = auth.get(json!({ "be": false }));
    let err = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &got).unwrap_err();
    assert_eq!(err, Error::BackupStateWithoutEligibility);
    let err = verify_created(&registration(&[]), &Authenticator::new().create(json!({ "bs": true }))).unwrap_err();
    assert_eq!(err, Error::BackupStateWithoutEligibility);
}

#[test]
fn user_handle_is_sent_unless_left_out() {
    let auth = Authenticator::new();
    auth.register(json!({}));
    assert_eq!(field(&auth.get(json!({})), "user_handle"), USER_ID);
    assert!(auth.get(json!({ "user_handle": false }))["user_handle"].is_null());
}

#[test]
fn client_data_and_attestation_object_are_encoded_as_a_browser_and_authenticator_do() {
    let created = Authenticator::new().create(json!({ "attestation": "packed-self" }));
    let client_data = String::from_utf8(field(&created, "client_data_json")).unwrap();
    assert_eq!(
        client_data,
        format!(
            r#"{{"type":"webauthn.create","challenge":"{}","origin":"{ORIGIN}","crossOrigin":false}}"#,
            b64url(REGISTRATION_CHALLENGE)
        )
    );
    // CTAP2 canonical CBOR: a map of 3, keys by length: "fmt", "attStmt", "authData"; in
    // attStmt "alg" before "sig".
    let object = field(&created, "attestation_object");
    let prefix = b"\xa3\x63fmt\x66packed\x67attStmt\xa2\x63alg";
    assert_eq!(&object[..prefix.len()], prefix);
}

#[test]
fn the_authenticator_refuses_unknown_options() {
    let err = Authenticator::new().try_create(json!({ "atestation": "packed-x5c" })).unwrap_err();
    assert!(err.contains("atestation"), "{err}");
    let err = Authenticator::new().try_create(json!({ "alg": -35 })).unwrap_err();
    assert!(err.contains("-35"), "{err}");
}

#[test]
fn the_module_api_serves_python_callers() {
    let dir = tempfile::tempdir().unwrap();
    let program = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import soft_authenticator as sa
o = json.load(sys.stdin)
created = sa.create(dict(o["create"]))
got = sa.get(dict(o["get"]))
json.dump({"created": created, "got": got}, sys.stdout)
"#;
    let state = dir.path().join("state.json");
    let options = json!({
        "create": {
            "rp_id": RP_ID, "origin": ORIGIN, "challenge": b64url(REGISTRATION_CHALLENGE),
            "user_id": b64url(USER_ID), "alg": COSE_ALG_EDDSA, "attestation": "packed-self", "state": state,
        },
        "get": { "state": state, "origin": ORIGIN, "challenge": b64url(ASSERTION_CHALLENGE) },
    });
    let tools = soft_authenticator().parent().unwrap().to_path_buf();
    let answer = python(&["-c".as_ref(), program.as_ref(), tools.as_os_str()], &options.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let credential = verify_created(&registration(&[]), &answer["created"]).unwrap();
    assert_eq!(credential.attestation, AttestationType::SelfAttestation);
    let out = verify_got(&assertion(CounterPolicy::Reject), &stored(&credential), &answer["got"]).unwrap();
    assert_eq!(out.sign_count, 1);
}
