//! The crate's one error type. Owns the wording of every refusal; must never carry secrets or
//! whole inputs (only short descriptions of what was wrong).

/// Why a ceremony was refused. Every message names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An input was larger than [`crate::limits`] allows.
    #[error("{what} is {len} bytes, larger than the {max} bytes accepted")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// authenticatorData ended before a field it must hold.
    #[error("authenticatorData is truncated: {0} is missing or incomplete")]
    AuthDataTruncated(&'static str),
    /// Bytes after the last field of authenticatorData.
    #[error("authenticatorData has {0} trailing bytes after its last field")]
    AuthDataTrailing(usize),
    /// authenticatorData is otherwise malformed.
    #[error("authenticatorData is malformed: {0}")]
    AuthData(String),
    /// CBOR that could not be read.
    #[error("{what} is not valid CBOR: {detail}")]
    Cbor {
        /// Which CBOR item.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// A COSE key that is malformed.
    #[error("COSE key is malformed: {0}")]
    CoseKey(String),
    /// A COSE key of a type or algorithm this verifier does not accept.
    #[error(
        "COSE key is not supported: {0} (accepted: EC2 P-256 ES256 (-7), OKP Ed25519 EdDSA (-8), RSA RS256 (-257))"
    )]
    UnsupportedKey(String),
    /// clientDataJSON that is not JSON of the expected shape.
    #[error("clientDataJSON is malformed: {0}")]
    ClientDataJson(String),
    /// clientDataJSON of the other ceremony.
    #[error("clientDataJSON type is {received:?}, expected {expected:?}")]
    WrongCeremony {
        /// The type this ceremony needs.
        expected: &'static str,
        /// The type received.
        received: String,
    },
    /// The challenge is not base64url.
    #[error("clientDataJSON challenge is not base64url: {0}")]
    ChallengeEncoding(String),
    /// The challenge is not the one issued.
    #[error("clientDataJSON challenge does not match the challenge issued for this ceremony")]
    ChallengeMismatch,
    /// The origin is not allowed.
    #[error("clientDataJSON origin {0:?} is not one of the allowed origins")]
    OriginNotAllowed(String),
    /// A cross-origin ceremony where none is allowed.
    #[error("clientDataJSON says crossOrigin true, and cross-origin ceremonies are not allowed")]
    CrossOriginNotAllowed,
    /// rpIdHash is not SHA-256 of the expected RP id.
    #[error("authenticatorData rpIdHash is not the SHA-256 of the RP id {0:?}")]
    RpIdMismatch(String),
    /// The UP flag is not set.
    #[error("user presence (UP flag) is not set in authenticatorData")]
    UserNotPresent,
    /// UV is required and not set.
    #[error("user verification is required and the UV flag is not set in authenticatorData")]
    UserNotVerified,
    /// BS set without BE.
    #[error("authenticatorData sets backup state (BS) without backup eligibility (BE)")]
    BackupStateWithoutEligibility,
    /// A signature that is malformed or does not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// The sign counter did not advance.
    #[error(
        "sign counter did not advance (stored {stored}, received {received}): the authenticator may have been cloned"
    )]
    CounterRegressed {
        /// The counter stored from the last ceremony.
        stored: u32,
        /// The counter in this assertion.
        received: u32,
    },
    /// The attestationObject is malformed.
    #[error("attestationObject is malformed: {0}")]
    AttestationObject(String),
    /// Registration without attested credential data.
    #[error("authenticatorData has no attested credential data (AT flag not set) in a registration")]
    NoAttestedCredential,
    /// An attestation format this verifier does not know.
    #[error("attestation format {0:?} is not supported (accepted: none, packed, fido-u2f)")]
    UnsupportedFormat(String),
    /// The attestation statement is malformed or inconsistent.
    #[error("attestation statement is invalid: {0}")]
    AttestationStatement(String),
    /// An attestation certificate that fails a check.
    #[error("attestation certificate is invalid: {0}")]
    Certificate(String),
    /// A trust anchor given by the caller that cannot be read.
    #[error("trust anchor {index} is invalid: {detail}")]
    TrustAnchor {
        /// Its position in the caller's list.
        index: usize,
        /// What was wrong.
        detail: String,
    },
    /// The attestation chain reaches none of the trust anchors.
    #[error("attestation chain does not lead to a trusted root: {0}")]
    UntrustedAttestation(String),
}

/// Refuses an input longer than `max`.
pub(crate) fn bounded(what: &'static str, input: &[u8], max: usize) -> Result<(), Error> {
    if input.len() > max {
        return Err(Error::TooLarge { what, len: input.len(), max });
    }
    Ok(())
}
