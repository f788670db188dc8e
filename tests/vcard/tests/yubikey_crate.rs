//! The `yubikey` crate (0.8, the PIV client the appliance is expected to use) against the
//! emulator. One test per binary: libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process.
// Reason: test code; failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use countersign_vcard::{CardSpec, Pcscd, TestRoot, VirtualYubiKey};
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha2::Digest;
use x509_cert::Certificate as X509;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{Certificate, MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};

fn verifies(issuer: &X509, cert: &X509) -> bool {
    let key = issuer.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let key = VerifyingKey::from_public_key_der(&key).unwrap();
    let sig = DerSignature::from_bytes(cert.signature.raw_bytes()).unwrap();
    key.verify(&cert.tbs_certificate.to_der().unwrap(), &sig).is_ok()
}

#[test]
fn yubikey_crate_generates_attests_and_signs() {
    let pcscd = Pcscd::start(1).unwrap();
    let (k, v) = pcscd.env();
    // Only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var(k, v);
    let root = TestRoot::generate("yubikey crate root");
    let old = VirtualYubiKey::new(CardSpec::new(20_000_001, (5, 4, 3)), &root);
    let new = VirtualYubiKey::new(CardSpec::new(20_000_002, (5, 7, 1)), &root);
    let readers = pcscd.readers();
    old.insert(readers[0].port).unwrap();
    pcscd.wait_for_card_state(&readers[0].name, true, Duration::from_secs(10)).unwrap();

    // A single card: open() finds it (empty readers do not count).
    let mut yk = YubiKey::open().unwrap();
    assert_eq!(yk.serial(), Serial(20_000_001));
    assert_eq!((yk.version().major, yk.version().minor, yk.version().patch), (5, 4, 3));
    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    yk.verify_pin(b"123456").unwrap();
    yk.authenticate(MgmKey::default()).unwrap();
    let spki =
        piv::generate(&mut yk, SlotId::Authentication, AlgorithmId::EccP256, PinPolicy::Default, TouchPolicy::Default)
            .unwrap();
    assert_eq!(Some(spki.to_der().unwrap()), old.slot_public_key_spki(0x9a));

    // Attestation chain: root -> f9 (object 5FFF01) -> slot certificate for the generated key.
    let attestation = X509::from_der(&piv::attest(&mut yk, SlotId::Authentication).unwrap()).unwrap();
    let f9 = Certificate::read(&mut yk, SlotId::Attestation).unwrap();
    let f9 = X509::from_der(&f9.cert.to_der().unwrap()).unwrap();
    let root_cert = X509::from_der(&root.cert_der()).unwrap();
    assert!(verifies(&root_cert, &f9), "f9 certificate not issued by the test root");
    assert!(verifies(&f9, &attestation), "slot attestation not signed by the f9 key");
    assert_eq!(attestation.tbs_certificate.subject_public_key_info, spki);

    // Signing a digest with the slot key.
    let digest = sha2::Sha256::digest(b"enrolment challenge");
    let sig = piv::sign_data(&mut yk, &digest, AlgorithmId::EccP256, SlotId::Authentication).unwrap();
    let key = VerifyingKey::from_public_key_der(&spki.to_der().unwrap()).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    key.verify_prehash(&digest, &sig).unwrap();
    // The inspection helper signs like the card does (ECDSA-SHA256 over the message).
    let by_helper = old.sign_with_slot(0x9a, b"enrolment challenge").unwrap();
    key.verify(b"enrolment challenge", &DerSignature::from_bytes(&by_helper).unwrap()).unwrap();
    drop(yk);

    // Two cards: open() refuses to choose, open_by_serial picks; the 5.7 card's default
    // management key is AES-192, which this crate (3DES only) cannot authenticate with.
    new.insert(readers[1].port).unwrap();
    pcscd.wait_for_card_state(&readers[1].name, true, Duration::from_secs(10)).unwrap();
    assert!(YubiKey::open().is_err(), "open() with two cards present should fail");
    let mut yk = YubiKey::open_by_serial(Serial(20_000_002)).unwrap();
    assert_eq!(yk.version().minor, 7);
    assert!(yk.authenticate(MgmKey::default()).is_err());
    assert_eq!(new.management_key().0, 0x0A);
}
