//! The CA key, as the appliance hands it in (backed by the HSM in production, by a software key in tests).

use const_oid::ObjectIdentifier;

use crate::PkiError;

/// The CA key's algorithm: ECDSA on P-256 with SHA-256, or on P-384 with SHA-384.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    EcP256,
    /// ECDSA on P-384 with SHA-384.
    EcP384,
}

impl CaAlgorithm {
    /// Parses the configuration spelling: "ec-p256" or "ec-p384".
    pub fn from_config(value: &str) -> Result<Self, PkiError> {
        match value {
            "ec-p256" => Ok(CaAlgorithm::EcP256),
            "ec-p384" => Ok(CaAlgorithm::EcP384),
            other => Err(PkiError::Config(format!("ca.algorithm {other:?} is not one of \"ec-p256\", \"ec-p384\""))),
        }
    }

    /// The X.509 signature algorithm OID (ecdsa-with-SHA256 / ecdsa-with-SHA384).
    pub fn signature_oid(self) -> ObjectIdentifier {
        match self {
            CaAlgorithm::EcP256 => const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            CaAlgorithm::EcP384 => const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
        }
    }

    /// The length of a raw r||s signature.
    pub fn raw_signature_len(self) -> usize {
        match self {
            CaAlgorithm::EcP256 => 64,
            CaAlgorithm::EcP384 => 96,
        }
    }
}

/// A CA signing key. Implementations hash `message` with the algorithm's hash themselves.
pub trait CaSigner {
    /// The key's algorithm.
    fn algorithm(&self) -> CaAlgorithm;
    /// The DER SubjectPublicKeyInfo of the CA key.
    fn public_key_spki_der(&self) -> Result<Vec<u8>, PkiError>;
    /// Signs `message` (the signer hashes it with the algorithm's hash) and returns raw r||s.
    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}
