//! WebAuthn/FIDO2 relying-party verification for Countersign (groundwork for issue 17, "WebAuthn
//! and passkeys").
//!
//! The crate checks the bytes of the two WebAuthn ceremonies as a relying party must
//! (W3C Web Authentication Level 2/3, §7.1 and §7.2):
//!
//! - registration: [`verify_registration`] reads an attestationObject and its clientDataJSON and
//!   returns the new credential ([`RegisteredCredential`]: id, COSE key bytes to store, AAGUID,
//!   sign count, flags, the attestation format and how far it is trusted). Formats `none`,
//!   `packed` (self attestation and x5c) and `fido-u2f`.
//! - authentication: [`verify_assertion`] checks an assertion against a stored credential and
//!   returns the new sign count and flags ([`AssertionOutcome`]).
//!
//! It is pure: no I/O, no clock (the caller passes `now` for certificate validity), no secrets
//! (only public keys and certificates pass through it), no HSM and no database. It will run in
//! the sandboxed plugin worker, so hostile input ends as an [`Error`] naming what was wrong, never
//! as a panic; inputs are bounded ([`limits`]).
//!
//! # Challenges
//!
//! The expectations carry the *exact bytes* the authenticator was asked to sign over as the
//! challenge; clientDataJSON's `challenge` (base64url) is decoded and compared with them. The
//! caller decides what those bytes are: privacyIDEA's `webauthn` token sends a base64url nonce
//! that the client decodes first (pass the decoded nonce), while privacyIDEA's `passkey` clients
//! use the UTF-8 bytes of the challenge string as sent (pass `challenge_string.as_bytes()`).

#![warn(missing_docs, unreachable_pub)]

mod assertion;
mod attestation;
mod authdata;
mod cbor;
mod certs;
mod client_data;
mod cose;
mod error;
mod expected;
pub mod limits;
#[cfg(test)]
mod pi_fixtures;
#[cfg(test)]
mod testkit;

pub use assertion::{
    verify_assertion, AssertionExpectations, AssertionOutcome, CounterPolicy, CounterStatus, StoredCredential,
};
pub use attestation::{
    verify_registration, AttestationFormat, AttestationType, RegisteredCredential, RegistrationExpectations,
    UNVERIFIED_FORMATS,
};
pub use authdata::{AttestedCredential, AuthenticatorData, Flags};
pub use client_data::{verify_client_data, Ceremony, ClientDataExpectations};
pub use cose::{CoseKey, PublicKey, COSE_ALG_EDDSA, COSE_ALG_ES256, COSE_ALG_RS256};
pub use error::Error;
pub use expected::Expected;
