//! The one error type of the crate. Each message says what went wrong and, where it helps, what to do about it.

/// Everything that can go wrong while issuing or verifying certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Input bytes are not the DER structure they should be.
    #[error("{what} is not valid DER: {detail}; pass the DER bytes (not PEM or base64) of the whole object")]
    Malformed {
        /// What was read.
        what: String,
        /// What the DER decoder found.
        detail: String,
    },

    /// A PEM text could not be read.
    #[error("PEM: {0}")]
    Pem(String),

    /// A subject template or RFC 4514 string could not be turned into a name.
    #[error("subject {subject:?} is not a usable RFC 4514 name: {reason}")]
    BadSubject {
        /// The subject as given.
        subject: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration value is out of range or unknown.
    #[error("configuration: {0}")]
    Config(String),

    /// A key type, curve or signature algorithm this crate does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A signature did not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),

    /// A certificate's notAfter is in the past.
    #[error("{what} expired at {not_after} (unix), it is now {now}; renew it or check the clock")]
    Expired {
        /// The certificate.
        what: String,
        /// Its end (Unix seconds).
        not_after: i64,
        /// Now (Unix seconds).
        now: i64,
    },

    /// A certificate's notBefore is in the future.
    #[error("{what} is not valid before {not_before} (unix), it is now {now}; check the clock")]
    NotYetValid {
        /// The certificate.
        what: String,
        /// Its start (Unix seconds).
        not_before: i64,
        /// Now (Unix seconds).
        now: i64,
    },

    /// The CA certificate handed in does not carry the signer's public key.
    #[error(
        "the CA certificate's public key is not the signer's key; use the certificate that was issued for the HSM's CA key"
    )]
    SignerKeyMismatch,

    /// The signer (HSM) failed or returned something unusable.
    #[error("the CA signer failed: {0}")]
    Signer(String),

    /// The attestation leaf is not signed by the card's f9 certificate.
    #[error("the attestation certificate is not signed by the card's f9 certificate ({0}); read both from the same card and slot")]
    AttestationNotSignedByF9(String),

    /// The f9 certificate does not lead to a configured trust anchor.
    #[error(
        "the card's attestation certificate does not chain to a trusted root (issuer: {issuer}); install the issuing root in attestation_roots, or its intermediates"
    )]
    Untrusted {
        /// The issuer the chain ends at.
        issuer: String,
    },

    /// A trust anchor file could not be read or holds no certificate.
    #[error("trust anchor file {path}: {reason}")]
    TrustAnchorFile {
        /// The file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// Encoding a structure failed (should not happen with valid inputs).
    #[error("could not encode {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// What the encoder said.
        detail: String,
    },
}

impl PkiError {
    pub(crate) fn malformed(what: &str, err: impl std::fmt::Display) -> Self {
        PkiError::Malformed { what: what.to_string(), detail: err.to_string() }
    }

    pub(crate) fn encode(what: &str, err: impl std::fmt::Display) -> Self {
        PkiError::Encode { what: what.to_string(), detail: err.to_string() }
    }
}
