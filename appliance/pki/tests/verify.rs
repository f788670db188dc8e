//! verify_signature: what a card's key signed during PIV authentication, under its certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must abort the test loudly"
)]

mod common;

use common::{make_cert, TestKey, DAY, NOW};
use countersign_pki::{verify_signature, PkiError};

const CHALLENGE: &[u8] = b"countersign piv challenge 0123456789";

fn card_cert(card: &TestKey) -> Vec<u8> {
    let ca = TestKey::p256();
    make_cert("CN=alice", &card.spki_der(), "CN=Test CA", &ca, NOW - DAY, NOW + DAY, vec![])
}

#[test]
fn good_ecdsa_signatures_der_and_raw_verify() {
    for card in [TestKey::p256(), TestKey::p384()] {
        let cert = card_cert(&card);
        verify_signature(&cert, CHALLENGE, &card.sign(CHALLENGE), NOW).unwrap();
        verify_signature(&cert, CHALLENGE, &card.sign_raw(CHALLENGE), NOW).unwrap();
    }
}

#[test]
fn wrong_message_or_other_key_is_a_bad_signature() {
    for (card, other) in [(TestKey::p256(), TestKey::p256()), (TestKey::p384(), TestKey::p384())] {
        let cert = card_cert(&card);
        let err = verify_signature(&cert, b"another challenge", &card.sign(CHALLENGE), NOW).unwrap_err();
        assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
        let err = verify_signature(&cert, CHALLENGE, &card.sign_raw(b"another challenge"), NOW).unwrap_err();
        assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
        let err = verify_signature(&cert, CHALLENGE, &other.sign(CHALLENGE), NOW).unwrap_err();
        assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
        let err = verify_signature(&cert, CHALLENGE, &other.sign_raw(CHALLENGE), NOW).unwrap_err();
        assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
        let err = verify_signature(&cert, CHALLENGE, b"junk", NOW).unwrap_err();
        assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
    }
}

#[test]
fn validity_is_checked() {
    let card = TestKey::p256();
    let cert = card_cert(&card);
    let sig = card.sign(CHALLENGE);
    let err = verify_signature(&cert, CHALLENGE, &sig, NOW + 2 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
    let err = verify_signature(&cert, CHALLENGE, &sig, NOW - 2 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::NotYetValid { .. }), "{err}");
}

#[test]
fn rsa_pkcs1_signatures_verify() {
    let card = TestKey::rsa();
    let cert = card_cert(&card);
    verify_signature(&cert, CHALLENGE, &card.sign(CHALLENGE), NOW).unwrap();
    verify_signature(&cert, CHALLENGE, &card.sha384_rsa(CHALLENGE), NOW).unwrap();
    let err = verify_signature(&cert, b"other", &card.sign(CHALLENGE), NOW).unwrap_err();
    assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
}

#[test]
fn unsupported_keys_are_named() {
    // an Ed25519 SubjectPublicKeyInfo
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(&[7u8; 32]);
    let cert = make_cert("CN=ed", &spki, "CN=Test CA", &TestKey::p256(), NOW - DAY, NOW + DAY, vec![]);
    let err = verify_signature(&cert, CHALLENGE, &[0; 64], NOW).unwrap_err();
    assert!(matches!(err, PkiError::Unsupported(_)), "{err}");
}
