//! X.509 building for the emulator: the test root CA, each card's f9 attestation certificate
//! (issued by the root) and the per-slot attestation certificates (issued with the card's f9
//! key, carrying Yubico's 1.3.6.1.4.1.41482.3.x extensions). All signatures are ECDSA P-256
//! with SHA-256.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{BitString, OctetString, UintRef};
use der::{Decode, Encode};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use rand::RngCore;
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// Yubico PIV attestation extensions.
const YK_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const YK_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const YK_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const YK_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

/// A self-signed P-256 CA that issues the cards' f9 attestation certificates.
#[derive(Clone)]
pub struct TestRoot {
    key: SigningKey,
    name: Name,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for TestRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRoot").field("name", &self.name.to_string()).finish_non_exhaustive()
    }
}

impl TestRoot {
    /// Generates a fresh root named `CN=<name>`.
    pub fn generate(name: &str) -> TestRoot {
        let key = SigningKey::random(&mut rand::thread_rng());
        let name = cn(name);
        let spki = spki_of_p256(key.verifying_key());
        let ext = vec![basic_constraints(true)];
        let cert_der = issue(&key, &name, &name, spki, Some(ext));
        TestRoot { key, name, cert_der }
    }

    /// The root certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// The root certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// Issues the f9 attestation certificate for a card's attestation key.
    pub(crate) fn issue_f9(&self, f9: &SigningKey, serial: u32) -> Vec<u8> {
        let subject = f9_subject(serial);
        let ext = vec![basic_constraints(true)];
        issue(&self.key, &self.name, &subject, spki_of_p256(f9.verifying_key()), Some(ext))
    }
}

/// Subject of a card's f9 certificate (also the issuer of its slot attestations).
pub(crate) fn f9_subject(serial: u32) -> Name {
    cn(&format!("Yubico PIV Attestation {serial}"))
}

/// What the attestation of one slot states.
pub(crate) struct SlotAttestation<'a> {
    pub slot: u8,
    pub spki_der: &'a [u8],
    pub firmware: (u8, u8, u8),
    pub serial: u32,
    pub pin_policy: u8,
    pub touch_policy: u8,
}

/// Builds the certificate ATTEST (INS F9) returns for a generated key.
pub(crate) fn attest_slot(f9: &SigningKey, card_serial: u32, a: &SlotAttestation<'_>) -> Option<Vec<u8>> {
    let spki = SubjectPublicKeyInfoOwned::from_der(a.spki_der).ok()?;
    let subject = cn(&format!("YubiKey PIV Attestation {:02x}", a.slot));
    let serial_der = UintRef::new(&a.serial.to_be_bytes()).ok()?.to_der().ok()?;
    let ext = vec![
        raw_ext(YK_FIRMWARE, vec![a.firmware.0, a.firmware.1, a.firmware.2]),
        raw_ext(YK_SERIAL, serial_der),
        raw_ext(YK_POLICY, vec![a.pin_policy, a.touch_policy]),
        raw_ext(YK_FORM_FACTOR, vec![0x01]),
    ];
    Some(issue(f9, &f9_subject(card_serial), &subject, spki, Some(ext)))
}

/// SubjectPublicKeyInfo DER of a P-256 key.
pub(crate) fn spki_der_p256(key: &p256::ecdsa::VerifyingKey) -> Vec<u8> {
    key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
}

/// SubjectPublicKeyInfo DER of a P-384 key.
pub(crate) fn spki_der_p384(key: &p384::ecdsa::VerifyingKey) -> Vec<u8> {
    key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
}

/// PEM armour.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn spki_of_p256(key: &p256::ecdsa::VerifyingKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_der(&spki_der_p256(key)).expect("P-256 SPKI encodes")
}

fn cn(name: &str) -> Name {
    let escaped = name.replace(',', "\\,").replace('+', "\\+").replace('=', "\\=");
    Name::from_str(&format!("CN={escaped}")).unwrap_or_default()
}

fn basic_constraints(ca: bool) -> Extension {
    let bc = BasicConstraints { ca, path_len_constraint: None };
    let value = bc.to_der().unwrap_or_default();
    Extension { extn_id: BASIC_CONSTRAINTS, critical: true, extn_value: octets(value) }
}

fn raw_ext(oid: ObjectIdentifier, value: Vec<u8>) -> Extension {
    Extension { extn_id: oid, critical: false, extn_value: octets(value) }
}

fn octets(value: Vec<u8>) -> OctetString {
    OctetString::new(value).expect("extension value fits")
}

fn issue(
    signer: &SigningKey,
    issuer: &Name,
    subject: &Name,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Option<Vec<Extension>>,
) -> Vec<u8> {
    let mut serial = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut serial);
    serial[0] &= 0x7F;
    serial[0] |= 0x01;
    let alg = AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA256, parameters: None };
    let now = std::time::SystemTime::now() - Duration::from_secs(3600);
    let later = now + Duration::from_secs(3600 * 24 * 365 * 20);
    let validity = Validity {
        not_before: Time::try_from(now).unwrap_or(Time::INFINITY),
        not_after: Time::try_from(later).unwrap_or(Time::INFINITY),
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).unwrap_or_else(|_| SerialNumber::from(1u32)),
        signature: alg.clone(),
        issuer: issuer.clone(),
        validity,
        subject: subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions,
    };
    let tbs_der = tbs.to_der().expect("TBS certificate encodes");
    let sig: DerSignature = signer.sign(&tbs_der);
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(sig.as_bytes()).expect("signature fits"),
    };
    cert.to_der().expect("certificate encodes")
}
