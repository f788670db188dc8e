//! The YKOATH applet (AID A0000005272101): credentials with HOTP counters kept on the card,
//! TOTP over the challenge the client sends, and the optional access key (password) with the
//! SELECT challenge / VALIDATE handshake.

use hmac::{Hmac, Mac};
use rand::RngCore;

use crate::apdu::{sw, Apdu, Reply};
use crate::tlv::{self, tlv};

pub(crate) const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];
const TAG_NAME: u16 = 0x71;
const TAG_NAME_LIST: u8 = 0x72;
const TAG_KEY: u16 = 0x73;
const TAG_CHALLENGE: u16 = 0x74;
const TAG_RESPONSE: u16 = 0x75;
const TAG_TRUNCATED: u16 = 0x76;
const TAG_HOTP: u16 = 0x77;
const TAG_PROPERTY: u8 = 0x78;
const TAG_IMF: u16 = 0x7A;
const TAG_TOUCH: u16 = 0x7C;
const TYPE_HOTP: u8 = 0x10;
const TYPE_TOTP: u8 = 0x20;
const PROP_TOUCH: u8 = 0x02;

#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub name: Vec<u8>,
    kind: u8,
    alg: u8,
    digits: u8,
    key: Vec<u8>,
    counter: u64,
    touch: bool,
}

impl Credential {
    /// The HMAC key as stored (short keys zero-padded to 14 bytes, as the applet keeps them).
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// Persistent and session state of the OATH applet.
#[derive(Clone, Debug)]
pub(crate) struct Oath {
    firmware: (u8, u8, u8),
    /// The 8-byte "name" sent in SELECT (tag 71): salt for the access key derivation.
    pub salt: [u8; 8],
    pub credentials: Vec<Credential>,
    /// Access key (HMAC-SHA1 key) when a password is set.
    pub access_key: Option<Vec<u8>>,
    validated: bool,
    challenge: Option<[u8; 8]>,
}

impl Oath {
    pub(crate) fn new(firmware: (u8, u8, u8)) -> Oath {
        let mut salt = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut salt);
        Oath { firmware, salt, credentials: Vec::new(), access_key: None, validated: false, challenge: None }
    }

    pub(crate) fn session_reset(&mut self) {
        self.validated = false;
        self.challenge = None;
    }

    pub(crate) fn select(&mut self) -> Reply {
        self.session_reset();
        let fw = [self.firmware.0, self.firmware.1, self.firmware.2];
        let mut out = [tlv(0x79, &fw), tlv(TAG_NAME, &self.salt)].concat();
        if self.access_key.is_some() {
            let mut chal = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut chal);
            self.challenge = Some(chal);
            out.extend(tlv(TAG_CHALLENGE, &chal));
            out.extend(tlv(0x7B, &[0x01]));
        }
        Ok(out)
    }

    pub(crate) fn handle(&mut self, apdu: &Apdu) -> Reply {
        let locked = self.access_key.is_some() && !self.validated;
        match apdu.ins {
            0x04 => self.reset(apdu),
            0xA3 => self.validate(apdu),
            0x01 | 0x02 | 0x03 | 0x05 | 0xA1 | 0xA2 | 0xA4 if locked => Err(sw::SECURITY),
            0x01 => self.put(apdu),
            0x02 => self.delete(apdu),
            0x03 => self.set_code(apdu),
            0x05 => self.rename(apdu),
            0xA1 => Ok(self.list()),
            0xA2 => self.calculate(apdu),
            0xA4 => self.calculate_all(apdu),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn put(&mut self, apdu: &Apdu) -> Reply {
        let mut data = &apdu.data[..];
        let (mut name, mut key, mut touch, mut counter) = (None, None, false, 0u64);
        // TAG_PROPERTY is a bare tag + byte, not a TLV, so walk the data by hand.
        while !data.is_empty() {
            if data[0] == TAG_PROPERTY {
                touch = data.get(1).ok_or(sw::INCORRECT_DATA)? & PROP_TOUCH != 0;
                data = &data[2.min(data.len())..];
                continue;
            }
            let one = first_tlv(data).ok_or(sw::INCORRECT_DATA)?;
            match one.0 {
                TAG_NAME => name = Some(one.1.to_vec()),
                TAG_KEY => key = Some(one.1.to_vec()),
                TAG_IMF => counter = one.1.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
                _ => return Err(sw::INCORRECT_DATA),
            }
            data = one.2;
        }
        let name = name.filter(|n| !n.is_empty() && n.len() <= 64).ok_or(sw::INCORRECT_DATA)?;
        let key = key.filter(|k| k.len() >= 2).ok_or(sw::INCORRECT_DATA)?;
        let (kind, alg, digits) = (key[0] & 0xF0, key[0] & 0x0F, key[1]);
        if !matches!(kind, TYPE_HOTP | TYPE_TOTP) || !matches!(alg, 1..=3) || !(6..=8).contains(&digits) {
            return Err(sw::INCORRECT_DATA);
        }
        let cred = Credential { name: name.clone(), kind, alg, digits, key: key[2..].to_vec(), counter, touch };
        match self.credentials.iter_mut().find(|c| c.name == name) {
            Some(existing) => *existing = cred,
            None => self.credentials.push(cred),
        }
        Ok(Vec::new())
    }

    fn delete(&mut self, apdu: &Apdu) -> Reply {
        let name = tlv::find(&apdu.data, TAG_NAME).ok_or(sw::INCORRECT_DATA)?;
        let before = self.credentials.len();
        self.credentials.retain(|c| c.name != name);
        if self.credentials.len() == before {
            return Err(sw::DATA_INVALID);
        }
        Ok(Vec::new())
    }

    fn rename(&mut self, apdu: &Apdu) -> Reply {
        let items = tlv::parse(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let names: Vec<&[u8]> = items.iter().filter(|(t, _)| *t == TAG_NAME).map(|(_, v)| *v).collect();
        let [old, new] = names[..] else { return Err(sw::INCORRECT_DATA) };
        if self.credentials.iter().any(|c| c.name == new) {
            return Err(sw::CONDITIONS);
        }
        let cred = self.credentials.iter_mut().find(|c| c.name == old).ok_or(sw::DATA_INVALID)?;
        cred.name = new.to_vec();
        Ok(Vec::new())
    }

    fn set_code(&mut self, apdu: &Apdu) -> Reply {
        let items = tlv::parse(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let get = |tag: u16| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let key = get(TAG_KEY).ok_or(sw::INCORRECT_DATA)?;
        if key.is_empty() {
            self.access_key = None;
            return Ok(Vec::new());
        }
        if key.len() < 2 || key[0] & 0x0F != 1 {
            return Err(sw::INCORRECT_DATA);
        }
        let (chal, resp) =
            (get(TAG_CHALLENGE).ok_or(sw::INCORRECT_DATA)?, get(TAG_RESPONSE).ok_or(sw::INCORRECT_DATA)?);
        if hmac_sha1(&key[1..], chal) != resp {
            return Err(sw::INCORRECT_DATA);
        }
        self.access_key = Some(key[1..].to_vec());
        Ok(Vec::new())
    }

    fn reset(&mut self, apdu: &Apdu) -> Reply {
        if (apdu.p1, apdu.p2) != (0xDE, 0xAD) {
            return Err(sw::WRONG_P1P2);
        }
        *self = Oath::new(self.firmware);
        Ok(Vec::new())
    }

    fn validate(&mut self, apdu: &Apdu) -> Reply {
        let items = tlv::parse(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let get = |tag: u16| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let (Some(key), Some(card_chal)) = (self.access_key.clone(), self.challenge.take()) else {
            return Err(sw::DATA_INVALID);
        };
        let resp = get(TAG_RESPONSE).ok_or(sw::INCORRECT_DATA)?;
        let client_chal = get(TAG_CHALLENGE).ok_or(sw::INCORRECT_DATA)?;
        if hmac_sha1(&key, &card_chal) != resp {
            return Err(sw::DATA_INVALID);
        }
        self.validated = true;
        Ok(tlv(TAG_RESPONSE, &hmac_sha1(&key, client_chal)))
    }

    fn list(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.credentials {
            let mut v = vec![c.kind | c.alg];
            v.extend_from_slice(&c.name);
            out.extend(tlv(u16::from(TAG_NAME_LIST), &v));
        }
        out
    }

    fn calculate(&mut self, apdu: &Apdu) -> Reply {
        let items = tlv::parse(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let get = |tag: u16| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let name = get(TAG_NAME).ok_or(sw::INCORRECT_DATA)?;
        let challenge = get(TAG_CHALLENGE).unwrap_or(&[]).to_vec();
        let cred = self.credentials.iter_mut().find(|c| c.name == name).ok_or(sw::DATA_INVALID)?;
        let msg = if cred.kind == TYPE_HOTP {
            let m = cred.counter.to_be_bytes().to_vec();
            cred.counter += 1;
            m
        } else {
            challenge
        };
        let mac = hmac_alg(cred.alg, &cred.key, &msg);
        if apdu.p2 == 0x01 {
            Ok(tlv(TAG_TRUNCATED, &[&[cred.digits][..], &truncate(&mac)].concat()))
        } else {
            Ok(tlv(TAG_RESPONSE, &[&[cred.digits][..], &mac].concat()))
        }
    }

    fn calculate_all(&mut self, apdu: &Apdu) -> Reply {
        let challenge = tlv::find(&apdu.data, TAG_CHALLENGE).ok_or(sw::INCORRECT_DATA)?;
        let mut out = Vec::new();
        for c in &self.credentials {
            out.extend(tlv(TAG_NAME, &c.name));
            if c.touch {
                out.extend(tlv(TAG_TOUCH, &[c.digits]));
            } else if c.kind == TYPE_HOTP {
                out.extend(tlv(TAG_HOTP, &[c.digits]));
            } else {
                let mac = hmac_alg(c.alg, &c.key, challenge);
                if apdu.p2 == 0x01 {
                    out.extend(tlv(TAG_TRUNCATED, &[&[c.digits][..], &truncate(&mac)].concat()));
                } else {
                    out.extend(tlv(TAG_RESPONSE, &[&[c.digits][..], &mac].concat()));
                }
            }
        }
        Ok(out)
    }
}

/// ykman's derivation of the OATH access key from a password.
pub(crate) fn derive_access_key(password: &str, salt: &[u8]) -> Vec<u8> {
    let mut key = [0u8; 16];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, 1000, &mut key);
    key.to_vec()
}

fn first_tlv(data: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let tag = u16::from(*data.first()?);
    let (len, rest) = match *data.get(1)? {
        l if l < 0x80 => (usize::from(l), &data[2..]),
        0x81 => (usize::from(*data.get(2)?), data.get(3..)?),
        _ => return None,
    };
    Some((tag, rest.get(..len)?, &rest[len..]))
}

/// RFC 4226 dynamic truncation, returning the four masked bytes the card sends.
fn truncate(mac: &[u8]) -> [u8; 4] {
    let off = usize::from(mac[mac.len() - 1] & 0x0F);
    [mac[off] & 0x7F, mac[off + 1], mac[off + 2], mac[off + 3]]
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac_alg(1, key, msg)
}

fn hmac_alg(alg: u8, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! mac {
        ($d:ty) => {
            match Hmac::<$d>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        };
    }
    match alg {
        2 => mac!(sha2::Sha256),
        3 => mac!(sha2::Sha512),
        _ => mac!(sha1::Sha1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_vector() {
        let mac = hmac_sha1(b"12345678901234567890", &0u64.to_be_bytes());
        let t = truncate(&mac);
        assert_eq!(u32::from_be_bytes(t) % 1_000_000, 755224);
    }
}
