//! COSE_Key (RFC 9052/9053) public keys of credentials: parsing the CBOR map into one of the
//! accepted keys and verifying signatures with it. Owns which algorithms are accepted (ES256,
//! EdDSA/Ed25519, RS256); must never accept a key whose type, curve and algorithm do not agree.

use ciborium::value::Value;
use sha2::Sha256;

use crate::cbor;
use crate::error::Error;
use crate::limits;

/// COSE algorithm ES256: ECDSA P-256 with SHA-256 (signatures DER-encoded in WebAuthn).
pub const COSE_ALG_ES256: i64 = -7;
/// COSE algorithm EdDSA (here: Ed25519, raw 64-byte signatures).
pub const COSE_ALG_EDDSA: i64 = -8;
/// COSE algorithm RS256: RSASSA-PKCS1-v1_5 with SHA-256.
pub const COSE_ALG_RS256: i64 = -257;

const KTY: i64 = 1;
const ALG: i64 = 3;
const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const KTY_RSA: i64 = 3;
const CRV_P256: i64 = 1;
const CRV_ED25519: i64 = 6;

/// A credential public key of an accepted algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// EC2 P-256, alg -7.
    Es256(p256::ecdsa::VerifyingKey),
    /// OKP Ed25519, alg -8.
    EdDsa(ed25519_dalek::VerifyingKey),
    /// RSA, alg -257.
    Rs256(rsa::RsaPublicKey),
}

impl PublicKey {
    /// The COSE algorithm this key is used with.
    pub fn alg(&self) -> i64 {
        match self {
            Self::Es256(_) => COSE_ALG_ES256,
            Self::EdDsa(_) => COSE_ALG_EDDSA,
            Self::Rs256(_) => COSE_ALG_RS256,
        }
    }

    /// Verifies `signature` over `message` in WebAuthn's encoding for the key's algorithm
    /// (ES256: ASN.1 DER; EdDSA: raw 64 bytes; RS256: PKCS#1 v1.5 over SHA-256).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        crate::error::bounded("signature", signature, limits::MAX_SIGNATURE)?;
        match self {
            Self::Es256(key) => verify_es256(key, message, signature),
            Self::EdDsa(key) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                    Error::BadSignature(format!("EdDSA signature must be 64 bytes, got {}", signature.len()))
                })?;
                key.verify_strict(message, &sig)
                    .map_err(|_| Error::BadSignature("EdDSA signature is not by the credential's key".to_owned()))
            }
            Self::Rs256(key) => verify_rs256(key, message, signature),
        }
    }
}

/// Verifies a DER ECDSA P-256/SHA-256 signature.
pub(crate) fn verify_es256(key: &p256::ecdsa::VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), Error> {
    use p256::ecdsa::signature::Verifier;
    let sig = p256::ecdsa::Signature::from_der(signature)
        .map_err(|_| Error::BadSignature("ES256 signature is not a DER ECDSA signature".to_owned()))?;
    key.verify(message, &sig).map_err(|_| Error::BadSignature("ES256 signature is not by the expected key".to_owned()))
}

/// Verifies an RSASSA-PKCS1-v1_5 SHA-256 signature.
pub(crate) fn verify_rs256(key: &rsa::RsaPublicKey, message: &[u8], signature: &[u8]) -> Result<(), Error> {
    use rsa::signature::Verifier;
    let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
    let sig = rsa::pkcs1v15::Signature::try_from(signature)
        .map_err(|_| Error::BadSignature("RS256 signature is malformed".to_owned()))?;
    verifier
        .verify(message, &sig)
        .map_err(|_| Error::BadSignature("RS256 signature is not by the expected key".to_owned()))
}

/// A credential public key together with its COSE_Key bytes as received (to store and to pass
/// back as [`crate::StoredCredential::cose_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoseKey {
    /// The key.
    pub key: PublicKey,
    /// The COSE_Key CBOR bytes as the authenticator sent them.
    pub bytes: Vec<u8>,
}

impl CoseKey {
    /// Parses COSE_Key bytes (exactly one CBOR map).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let value = cbor::read_exact(bytes, "COSE key")?;
        Ok(Self { key: from_value(value)?, bytes: bytes.to_vec() })
    }
}

fn int_param(entries: &mut Vec<(Value, Value)>, key: i64, name: &str) -> Result<i64, Error> {
    let value = cbor::take_int_key(entries, key)
        .ok_or_else(|| Error::CoseKey(format!("parameter {name} ({key}) is missing")))?;
    cbor::as_i64(&value).ok_or_else(|| Error::CoseKey(format!("parameter {name} ({key}) is not an integer")))
}

fn bytes_param(entries: &mut Vec<(Value, Value)>, key: i64, name: &str) -> Result<Vec<u8>, Error> {
    match cbor::take_int_key(entries, key) {
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(Error::CoseKey(format!("parameter {name} ({key}) is not a byte string"))),
        None => Err(Error::CoseKey(format!("parameter {name} ({key}) is missing"))),
    }
}

fn fixed<const N: usize>(bytes: &[u8], name: &str) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(bytes).map_err(|_| Error::CoseKey(format!("{name} must be {N} bytes, got {}", bytes.len())))
}

/// Reads a COSE_Key map into a [`PublicKey`].
pub(crate) fn from_value(value: Value) -> Result<PublicKey, Error> {
    let mut entries = cbor::map_entries(value, "COSE key")?;
    let kty = int_param(&mut entries, KTY, "kty")?;
    let alg = int_param(&mut entries, ALG, "alg")?;
    match (kty, alg) {
        (KTY_EC2, COSE_ALG_ES256) => {
            let crv = int_param(&mut entries, -1, "crv")?;
            if crv != CRV_P256 {
                return Err(Error::UnsupportedKey(format!("EC2 curve {crv} with ES256 (only P-256, 1)")));
            }
            let x: [u8; 32] = fixed(&bytes_param(&mut entries, -2, "x")?, "EC2 x")?;
            let y: [u8; 32] = fixed(&bytes_param(&mut entries, -3, "y")?, "EC2 y")?;
            let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
            let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map_err(|_| Error::CoseKey("EC2 x, y is not a point on P-256".to_owned()))?;
            Ok(PublicKey::Es256(key))
        }
        (KTY_OKP, COSE_ALG_EDDSA) => {
            let crv = int_param(&mut entries, -1, "crv")?;
            if crv != CRV_ED25519 {
                return Err(Error::UnsupportedKey(format!("OKP curve {crv} with EdDSA (only Ed25519, 6)")));
            }
            let x: [u8; 32] = fixed(&bytes_param(&mut entries, -2, "x")?, "OKP x")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| Error::CoseKey("OKP x is not an Ed25519 public key".to_owned()))?;
            Ok(PublicKey::EdDsa(key))
        }
        (KTY_RSA, COSE_ALG_RS256) => {
            let n = bytes_param(&mut entries, -1, "n")?;
            let e = bytes_param(&mut entries, -2, "e")?;
            let n = rsa::BigUint::from_bytes_be(&n);
            if n.bits() < limits::MIN_RSA_BITS {
                return Err(Error::UnsupportedKey(format!(
                    "RSA modulus of {} bits (at least {})",
                    n.bits(),
                    limits::MIN_RSA_BITS
                )));
            }
            let key = rsa::RsaPublicKey::new(n, rsa::BigUint::from_bytes_be(&e))
                .map_err(|e| Error::CoseKey(format!("RSA key is invalid: {e}")))?;
            Ok(PublicKey::Rs256(key))
        }
        (kty, alg) => Err(Error::UnsupportedKey(format!("key type {kty} with algorithm {alg}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{cbor, TestKey};

    fn i(n: i64) -> Value {
        Value::Integer(n.into())
    }

    #[test]
    fn keys_round_trip_with_their_bytes() {
        for key in [TestKey::p256(1), TestKey::ed25519(2), TestKey::rsa()] {
            let parsed = CoseKey::parse(&key.cose()).unwrap();
            assert_eq!(parsed.bytes, key.cose());
            assert_eq!(parsed.key.alg(), key.alg());
        }
    }

    #[test]
    fn mismatched_type_and_algorithm_is_refused() {
        // An EC2 key announced as EdDSA, an OKP key as ES256, and RS1 (-65535).
        for (kty, alg) in [(2, -8), (1, -7), (3, -65535), (2, -36)] {
            let key = cbor(&Value::Map(vec![(i(1), i(kty)), (i(3), i(alg)), (i(-1), i(1))]));
            let err = CoseKey::parse(&key).unwrap_err();
            assert!(matches!(err, Error::UnsupportedKey(_)), "{err}");
        }
    }

    #[test]
    fn wrong_curve_point_and_lengths_are_refused() {
        let p256 = |crv: i64, x: Vec<u8>, y: Vec<u8>| {
            cbor(&Value::Map(vec![
                (i(1), i(2)),
                (i(3), i(-7)),
                (i(-1), i(crv)),
                (i(-2), Value::Bytes(x)),
                (i(-3), Value::Bytes(y)),
            ]))
        };
        assert!(matches!(CoseKey::parse(&p256(2, vec![1; 32], vec![1; 32])), Err(Error::UnsupportedKey(_))));
        assert!(matches!(CoseKey::parse(&p256(1, vec![1; 31], vec![1; 32])), Err(Error::CoseKey(_))));
        assert!(matches!(CoseKey::parse(&p256(1, vec![1; 32], vec![1; 32])), Err(Error::CoseKey(_))));
    }

    #[test]
    fn short_rsa_modulus_is_refused() {
        let key = cbor(&Value::Map(vec![
            (i(1), i(3)),
            (i(3), i(-257)),
            (i(-1), Value::Bytes(vec![0xc5; 128])),
            (i(-2), Value::Bytes(vec![1, 0, 1])),
        ]));
        let err = CoseKey::parse(&key).unwrap_err();
        assert!(matches!(&err, Error::UnsupportedKey(m) if m.contains("1024 bits")), "{err}");
    }

    #[test]
    fn duplicate_labels_missing_labels_and_trailing_bytes_are_refused() {
        let dup = cbor(&Value::Map(vec![(i(1), i(2)), (i(1), i(1)), (i(3), i(-7))]));
        assert!(matches!(CoseKey::parse(&dup), Err(Error::Cbor { .. })));
        let no_alg = cbor(&Value::Map(vec![(i(1), i(2))]));
        assert!(matches!(CoseKey::parse(&no_alg), Err(Error::CoseKey(_))));
        let mut trailing = TestKey::p256(1).cose();
        trailing.push(0);
        assert!(matches!(CoseKey::parse(&trailing), Err(Error::Cbor { .. })));
        assert!(matches!(CoseKey::parse(&cbor(&Value::Array(vec![]))), Err(Error::Cbor { .. })));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        for key in [TestKey::p256(1), TestKey::ed25519(2), TestKey::rsa()] {
            let parsed = CoseKey::parse(&key.cose()).unwrap();
            for sig in [&[][..], &[0x30, 0x00][..], &[0u8; 64][..], &[0u8; 2000][..]] {
                assert!(parsed.key.verify(b"m", sig).is_err());
            }
        }
    }
}
