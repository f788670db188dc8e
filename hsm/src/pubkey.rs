//! Public keys as the token reports them, and their standard encodings: SubjectPublicKeyInfo
//! (DER and PEM, RFC 5280 / RFC 5480 / RFC 8410) and JWK (RFC 7517 / RFC 8037).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use der::asn1::{AnyRef, BitString, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifier, SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};

use crate::{HsmError, KeyAlgorithm, Result};

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// DER of the curve OID, as CKA_EC_PARAMS wants it.
pub(crate) fn curve_oid_der(alg: KeyAlgorithm) -> &'static [u8] {
    match alg {
        KeyAlgorithm::EcP256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        KeyAlgorithm::EcP384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        _ => &[0x06, 0x03, 0x2b, 0x65, 0x70],
    }
}

/// A public key of one of the appliance's algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point `04 || X || Y`.
    Ec {
        /// The curve: [`KeyAlgorithm::EcP256`] or [`KeyAlgorithm::EcP384`].
        alg: KeyAlgorithm,
        /// The point, 65 bytes on P-256 and 97 on P-384.
        point: Vec<u8>,
    },
    /// The 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
    /// Big-endian modulus and public exponent.
    Rsa {
        /// The modulus, big-endian.
        n: Vec<u8>,
        /// The public exponent, big-endian (65537, `01 00 01`, for keys generated here).
        e: Vec<u8>,
    },
}

fn enc(e: der::Error) -> HsmError {
    HsmError::Encoding(e.to_string())
}

impl PublicKey {
    /// Builds the key from CKA_EC_POINT, which SoftHSM wraps in a DER OCTET STRING and other
    /// tokens return raw. The raw length is known per curve, so the two cannot be confused.
    pub(crate) fn from_ec_point(alg: KeyAlgorithm, value: &[u8]) -> Result<Self> {
        let raw_len = match alg {
            KeyAlgorithm::EcP256 => 65,
            KeyAlgorithm::EcP384 => 97,
            KeyAlgorithm::Ed25519 => 32,
            _ => return Err(HsmError::Encoding(format!("{alg} has no EC point"))),
        };
        let raw = if value.len() == raw_len {
            value.to_vec()
        } else {
            OctetStringRef::from_der(value).map_err(enc)?.as_bytes().to_vec()
        };
        if raw.len() != raw_len || (alg != KeyAlgorithm::Ed25519 && raw.first() != Some(&0x04)) {
            return Err(HsmError::Encoding(format!("unexpected CKA_EC_POINT for {alg}")));
        }
        Ok(if alg == KeyAlgorithm::Ed25519 { PublicKey::Ed25519(raw) } else { PublicKey::Ec { alg, point: raw } })
    }

    /// The algorithm this key belongs to (RSA keys report their size class).
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ec { alg, .. } => *alg,
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::Rsa { n, .. } => {
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits > 2048 {
                    KeyAlgorithm::Rsa3072
                } else {
                    KeyAlgorithm::Rsa2048
                }
            }
        }
    }

    /// SubjectPublicKeyInfo, DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        let (oid, params, key): (ObjectIdentifier, Option<ObjectIdentifier>, Vec<u8>) = match self {
            PublicKey::Ec { alg, point } => {
                let curve = if *alg == KeyAlgorithm::EcP384 { OID_P384 } else { OID_P256 };
                (OID_EC_PUBLIC_KEY, Some(curve), point.clone())
            }
            PublicKey::Ed25519(k) => (OID_ED25519, None, k.clone()),
            PublicKey::Rsa { n, e } => {
                let rsa = pkcs1::RsaPublicKey {
                    modulus: UintRef::new(n).map_err(enc)?,
                    public_exponent: UintRef::new(e).map_err(enc)?,
                };
                (OID_RSA, None, rsa.to_der().map_err(enc)?)
            }
        };
        let subject_public_key = BitString::from_bytes(&key).map_err(enc)?;
        match (self, params) {
            (PublicKey::Rsa { .. }, _) => SubjectPublicKeyInfo {
                algorithm: AlgorithmIdentifier { oid, parameters: Some(AnyRef::NULL) },
                subject_public_key,
            }
            .to_der()
            .map_err(enc),
            (_, Some(curve)) => SubjectPublicKeyInfo {
                algorithm: AlgorithmIdentifier { oid, parameters: Some(curve) },
                subject_public_key,
            }
            .to_der()
            .map_err(enc),
            (_, None) => SubjectPublicKeyInfo::<AnyRef<'_>, BitString> {
                algorithm: AlgorithmIdentifier { oid, parameters: None },
                subject_public_key,
            }
            .to_der()
            .map_err(enc),
        }
    }

    /// SubjectPublicKeyInfo, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String> {
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &self.to_spki_der()?)
            .map_err(|e| HsmError::Encoding(e.to_string()))
    }

    /// The key as a JWK object.
    pub fn to_jwk(&self) -> serde_json::Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            PublicKey::Ec { alg, point } => {
                let n = (point.len() - 1) / 2;
                let crv = if *alg == KeyAlgorithm::EcP384 { "P-384" } else { "P-256" };
                serde_json::json!({
                    "kty": "EC", "crv": crv,
                    "x": b64(&point[1..1 + n]), "y": b64(&point[1 + n..]),
                })
            }
            PublicKey::Ed25519(k) => {
                serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(k) })
            }
            PublicKey::Rsa { n, e } => {
                let strip = |v: &[u8]| {
                    let i = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
                    b64(&v[i..])
                };
                serde_json::json!({ "kty": "RSA", "n": strip(n), "e": strip(e) })
            }
        }
    }

    /// Parses a SubjectPublicKeyInfo (as stored by the appliance).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self> {
        let info = SubjectPublicKeyInfoRef::from_der(spki).map_err(enc)?;
        let key = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| HsmError::Encoding("public key bit string is not byte aligned".into()))?;
        match info.algorithm.oid {
            OID_EC_PUBLIC_KEY => {
                let curve: ObjectIdentifier = info
                    .algorithm
                    .parameters
                    .ok_or_else(|| HsmError::Encoding("EC key without curve".into()))?
                    .decode_as()
                    .map_err(enc)?;
                let alg = match curve {
                    OID_P256 => KeyAlgorithm::EcP256,
                    OID_P384 => KeyAlgorithm::EcP384,
                    other => return Err(HsmError::Encoding(format!("unsupported curve {other}"))),
                };
                PublicKey::from_ec_point(alg, key)
            }
            OID_ED25519 => PublicKey::from_ec_point(KeyAlgorithm::Ed25519, key),
            OID_RSA => {
                let rsa = pkcs1::RsaPublicKey::from_der(key).map_err(enc)?;
                Ok(PublicKey::Rsa { n: rsa.modulus.as_bytes().to_vec(), e: rsa.public_exponent.as_bytes().to_vec() })
            }
            other => Err(HsmError::Encoding(format!("unsupported key algorithm {other}"))),
        }
    }
}
