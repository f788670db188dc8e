//! The `hsm` crate against a real SoftHSM token: every key algorithm signs and verifies, the
//! AES-GCM seal is bound to its associated data, and HMAC and random work.
//!
//! One token and one module context serve the whole file: SoftHSM must not be initialised from
//! several threads at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_hsm::{HashAlg, HsmError, KeyAlgorithm, PublicKey, SecretKeyKind, SignInput, SignScheme};

fn hsm() -> countersign_tests::SharedHsm {
    countersign_tests::shared_hsm()
}

#[test]
fn every_algorithm_signs_and_verifies_and_round_trips_its_public_key() {
    let h = hsm();
    for alg in KeyAlgorithm::ALL {
        let kp = h.generate_key_pair(&format!("ops-{alg}"), *alg).unwrap_or_else(|e| panic!("{alg}: {e}"));
        let spki = kp.public_key.to_spki_der().unwrap();
        assert_eq!(PublicKey::from_spki_der(&spki).unwrap(), kp.public_key, "{alg}");
        assert_eq!(kp.public_key.algorithm(), *alg);
        assert_eq!(h.public_key(&kp.id, *alg).unwrap(), kp.public_key);
        let schemes: Vec<SignScheme> = SignScheme::ALL.iter().copied().filter(|s| alg.allows(*s)).collect();
        for scheme in schemes {
            let msg = b"message for the token";
            let sig = h.sign(&kp.id, *alg, scheme, HashAlg::Sha256, SignInput::Message(msg)).unwrap();
            assert!(
                h.verify(&kp.id, *alg, scheme, HashAlg::Sha256, SignInput::Message(msg), &sig).unwrap(),
                "{alg} {scheme}"
            );
            assert!(!h.verify(&kp.id, *alg, scheme, HashAlg::Sha256, SignInput::Message(b"other"), &sig).unwrap());
        }
        assert!(h.has_key(&kp.id, false).unwrap());
    }
}

#[test]
fn sealed_secrets_are_bound_to_their_associated_data() {
    let h = hsm();
    let key = h.generate_secret_key("seal", SecretKeyKind::Aes256).unwrap();
    let a = h.seal(&key, b"token:HOTP0001", b"seed one").unwrap();
    let b = h.seal(&key, b"token:HOTP0002", b"seed two").unwrap();
    assert_ne!(a, h.seal(&key, b"token:HOTP0001", b"seed one").unwrap(), "fresh IV every time");
    assert!(!a.windows(8).any(|w| w == b"seed one"));
    assert_eq!(&h.unseal(&key, b"token:HOTP0001", &a).unwrap()[..], b"seed one");
    // Swapped rows do not open.
    let e = h.unseal(&key, b"token:HOTP0001", &b);
    assert!(matches!(e, Err(HsmError::OpenFailed)), "{e:?}");
    assert!(matches!(h.unseal(&key, b"token:HOTP0002", &a), Err(HsmError::OpenFailed)));
    let mut tampered = a.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(h.unseal(&key, b"token:HOTP0001", &tampered), Err(HsmError::OpenFailed)));
    assert!(matches!(h.seal(&key, b"", b"x"), Err(HsmError::InvalidInput(_))));
    assert!(matches!(h.unseal(&key, b"", &a), Err(HsmError::InvalidInput(_))));
}

#[test]
fn hmac_and_random() {
    let h = hsm();
    let k1 = h.generate_secret_key("mac1", SecretKeyKind::Hmac).unwrap();
    let k2 = h.generate_secret_key("mac2", SecretKeyKind::Hmac).unwrap();
    let m1 = h.hmac(&k1, HashAlg::Sha256, b"pin verifier").unwrap();
    assert_eq!(m1.len(), 32);
    assert_eq!(m1, h.hmac(&k1, HashAlg::Sha256, b"pin verifier").unwrap());
    assert_ne!(m1, h.hmac(&k2, HashAlg::Sha256, b"pin verifier").unwrap());
    assert_eq!(h.hmac(&k1, HashAlg::Sha512, b"x").unwrap().len(), 64);
    let r1 = h.random(32).unwrap();
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, h.random(32).unwrap());
}

#[test]
fn missing_keys_are_named() {
    let h = hsm();
    let id = countersign_hsm::KeyId::from_hex("00112233445566778899aabbccddeeff").unwrap();
    let e =
        h.sign(&id, KeyAlgorithm::EcP256, SignScheme::Ecdsa, HashAlg::Sha256, SignInput::Message(b"m")).unwrap_err();
    assert!(matches!(e, HsmError::KeyNotFound(_)), "{e}");
    assert!(!h.has_key(&id, false).unwrap());
}
