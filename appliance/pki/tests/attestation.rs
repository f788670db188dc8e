//! PIV attestation: fake root -> f9 -> attestation chains (RSA like Yubico's, and EC), the refusals, and the
//! shipped Yubico certificates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must abort the test loudly"
)]

mod common;

use common::{firmware_config, make_cert, raw_extension, TestKey, DAY, NOW};
use countersign_pki::{
    certificate_info, spki_matches, to_pem, verify_attestation, verify_issued_by, PkiError, TrustAnchors,
};

const ROOT: &str = "CN=Fake PIV Root CA Serial 1";
const F9: &str = "CN=Yubico PIV Attestation";
const LEAF: &str = "CN=YubiKey PIV Attestation 9a";

struct Chain {
    root: Vec<u8>,
    f9: Vec<u8>,
    leaf: Vec<u8>,
    card_key: TestKey,
}

fn yubico_extensions() -> Vec<x509_cert::ext::Extension> {
    vec![
        raw_extension("1.3.6.1.4.1.41482.3.3", &[5, 4, 3]),
        // DER INTEGER 12345678 = 0x00bc614e
        raw_extension("1.3.6.1.4.1.41482.3.7", &[0x02, 0x04, 0x00, 0xbc, 0x61, 0x4e]),
        raw_extension("1.3.6.1.4.1.41482.3.8", &[2, 3]),
        raw_extension("1.3.6.1.4.1.41482.3.9", &[1]),
    ]
}

fn chain(root_key: &TestKey, f9_key: &TestKey, f9_not_after: i64) -> Chain {
    let card_key = TestKey::p256();
    let root = make_cert(ROOT, &root_key.spki_der(), ROOT, root_key, NOW - 3000 * DAY, NOW + 9000 * DAY, vec![]);
    let f9 = make_cert(F9, &f9_key.spki_der(), ROOT, root_key, NOW - 1000 * DAY, f9_not_after, vec![]);
    let leaf = make_cert(LEAF, &card_key.spki_der(), F9, f9_key, NOW - 1000 * DAY, f9_not_after, yubico_extensions());
    Chain { root, f9, leaf, card_key }
}

fn anchors(der: &[u8]) -> TrustAnchors {
    TrustAnchors::from_pem(&to_pem(der, "CERTIFICATE")).unwrap()
}

fn check_decoded(chain: &Chain, result: countersign_pki::AttestedKey) {
    assert!(spki_matches(&result.spki_der, &chain.card_key.spki_der()));
    assert_eq!(result.slot.as_deref(), Some("9a"));
    assert_eq!(result.device_serial, Some(12_345_678));
    assert_eq!(result.firmware, Some((5, 4, 3)));
    assert_eq!(result.pin_policy, Some(2));
    assert_eq!(result.touch_policy, Some(3));
    assert_eq!(result.form_factor, Some(1));
}

#[test]
fn rsa_root_and_rsa_f9_like_yubico_verify_and_decode() {
    let (root_key, f9_key) = (TestKey::rsa(), TestKey::rsa());
    let c = chain(&root_key, &f9_key, NOW + 9000 * DAY);
    let result = verify_attestation(&c.leaf, &c.f9, &[], &anchors(&c.root), NOW).unwrap();
    check_decoded(&c, result);
}

#[test]
fn ec_root_and_ec_f9_verify_and_decode() {
    let (root_key, f9_key) = (TestKey::p384(), TestKey::p256());
    let c = chain(&root_key, &f9_key, NOW + 9000 * DAY);
    let result = verify_attestation(&c.leaf, &c.f9, &[], &anchors(&c.root), NOW).unwrap();
    check_decoded(&c, result);
}

#[test]
fn intermediates_between_f9_and_the_root_are_used_when_given() {
    let (root_key, mid_key, f9_key) = (TestKey::p384(), TestKey::p256(), TestKey::p256());
    let card_key = TestKey::p256();
    let mid_name = "CN=Fake PIV Attestation B 1";
    let root = make_cert(ROOT, &root_key.spki_der(), ROOT, &root_key, NOW - DAY, NOW + DAY, vec![]);
    let mid = make_cert(mid_name, &mid_key.spki_der(), ROOT, &root_key, NOW - DAY, NOW + DAY, vec![]);
    let f9 = make_cert(F9, &f9_key.spki_der(), mid_name, &mid_key, NOW - DAY, NOW + DAY, vec![]);
    let leaf = make_cert(LEAF, &card_key.spki_der(), F9, &f9_key, NOW - DAY, NOW + DAY, yubico_extensions());
    let anchors = anchors(&root);
    let unrelated = make_cert("CN=Other", &TestKey::p256().spki_der(), ROOT, &TestKey::p256(), NOW, NOW, vec![]);
    verify_attestation(&leaf, &f9, &[unrelated.clone(), mid.clone()], &anchors, NOW).unwrap();
    let err = verify_attestation(&leaf, &f9, &[unrelated], &anchors, NOW).unwrap_err();
    assert!(matches!(&err, PkiError::Untrusted { issuer } if issuer == mid_name), "{err}");
    // the intermediate expired: refused, naming it
    let err = verify_attestation(&leaf, &f9, &[mid], &anchors, NOW + 2 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
}

#[test]
fn a_root_that_is_not_an_anchor_is_refused() {
    let (root_key, f9_key) = (TestKey::p256(), TestKey::p256());
    let c = chain(&root_key, &f9_key, NOW + DAY);
    // another root with the very same name but another key
    let impostor_key = TestKey::p256();
    let impostor = make_cert(ROOT, &impostor_key.spki_der(), ROOT, &impostor_key, NOW - DAY, NOW + DAY, vec![]);
    let err = verify_attestation(&c.leaf, &c.f9, &[], &anchors(&impostor), NOW).unwrap_err();
    assert!(matches!(&err, PkiError::Untrusted { issuer } if issuer == ROOT), "{err}");
    assert!(err.to_string().contains("does not chain to a trusted root (issuer: CN=Fake PIV Root CA Serial 1)"));
    // the root handed in as an "intermediate" does not make it trusted
    let err = verify_attestation(&c.leaf, &c.f9, std::slice::from_ref(&c.root), &anchors(&impostor), NOW).unwrap_err();
    assert!(matches!(err, PkiError::Untrusted { .. }), "{err}");
}

#[test]
fn a_leaf_signed_by_another_f9_key_is_refused() {
    let (root_key, f9_key) = (TestKey::p256(), TestKey::p256());
    let c = chain(&root_key, &f9_key, NOW + DAY);
    let other_f9_key = TestKey::p256();
    let forged = make_cert(LEAF, &c.card_key.spki_der(), F9, &other_f9_key, NOW - DAY, NOW + DAY, yubico_extensions());
    let err = verify_attestation(&forged, &c.f9, &[], &anchors(&c.root), NOW).unwrap_err();
    assert!(matches!(err, PkiError::AttestationNotSignedByF9(_)), "{err}");
    assert!(err.to_string().contains("the attestation certificate is not signed by the card's f9 certificate"));
    // and f9 from another chain (signed by a non-anchor) for a leaf it did sign
    let other_root = TestKey::p256();
    let other = chain(&other_root, &other_f9_key, NOW + DAY);
    let err = verify_attestation(&forged, &other.f9, &[], &anchors(&c.root), NOW).unwrap_err();
    assert!(matches!(err, PkiError::Untrusted { .. }), "{err}");
}

#[test]
fn expired_or_not_yet_valid_links_are_refused() {
    let (root_key, f9_key) = (TestKey::p256(), TestKey::p256());
    let c = chain(&root_key, &f9_key, NOW + DAY);
    let err = verify_attestation(&c.leaf, &c.f9, &[], &anchors(&c.root), NOW + 2 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
    let err = verify_attestation(&c.leaf, &c.f9, &[], &anchors(&c.root), NOW - 2000 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::NotYetValid { .. }), "{err}");
}

#[test]
fn trust_anchor_files_name_the_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let err = TrustAnchors::from_pem_files(&[firmware_config("yubico-piv-root-ca.pem"), empty.clone()]).unwrap_err();
    assert!(err.to_string().contains("empty.pem"), "{err}");
    let missing = dir.path().join("missing.pem");
    let err = TrustAnchors::from_pem_files(&[missing]).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[test]
fn shipped_yubico_roots_parse_and_verify_as_self_signed() {
    let anchors = TrustAnchors::from_pem_files(&[
        firmware_config("yubico-piv-root-ca.pem"),
        firmware_config("yubico-attestation-root-1.pem"),
    ])
    .unwrap();
    assert_eq!(anchors.len(), 2);
    let legacy = &anchors.certificates()[0];
    let info = certificate_info(legacy).unwrap();
    assert_eq!(info.subject, "CN=Yubico PIV Root CA Serial 263751");
    assert_eq!(info.issuer, info.subject);
    assert_eq!(info.sha256_fingerprint, "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546");
    verify_issued_by(legacy, legacy).unwrap();

    let root1 = &anchors.certificates()[1];
    let info = certificate_info(root1).unwrap();
    assert_eq!(info.subject, "CN=Yubico Attestation Root 1");
    assert_eq!(info.sha256_fingerprint, "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8");
    verify_issued_by(root1, root1).unwrap(); // sha512WithRSAEncryption
    assert!(verify_issued_by(root1, legacy).is_err());

    // the 5.7.4+ intermediates: PIV Attestation X 1 <- Attestation Intermediate X 1 <- Attestation Root 1
    let text = std::fs::read_to_string(firmware_config("yubico-piv-attestation-intermediates.pem")).unwrap();
    let ints = countersign_pki::certificates_from_pem(&text).unwrap();
    let names: Vec<String> = ints.iter().map(|d| certificate_info(d).unwrap().subject).collect();
    assert_eq!(
        names,
        [
            "CN=Yubico PIV Attestation A 1",
            "CN=Yubico Attestation Intermediate A 1",
            "CN=Yubico PIV Attestation B 1",
            "CN=Yubico Attestation Intermediate B 1"
        ]
    );
    let fingerprints: Vec<String> = ints.iter().map(|d| certificate_info(d).unwrap().sha256_fingerprint).collect();
    assert_eq!(fingerprints[2], "2d55b7998f4e42569d6d8fa382b6dc77d1dacf07358b19701163892922b17052");
    verify_issued_by(&ints[0], &ints[1]).unwrap();
    verify_issued_by(&ints[1], root1).unwrap();
    verify_issued_by(&ints[2], &ints[3]).unwrap();
    verify_issued_by(&ints[3], root1).unwrap();
    assert!(verify_issued_by(&ints[2], &ints[1]).is_err());
}
