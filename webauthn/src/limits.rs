//! Upper bounds on the inputs, so hostile input cannot make the verifier allocate or work
//! without limit. Owns only constants; must never be raised without a reason a real
//! authenticator needs it.

/// Largest authenticatorData accepted (bytes).
pub const MAX_AUTHENTICATOR_DATA: usize = 16 * 1024;
/// Largest attestationObject accepted (bytes): room for an x5c chain of a few certificates.
pub const MAX_ATTESTATION_OBJECT: usize = 64 * 1024;
/// Largest clientDataJSON accepted (bytes).
pub const MAX_CLIENT_DATA: usize = 16 * 1024;
/// Largest signature accepted (bytes): RSA-4096 is 512.
pub const MAX_SIGNATURE: usize = 1024;
/// Largest credential id (bytes), as WebAuthn Level 3 allows.
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Most certificates in an x5c chain.
pub const MAX_CHAIN: usize = 8;
/// Smallest RSA modulus accepted for RS256 (bits).
pub const MIN_RSA_BITS: usize = 2048;
