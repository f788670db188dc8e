//! The verifier (`countersign-webauthn`) itself, without a daemon, held to what three
//! authenticators written apart from it produce: `verify_registration` and `verify_assertion`
//! must accept exactly what each sends honestly and refuse what a relying party must refuse.
//! The authenticators are the WebAuthn harness's ([`countersign_tests::webauthn`]), the ones the
//! daemon's WebAuthn modules use:
//! - [`python`]: the software authenticator (`tests/tools/soft_authenticator.py`), every
//!   algorithm and attestation format and each hostile answer it can be told to give;
//! - [`chromium`]: headless Chromium's virtual authenticator, a real browser's output;
//! - [`passkey_rs`]: 1Password's passkey-rs behind its client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod chromium;
mod passkey_rs;
mod python;

use std::time::{SystemTime, UNIX_EPOCH};

use countersign_tests::webauthn::field;
use countersign_webauthn::{
    verify_assertion, verify_registration, AssertionExpectations, AssertionOutcome, Error, Expected,
    RegisteredCredential, RegistrationExpectations, StoredCredential,
};
use serde_json::Value;

/// The registration challenge of the tests that choose their own.
const REGISTRATION_CHALLENGE: &[u8] = b"registration challenge, 32 bytes";
/// The user id (`user.id`, the user handle) of the tests that choose their own.
const USER_ID: &[u8] = b"user-0001";

/// What both ceremonies expect of the relying party `rp_id` at `origin` (no cross-origin
/// frame): `challenge`, and user verification when `require_user_verification`.
fn expected(rp_id: &str, origin: &str, challenge: &[u8], require_user_verification: bool) -> Expected {
    Expected {
        rp_id: rp_id.to_owned(),
        origins: vec![origin.to_owned()],
        allow_cross_origin: false,
        challenge: challenge.to_vec(),
        require_user_verification,
    }
}

/// What a relying party keeps of a registered credential.
fn stored(credential: &RegisteredCredential) -> StoredCredential {
    StoredCredential { cose_key: credential.cose_key.clone(), sign_count: credential.sign_count }
}

/// The time now, in Unix seconds.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// What an authenticator program's `create` answer (`attestation_object`, `client_data_json`)
/// registers as.
fn verify_created(e: &RegistrationExpectations, created: &Value) -> Result<RegisteredCredential, Error> {
    verify_registration(e, &field(created, "attestation_object"), &field(created, "client_data_json"))
}

/// What an authenticator program's `get` answer (`authenticator_data`, `client_data_json`,
/// `signature`) verifies as against `stored`.
fn verify_got(e: &AssertionExpectations, stored: &StoredCredential, got: &Value) -> Result<AssertionOutcome, Error> {
    verify_assertion(
        e,
        stored,
        &field(got, "authenticator_data"),
        &field(got, "client_data_json"),
        &field(got, "signature"),
    )
}
