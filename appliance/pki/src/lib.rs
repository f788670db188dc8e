//! X.509 for YubiKey/PIV enrolment on the Countersign appliance.
//!
//! The appliance CA (its key in the HSM, reached through [`CaSigner`]) makes its own certificate
//! ([`self_signed_ca`]) or a request for an external CA ([`ca_csr`]), and issues client-auth / smartcard-logon
//! certificates for keys generated on cards ([`issue_certificate`]) once the card's PIV attestation has been
//! checked ([`verify_attestation`]). [`verify_signature`] checks what a card's key signed during PIV
//! authentication.
//!
//! The crate is pure: no HSM, no clock, no I/O except [`TrustAnchors::from_pem_files`]. Times are unix seconds
//! passed in by the caller.
//!
//! Shipped trust (firmware-config/, installed in /etc/countersign/):
//! - `yubico-piv-root-ca.pem`: Yubico PIV Root CA Serial 263751, SHA-256
//!   `63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546` (firmware before 5.7.4).
//! - `yubico-attestation-root-1.pem`: Yubico Attestation Root 1, SHA-256
//!   `62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8` (firmware 5.7.4 and later).
//! - `yubico-piv-attestation-intermediates.pem`: Yubico PIV Attestation A 1 / B 1 and Yubico Attestation
//!   Intermediate A 1 / B 1, to pass as `intermediates`.

#![warn(missing_docs, unreachable_pub)]

mod attestation;
mod ca;
mod csr;
mod ecdsa_sig;
mod error;
mod name;
mod pem;
mod profile;
mod signer;
mod verify;

pub use attestation::{
    verify_attestation, AttestedKey, TrustAnchors, OID_YUBICO_FIRMWARE, OID_YUBICO_FORM_FACTOR, OID_YUBICO_POLICY,
    OID_YUBICO_SERIAL,
};
pub use ca::{issue_certificate, self_signed_ca, BACKDATE_SECONDS, OID_MS_SMARTCARD_LOGON, OID_MS_UPN};
pub use csr::ca_csr;
pub use ecdsa_sig::{ecdsa_der_to_raw, ecdsa_raw_to_der};
pub use error::PkiError;
pub use name::{escape_rfc4514, parse_rfc4514};
pub use pem::{certificates_from_pem, from_pem, to_pem};
pub use profile::{render_subject, CaConfig, CertificateProfile, SubjectVars};
pub use signer::{CaAlgorithm, CaSigner};
pub use verify::{
    certificate_info, rsa_key_bits, rsa_pkcs1_public_key, spki_matches, verify_issued_by, verify_rsa_sha256,
    verify_signature, CertInfo,
};
