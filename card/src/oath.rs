//! The YubiKey OATH applet (YKOATH): select, unlock with the access key derived from an OATH
//! password, and list, put and delete credentials. The appliance writes credentials whose seed
//! its HSM generated; the seed passes through this module once, in a zeroizing buffer, and is
//! never logged or returned.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use super::tlv;
use super::transport::Card;
use super::DeviceError;

/// The application identifier of the YubiKey OATH applet, for SELECT.
pub const OATH_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

const TAG_NAME: u16 = 0x71;
const TAG_KEY: u16 = 0x73;
const TAG_CHALLENGE: u16 = 0x74;
const TAG_RESPONSE: u16 = 0x75;
const TAG_IMF: u16 = 0x7A;
const TAG_VERSION: u16 = 0x79;
const TAG_NAME_LIST: u16 = 0x72;

/// OATH credential kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathKind {
    /// Counter-based (RFC 4226).
    Hotp,
    /// Time-based (RFC 6238).
    Totp,
}

/// OATH HMAC algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathHash {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl OathHash {
    /// The algorithm named `sha1`, `sha256` or `sha512`; `None` for any other text.
    pub fn parse(s: &str) -> Option<OathHash> {
        match s {
            "sha1" => Some(OathHash::Sha1),
            "sha256" => Some(OathHash::Sha256),
            "sha512" => Some(OathHash::Sha512),
            _ => None,
        }
    }

    fn id(self) -> u8 {
        match self {
            OathHash::Sha1 => 0x01,
            OathHash::Sha256 => 0x02,
            OathHash::Sha512 => 0x03,
        }
    }
}

/// A credential to write.
pub struct NewCredential<'s> {
    /// `issuer:account`, with a `period/` prefix for TOTP periods other than 30 s.
    pub name: String,
    /// HOTP or TOTP.
    pub kind: OathKind,
    /// The HMAC algorithm codes are made with.
    pub hash: OathHash,
    /// How many digits a code has.
    pub digits: u8,
    /// The seed the HSM generated; written to the card once, never logged or kept.
    pub secret: &'s [u8],
    /// HOTP: the first counter.
    pub counter: u32,
}

impl std::fmt::Debug for NewCredential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The OATH applet, selected on one card.
#[derive(Debug)]
pub struct Oath<'a> {
    card: &'a Card,
    /// The device id the access key is salted with.
    salt: Vec<u8>,
    /// Present when an OATH password protects the applet.
    challenge: Option<Vec<u8>>,
    /// The applet's version (the YubiKey's firmware), if SELECT gave one.
    pub version: Option<(u8, u8, u8)>,
}

fn sw_error(sw: u16, what: &str) -> DeviceError {
    match sw {
        0x6982 => DeviceError::Locked(format!("{what}: the OATH applet is protected by a password; give it")),
        0x6A84 => DeviceError::Card(format!("{what}: the OATH applet is full; delete unused accounts first")),
        0x6A80 => DeviceError::Card(format!("{what}: the card refused the data (wrong syntax)")),
        sw => DeviceError::Card(format!("{what}: the card answered {sw:04X}")),
    }
}

impl<'a> Oath<'a> {
    /// Selects the OATH applet on `card`; [`DeviceError::WrongKind`] when the card has none (not a
    /// YubiKey).
    pub fn select(card: &'a Card) -> Result<Oath<'a>, DeviceError> {
        let r = card.send(0x00, 0xA4, 0x04, 0x00, OATH_AID)?;
        if !r.ok() {
            return Err(DeviceError::WrongKind(format!(
                "the card in {} has no OATH application (SELECT answered {:04X}); OATH enrolment needs a YubiKey",
                card.reader(),
                r.sw
            )));
        }
        let (salt, challenge, version) = select_of(&r.data)?;
        Ok(Oath { card, salt, challenge, version })
    }

    /// Whether an OATH password protects the applet ([`Oath::unlock`] must run first).
    pub fn password_protected(&self) -> bool {
        self.challenge.is_some()
    }

    /// Unlocks a password-protected applet; a no-op when it has no password.
    pub fn unlock(&self, password: &[u8], our_challenge: &[u8]) -> Result<(), DeviceError> {
        let Some(card_challenge) = &self.challenge else { return Ok(()) };
        let mut key = Zeroizing::new([0u8; 16]);
        pbkdf2::pbkdf2_hmac::<Sha1>(password, &self.salt, 1000, key.as_mut());
        let mac = |msg: &[u8]| -> Result<Vec<u8>, DeviceError> {
            let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key.as_ref())
                .map_err(|_| DeviceError::Invalid("bad OATH key length".into()))?;
            m.update(msg);
            Ok(m.finalize().into_bytes().to_vec())
        };
        let mut data = tlv::tlv(TAG_RESPONSE, &mac(card_challenge)?);
        tlv::put(&mut data, TAG_CHALLENGE, our_challenge);
        let r = self.card.send(0x00, 0xA3, 0x00, 0x00, &data)?;
        if !r.ok() {
            return Err(DeviceError::Locked(
                "the OATH password is wrong; give the password set on this YubiKey".into(),
            ));
        }
        let answer = unlock_answer_of(&r.data)?;
        let expected = mac(our_challenge)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(answer, expected.as_slice())) {
            return Err(DeviceError::Card("the card's answer to our OATH challenge is wrong; do not trust it".into()));
        }
        Ok(())
    }

    /// The names of the credentials on the card.
    pub fn list(&self) -> Result<Vec<String>, DeviceError> {
        let r = self.card.send(0x00, 0xA1, 0x00, 0x00, &[])?;
        if !r.ok() {
            return Err(sw_error(r.sw, "listing OATH accounts"));
        }
        names_of(&r.data)
    }

    /// Writes a credential (replacing one of the same name, as the applet does).
    pub fn put(&self, c: &NewCredential<'_>) -> Result<(), DeviceError> {
        if c.name.is_empty() || c.name.len() > 64 {
            return Err(DeviceError::Invalid("an OATH account name has 1 to 64 bytes".into()));
        }
        let kind = match c.kind {
            OathKind::Hotp => 0x10,
            OathKind::Totp => 0x20,
        };
        let mut key = Zeroizing::new(vec![kind | c.hash.id(), c.digits]);
        key.extend_from_slice(c.secret);
        // YKOATH: keys shorter than 14 bytes are zero-padded to 14.
        while key.len() < 16 {
            key.push(0);
        }
        let mut data = Zeroizing::new(tlv::tlv(TAG_NAME, c.name.as_bytes()));
        tlv::put(&mut data, TAG_KEY, &key);
        if c.kind == OathKind::Hotp && c.counter > 0 {
            tlv::put(&mut data, TAG_IMF, &c.counter.to_be_bytes());
        }
        let r = self.card.send(0x00, 0x01, 0x00, 0x00, &data)?;
        if !r.ok() {
            return Err(sw_error(r.sw, "writing the OATH account"));
        }
        Ok(())
    }

    /// Deletes the credential `name` from the card.
    pub fn delete(&self, name: &str) -> Result<(), DeviceError> {
        let r = self.card.send(0x00, 0x02, 0x00, 0x00, &tlv::tlv(TAG_NAME, name.as_bytes()))?;
        if !r.ok() {
            return Err(sw_error(r.sw, "deleting the OATH account"));
        }
        Ok(())
    }
}

/// SELECT's answer: the salt (device id), the challenge when a password is set, the version.
pub(crate) type Selected = (Vec<u8>, Option<Vec<u8>>, Option<(u8, u8, u8)>);

/// Reads SELECT's answer.
pub(crate) fn select_of(data: &[u8]) -> Result<Selected, DeviceError> {
    let salt = tlv::find(data, TAG_NAME)?.map(<[u8]>::to_vec).unwrap_or_default();
    let challenge = tlv::find(data, TAG_CHALLENGE)?.map(<[u8]>::to_vec);
    let version = match tlv::find(data, TAG_VERSION)? {
        Some([a, b, c, ..]) => Some((*a, *b, *c)),
        _ => None,
    };
    Ok((salt, challenge, version))
}

/// LIST's answer: the credential names (each after its kind/algorithm byte).
pub(crate) fn names_of(data: &[u8]) -> Result<Vec<String>, DeviceError> {
    Ok(tlv::parse(data)?
        .into_iter()
        .filter(|(t, _)| *t == TAG_NAME_LIST)
        .filter_map(|(_, v)| v.get(1..).map(|n| String::from_utf8_lossy(n).into_owned()))
        .collect())
}

/// VALIDATE's answer: the card's response to our challenge (empty when it sent none).
pub(crate) fn unlock_answer_of(data: &[u8]) -> Result<&[u8], DeviceError> {
    Ok(tlv::find(data, TAG_RESPONSE)?.unwrap_or_default())
}
