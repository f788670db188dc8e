//! YubiKey PIV attestation. `ykman piv keys attest` / the PIV ATTEST instruction returns a certificate for the key
//! in a slot, signed by the card's attestation key, whose certificate is PIV object 5FFF01 (slot f9). The f9
//! certificate is issued by Yubico: directly by "Yubico PIV Root CA Serial 263751" before firmware 5.7.4, and via
//! "Yubico PIV Attestation {A,B} 1" and "Yubico Attestation Intermediate {A,B} 1" under "Yubico Attestation Root 1"
//! from 5.7.4 on (those intermediates are not on the card: pass them as `intermediates`).
//!
//! Checked: every signature from the attestation certificate up to a trust anchor, and every certificate's
//! validity at `now`. Not checked, on purpose: basicConstraints/keyUsage/path length (early f9 certificates lack
//! CA:TRUE), names beyond issuer/subject matching for path building, revocation. Trust comes only from the
//! anchors the appliance configures.

use std::path::PathBuf;

use const_oid::ObjectIdentifier;
use der::asn1::Uint;
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::pem::certificates_from_pem;
use crate::verify::ParsedCert;
use crate::PkiError;

/// Firmware version of the card: 3 raw bytes.
pub const OID_YUBICO_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
/// Device serial number: DER INTEGER.
pub const OID_YUBICO_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
/// PIN policy and touch policy: 2 raw bytes.
pub const OID_YUBICO_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
/// Form factor: 1 raw byte.
pub const OID_YUBICO_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

/// Longest chain walked above f9 before giving up.
const MAX_DEPTH: usize = 6;

/// The certificates the appliance trusts to vouch for cards.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    certs: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Every CERTIFICATE in `pem` becomes an anchor; at least one is required.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let certs = certificates_from_pem(pem)?;
        if certs.is_empty() {
            return Err(PkiError::Pem("no CERTIFICATE block found".to_string()));
        }
        for der in &certs {
            ParsedCert::parse(der, "a trust anchor")?;
        }
        Ok(TrustAnchors { certs })
    }

    /// Reads every file; errors name the file. Each file must hold at least one certificate.
    pub fn from_pem_files(paths: &[PathBuf]) -> Result<Self, PkiError> {
        let mut certs = Vec::new();
        for path in paths {
            let file_err = |reason: String| PkiError::TrustAnchorFile { path: path.display().to_string(), reason };
            let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
            let anchors = Self::from_pem(&text).map_err(|e| file_err(e.to_string()))?;
            certs.extend(anchors.certs);
        }
        if certs.is_empty() {
            return Err(PkiError::Config("attestation_roots lists no file; at least one root is needed".to_string()));
        }
        Ok(TrustAnchors { certs })
    }

    /// The number of anchor certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True when there is no anchor (never, for a value built by `from_pem*`).
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The DER of each anchor.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.certs
    }
}

/// What the attestation says about the key on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedKey {
    /// The attested key's DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// "9a" from the subject CN "YubiKey PIV Attestation 9a".
    pub slot: Option<String>,
    /// The card's serial number, when the attestation carries it.
    pub device_serial: Option<u32>,
    /// The card's firmware version (major, minor, patch).
    pub firmware: Option<(u8, u8, u8)>,
    /// 1 never, 2 once per session, 3 always (Yubico's values).
    pub pin_policy: Option<u8>,
    /// 1 never, 2 always, 3 cached.
    pub touch_policy: Option<u8>,
    /// Yubico's form factor code (keychain, nano, ...).
    pub form_factor: Option<u8>,
}

fn read_extensions(cert: &Certificate, key: &mut AttestedKey) -> Result<(), PkiError> {
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            OID_YUBICO_FIRMWARE => {
                if let [major, minor, patch] = value {
                    key.firmware = Some((*major, *minor, *patch));
                }
            }
            OID_YUBICO_SERIAL => {
                let serial = Uint::from_der(value)
                    .map_err(|e| PkiError::malformed("the attestation's serial number extension", e))?;
                let bytes = serial.as_bytes();
                if bytes.len() <= 4 {
                    let mut buf = [0u8; 4];
                    buf[4 - bytes.len()..].copy_from_slice(bytes);
                    key.device_serial = Some(u32::from_be_bytes(buf));
                }
            }
            OID_YUBICO_POLICY => {
                if let [pin, touch, ..] = value {
                    key.pin_policy = Some(*pin);
                    key.touch_policy = Some(*touch);
                }
            }
            OID_YUBICO_FORM_FACTOR => {
                if let [form, ..] = value {
                    key.form_factor = Some(*form);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn slot_from_subject(cert: &Certificate) -> Option<String> {
    let cn = crate::name::first_attribute(&cert.tbs_certificate.subject, const_oid::db::rfc4519::CN)?;
    let slot = cn.strip_prefix("YubiKey PIV Attestation ")?.trim();
    (!slot.is_empty()).then(|| slot.to_ascii_lowercase())
}

fn same_name(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Verifies a PIV attestation: the attestation certificate is signed by the card's f9 certificate, which chains
/// (directly or through `intermediates`) to one of `anchors`; every certificate on the way is valid at `now_unix`.
/// Returns the attested key and the Yubico extensions.
pub fn verify_attestation(
    attestation_der: &[u8],
    f9_cert_der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    now_unix: i64,
) -> Result<AttestedKey, PkiError> {
    let leaf = ParsedCert::parse(attestation_der, "the attestation certificate")?;
    let f9 = ParsedCert::parse(f9_cert_der, "the card's f9 attestation certificate")?;

    leaf.verify_signed_by(&f9.cert.tbs_certificate.subject_public_key_info)
        .map_err(|e| PkiError::AttestationNotSignedByF9(e.to_string()))?;
    leaf.check_validity(now_unix, "the attestation certificate")?;
    f9.check_validity(now_unix, "the card's f9 attestation certificate")?;

    let anchors: Vec<ParsedCert> =
        anchors.certificates().iter().map(|der| ParsedCert::parse(der, "a trust anchor")).collect::<Result<_, _>>()?;
    let pool: Vec<ParsedCert> = intermediates
        .iter()
        .map(|der| ParsedCert::parse(der, "an attestation intermediate"))
        .collect::<Result<_, _>>()?;

    let mut current = &f9;
    let mut depth = 0;
    loop {
        let issuer_name = &current.cert.tbs_certificate.issuer;
        let signs_current = |candidate: &&ParsedCert| {
            same_name(&candidate.cert.tbs_certificate.subject, issuer_name)
                && current.verify_signed_by(&candidate.cert.tbs_certificate.subject_public_key_info).is_ok()
        };
        if let Some(anchor) = anchors.iter().find(signs_current) {
            anchor.check_validity(now_unix, &format!("the trust anchor {}", anchor.cert.tbs_certificate.subject))?;
            break;
        }
        let next = pool.iter().find(signs_current).filter(|_| depth < MAX_DEPTH);
        match next {
            Some(intermediate) if !std::ptr::eq(intermediate, current) => {
                intermediate.check_validity(
                    now_unix,
                    &format!("the attestation intermediate {}", intermediate.cert.tbs_certificate.subject),
                )?;
                current = intermediate;
                depth += 1;
            }
            _ => return Err(PkiError::Untrusted { issuer: issuer_name.to_string() }),
        }
    }

    let mut key = AttestedKey {
        spki_der: leaf
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| PkiError::encode("the attested key", e))?,
        slot: slot_from_subject(&leaf.cert),
        device_serial: None,
        firmware: None,
        pin_policy: None,
        touch_policy: None,
        form_factor: None,
    };
    read_extensions(&leaf.cert, &mut key)?;
    Ok(key)
}
