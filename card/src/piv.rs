//! The PIV applet (NIST SP 800-73) with YubiKey's extensions: version, serial, metadata,
//! management-key mutual authentication (3DES and AES), PIN and PUK changes, on-card key
//! generation, attestation, and certificate objects.
//!
//! Written over raw APDUs rather than the `yubikey` crate: that crate speaks only 3DES
//! management keys (firmware 5.7 defaults to AES-192), insists on exactly one key present
//! unless opened by serial, and resets the card when its handle drops. One client here serves
//! both key algorithms and any reader. Nothing in this module logs a PIN, PUK or key.

use countersign_core::keys::KeyAlgorithm;
use zeroize::Zeroizing;

use super::management_key::{ManagementKey, MgmAlgorithm};
use super::tlv;
use super::transport::{Card, Response};
use super::DeviceError;

/// The application identifier of the PIV applet, for SELECT.
pub const PIV_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];

/// Key reference of the card management key.
const MGM_KEY_REF: u8 = 0x9B;
const PIN_REF: u8 = 0x80;
const PUK_REF: u8 = 0x81;

/// A key slot enrolment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// 9a: PIV authentication.
    Authentication,
    /// 9c: digital signature.
    Signature,
}

impl Slot {
    /// The slot named `9a` or `9c` (any case); `None` for any other text.
    pub fn parse(s: &str) -> Option<Slot> {
        match s.to_ascii_lowercase().as_str() {
            "9a" => Some(Slot::Authentication),
            "9c" => Some(Slot::Signature),
            _ => None,
        }
    }

    /// The slot's PIV key reference (0x9A or 0x9C).
    pub fn key_ref(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
        }
    }

    /// The data object holding the slot's certificate.
    pub fn object(self) -> u32 {
        match self {
            Slot::Authentication => 0x5FC105,
            Slot::Signature => 0x5FC10A,
        }
    }

    /// The slot's name: `9a` or `9c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Authentication => "9a",
            Slot::Signature => "9c",
        }
    }
}

/// Object of the attestation certificate (slot f9).
pub const ATTESTATION_OBJECT: u32 = 0x5FFF01;

/// Key algorithms the card can generate for enrolment.
pub fn card_algorithm(alg: KeyAlgorithm) -> Result<u8, DeviceError> {
    match alg {
        KeyAlgorithm::EcP256 => Ok(0x11),
        KeyAlgorithm::EcP384 => Ok(0x14),
        KeyAlgorithm::Rsa2048 => Ok(0x07),
        other => Err(DeviceError::Invalid(format!(
            "PIV cards cannot generate {other} keys; use ec-p256, ec-p384 or rsa-2048"
        ))),
    }
}

/// PIN policy (YubiKey): when the card asks for the PIN before using a slot key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinPolicy {
    /// The card's default for the slot.
    Default,
    /// The key is used without the PIN.
    Never,
    /// The PIN once per session.
    Once,
    /// The PIN before every use.
    Always,
}

impl PinPolicy {
    fn id(self) -> Option<u8> {
        match self {
            PinPolicy::Default => None,
            PinPolicy::Never => Some(1),
            PinPolicy::Once => Some(2),
            PinPolicy::Always => Some(3),
        }
    }
}

/// Touch policy (YubiKey): whether the key must be touched for each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TouchPolicy {
    /// The card's default for the slot.
    Default,
    /// No touch needed.
    Never,
    /// A touch for every use.
    Always,
    /// A touch, which then counts for uses in the next few seconds.
    Cached,
}

impl TouchPolicy {
    fn id(self) -> Option<u8> {
        match self {
            TouchPolicy::Default => None,
            TouchPolicy::Never => Some(1),
            TouchPolicy::Always => Some(2),
            TouchPolicy::Cached => Some(3),
        }
    }
}

/// GET METADATA's answer: (tag, value) pairs.
pub type Metadata = Vec<(u16, Vec<u8>)>;

/// The PIV applet, selected on one card.
#[derive(Debug)]
pub struct Piv<'a> {
    card: &'a Card,
}

fn check(r: Response, what: &str) -> Result<Vec<u8>, DeviceError> {
    match r.sw {
        0x9000 => Ok(r.data),
        0x6982 => Err(DeviceError::Card(format!("{what}: the card refused (security status not satisfied)"))),
        0x6983 => Err(DeviceError::Locked(format!("{what}: blocked on the card"))),
        sw if sw & 0xFFF0 == 0x63C0 => {
            Err(DeviceError::Card(format!("{what}: wrong value, {} tries left on the card", sw & 0x000F)))
        }
        0x6A82 | 0x6A88 => Err(DeviceError::Card(format!("{what}: not present on the card"))),
        0x6D00 => Err(DeviceError::Card(format!("{what}: the card does not support this instruction"))),
        sw => Err(DeviceError::Card(format!("{what}: the card answered {sw:04X}"))),
    }
}

/// A PIN or PUK padded with 0xFF to the 8 bytes PIV wants.
fn padded(secret: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>, DeviceError> {
    if secret.len() < 6 || secret.len() > 8 {
        return Err(DeviceError::Invalid(format!("a PIV {what} has 6 to 8 characters")));
    }
    let mut out = Zeroizing::new(secret.to_vec());
    out.resize(8, 0xFF);
    Ok(out)
}

impl<'a> Piv<'a> {
    /// Selects the PIV application; a card without one is not a PIV card.
    pub fn select(card: &'a Card) -> Result<Piv<'a>, DeviceError> {
        let r = card.send(0x00, 0xA4, 0x04, 0x00, PIV_AID)?;
        if !r.ok() {
            return Err(DeviceError::WrongKind(format!(
                "the card in {} has no PIV application (SELECT answered {:04X})",
                card.reader(),
                r.sw
            )));
        }
        Ok(Piv { card })
    }

    /// YubiKey firmware version; `None` on cards without the YubiKey extension.
    pub fn version(&self) -> Result<Option<(u8, u8, u8)>, DeviceError> {
        Ok(version_of(&self.card.send(0x00, 0xFD, 0x00, 0x00, &[])?))
    }

    /// YubiKey serial number; `None` on cards without the YubiKey extension.
    pub fn serial(&self) -> Result<Option<u32>, DeviceError> {
        Ok(serial_of(&self.card.send(0x00, 0xF8, 0x00, 0x00, &[])?))
    }

    /// YubiKey GET METADATA for a key or PIN reference: `None` when the slot is empty or the
    /// card does not support it (firmware before 5.3, other PIV cards).
    pub fn metadata(&self, key_ref: u8) -> Result<Option<Metadata>, DeviceError> {
        metadata_of(&self.card.send(0x00, 0xF7, 0x00, key_ref, &[])?)
    }

    /// The algorithm of the card's management key: from metadata when the card has it; 3DES,
    /// the only choice before metadata existed, otherwise.
    pub fn management_key_algorithm(&self) -> Result<MgmAlgorithm, DeviceError> {
        mgm_algorithm_of(self.metadata(MGM_KEY_REF)?.as_ref())
    }

    /// Whether the card says its management key is still the factory default.
    pub fn management_key_is_default(&self) -> Result<Option<bool>, DeviceError> {
        Ok(mgm_default_of(self.metadata(MGM_KEY_REF)?))
    }

    /// Mutual authentication with the management key: we prove we hold it by decrypting the
    /// card's witness, and the card proves it does by encrypting our challenge (`random`).
    pub fn authenticate(&self, key: &ManagementKey, random: &[u8]) -> Result<(), DeviceError> {
        let alg = key.alg.id();
        let r = self.card.send(0x00, 0x87, alg, MGM_KEY_REF, &tlv::tlv(0x7C, &[0x80, 0x00]))?;
        let body = check(r, "management key authentication")?;
        let witness = witness_of(&body)?;
        let decrypted = Zeroizing::new(key.decrypt_block(witness)?);
        let challenge = random
            .get(..key.alg.block_len())
            .ok_or_else(|| DeviceError::Invalid("not enough random bytes for the challenge".into()))?;
        let mut dynamic = Vec::new();
        tlv::put(&mut dynamic, 0x80, &decrypted);
        tlv::put(&mut dynamic, 0x81, challenge);
        let r = self.card.send(0x00, 0x87, alg, MGM_KEY_REF, &tlv::tlv(0x7C, &dynamic))?;
        if r.sw == 0x6982 || r.sw & 0xFFF0 == 0x63C0 {
            return Err(DeviceError::WrongManagementKey);
        }
        let body = check(r, "management key authentication")?;
        let answer = answer_of(&body)?;
        let expected = key.encrypt_block(challenge)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(answer, expected.as_slice())) {
            return Err(DeviceError::Card(
                "the card's answer to our challenge is wrong: it does not hold this management key; do not trust it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Replaces the management key (needs a prior [`Piv::authenticate`]).
    pub fn set_management_key(&self, key: &ManagementKey) -> Result<(), DeviceError> {
        let mut data = Zeroizing::new(vec![key.alg.id(), MGM_KEY_REF, key.alg.key_len() as u8]);
        data.extend_from_slice(key.bytes());
        let r = self.card.send(0x00, 0xFF, 0xFF, 0xFF, &data)?;
        check(r, "setting the management key").map(|_| ())
    }

    /// Presents the PIN (6 to 8 characters) to the card; a wrong one says how many tries are left.
    pub fn verify_pin(&self, pin: &[u8]) -> Result<(), DeviceError> {
        let r = self.card.send(0x00, 0x20, 0x00, PIN_REF, &padded(pin, "PIN")?)?;
        check(r, "PIN").map(|_| ())
    }

    /// Changes the PIN from `old` to `new` (each 6 to 8 characters).
    pub fn change_pin(&self, old: &[u8], new: &[u8]) -> Result<(), DeviceError> {
        self.change_reference(PIN_REF, old, new, "PIN")
    }

    /// Changes the PUK from `old` to `new` (each 6 to 8 characters).
    pub fn change_puk(&self, old: &[u8], new: &[u8]) -> Result<(), DeviceError> {
        self.change_reference(PUK_REF, old, new, "PUK")
    }

    fn change_reference(&self, reference: u8, old: &[u8], new: &[u8], what: &str) -> Result<(), DeviceError> {
        let mut data = padded(old, what)?;
        data.extend_from_slice(&padded(new, what)?);
        let r = self.card.send(0x00, 0x24, 0x00, reference, &data)?;
        check(r, &format!("changing the {what}")).map(|_| ())
    }

    /// Generates a key pair in `slot` on the card; returns its public key.
    pub fn generate(
        &self,
        slot: Slot,
        alg: KeyAlgorithm,
        pin: PinPolicy,
        touch: TouchPolicy,
    ) -> Result<CardKey, DeviceError> {
        let mut template = vec![0x80, 0x01, card_algorithm(alg)?];
        if let Some(p) = pin.id() {
            template.extend_from_slice(&[0xAA, 0x01, p]);
        }
        if let Some(t) = touch.id() {
            template.extend_from_slice(&[0xAB, 0x01, t]);
        }
        let r = self.card.send(0x00, 0x47, 0x00, slot.key_ref(), &tlv::tlv(0xAC, &template))?;
        public_key_of(&check(r, "generating the key")?, alg)
    }

    /// The attestation certificate of the key in `slot` (YubiKey), DER.
    pub fn attest(&self, slot: Slot) -> Result<Vec<u8>, DeviceError> {
        let r = self.card.send(0x00, 0xF9, slot.key_ref(), 0x00, &[])?;
        check(r, "attesting the key")
    }

    /// Reads a data object; `None` when the card has none.
    pub fn read_object(&self, id: u32) -> Result<Option<Vec<u8>>, DeviceError> {
        let tag = id.to_be_bytes();
        object_of(self.card.send(0x00, 0xCB, 0x3F, 0xFF, &tlv::tlv(0x5C, &tag[1..]))?)
    }

    /// Writes a data object (needs management key authentication).
    pub fn write_object(&self, id: u32, value: &[u8]) -> Result<(), DeviceError> {
        let tag = id.to_be_bytes();
        let mut data = tlv::tlv(0x5C, &tag[1..]);
        tlv::put(&mut data, 0x53, value);
        let r = self.card.send(0x00, 0xDB, 0x3F, 0xFF, &data)?;
        check(r, "writing a data object").map(|_| ())
    }

    /// Writes `der` as the certificate of `slot` (uncompressed, with the PIV LRC tag).
    pub fn write_certificate(&self, slot: Slot, der: &[u8]) -> Result<(), DeviceError> {
        let mut value = tlv::tlv(0x70, der);
        tlv::put(&mut value, 0x71, &[0x00]);
        tlv::put(&mut value, 0xFE, &[]);
        self.write_object(slot.object(), &value)
    }

    /// The certificate in `slot`, DER; `None` when the slot has none.
    pub fn read_certificate(&self, slot: Slot) -> Result<Option<Vec<u8>>, DeviceError> {
        self.read_certificate_object(slot.object())
    }

    /// The certificate in a certificate object such as [`ATTESTATION_OBJECT`].
    pub fn read_certificate_object(&self, id: u32) -> Result<Option<Vec<u8>>, DeviceError> {
        let Some(obj) = self.read_object(id)? else { return Ok(None) };
        certificate_of(&obj)
    }
}

// The card's answers, read without the card: each function takes what `send` returned, so the
// parsing can be tested and fuzzed on bytes alone.

/// GET VERSION's answer (YubiKey).
pub(crate) fn version_of(r: &Response) -> Option<(u8, u8, u8)> {
    match (r.ok(), r.data.as_slice()) {
        (true, [a, b, c, ..]) => Some((*a, *b, *c)),
        _ => None,
    }
}

/// GET SERIAL's answer (YubiKey).
pub(crate) fn serial_of(r: &Response) -> Option<u32> {
    match (r.ok(), r.data.as_slice()) {
        (true, [a, b, c, d]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// GET METADATA's answer: `None` when the card refused (empty slot, no support).
pub(crate) fn metadata_of(r: &Response) -> Result<Option<Metadata>, DeviceError> {
    if !r.ok() {
        return Ok(None);
    }
    Ok(Some(tlv::parse(&r.data)?.into_iter().map(|(t, v)| (t, v.to_vec())).collect()))
}

/// The management key algorithm from its metadata; 3DES without any.
pub(crate) fn mgm_algorithm_of(meta: Option<&Metadata>) -> Result<MgmAlgorithm, DeviceError> {
    let Some(meta) = meta else {
        return Ok(MgmAlgorithm::TripleDes);
    };
    let id = meta.iter().find(|(t, _)| *t == 0x01).and_then(|(_, v)| v.first().copied());
    match id {
        Some(id) => MgmAlgorithm::from_id(id).ok_or_else(|| {
            DeviceError::Protocol(format!("the card reports management key algorithm {id:#04x}, unknown here"))
        }),
        None => Ok(MgmAlgorithm::TripleDes),
    }
}

/// Whether metadata says the key (or PIN) is still the factory default.
pub(crate) fn mgm_default_of(meta: Option<Metadata>) -> Option<bool> {
    meta.and_then(|m| m.into_iter().find(|(t, _)| *t == 0x05)).map(|(_, v)| v.first() == Some(&1))
}

/// The card's witness in the first step of mutual authentication.
pub(crate) fn witness_of(body: &[u8]) -> Result<&[u8], DeviceError> {
    let inner = tlv::find(body, 0x7C)?.ok_or_else(|| DeviceError::Protocol("no 7C template in the witness".into()))?;
    tlv::find(inner, 0x80)?.ok_or_else(|| DeviceError::Protocol("no witness from the card".into()))
}

/// The card's answer to our challenge in the second step of mutual authentication.
pub(crate) fn answer_of(body: &[u8]) -> Result<&[u8], DeviceError> {
    let inner = tlv::find(body, 0x7C)?.ok_or_else(|| DeviceError::Protocol("no 7C template in the answer".into()))?;
    tlv::find(inner, 0x82)?.ok_or_else(|| DeviceError::Protocol("no answer from the card".into()))
}

/// A public key a card generated, as the card gave it (the services encode it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardKey {
    /// An EC key: its curve and uncompressed point (`04 || x || y`).
    Ec {
        /// The curve.
        alg: KeyAlgorithm,
        /// The uncompressed point.
        point: Vec<u8>,
    },
    /// An RSA key: modulus and public exponent, big-endian.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
}

/// The public key in GENERATE's answer.
pub(crate) fn public_key_of(body: &[u8], alg: KeyAlgorithm) -> Result<CardKey, DeviceError> {
    let key = tlv::find(body, 0x7F49)?.ok_or_else(|| DeviceError::Protocol("no public key template".into()))?;
    match alg {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let point = tlv::find(key, 0x86)?.ok_or_else(|| DeviceError::Protocol("no EC point".into()))?;
            let want = if alg == KeyAlgorithm::EcP256 { 65 } else { 97 };
            if point.len() != want || point.first() != Some(&0x04) {
                return Err(DeviceError::Protocol(format!("the card returned a malformed {alg} point")));
            }
            Ok(CardKey::Ec { alg, point: point.to_vec() })
        }
        _ => {
            let n = tlv::find(key, 0x81)?.ok_or_else(|| DeviceError::Protocol("no RSA modulus".into()))?;
            let e = tlv::find(key, 0x82)?.ok_or_else(|| DeviceError::Protocol("no RSA exponent".into()))?;
            Ok(CardKey::Rsa { n: n.to_vec(), e: e.to_vec() })
        }
    }
}

/// GET DATA's answer: the object's value; `None` when the card has no such object.
pub(crate) fn object_of(r: Response) -> Result<Option<Vec<u8>>, DeviceError> {
    if r.sw == 0x6A82 {
        return Ok(None);
    }
    let body = check(r, "reading a data object")?;
    Ok(tlv::find(&body, 0x53)?.map(<[u8]>::to_vec))
}

/// The certificate (tag 70) in a certificate object.
pub(crate) fn certificate_of(obj: &[u8]) -> Result<Option<Vec<u8>>, DeviceError> {
    Ok(tlv::find(obj, 0x70)?.map(<[u8]>::to_vec))
}
