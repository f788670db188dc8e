//! A lost login (as after a token reset) is recovered by the next call, without a restart.
//! The test takes the shared HSM alone: the simulated fault would disturb concurrent tests.
//!
//! One token and one module context serve the whole file: SoftHSM must not be initialised from
//! several threads at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_hsm::{HashAlg, KeyAlgorithm, SignInput, SignScheme};

fn hsm() -> countersign_tests::SharedHsm {
    countersign_tests::shared_hsm_alone()
}

#[test]
fn a_lost_login_is_recovered_by_the_next_call() {
    let h = hsm();
    let kp = h.generate_key_pair("recover", KeyAlgorithm::EcP256).unwrap();
    let sign = || h.sign(&kp.id, KeyAlgorithm::EcP256, SignScheme::Ecdsa, HashAlg::Sha256, SignInput::Message(b"m"));
    sign().unwrap();
    let before = h.health().recoveries;
    h.simulate_logout().unwrap();
    let sig = sign().expect("the call after a logout recovers and succeeds");
    assert_eq!(sig.len(), 64);
    let health = h.health();
    assert!(health.recoveries > before, "{health:?}");
    assert!(health.ok, "{health:?}");
}
