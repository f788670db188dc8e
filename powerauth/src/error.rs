//! The crate's one error type. Owns the wording of every refusal; must never carry key material
//! or whole inputs (only what was wrong, and lengths).

/// Why an input was refused. Every message names what was wrong and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A key, counter, nonce or challenge of the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// Which value.
        what: &'static str,
        /// The length the protocol fixes.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A private key that is not a scalar of P-256 (zero, or not below the group order).
    #[error("the private key is not a valid P-256 scalar")]
    PrivateKey,
    /// A public key that is not a SEC1-encoded point on P-256.
    #[error("the public key is not a SEC1-encoded P-256 point")]
    PublicKey,
    /// A `pa_signature_type` this crate does not know.
    #[error(
        "unknown signature type (accepted: possession, knowledge, biometry, possession_knowledge, \
         possession_biometry, possession_knowledge_biometry)"
    )]
    SignatureType,
    /// A number of decimal digits per signature component outside 4..=8.
    #[error("a decimal signature component has 4 to 8 digits, not {0}")]
    Digits(u8),
    /// A protocol version outside 3.0–3.3.
    #[error("unsupported protocol version (accepted: 3.0, 3.1, 3.2, 3.3)")]
    Version,
    /// An activation code that is not `XXXXX-XXXXX-XXXXX-XXXXX` in Base32.
    #[error("the activation code is malformed: {0}")]
    ActivationCode(&'static str),
    /// An activation code whose CRC-16 does not match: a mistyped code.
    #[error("the activation code's checksum does not match (mistyped?)")]
    ActivationCodeChecksum,
    /// The master key's signature over the activation data did not verify.
    #[error("the activation data signature does not verify with the master public key")]
    ActivationSignature,
    /// A decrypted status blob that does not start with the status magic.
    #[error("the activation status blob does not start with 0xDEC0DED1")]
    StatusBlobMagic,
    /// An ECIES parameter the protocol version requires is missing.
    #[error("ECIES {version} requires {what}")]
    EciesMissing {
        /// The protocol version.
        version: &'static str,
        /// What it requires.
        what: &'static str,
    },
    /// A temporary-key JWT that is malformed, names another algorithm, or whose signature does
    /// not verify.
    #[error("{0}")]
    Jwt(&'static str),
    /// An `X-PowerAuth-*` header that is not `PowerAuth key="value", ...`, or lacks a key.
    #[error("{0}")]
    Header(String),
    /// The ECIES MAC did not verify: the payload was altered or not made with this key.
    #[error("the ECIES MAC does not verify")]
    EciesMac,
    /// The ECIES ciphertext did not decrypt to correctly padded data.
    #[error("the ECIES ciphertext is not correctly padded AES-CBC data")]
    EciesCiphertext,
}
