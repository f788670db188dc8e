//! Test helpers: a software CA signer, throw-away keys of every supported kind, a hand-built certificate maker
//! for fake attestation chains, and openssl runners.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countersign_pki::{CaAlgorithm, CaSigner, PkiError};
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use p256::pkcs8::EncodePublicKey;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256, Sha384};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

pub const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z
pub const NOW: i64 = 1_767_225_600;

/// A CA signer holding a software key.
pub enum SoftSigner {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl SoftSigner {
    pub fn new(alg: CaAlgorithm) -> Self {
        match alg {
            CaAlgorithm::EcP256 => SoftSigner::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            CaAlgorithm::EcP384 => SoftSigner::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
        }
    }
}

impl CaSigner for SoftSigner {
    fn algorithm(&self) -> CaAlgorithm {
        match self {
            SoftSigner::P256(_) => CaAlgorithm::EcP256,
            SoftSigner::P384(_) => CaAlgorithm::EcP384,
        }
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, PkiError> {
        Ok(match self {
            SoftSigner::P256(k) => k.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec(),
            SoftSigner::P384(k) => k.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec(),
        })
    }

    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        use p256::ecdsa::signature::Signer;
        Ok(match self {
            SoftSigner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
            SoftSigner::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
        })
    }
}

/// A key that can sign test certificates and messages.
pub enum TestKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl TestKey {
    pub fn rsa() -> Self {
        TestKey::Rsa(Box::new(rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap()))
    }
    pub fn p256() -> Self {
        TestKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
    }
    pub fn p384() -> Self {
        TestKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng))
    }

    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => {
                rsa::pkcs8::EncodePublicKey::to_public_key_der(&k.to_public_key()).unwrap().as_bytes().to_vec()
            }
            TestKey::P256(k) => k.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec(),
            TestKey::P384(k) => k.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec(),
        }
    }

    pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&self.spki_der()).unwrap()
    }

    /// sha256WithRSAEncryption, ecdsa-with-SHA256 or ecdsa-with-SHA384.
    pub fn algorithm(&self) -> AlgorithmIdentifierOwned {
        match self {
            TestKey::Rsa(_) => AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
            TestKey::P256(_) => {
                AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256, parameters: None }
            }
            TestKey::P384(_) => {
                AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_384, parameters: None }
            }
        }
    }

    /// RSA: PKCS#1 v1.5 with SHA-256. EC: DER ECDSA with the curve's hash.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            TestKey::Rsa(k) => k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message)).unwrap(),
            TestKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            TestKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }

    /// EC only: raw r||s.
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            TestKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
            TestKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
            TestKey::Rsa(_) => panic!("no raw RSA signatures"),
        }
    }

    pub fn sha384_rsa(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => k.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(message)).unwrap(),
            _ => panic!("RSA only"),
        }
    }
}

fn time(unix: i64) -> Time {
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(unix as u64)).unwrap();
    if dt.year() < 2050 {
        Time::UtcTime(der::asn1::UtcTime::from_date_time(dt).unwrap())
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    }
}

/// A raw-bytes extension (Yubico's extensions are not DER inside the OCTET STRING).
pub fn raw_extension(oid: &str, value: &[u8]) -> Extension {
    Extension {
        extn_id: const_oid::ObjectIdentifier::new(oid).unwrap(),
        critical: false,
        extn_value: OctetString::new(value).unwrap(),
    }
}

/// A v3 certificate for `subject_spki`, named `subject`, issued as `issuer` and signed by `issuer_key`.
pub fn make_cert(
    subject: &str,
    subject_spki: &[u8],
    issuer: &str,
    issuer_key: &TestKey,
    not_before: i64,
    not_after: i64,
    extensions: Vec<Extension>,
) -> Vec<u8> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&rand::random::<[u8; 8]>()).unwrap(),
        signature: issuer_key.algorithm(),
        issuer: countersign_pki::parse_rfc4514(issuer).unwrap(),
        validity: Validity { not_before: time(not_before), not_after: time(not_after) },
        subject: countersign_pki::parse_rfc4514(subject).unwrap(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(subject_spki).unwrap(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: if extensions.is_empty() { None } else { Some(extensions) },
    };
    let signature = issuer_key.sign(&tbs.to_der().unwrap());
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: issuer_key.algorithm(),
        signature: BitString::from_bytes(&signature).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// Writes `der` as PEM with `label` to `dir/name`.
pub fn write_pem(dir: &Path, name: &str, der: &[u8], label: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, countersign_pki::to_pem(der, label)).unwrap();
    path
}

/// Runs openssl; returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("the openssl binary must be installed");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn firmware_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-config").join(name)
}
