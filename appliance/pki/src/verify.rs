//! Signature and validity checks: a certificate's signature under an issuer key, a message signature under a
//! certificate's key (PIV authentication), plus the certificate summary and key comparison helpers.
//!
//! Keys: EC P-256 and P-384 (ECDSA with SHA-256/384/512 for certificates), RSA (PKCS#1 v1.5 with
//! SHA-256/384/512). SHA-1, RSA-PSS and other curves are refused as unsupported.

use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::PkiError;

/// A decoded certificate together with the exact bytes its signature covers.
pub(crate) struct ParsedCert {
    pub cert: Certificate,
    pub tbs: Vec<u8>,
}

impl ParsedCert {
    pub(crate) fn parse(der: &[u8], what: &str) -> Result<Self, PkiError> {
        let cert = Certificate::from_der(der).map_err(|e| PkiError::malformed(what, e))?;
        let tbs = first_element(der).ok_or_else(|| PkiError::malformed(what, "no TBSCertificate inside"))?.to_vec();
        Ok(ParsedCert { cert, tbs })
    }

    pub(crate) fn not_before(&self) -> i64 {
        unix_time(&self.cert.tbs_certificate.validity.not_before)
    }

    pub(crate) fn not_after(&self) -> i64 {
        unix_time(&self.cert.tbs_certificate.validity.not_after)
    }

    /// Fails with Expired / NotYetValid naming `what`.
    pub(crate) fn check_validity(&self, now: i64, what: &str) -> Result<(), PkiError> {
        if now < self.not_before() {
            return Err(PkiError::NotYetValid { what: what.to_string(), not_before: self.not_before(), now });
        }
        if now > self.not_after() {
            return Err(PkiError::Expired { what: what.to_string(), not_after: self.not_after(), now });
        }
        Ok(())
    }

    /// Checks that this certificate's signature was made by `issuer`'s key.
    pub(crate) fn verify_signed_by(&self, issuer: &SubjectPublicKeyInfoOwned) -> Result<(), PkiError> {
        let signature = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| PkiError::BadSignature("the signature BIT STRING has unused bits".to_string()))?;
        verify_with_algorithm(issuer, &self.cert.signature_algorithm, &self.tbs, signature)
    }
}

/// Header length and content length of the DER TLV at the start of `der`.
fn tlv_header(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let len = der.get(2..2 + count)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((2 + count, len))
}

/// The complete first TLV inside the SEQUENCE at the start of `der`: the bytes a certificate signature covers.
fn first_element(der: &[u8]) -> Option<&[u8]> {
    let (outer_header, _) = tlv_header(der)?;
    let inner = der.get(outer_header..)?;
    let (header, len) = tlv_header(inner)?;
    inner.get(..header.checked_add(len)?)
}

pub(crate) fn unix_time(time: &Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The public key of `spki` in a form we can verify with.
enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

fn public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, PkiError> {
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PkiError::malformed("the public key", "BIT STRING has unused bits"))?;
    match spki.algorithm.oid {
        rfc5912::ID_EC_PUBLIC_KEY => {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| PkiError::malformed("the EC public key", "no curve parameter"))?
                .decode_as()
                .map_err(|e| PkiError::Unsupported(format!("EC key parameters that are not a named curve: {e}")))?;
            match curve {
                rfc5912::SECP_256_R_1 => p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                    .map(PublicKey::P256)
                    .map_err(|e| PkiError::malformed("the P-256 public key", e)),
                rfc5912::SECP_384_R_1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                    .map(PublicKey::P384)
                    .map_err(|e| PkiError::malformed("the P-384 public key", e)),
                other => Err(PkiError::Unsupported(format!("EC curve {other} (only P-256 and P-384)"))),
            }
        }
        rfc5912::RSA_ENCRYPTION => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
                .map(PublicKey::Rsa)
                .map_err(|e| PkiError::malformed("the RSA public key", e))
        }
        other => Err(PkiError::Unsupported(format!("public key algorithm {other} (only EC and RSA)"))),
    }
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

fn digest(hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => Sha256::digest(message).to_vec(),
        Hash::Sha384 => Sha384::digest(message).to_vec(),
        Hash::Sha512 => Sha512::digest(message).to_vec(),
    }
}

/// How a signature's bytes are laid out.
#[derive(Clone, Copy, PartialEq)]
enum EcEncoding {
    Der,
    DerOrRaw,
}

fn verify_ecdsa(key: &PublicKey, hash: Hash, message: &[u8], sig: &[u8], enc: EcEncoding) -> Result<(), PkiError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let prehash = digest(hash, message);
    let bad = |e: p256::ecdsa::Error| PkiError::BadSignature(format!("the ECDSA signature does not verify ({e})"));
    let parse_err =
        |e: p256::ecdsa::Error| PkiError::BadSignature(format!("the ECDSA signature is neither DER nor raw r||s: {e}"));
    match key {
        PublicKey::P256(vk) => {
            let parsed = if enc == EcEncoding::DerOrRaw && sig.len() == 64 {
                p256::ecdsa::Signature::from_slice(sig).or_else(|_| p256::ecdsa::Signature::from_der(sig))
            } else {
                p256::ecdsa::Signature::from_der(sig)
            };
            vk.verify_prehash(&prehash, &parsed.map_err(parse_err)?).map_err(bad)
        }
        PublicKey::P384(vk) => {
            let parsed = if enc == EcEncoding::DerOrRaw && sig.len() == 96 {
                p384::ecdsa::Signature::from_slice(sig).or_else(|_| p384::ecdsa::Signature::from_der(sig))
            } else {
                p384::ecdsa::Signature::from_der(sig)
            };
            vk.verify_prehash(&prehash, &parsed.map_err(parse_err)?).map_err(bad)
        }
        PublicKey::Rsa(_) => Err(PkiError::BadSignature("an ECDSA signature algorithm with an RSA key".to_string())),
    }
}

fn verify_rsa(key: &PublicKey, hash: Hash, message: &[u8], sig: &[u8]) -> Result<(), PkiError> {
    let PublicKey::Rsa(key) = key else {
        return Err(PkiError::BadSignature("an RSA signature algorithm with an EC key".to_string()));
    };
    let scheme = match hash {
        Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
        Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
        Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
    };
    key.verify(scheme, &digest(hash, message), sig)
        .map_err(|e| PkiError::BadSignature(format!("the RSA PKCS#1 v1.5 signature does not verify ({e})")))
}

/// Verifies a certificate-style signature: the algorithm comes from `algorithm` (the signatureAlgorithm field).
pub(crate) fn verify_with_algorithm(
    issuer: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    let key = public_key(issuer)?;
    match algorithm.oid {
        rfc5912::ECDSA_WITH_SHA_256 => verify_ecdsa(&key, Hash::Sha256, message, signature, EcEncoding::Der),
        rfc5912::ECDSA_WITH_SHA_384 => verify_ecdsa(&key, Hash::Sha384, message, signature, EcEncoding::Der),
        rfc5912::ECDSA_WITH_SHA_512 => verify_ecdsa(&key, Hash::Sha512, message, signature, EcEncoding::Der),
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => verify_rsa(&key, Hash::Sha256, message, signature),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => verify_rsa(&key, Hash::Sha384, message, signature),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => verify_rsa(&key, Hash::Sha512, message, signature),
        other => Err(PkiError::Unsupported(format!(
            "signature algorithm {other} (supported: ECDSA and RSA PKCS#1 v1.5 with SHA-256/384/512)"
        ))),
    }
}

/// Verifies a signature made by the key of `cert_der` over `message`, and that the certificate is valid at
/// `now_unix`.
///
/// EC keys: ECDSA with the curve's hash (P-256: SHA-256, P-384: SHA-384); the signature is DER or raw r||s.
/// RSA keys: PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512 (the DigestInfo inside the signature says which).
pub fn verify_signature(cert_der: &[u8], message: &[u8], signature: &[u8], now_unix: i64) -> Result<(), PkiError> {
    let cert = ParsedCert::parse(cert_der, "the certificate")?;
    cert.check_validity(now_unix, "the certificate")?;
    let key = public_key(&cert.cert.tbs_certificate.subject_public_key_info)?;
    match key {
        PublicKey::P256(_) => verify_ecdsa(&key, Hash::Sha256, message, signature, EcEncoding::DerOrRaw),
        PublicKey::P384(_) => verify_ecdsa(&key, Hash::Sha384, message, signature, EcEncoding::DerOrRaw),
        PublicKey::Rsa(_) => [Hash::Sha256, Hash::Sha384, Hash::Sha512]
            .into_iter()
            .find(|hash| verify_rsa(&key, *hash, message, signature).is_ok())
            .map(|_| ())
            .ok_or_else(|| {
                PkiError::BadSignature(
                    "the RSA PKCS#1 v1.5 signature does not verify with SHA-256, SHA-384 or SHA-512".to_string(),
                )
            }),
    }
}

/// The size in bits of the RSA public key in `spki_der` (a DER SubjectPublicKeyInfo), which a
/// device registered as its own (a push token's phone). Refused: anything but RSA, a key that
/// does not decode.
pub fn rsa_key_bits(spki_der: &[u8]) -> Result<usize, PkiError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| PkiError::malformed("the public key", e))?;
    match public_key(&spki)? {
        PublicKey::Rsa(key) => {
            use rsa::traits::PublicKeyParts;
            Ok(key.n().bits())
        }
        PublicKey::P256(_) | PublicKey::P384(_) => {
            Err(PkiError::Unsupported("an EC key where an RSA key is expected".to_string()))
        }
    }
}

/// The PKCS#1 `RSAPublicKey` inside the RSA SubjectPublicKeyInfo `spki_der`: the form the
/// privacyIDEA Authenticator app reads the server's key in.
pub fn rsa_pkcs1_public_key(spki_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    rsa_key_bits(spki_der)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| PkiError::malformed("the public key", e))?;
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| PkiError::malformed("the public key", "BIT STRING has unused bits"))
}

/// Verifies an RSA PKCS#1 v1.5 signature with SHA-256 over `message` under the RSA key in
/// `spki_der` (a DER SubjectPublicKeyInfo): how privacyIDEA's push protocol signs, both ways.
pub fn verify_rsa_sha256(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), PkiError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| PkiError::malformed("the public key", e))?;
    verify_rsa(&public_key(&spki)?, Hash::Sha256, message, signature)
}

/// A summary of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514, most specific first.
    pub subject: String,
    /// RFC 4514, most specific first.
    pub issuer: String,
    /// Lowercase hex of the serial number (an unsigned integer: no leading 00 sign byte).
    pub serial_hex: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// The DER SubjectPublicKeyInfo of the certified key.
    pub spki_der: Vec<u8>,
    /// Lowercase hex SHA-256 of the whole certificate DER.
    pub sha256_fingerprint: String,
}

/// Lowercase hex of an unsigned big-endian integer, without the DER sign byte.
fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    hex::encode(&bytes[start..])
}

/// Summarises a DER certificate.
pub fn certificate_info(der: &[u8]) -> Result<CertInfo, PkiError> {
    let parsed = ParsedCert::parse(der, "the certificate")?;
    let tbs = &parsed.cert.tbs_certificate;
    Ok(CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial_hex: serial_hex(tbs.serial_number.as_bytes()),
        not_before: parsed.not_before(),
        not_after: parsed.not_after(),
        spki_der: tbs.subject_public_key_info.to_der().map_err(|e| PkiError::encode("the public key", e))?,
        sha256_fingerprint: hex::encode(Sha256::digest(der)),
    })
}

/// Whether two DER SubjectPublicKeyInfos hold the same key (EC points compared uncompressed). False when either
/// does not parse.
pub fn spki_matches(a: &[u8], b: &[u8]) -> bool {
    fn canonical(der: &[u8]) -> Option<Vec<u8>> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der).ok()?;
        match public_key(&spki).ok()? {
            PublicKey::P256(k) => Some([&[1u8][..], k.to_encoded_point(false).as_bytes()].concat()),
            PublicKey::P384(k) => Some([&[2u8][..], k.to_encoded_point(false).as_bytes()].concat()),
            PublicKey::Rsa(_) => spki.to_der().ok(),
        }
    }
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Refuses keys this crate cannot verify with (anything but EC P-256/P-384 and RSA).
pub(crate) fn check_supported_key(spki: &SubjectPublicKeyInfoOwned) -> Result<(), PkiError> {
    public_key(spki).map(|_| ())
}

/// Checks that `cert_der` carries a signature made by the key of `issuer_der` (pass the same bytes twice for a
/// self-signed certificate). Validity and names are not looked at.
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), PkiError> {
    let cert = ParsedCert::parse(cert_der, "the certificate")?;
    let issuer = ParsedCert::parse(issuer_der, "the issuer certificate")?;
    cert.verify_signed_by(&issuer.cert.tbs_certificate.subject_public_key_info)
}
