//! Issuing: the appliance CA's self-signed certificate and the certificates it issues for keys on cards. The
//! TBSCertificate is built here, signed by the `CaSigner` (the HSM), and the signature is checked against the
//! signer's public key before the certificate is handed out, so a misbehaving signer cannot produce a broken
//! certificate unnoticed.

use std::time::Duration;

use const_oid::db::rfc5280::{ID_CE_SUBJECT_KEY_IDENTIFIER, ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Any, BitString, Ia5String, OctetString};
use der::{DateTime, Decode, Encode, Tag};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::name::parse_rfc4514;
use crate::profile::{render_subject, CertificateProfile, SubjectVars};
use crate::verify::{verify_with_algorithm, ParsedCert};
use crate::{CaAlgorithm, CaSigner, PkiError};

/// Microsoft smartcard logon EKU.
pub const OID_MS_SMARTCARD_LOGON: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.2");
/// Microsoft User Principal Name (SAN otherName).
pub const OID_MS_UPN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.3");

/// Issued certificates start this many seconds before "now", for relying parties whose clocks lag a little.
pub const BACKDATE_SECONDS: i64 = 60;

/// 9999-12-31T23:59:59Z, the latest time X.509 can express.
const MAX_TIME: i64 = 253_402_300_799;
const DAY: i64 = 86_400;

fn x509_time(unix: i64) -> Result<Time, PkiError> {
    let secs = u64::try_from(unix.clamp(0, MAX_TIME)).map_err(|e| PkiError::encode("a time", e))?;
    let dt = DateTime::from_unix_duration(Duration::from_secs(secs)).map_err(|e| PkiError::encode("a time", e))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(der::asn1::UtcTime::from_date_time(dt).map_err(|e| PkiError::encode("a time", e))?))
    } else {
        Ok(Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt)))
    }
}

fn serial_number(serial: &[u8]) -> Result<SerialNumber, PkiError> {
    if serial.iter().all(|b| *b == 0) {
        return Err(PkiError::Config("the serial number must be non-empty and not zero; pass 16 random bytes".into()));
    }
    if serial.len() > 19 {
        return Err(PkiError::Config(format!("the serial number is {} bytes; at most 19 fit X.509", serial.len())));
    }
    SerialNumber::new(serial).map_err(|e| PkiError::encode("the serial number", e))
}

fn extension<T: Encode + AssociatedOid>(value: &T, critical: bool) -> Result<Extension, PkiError> {
    let der = value.to_der().map_err(|e| PkiError::encode("an extension", e))?;
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(der).map_err(|e| PkiError::encode("an extension", e))?,
    })
}

/// RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bits.
fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Result<OctetString, PkiError> {
    let hash = Sha256::digest(spki.subject_public_key.raw_bytes());
    OctetString::new(&hash[..20]).map_err(|e| PkiError::encode("the key identifier", e))
}

fn parse_spki(der: &[u8], what: &str) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| PkiError::malformed(what, e))
}

/// The signatureAlgorithm of everything the CA signs.
pub(crate) fn signature_algorithm(alg: CaAlgorithm) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: alg.signature_oid(), parameters: None }
}

/// Signs `tbs` with the CA signer, converts r||s to DER and checks the result under `signer_spki`.
pub(crate) fn sign_checked(
    signer: &dyn CaSigner,
    signer_spki: &SubjectPublicKeyInfoOwned,
    tbs: &[u8],
) -> Result<BitString, PkiError> {
    let alg = signer.algorithm();
    let raw = signer.sign_raw(tbs)?;
    if raw.len() != alg.raw_signature_len() {
        return Err(PkiError::Signer(format!(
            "returned {} bytes, a raw {alg:?} signature is {} bytes (r||s)",
            raw.len(),
            alg.raw_signature_len()
        )));
    }
    let der = match alg {
        CaAlgorithm::EcP256 => p256::ecdsa::Signature::from_slice(&raw).map(|s| s.to_der().as_bytes().to_vec()),
        CaAlgorithm::EcP384 => p384::ecdsa::Signature::from_slice(&raw).map(|s| s.to_der().as_bytes().to_vec()),
    }
    .map_err(|e| PkiError::Signer(format!("returned an invalid r||s signature: {e}")))?;
    verify_with_algorithm(signer_spki, &signature_algorithm(alg), tbs, &der).map_err(|e| {
        PkiError::Signer(format!("its signature does not verify under its own public key ({e}); check the key pairing"))
    })?;
    BitString::from_bytes(&der).map_err(|e| PkiError::encode("the signature", e))
}

fn signer_spki(signer: &dyn CaSigner) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    let spki = parse_spki(&signer.public_key_spki_der()?, "the signer's public key")?;
    let expected = match signer.algorithm() {
        CaAlgorithm::EcP256 => const_oid::db::rfc5912::SECP_256_R_1,
        CaAlgorithm::EcP384 => const_oid::db::rfc5912::SECP_384_R_1,
    };
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != const_oid::db::rfc5912::ID_EC_PUBLIC_KEY || curve != Some(expected) {
        return Err(PkiError::Signer(format!(
            "its public key is not an EC key on the curve of {:?}",
            signer.algorithm()
        )));
    }
    Ok(spki)
}

fn sign_certificate(
    signer: &dyn CaSigner,
    spki: &SubjectPublicKeyInfoOwned,
    tbs: TbsCertificate,
) -> Result<Vec<u8>, PkiError> {
    let tbs_der = tbs.to_der().map_err(|e| PkiError::encode("the TBSCertificate", e))?;
    let signature = sign_checked(signer, spki, &tbs_der)?;
    let cert =
        Certificate { tbs_certificate: tbs, signature_algorithm: signature_algorithm(signer.algorithm()), signature };
    cert.to_der().map_err(|e| PkiError::encode("the certificate", e))
}

/// The appliance CA's self-signed certificate: basicConstraints CA:TRUE pathlen 0 (critical), keyUsage
/// keyCertSign + cRLSign (critical), subjectKeyIdentifier. `serial` is 16 random bytes from the caller.
pub fn self_signed_ca(
    signer: &dyn CaSigner,
    subject: &str,
    serial: &[u8],
    not_before_unix: i64,
    validity_days: u32,
) -> Result<Vec<u8>, PkiError> {
    if validity_days == 0 {
        return Err(PkiError::Config("the CA validity must be at least one day".to_string()));
    }
    let spki = signer_spki(signer)?;
    let name = parse_rfc4514(subject)?;
    let not_after = not_before_unix.saturating_add(i64::from(validity_days) * DAY);
    let ski = key_identifier(&spki)?;
    let extensions = vec![
        extension(&BasicConstraints { ca: true, path_len_constraint: Some(0) }, true)?,
        extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
        extension(&SubjectKeyIdentifier(ski), false)?,
    ];
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial_number(serial)?,
        signature: signature_algorithm(signer.algorithm()),
        issuer: name.clone(),
        validity: Validity { not_before: x509_time(not_before_unix)?, not_after: x509_time(not_after)? },
        subject: name,
        subject_public_key_info: spki.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    sign_certificate(signer, &spki, tbs)
}

/// Issues a certificate for a key generated on a card.
///
/// keyUsage digitalSignature (critical), EKUs per profile, SAN otherName UPN when `profile.upn_domain` is set,
/// basicConstraints CA:FALSE (critical), authorityKeyIdentifier (the CA's SKI), subjectKeyIdentifier.
/// notBefore is `now_unix` less [`BACKDATE_SECONDS`] (not before the CA's notBefore), notAfter is
/// `now + validity_days` clamped to the CA's notAfter. Refused when the CA certificate's key is not the signer's,
/// when the CA certificate is not a CA, or when `now_unix` is outside the CA certificate's validity.
pub fn issue_certificate(
    signer: &dyn CaSigner,
    ca_cert_der: &[u8],
    subject_spki_der: &[u8],
    profile: &CertificateProfile,
    vars: &SubjectVars,
    serial: &[u8],
    now_unix: i64,
) -> Result<Vec<u8>, PkiError> {
    let spki = signer_spki(signer)?;
    let ca = ParsedCert::parse(ca_cert_der, "the CA certificate")?;
    let ca_tbs = &ca.cert.tbs_certificate;
    let ca_spki_der = ca_tbs.subject_public_key_info.to_der().map_err(|e| PkiError::encode("the CA key", e))?;
    let signer_spki_der = spki.to_der().map_err(|e| PkiError::encode("the signer key", e))?;
    if !crate::spki_matches(&ca_spki_der, &signer_spki_der) {
        return Err(PkiError::SignerKeyMismatch);
    }
    ca.check_validity(now_unix, "the CA certificate")?;
    let mut ca_ski = None;
    let mut is_ca = false;
    for ext in ca_tbs.extensions.iter().flatten() {
        if ext.extn_id == ID_CE_SUBJECT_KEY_IDENTIFIER {
            let ski = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .map_err(|e| PkiError::malformed("the CA certificate's subjectKeyIdentifier", e))?;
            ca_ski = Some(ski.0);
        } else if ext.extn_id == BasicConstraints::OID {
            let bc = BasicConstraints::from_der(ext.extn_value.as_bytes())
                .map_err(|e| PkiError::malformed("the CA certificate's basicConstraints", e))?;
            is_ca = bc.ca;
        }
    }
    if !is_ca {
        return Err(PkiError::Config("the CA certificate has no basicConstraints CA:TRUE".to_string()));
    }
    let ca_ski = match ca_ski {
        Some(ski) => ski,
        None => key_identifier(&ca_tbs.subject_public_key_info)?,
    };

    let subject_spki = parse_spki(subject_spki_der, "the card's public key")?;
    crate::verify::check_supported_key(&subject_spki)?;
    let subject = parse_rfc4514(&render_subject(&profile.subject, vars)?)?;

    if profile.validity_days == 0 {
        return Err(PkiError::Config("profile.validity_days must be at least 1".to_string()));
    }
    let not_before = now_unix.saturating_sub(BACKDATE_SECONDS).max(ca.not_before());
    let not_after = now_unix.saturating_add(i64::from(profile.validity_days) * DAY).min(ca.not_after());

    let mut extensions = vec![
        extension(&BasicConstraints { ca: false, path_len_constraint: None }, true)?,
        extension(&KeyUsage(KeyUsages::DigitalSignature.into()), true)?,
    ];
    let mut ekus = Vec::new();
    if profile.server_auth {
        ekus.push(ID_KP_SERVER_AUTH);
    }
    if profile.client_auth {
        ekus.push(ID_KP_CLIENT_AUTH);
    }
    if profile.smartcard_logon {
        ekus.push(OID_MS_SMARTCARD_LOGON);
    }
    if !ekus.is_empty() {
        extensions.push(extension(&ExtendedKeyUsage(ekus), false)?);
    }
    let mut san = Vec::new();
    if let Some(domain) = profile.upn_domain.as_deref().filter(|d| !d.is_empty()) {
        let upn = format!("{}@{domain}", vars.login);
        let value = Any::new(Tag::Utf8String, upn.as_bytes()).map_err(|e| PkiError::encode("the UPN", e))?;
        san.push(GeneralName::OtherName(OtherName { type_id: OID_MS_UPN, value }));
    }
    for name in &profile.server_names {
        san.push(match name.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => GeneralName::IpAddress(
                OctetString::new(ip.octets().to_vec()).map_err(|e| PkiError::encode("an IP address", e))?,
            ),
            Ok(std::net::IpAddr::V6(ip)) => GeneralName::IpAddress(
                OctetString::new(ip.octets().to_vec()).map_err(|e| PkiError::encode("an IP address", e))?,
            ),
            Err(_) => GeneralName::DnsName(
                Ia5String::new(name).map_err(|_| PkiError::Config(format!("server name {name:?} is not ASCII")))?,
            ),
        });
    }
    if !san.is_empty() {
        extensions.push(extension(&SubjectAltName(san), false)?);
    }
    extensions.push(extension(
        &AuthorityKeyIdentifier {
            key_identifier: Some(ca_ski),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
        false,
    )?);
    extensions.push(extension(&SubjectKeyIdentifier(key_identifier(&subject_spki)?), false)?);

    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial_number(serial)?,
        signature: signature_algorithm(signer.algorithm()),
        issuer: ca_tbs.subject.clone(),
        validity: Validity { not_before: x509_time(not_before)?, not_after: x509_time(not_after)? },
        subject,
        subject_public_key_info: subject_spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    sign_certificate(signer, &spki, tbs)
}

pub(crate) fn signer_public_key(signer: &dyn CaSigner) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    signer_spki(signer)
}
