//! Registration (WebAuthn §7.1): an attestationObject `{fmt, attStmt, authData}` and its
//! clientDataJSON checked, and the attestation statement verified for the formats `none`,
//! `packed` (self and x5c) and `fido-u2f` (§8.2, §8.6). Owns what a registration returns; must
//! never decide whether an attestation type is acceptable (the caller's policy does) nor call
//! an x5c trusted that did not chain to one of the caller's anchors.

use ciborium::value::Value;

use crate::authdata::{AuthenticatorData, Flags};
use crate::cbor;
use crate::certs;
use crate::client_data::Ceremony;
use crate::cose::PublicKey;
use crate::error::{bounded, Error};
use crate::expected::Expected;
use crate::limits;

/// What the relying party expects of a registration.
#[derive(Debug, Clone)]
pub struct RegistrationExpectations {
    /// What either ceremony expects (RP, origins, challenge, user verification).
    pub common: Expected,
    /// Attestation roots (DER certificates). Empty: x5c attestations are verified as far as
    /// they go and reported as [`AttestationType::Basic`] `{ trusted: false }`.
    pub trust_anchors: Vec<Vec<u8>>,
    /// The time certificates must be valid at, in Unix seconds (the caller's clock).
    pub now_unix: u64,
}

/// The attestation statement format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationFormat {
    /// `none`.
    None,
    /// `packed`.
    Packed,
    /// `fido-u2f`.
    FidoU2f,
    /// A registered format this verifier does not verify (`tpm`, `android-key`,
    /// `android-safetynet`, `apple`): its statement is not looked at, and it proves nothing
    /// ([`AttestationType::None`]); the caller decides whether an unattested credential will do.
    Unverified(&'static str),
}

/// The registered formats (IANA's WebAuthn registry) this verifier reads as
/// [`AttestationFormat::Unverified`].
pub const UNVERIFIED_FORMATS: [&str; 4] = ["tpm", "android-key", "android-safetynet", "apple"];

/// What the attestation proves about the authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationType {
    /// No attestation (`none`): nothing is known about the authenticator's make.
    None,
    /// Self attestation: signed by the credential's own key.
    SelfAttestation,
    /// Basic attestation by an x5c certificate; `trusted` when the chain reached one of the
    /// caller's anchors (`false` only when the caller passed none).
    Basic {
        /// Whether the chain reached a trust anchor.
        trusted: bool,
    },
}

/// A verified registration: what to store for later assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The COSE_Key bytes of the credential public key (store as
    /// [`crate::StoredCredential::cose_key`]).
    pub cose_key: Vec<u8>,
    /// The credential's COSE algorithm.
    pub alg: i64,
    /// The authenticator model's AAGUID (zero for `fido-u2f` and many `none`).
    pub aaguid: [u8; 16],
    /// The initial sign count.
    pub sign_count: u32,
    /// The flags of authenticatorData (UV, BE, BS, ...).
    pub flags: Flags,
    /// The attestation format.
    pub format: AttestationFormat,
    /// The attestation type and trust.
    pub attestation: AttestationType,
}

struct Statement {
    alg: Option<i64>,
    sig: Option<Vec<u8>>,
    x5c: Option<Vec<Vec<u8>>>,
    other: Vec<(Value, Value)>,
}

fn statement(value: Value) -> Result<Statement, Error> {
    let mut entries = cbor::map_entries(value, "attStmt")?;
    let alg = match cbor::take_text_key(&mut entries, "alg") {
        Some(v) => {
            Some(cbor::as_i64(&v).ok_or_else(|| Error::AttestationStatement("alg is not an integer".to_owned()))?)
        }
        None => None,
    };
    let sig = match cbor::take_text_key(&mut entries, "sig") {
        Some(Value::Bytes(b)) => Some(b),
        Some(_) => return Err(Error::AttestationStatement("sig is not a byte string".to_owned())),
        None => None,
    };
    let x5c = match cbor::take_text_key(&mut entries, "x5c") {
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > limits::MAX_CHAIN {
                return Err(Error::AttestationStatement(format!(
                    "x5c holds {} certificates (1 to {})",
                    items.len(),
                    limits::MAX_CHAIN
                )));
            }
            let mut certs = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Bytes(b) => certs.push(b),
                    _ => return Err(Error::AttestationStatement("an x5c item is not a byte string".to_owned())),
                }
            }
            Some(certs)
        }
        Some(_) => return Err(Error::AttestationStatement("x5c is not an array".to_owned())),
        None => None,
    };
    Ok(Statement { alg, sig, x5c, other: entries })
}

/// Verifies a registration (§7.1): clientDataJSON (type `webauthn.create`, challenge, origin,
/// crossOrigin), rpIdHash, UP, UV when required, attested credential data present, then the
/// attestation statement of its format.
pub fn verify_registration(
    expected: &RegistrationExpectations,
    attestation_object: &[u8],
    client_data_json: &[u8],
) -> Result<RegisteredCredential, Error> {
    bounded("attestationObject", attestation_object, limits::MAX_ATTESTATION_OBJECT)?;
    let client_data_hash = expected.common.client_data(Ceremony::Create, client_data_json)?;
    let mut top = cbor::map_entries(cbor::read_exact(attestation_object, "attestationObject")?, "attestationObject")?;
    let fmt = match cbor::take_text_key(&mut top, "fmt") {
        Some(Value::Text(t)) => t,
        Some(_) => return Err(Error::AttestationObject("fmt is not a text string".to_owned())),
        None => return Err(Error::AttestationObject("fmt is missing".to_owned())),
    };
    let auth_data_bytes = match cbor::take_text_key(&mut top, "authData") {
        Some(Value::Bytes(b)) => b,
        Some(_) => return Err(Error::AttestationObject("authData is not a byte string".to_owned())),
        None => return Err(Error::AttestationObject("authData is missing".to_owned())),
    };
    let att_stmt = cbor::take_text_key(&mut top, "attStmt")
        .ok_or_else(|| Error::AttestationObject("attStmt is missing".to_owned()))?;

    let data = AuthenticatorData::parse(&auth_data_bytes)?;
    expected.common.authenticator_data(&data)?;
    let Some(credential) = data.attested.as_ref() else {
        return Err(Error::NoAttestedCredential);
    };
    let stmt = statement(att_stmt)?;

    let mut signed = Vec::with_capacity(auth_data_bytes.len() + 32);
    signed.extend_from_slice(&auth_data_bytes);
    signed.extend_from_slice(&client_data_hash);

    let (format, attestation) = match fmt.as_str() {
        "none" => {
            if stmt.alg.is_some() || stmt.sig.is_some() || stmt.x5c.is_some() || !stmt.other.is_empty() {
                return Err(Error::AttestationStatement("format none with a non-empty attStmt".to_owned()));
            }
            (AttestationFormat::None, AttestationType::None)
        }
        "packed" => {
            if !stmt.other.is_empty() {
                return Err(Error::AttestationStatement(
                    "packed attStmt has fields other than alg, sig, x5c (ECDAA is not supported)".to_owned(),
                ));
            }
            let alg = stmt.alg.ok_or_else(|| Error::AttestationStatement("packed attStmt has no alg".to_owned()))?;
            let sig = stmt.sig.ok_or_else(|| Error::AttestationStatement("packed attStmt has no sig".to_owned()))?;
            match stmt.x5c {
                Some(x5c) => {
                    let chain = x5c
                        .iter()
                        .enumerate()
                        .map(|(i, der)| certs::parse(der, &format!("x5c certificate {i}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let leaf = chain.first().ok_or_else(|| Error::AttestationStatement("x5c is empty".to_owned()))?;
                    certs::check_packed_leaf(leaf, &credential.aaguid)?;
                    certs::verify_by_cert(leaf, alg, &signed, &sig)?;
                    let trusted = certs::verify_chain(&chain, &expected.trust_anchors, expected.now_unix)?;
                    (AttestationFormat::Packed, AttestationType::Basic { trusted })
                }
                None => {
                    let key_alg = credential.public_key.key.alg();
                    if alg != key_alg {
                        return Err(Error::AttestationStatement(format!(
                            "packed self attestation alg {alg} differs from the credential key's alg {key_alg}"
                        )));
                    }
                    credential.public_key.key.verify(&signed, &sig)?;
                    (AttestationFormat::Packed, AttestationType::SelfAttestation)
                }
            }
        }
        "fido-u2f" => {
            if stmt.alg.is_some() || !stmt.other.is_empty() {
                return Err(Error::AttestationStatement("fido-u2f attStmt has fields other than sig, x5c".to_owned()));
            }
            let sig = stmt.sig.ok_or_else(|| Error::AttestationStatement("fido-u2f attStmt has no sig".to_owned()))?;
            let x5c = stmt.x5c.ok_or_else(|| Error::AttestationStatement("fido-u2f attStmt has no x5c".to_owned()))?;
            let [leaf_der] = x5c.as_slice() else {
                return Err(Error::AttestationStatement(format!(
                    "fido-u2f x5c must hold exactly one certificate, holds {}",
                    x5c.len()
                )));
            };
            let leaf = certs::parse(leaf_der, "fido-u2f attestation certificate")?;
            let PublicKey::Es256(key) = &credential.public_key.key else {
                return Err(Error::AttestationStatement("fido-u2f credential key is not EC2 P-256".to_owned()));
            };
            let point = key.to_encoded_point(false);
            let mut message = Vec::with_capacity(1 + 32 + 32 + credential.credential_id.len() + 65);
            message.push(0x00);
            message.extend_from_slice(&data.rp_id_hash);
            message.extend_from_slice(&client_data_hash);
            message.extend_from_slice(&credential.credential_id);
            message.extend_from_slice(point.as_bytes());
            certs::verify_by_cert(&leaf, crate::COSE_ALG_ES256, &message, &sig)?;
            let trusted = certs::verify_chain(std::slice::from_ref(&leaf), &expected.trust_anchors, expected.now_unix)?;
            (AttestationFormat::FidoU2f, AttestationType::Basic { trusted })
        }
        other => match UNVERIFIED_FORMATS.iter().find(|f| **f == other) {
            // Everything but the statement was checked above: the credential is as sound as
            // one registered with `none`.
            Some(known) => (AttestationFormat::Unverified(known), AttestationType::None),
            None => return Err(Error::UnsupportedFormat(other.to_owned())),
        },
    };

    Ok(RegisteredCredential {
        credential_id: credential.credential_id.clone(),
        cose_key: credential.public_key.bytes.clone(),
        alg: credential.public_key.key.alg(),
        aaguid: credential.aaguid,
        sign_count: data.sign_count,
        flags: data.flags,
        format,
        attestation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, text, TestKey, CHALLENGE, NOW, ORIGIN, RP_ID};

    const UP: u8 = Flags::UP;
    const UV: u8 = Flags::UV;
    const AT: u8 = Flags::AT;

    fn expect(anchors: &[&[u8]]) -> RegistrationExpectations {
        RegistrationExpectations {
            common: testkit::expected(RP_ID, ORIGIN, CHALLENGE),
            trust_anchors: anchors.iter().map(|a| a.to_vec()).collect(),
            now_unix: NOW,
        }
    }

    fn create_cd() -> Vec<u8> {
        testkit::client_data("webauthn.create", CHALLENGE, ORIGIN)
    }

    fn object(fmt: &str, stmt: Vec<(Value, Value)>, auth_data: &[u8]) -> Vec<u8> {
        testkit::cbor(&Value::Map(vec![
            (text("fmt"), text(fmt)),
            (text("attStmt"), Value::Map(stmt)),
            (text("authData"), Value::Bytes(auth_data.to_vec())),
        ]))
    }

    fn alg(n: i64) -> (Value, Value) {
        (text("alg"), Value::Integer(n.into()))
    }
    fn sig(bytes: Vec<u8>) -> (Value, Value) {
        (text("sig"), Value::Bytes(bytes))
    }
    fn x5c(certs: &[&[u8]]) -> (Value, Value) {
        (text("x5c"), Value::Array(certs.iter().map(|c| Value::Bytes(c.to_vec())).collect()))
    }

    /// A `packed` self attestation by `key`.
    fn packed_self(key: &TestKey, flags: u8, cd: &[u8]) -> Vec<u8> {
        let ad = testkit::auth_data(RP_ID, flags, 0, Some(&key.cose()));
        let s = key.sign(&testkit::signed(&ad, cd));
        object("packed", vec![alg(key.alg()), sig(s)], &ad)
    }

    /// A `packed` x5c attestation: credential `cred`, signed by the test leaf, x5c `chain`.
    fn packed_x5c(cred: &TestKey, chain: &[&[u8]]) -> Vec<u8> {
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&cred.cose()));
        let s = TestKey::leaf().sign(&testkit::signed(&ad, &create_cd()));
        object("packed", vec![alg(-7), sig(s), x5c(chain)], &ad)
    }

    fn fido_u2f(cred: &TestKey, signer: &TestKey) -> Vec<u8> {
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&cred.cose()));
        let TestKey::P256(k) = cred else { panic!("fido-u2f needs P-256") };
        let mut m = vec![0u8];
        m.extend_from_slice(&ad[..32]);
        m.extend_from_slice(&testkit::hash(&create_cd()));
        m.extend_from_slice(testkit::CRED_ID);
        m.extend_from_slice(k.verifying_key().to_encoded_point(false).as_bytes());
        object("fido-u2f", vec![sig(signer.sign(&m)), x5c(&[testkit::LEAF_DER])], &ad)
    }

    #[test]
    fn none_attestation_registers_with_type_none() {
        let key = TestKey::p256(7);
        let ad = testkit::auth_data(RP_ID, UP | UV | AT, 3, Some(&key.cose()));
        let cred = verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap();
        assert_eq!(cred.format, AttestationFormat::None);
        assert_eq!(cred.attestation, AttestationType::None);
        assert_eq!(cred.credential_id, testkit::CRED_ID);
        assert_eq!(cred.cose_key, key.cose());
        assert_eq!(cred.aaguid, testkit::AAGUID);
        assert_eq!(cred.sign_count, 3);
        assert_eq!(cred.alg, -7);
        assert!(cred.flags.user_verified());
    }

    #[test]
    fn none_attestation_with_a_statement_is_refused() {
        let key = TestKey::p256(7);
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        let err = verify_registration(&expect(&[]), &object("none", vec![alg(-7)], &ad), &create_cd()).unwrap_err();
        assert!(matches!(err, Error::AttestationStatement(_)), "{err}");
    }

    #[test]
    fn packed_self_attestation_registers_each_algorithm() {
        for key in [TestKey::p256(7), TestKey::ed25519(9), TestKey::rsa()] {
            let obj = packed_self(&key, UP | AT, &create_cd());
            let cred = verify_registration(&expect(&[]), &obj, &create_cd()).unwrap();
            assert_eq!(cred.attestation, AttestationType::SelfAttestation);
            assert_eq!(cred.alg, key.alg());
            // The stored key verifies a later assertion.
            let parsed = crate::CoseKey::parse(&cred.cose_key).unwrap();
            parsed.key.verify(b"later", &key.sign(b"later")).unwrap();
        }
    }

    #[test]
    fn packed_self_attestation_with_another_alg_is_refused() {
        let key = TestKey::p256(7);
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        let s = key.sign(&testkit::signed(&ad, &create_cd()));
        let err =
            verify_registration(&expect(&[]), &object("packed", vec![alg(-8), sig(s)], &ad), &create_cd()).unwrap_err();
        assert!(matches!(err, Error::AttestationStatement(_)), "{err}");
    }

    #[test]
    fn packed_self_attestation_by_another_key_is_refused() {
        let key = TestKey::p256(7);
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        let s = TestKey::p256(8).sign(&testkit::signed(&ad, &create_cd()));
        let err =
            verify_registration(&expect(&[]), &object("packed", vec![alg(-7), sig(s)], &ad), &create_cd()).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
    }

    #[test]
    fn packed_x5c_chaining_to_a_trusted_root_is_trusted() {
        let obj = packed_x5c(&TestKey::ed25519(9), &[testkit::LEAF_DER]);
        let cred =
            verify_registration(&expect(&[testkit::OTHER_ROOT_DER, testkit::ROOT_DER]), &obj, &create_cd()).unwrap();
        assert_eq!(cred.format, AttestationFormat::Packed);
        assert_eq!(cred.attestation, AttestationType::Basic { trusted: true });
        // The root may also travel in x5c.
        let obj = packed_x5c(&TestKey::ed25519(9), &[testkit::LEAF_DER, testkit::ROOT_DER]);
        let cred = verify_registration(&expect(&[testkit::ROOT_DER]), &obj, &create_cd()).unwrap();
        assert_eq!(cred.attestation, AttestationType::Basic { trusted: true });
    }

    #[test]
    fn packed_x5c_without_roots_is_reported_untrusted() {
        let obj = packed_x5c(&TestKey::p256(7), &[testkit::LEAF_DER]);
        let cred = verify_registration(&expect(&[]), &obj, &create_cd()).unwrap();
        assert_eq!(cred.attestation, AttestationType::Basic { trusted: false });
    }

    #[test]
    fn packed_x5c_with_an_untrusted_root_is_refused() {
        let obj = packed_x5c(&TestKey::p256(7), &[testkit::LEAF_DER]);
        let err = verify_registration(&expect(&[testkit::OTHER_ROOT_DER]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(err, Error::UntrustedAttestation(_)), "{err}");
        // A chain that carries the untrusted root itself is no better.
        let obj = packed_x5c(&TestKey::p256(7), &[testkit::LEAF_DER, testkit::OTHER_ROOT_DER]);
        let err = verify_registration(&expect(&[testkit::ROOT_DER]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(err, Error::Certificate(_)), "{err}");
    }

    #[test]
    fn packed_x5c_outside_validity_is_refused() {
        let obj = packed_x5c(&TestKey::p256(7), &[testkit::LEAF_DER]);
        for now in [1_700_000_000, 7_258_118_400] {
            let e = RegistrationExpectations { now_unix: now, ..expect(&[testkit::ROOT_DER]) };
            let err = verify_registration(&e, &obj, &create_cd()).unwrap_err();
            assert!(matches!(err, Error::Certificate(_)), "{err}");
        }
    }

    #[test]
    fn packed_x5c_signed_by_another_key_is_refused() {
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&TestKey::p256(7).cose()));
        let s = TestKey::p256(7).sign(&testkit::signed(&ad, &create_cd()));
        let obj = object("packed", vec![alg(-7), sig(s), x5c(&[testkit::LEAF_DER])], &ad);
        let err = verify_registration(&expect(&[testkit::ROOT_DER]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
    }

    #[test]
    fn packed_x5c_leaf_without_the_attestation_ou_is_refused() {
        let obj = packed_x5c(&TestKey::p256(7), &[testkit::LEAF_NO_OU_DER]);
        let err = verify_registration(&expect(&[testkit::ROOT_DER]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(&err, Error::Certificate(m) if m.contains("OU")), "{err}");
    }

    #[test]
    fn packed_x5c_aaguid_differing_from_auth_data_is_refused() {
        let mut ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&TestKey::p256(7).cose()));
        ad[37] ^= 0xff; // first AAGUID byte
        let s = TestKey::leaf().sign(&testkit::signed(&ad, &create_cd()));
        let obj = object("packed", vec![alg(-7), sig(s), x5c(&[testkit::LEAF_DER])], &ad);
        let err = verify_registration(&expect(&[testkit::ROOT_DER]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(&err, Error::Certificate(m) if m.contains("AAGUID")), "{err}");
    }

    #[test]
    fn fido_u2f_registers_and_checks_its_signature() {
        let key = TestKey::p256(7);
        let cred = verify_registration(&expect(&[testkit::ROOT_DER]), &fido_u2f(&key, &TestKey::leaf()), &create_cd())
            .unwrap();
        assert_eq!(cred.format, AttestationFormat::FidoU2f);
        assert_eq!(cred.attestation, AttestationType::Basic { trusted: true });
        let err = verify_registration(&expect(&[testkit::ROOT_DER]), &fido_u2f(&key, &key), &create_cd()).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
        let err =
            verify_registration(&expect(&[testkit::OTHER_ROOT_DER]), &fido_u2f(&key, &TestKey::leaf()), &create_cd())
                .unwrap_err();
        assert!(matches!(err, Error::UntrustedAttestation(_)), "{err}");
    }

    #[test]
    fn fido_u2f_with_a_non_p256_credential_is_refused() {
        let key = TestKey::ed25519(9);
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        let obj = object("fido-u2f", vec![sig(vec![0; 70]), x5c(&[testkit::LEAF_DER])], &ad);
        let err = verify_registration(&expect(&[]), &obj, &create_cd()).unwrap_err();
        assert!(matches!(err, Error::AttestationStatement(_)), "{err}");
    }

    #[test]
    fn registration_refuses_wrong_ceremony_challenge_origin_and_rp_id() {
        let key = TestKey::p256(7);
        let get = testkit::client_data("webauthn.get", CHALLENGE, ORIGIN);
        let err = verify_registration(&expect(&[]), &packed_self(&key, UP | AT, &get), &get).unwrap_err();
        assert!(matches!(err, Error::WrongCeremony { expected: "webauthn.create", .. }), "{err}");

        let cd = testkit::client_data("webauthn.create", b"stale", ORIGIN);
        let err = verify_registration(&expect(&[]), &packed_self(&key, UP | AT, &cd), &cd).unwrap_err();
        assert_eq!(err, Error::ChallengeMismatch);

        let cd = testkit::client_data("webauthn.create", CHALLENGE, "https://example.com.evil");
        let err = verify_registration(&expect(&[]), &packed_self(&key, UP | AT, &cd), &cd).unwrap_err();
        assert!(matches!(err, Error::OriginNotAllowed(_)), "{err}");

        let ad = testkit::auth_data("evil.com", UP | AT, 0, Some(&key.cose()));
        let err = verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap_err();
        assert_eq!(err, Error::RpIdMismatch(RP_ID.to_owned()));
    }

    #[test]
    fn registration_refuses_missing_up_uv_and_at() {
        let key = TestKey::p256(7);
        let err = verify_registration(&expect(&[]), &packed_self(&key, AT, &create_cd()), &create_cd()).unwrap_err();
        assert_eq!(err, Error::UserNotPresent);
        let mut e = expect(&[]);
        e.common.require_user_verification = true;
        let err = verify_registration(&e, &packed_self(&key, UP | AT, &create_cd()), &create_cd()).unwrap_err();
        assert_eq!(err, Error::UserNotVerified);
        verify_registration(&e, &packed_self(&key, UP | UV | AT, &create_cd()), &create_cd()).unwrap();
        let ad = testkit::auth_data(RP_ID, UP, 0, None);
        let err = verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap_err();
        assert_eq!(err, Error::NoAttestedCredential);
    }

    #[test]
    fn unsupported_cose_algorithm_is_refused() {
        // ES384 (-35) on P-384 (crv 2).
        let i = |n: i64| Value::Integer(n.into());
        let cose = testkit::cbor(&Value::Map(vec![
            (i(1), i(2)),
            (i(3), i(-35)),
            (i(-1), i(2)),
            (i(-2), Value::Bytes(vec![1; 48])),
            (i(-3), Value::Bytes(vec![2; 48])),
        ]));
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&cose));
        let err = verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap_err();
        assert!(matches!(&err, Error::UnsupportedKey(m) if m.contains("-35")), "{err}");
    }

    /// A registered format the verifier does not verify proves nothing but registers (the rest
    /// of the ceremony checked); an unregistered one is refused.
    #[test]
    fn unverified_formats_prove_nothing_and_unknown_ones_are_refused() {
        let key = TestKey::p256(7);
        let ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        let tpm = verify_registration(&expect(&[]), &object("tpm", vec![], &ad), &create_cd()).unwrap();
        assert_eq!((tpm.format, tpm.attestation), (AttestationFormat::Unverified("tpm"), AttestationType::None));
        let err = verify_registration(&expect(&[]), &object("x-vendor", vec![], &ad), &create_cd()).unwrap_err();
        assert_eq!(err, Error::UnsupportedFormat("x-vendor".to_owned()));
        // The ceremony's other checks still apply.
        let other_rp = testkit::auth_data("evil.example", UP | AT, 0, Some(&key.cose()));
        assert!(verify_registration(&expect(&[]), &object("tpm", vec![], &other_rp), &create_cd()).is_err());
    }

    #[test]
    fn auth_data_with_trailing_bytes_and_no_extensions_flag_is_refused() {
        let key = TestKey::p256(7);
        let mut ad = testkit::auth_data(RP_ID, UP | AT, 0, Some(&key.cose()));
        ad.extend_from_slice(&[0xa0]);
        let err = verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap_err();
        assert_eq!(err, Error::AuthDataTrailing(1));
        // With ED set, the same bytes are an (empty) extensions map.
        let mut ad = testkit::auth_data(RP_ID, UP | AT | Flags::ED, 0, Some(&key.cose()));
        ad.extend_from_slice(&[0xa0]);
        verify_registration(&expect(&[]), &object("none", vec![], &ad), &create_cd()).unwrap();
    }

    #[test]
    fn truncated_and_garbage_cbor_is_refused_without_panic() {
        let objects = [
            packed_x5c(&TestKey::p256(7), &[testkit::LEAF_DER, testkit::ROOT_DER]),
            packed_self(&TestKey::rsa(), UP | AT, &create_cd()),
            fido_u2f(&TestKey::p256(7), &TestKey::leaf()),
        ];
        let e = expect(&[testkit::ROOT_DER]);
        for obj in &objects {
            for n in 0..obj.len() {
                assert!(verify_registration(&e, &obj[..n], &create_cd()).is_err());
            }
            // Flip each byte in turn: never a panic, and never a change that still verifies
            // except in bytes no check covers (none here but CBOR-irrelevant ones).
            for i in 0..obj.len() {
                let mut bad = obj.clone();
                bad[i] ^= 0x55;
                let _ = verify_registration(&e, &bad, &create_cd());
            }
        }
        for garbage in [
            &[][..],
            &[0xff][..],
            &[0xa1, 0x63, b'f', b'm', b't'][..],
            // A byte string announcing 2^64-1 bytes.
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            // An array announcing 2^32 items.
            &[0x9a, 0xff, 0xff, 0xff, 0xff][..],
            // Deep nesting.
            &[0x81; 4000][..],
        ] {
            assert!(verify_registration(&e, garbage, &create_cd()).is_err());
        }
    }
}
