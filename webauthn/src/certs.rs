//! X.509 for attestation statements: the leaf's requirements (WebAuthn §8.2.1), signatures by a
//! certificate's key, and the x5c chain up to the caller's trust anchors, with validity judged at
//! the `now` the caller passes. Must never read the clock, fetch anything (no AIA, no CRL), or
//! trust a chain that does not end at one of the caller's anchors.

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::DecodePublicKey;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use crate::cose::{self, COSE_ALG_ES256, COSE_ALG_RS256};
use crate::error::Error;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
/// id-fido-gen-ce-aaguid.
const FIDO_AAGUID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");

/// Parses one DER certificate of an x5c array.
pub(crate) fn parse(der: &[u8], which: &str) -> Result<Certificate, Error> {
    Certificate::from_der(der).map_err(|e| Error::Certificate(format!("{which} is not a DER X.509 certificate: {e}")))
}

fn spki_der(cert: &Certificate) -> Result<Vec<u8>, Error> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Error::Certificate(format!("public key cannot be encoded: {e}")))
}

/// Verifies an attestation signature (`alg` a COSE algorithm) with `cert`'s public key.
pub(crate) fn verify_by_cert(cert: &Certificate, alg: i64, message: &[u8], signature: &[u8]) -> Result<(), Error> {
    let spki = spki_der(cert)?;
    match alg {
        COSE_ALG_ES256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).map_err(|_| {
                Error::AttestationStatement("alg is ES256 and the certificate's key is not P-256".to_owned())
            })?;
            cose::verify_es256(&key, message, signature)
        }
        COSE_ALG_RS256 => {
            let key = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| {
                Error::AttestationStatement("alg is RS256 and the certificate's key is not RSA".to_owned())
            })?;
            cose::verify_rs256(&key, message, signature)
        }
        other => Err(Error::AttestationStatement(format!(
            "attestation certificate signature algorithm {other} is not supported (ES256, RS256)"
        ))),
    }
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&x509_cert::ext::Extension> {
    cert.tbs_certificate.extensions.as_ref()?.iter().find(|e| e.extn_id == oid)
}

fn basic_constraints(cert: &Certificate) -> Result<Option<BasicConstraints>, Error> {
    extension(cert, BASIC_CONSTRAINTS)
        .map(|ext| {
            BasicConstraints::from_der(ext.extn_value.as_bytes())
                .map_err(|e| Error::Certificate(format!("basic constraints are malformed: {e}")))
        })
        .transpose()
}

/// The requirements on a `packed` attestation leaf (§8.2.1): X.509 v3, subject OU
/// "Authenticator Attestation", not a CA, and the AAGUID extension (when present, not critical)
/// equal to authenticatorData's AAGUID.
pub(crate) fn check_packed_leaf(cert: &Certificate, aaguid: &[u8; 16]) -> Result<(), Error> {
    if cert.tbs_certificate.version != x509_cert::certificate::Version::V3 {
        return Err(Error::Certificate("packed attestation certificate is not X.509 version 3".to_owned()));
    }
    let has_ou = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .any(|rdn| rdn.0.iter().any(|atv| atv.oid == OU && atv.value.value() == b"Authenticator Attestation"));
    if !has_ou {
        return Err(Error::Certificate(
            "packed attestation certificate's subject has no OU \"Authenticator Attestation\"".to_owned(),
        ));
    }
    if basic_constraints(cert)?.is_some_and(|bc| bc.ca) {
        return Err(Error::Certificate(
            "packed attestation certificate is a CA (basic constraints CA true)".to_owned(),
        ));
    }
    if let Some(ext) = extension(cert, FIDO_AAGUID) {
        if ext.critical {
            return Err(Error::Certificate("the AAGUID extension is marked critical".to_owned()));
        }
        let value = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
            .map_err(|e| Error::Certificate(format!("the AAGUID extension is malformed: {e}")))?;
        if value.as_bytes() != aaguid {
            return Err(Error::Certificate(
                "the certificate's AAGUID extension differs from authenticatorData's AAGUID".to_owned(),
            ));
        }
    }
    Ok(())
}

fn check_validity(cert: &Certificate, which: &str, now: u64) -> Result<(), Error> {
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs();
    let not_after = validity.not_after.to_unix_duration().as_secs();
    if now < not_before {
        return Err(Error::Certificate(format!("{which} is not valid before {not_before} (now {now})")));
    }
    if now > not_after {
        return Err(Error::Certificate(format!("{which} expired at {not_after} (now {now})")));
    }
    Ok(())
}

/// Whether `issuer` signed `cert` (names match, issuer is a CA, signature verifies).
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("issuer name differs from the next certificate's subject".to_owned());
    }
    match basic_constraints(issuer) {
        Ok(Some(bc)) if bc.ca => {}
        _ => return Err("the issuing certificate is not a CA (basic constraints)".to_owned()),
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| format!("cannot encode the signed part: {e}"))?;
    let signature = cert.signature.as_bytes().ok_or("signature has unused bits")?;
    let spki = spki_der(issuer).map_err(|e| e.to_string())?;
    let alg = cert.signature_algorithm.oid;
    let ok = if alg == ECDSA_SHA256 {
        use p256::ecdsa::signature::Verifier;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
            .map_err(|_| "ecdsa-with-SHA256 and the issuer's key is not P-256")?;
        let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| "signature is not DER ECDSA")?;
        key.verify(&tbs, &sig).is_ok()
    } else if alg == ECDSA_SHA384 {
        use p384::ecdsa::signature::Verifier;
        let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki)
            .map_err(|_| "ecdsa-with-SHA384 and the issuer's key is not P-384")?;
        let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| "signature is not DER ECDSA")?;
        key.verify(&tbs, &sig).is_ok()
    } else if alg == RSA_SHA256 {
        let key = rsa::RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| "sha256WithRSAEncryption and the issuer's key is not RSA")?;
        cose::verify_rs256(&key, &tbs, signature).is_ok()
    } else {
        return Err(format!(
            "certificate signature algorithm {alg} is not supported (ECDSA P-256/SHA-256, P-384/SHA-384, RSA SHA-256)"
        ));
    };
    if ok {
        Ok(())
    } else {
        Err("signature does not verify with the issuer's key".to_owned())
    }
}

/// Verifies the x5c chain (leaf first) at `now`: each certificate valid and signed by the next,
/// the last one signed by (or equal to) one of `anchors` (DER). Returns whether the chain is
/// trusted: `false` only when `anchors` is empty (no trust decision asked for).
pub(crate) fn verify_chain(chain: &[Certificate], anchors: &[Vec<u8>], now: u64) -> Result<bool, Error> {
    let Some(last) = chain.last() else {
        return Err(Error::AttestationStatement("x5c is empty".to_owned()));
    };
    for (i, cert) in chain.iter().enumerate() {
        check_validity(cert, &format!("x5c certificate {i}"), now)?;
        if let Some(issuer) = chain.get(i + 1) {
            signed_by(cert, issuer).map_err(|e| {
                Error::Certificate(format!("x5c certificate {i} is not signed by certificate {}: {e}", i + 1))
            })?;
        }
    }
    if anchors.is_empty() {
        return Ok(false);
    }
    let last_der =
        last.to_der().map_err(|e| Error::Certificate(format!("cannot encode the last x5c certificate: {e}")))?;
    let mut reasons = Vec::new();
    for (index, anchor_der) in anchors.iter().enumerate() {
        let anchor = Certificate::from_der(anchor_der)
            .map_err(|e| Error::TrustAnchor { index, detail: format!("not a DER X.509 certificate: {e}") })?;
        if *anchor_der == last_der {
            return Ok(true);
        }
        match signed_by(last, &anchor) {
            Ok(()) => {
                check_validity(&anchor, &format!("trust anchor {index}"), now)?;
                return Ok(true);
            }
            Err(e) => reasons.push(format!("anchor {index}: {e}")),
        }
    }
    Err(Error::UntrustedAttestation(reasons.join("; ")))
}
