//! The PIV applet (AID A000000308) as a YubiKey 5 implements it: PIN/PUK, management key
//! mutual authentication (3DES or AES), on-card EC key generation and signing, data objects,
//! Yubico's ATTEST (F9), GET METADATA (F7), RESET (FB) and SET PIN RETRIES (FA).

use std::collections::BTreeMap;

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rand::RngCore;

use crate::apdu::{sw, Apdu, Reply};
use crate::attestation::{self, SlotAttestation};
use crate::tlv::{self, tlv};

pub(crate) const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];
/// The factory management key (as 3DES or AES-192).
pub(crate) const DEFAULT_MGMT_KEY: [u8; 24] = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8];
pub(crate) const ALG_3DES: u8 = 0x03;
pub(crate) const ALG_AES128: u8 = 0x08;
pub(crate) const ALG_AES192: u8 = 0x0A;
pub(crate) const ALG_AES256: u8 = 0x0C;
pub(crate) const ALG_RSA1024: u8 = 0x06;
pub(crate) const ALG_RSA2048: u8 = 0x07;
pub(crate) const ALG_RSA3072: u8 = 0x05;
pub(crate) const ALG_RSA4096: u8 = 0x16;
pub(crate) const ALG_P256: u8 = 0x11;
pub(crate) const ALG_P384: u8 = 0x14;
const SLOT_MGMT: u8 = 0x9B;
const SLOT_ATTESTATION: u8 = 0xF9;
const PIN_NEVER: u8 = 1;
const PIN_ONCE: u8 = 2;
const PIN_ALWAYS: u8 = 3;
const TOUCH_NEVER: u8 = 1;

/// A private key held in a slot.
#[derive(Clone)]
pub(crate) enum SlotKeyMaterial {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(u8, Box<rsa::RsaPrivateKey>),
}

#[derive(Clone)]
pub(crate) struct SlotKey {
    pub material: SlotKeyMaterial,
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub generated: bool,
}

impl SlotKey {
    fn alg(&self) -> u8 {
        match self.material {
            SlotKeyMaterial::P256(_) => ALG_P256,
            SlotKeyMaterial::P384(_) => ALG_P384,
            SlotKeyMaterial::Rsa(alg, _) => alg,
        }
    }

    /// The public key as GENERATE and GET METADATA return it: 86 (EC point) or 81/82 (RSA
    /// modulus and exponent).
    fn public_tlvs(&self) -> Vec<u8> {
        match &self.material {
            SlotKeyMaterial::P256(k) => tlv(0x86, k.verifying_key().to_encoded_point(false).as_bytes()),
            SlotKeyMaterial::P384(k) => tlv(0x86, k.verifying_key().to_encoded_point(false).as_bytes()),
            SlotKeyMaterial::Rsa(_, k) => {
                use rsa::traits::PublicKeyParts;
                [tlv(0x81, &k.n().to_bytes_be()), tlv(0x82, &k.e().to_bytes_be())].concat()
            }
        }
    }

    pub(crate) fn spki_der(&self) -> Vec<u8> {
        match &self.material {
            SlotKeyMaterial::P256(k) => attestation::spki_der_p256(k.verifying_key()),
            SlotKeyMaterial::P384(k) => attestation::spki_der_p384(k.verifying_key()),
            SlotKeyMaterial::Rsa(_, k) => {
                use rsa::pkcs8::EncodePublicKey;
                k.to_public_key().to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
            }
        }
    }

    /// The card's private-key operation: ECDSA over a digest (DER signature, digest truncated
    /// to the curve size) or raw RSA over a key-sized block (the client pads).
    pub(crate) fn sign_digest(&self, digest: &[u8]) -> Option<Vec<u8>> {
        match &self.material {
            SlotKeyMaterial::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(sig.to_der().as_bytes().to_vec())
            }
            SlotKeyMaterial::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(sig.to_der().as_bytes().to_vec())
            }
            SlotKeyMaterial::Rsa(_, k) => {
                use rsa::traits::PublicKeyParts;
                let size = k.size();
                if digest.len() != size {
                    return None;
                }
                let input = rsa::BigUint::from_bytes_be(digest);
                let out = rsa::hazmat::rsa_decrypt_and_check(k.as_ref(), Some(&mut rand::thread_rng()), &input).ok()?;
                let out = out.to_bytes_be();
                let mut padded = vec![0u8; size - out.len()];
                padded.extend(out);
                Some(padded)
            }
        }
    }
}

/// Pending step of a management key authentication.
#[derive(Clone)]
enum AuthStep {
    /// The card sent an encrypted witness; the client must return it decrypted.
    Witness(Vec<u8>),
    /// The card sent a plain challenge; the client must return it encrypted.
    Challenge(Vec<u8>),
}

/// Persistent and session state of the PIV applet.
#[derive(Clone)]
pub(crate) struct Piv {
    pub firmware: (u8, u8, u8),
    pub serial: u32,
    pub pin: Vec<u8>,
    pub puk: Vec<u8>,
    pin_total: u8,
    pin_left: u8,
    puk_total: u8,
    puk_left: u8,
    pin_default: bool,
    puk_default: bool,
    pub mgmt_alg: u8,
    pub mgmt_key: Vec<u8>,
    mgmt_default: bool,
    mgmt_touch: u8,
    pub keys: BTreeMap<u8, SlotKey>,
    pub objects: BTreeMap<u32, Vec<u8>>,
    f9_key: p256::ecdsa::SigningKey,
    // Session state, cleared on reset / power off.
    verified: bool,
    authenticated: bool,
    auth_step: Option<AuthStep>,
}

impl Piv {
    pub(crate) fn new(firmware: (u8, u8, u8), serial: u32, f9_key: p256::ecdsa::SigningKey, f9_cert: Vec<u8>) -> Piv {
        let mut piv = Piv {
            firmware,
            serial,
            pin: Vec::new(),
            puk: Vec::new(),
            pin_total: 3,
            pin_left: 3,
            puk_total: 3,
            puk_left: 3,
            pin_default: true,
            puk_default: true,
            mgmt_alg: ALG_3DES,
            mgmt_key: Vec::new(),
            mgmt_default: true,
            mgmt_touch: TOUCH_NEVER,
            keys: BTreeMap::new(),
            objects: BTreeMap::new(),
            f9_key,
            verified: false,
            authenticated: false,
            auth_step: None,
        };
        piv.factory_reset();
        piv.objects.insert(0x5FFF01, cert_object(&f9_cert));
        piv
    }

    /// Everything but the attestation key and certificate back to factory state.
    fn factory_reset(&mut self) {
        self.pin = b"123456".to_vec();
        self.puk = b"12345678".to_vec();
        (self.pin_total, self.pin_left, self.puk_total, self.puk_left) = (3, 3, 3, 3);
        (self.pin_default, self.puk_default, self.mgmt_default) = (true, true, true);
        self.mgmt_alg = if self.firmware >= (5, 7, 0) { ALG_AES192 } else { ALG_3DES };
        self.mgmt_key = DEFAULT_MGMT_KEY.to_vec();
        self.mgmt_touch = TOUCH_NEVER;
        self.keys.clear();
        self.objects.retain(|id, _| *id == 0x5FFF01);
        self.session_reset();
    }

    /// Forgets PIN verification and management key authentication.
    pub(crate) fn session_reset(&mut self) {
        self.verified = false;
        self.authenticated = false;
        self.auth_step = None;
    }

    pub(crate) fn select(&mut self) -> Reply {
        // Application property template: PIX version and the coexistent tag allocation authority.
        let aid = tlv(0x4F, &[0x00, 0x00, 0x10, 0x00, 0x01, 0x00]);
        let auth = tlv(0x79, &tlv(0x4F, AID));
        Ok(tlv(0x61, &[aid, auth].concat()))
    }

    pub(crate) fn handle(&mut self, apdu: &Apdu) -> Reply {
        match apdu.ins {
            0xFD => Ok(vec![self.firmware.0, self.firmware.1, self.firmware.2]),
            0xF8 => Ok(self.serial.to_be_bytes().to_vec()),
            0x20 => self.verify(apdu),
            0x24 => self.change_reference(apdu),
            0x2C => self.reset_retry_counter(apdu),
            0xFF => self.set_management_key(apdu),
            0x87 => self.general_authenticate(apdu),
            0x47 => self.generate(apdu),
            0xCB => self.get_data(apdu),
            0xDB => self.put_data(apdu),
            0xF9 => self.attest(apdu),
            0xF7 if self.firmware >= (5, 3, 0) => self.metadata(apdu),
            0xFB => self.reset(),
            0xFA => self.set_pin_retries(apdu),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn verify(&mut self, apdu: &Apdu) -> Reply {
        if apdu.p2 != 0x80 {
            return Err(sw::REF_NOT_FOUND);
        }
        if apdu.p1 == 0xFF {
            self.verified = false;
            return Ok(Vec::new());
        }
        if apdu.data.is_empty() {
            return if self.verified { Ok(Vec::new()) } else { Err(0x63C0 | u16::from(self.pin_left)) };
        }
        let pin = unpad(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let (pin_ok, left) = check_secret(&self.pin, &pin, &mut self.pin_left, self.pin_total);
        self.verified = pin_ok;
        if pin_ok {
            Ok(Vec::new())
        } else {
            Err(left)
        }
    }

    fn change_reference(&mut self, apdu: &Apdu) -> Reply {
        if apdu.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let old = unpad(&apdu.data[..8]).ok_or(sw::INCORRECT_DATA)?;
        let new = unpad(&apdu.data[8..]).ok_or(sw::INCORRECT_DATA)?;
        let (secret, left, total, default) = match apdu.p2 {
            0x80 => (&mut self.pin, &mut self.pin_left, self.pin_total, &mut self.pin_default),
            0x81 => (&mut self.puk, &mut self.puk_left, self.puk_total, &mut self.puk_default),
            _ => return Err(sw::REF_NOT_FOUND),
        };
        let (ok, status) = check_secret(secret, &old, left, total);
        if !ok {
            return Err(status);
        }
        if new.len() < 6 {
            return Err(sw::INCORRECT_DATA);
        }
        *secret = new;
        *default = false;
        Ok(Vec::new())
    }

    fn reset_retry_counter(&mut self, apdu: &Apdu) -> Reply {
        if apdu.p2 != 0x80 {
            return Err(sw::REF_NOT_FOUND);
        }
        if apdu.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let puk = unpad(&apdu.data[..8]).ok_or(sw::INCORRECT_DATA)?;
        let new = unpad(&apdu.data[8..]).ok_or(sw::INCORRECT_DATA)?;
        let (ok, status) = check_secret(&self.puk, &puk, &mut self.puk_left, self.puk_total);
        if !ok {
            return Err(status);
        }
        if new.len() < 6 {
            return Err(sw::INCORRECT_DATA);
        }
        self.pin = new;
        self.pin_left = self.pin_total;
        self.pin_default = false;
        Ok(Vec::new())
    }

    fn set_management_key(&mut self, apdu: &Apdu) -> Reply {
        if apdu.p1 != 0xFF || !matches!(apdu.p2, 0xFF | 0xFE) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.authenticated {
            return Err(sw::SECURITY);
        }
        let d = &apdu.data;
        if d.len() < 3 || d[1] != SLOT_MGMT || usize::from(d[2]) != d.len() - 3 {
            return Err(sw::INCORRECT_DATA);
        }
        let (alg, key) = (d[0], &d[3..]);
        let len_ok = match alg {
            ALG_3DES | ALG_AES192 => key.len() == 24,
            ALG_AES128 => key.len() == 16,
            ALG_AES256 => key.len() == 32,
            _ => false,
        };
        if !len_ok || (alg != ALG_3DES && self.firmware < (5, 4, 0)) {
            return Err(sw::INCORRECT_DATA);
        }
        self.mgmt_alg = alg;
        self.mgmt_key = key.to_vec();
        self.mgmt_default = false;
        self.mgmt_touch = if apdu.p2 == 0xFE { 2 } else { TOUCH_NEVER };
        Ok(Vec::new())
    }

    fn general_authenticate(&mut self, apdu: &Apdu) -> Reply {
        let inner = tlv::find(&apdu.data, 0x7C).ok_or(sw::INCORRECT_DATA)?;
        let items = tlv::parse(inner).ok_or(sw::INCORRECT_DATA)?;
        let get = |tag: u16| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        if apdu.p2 == SLOT_MGMT {
            if apdu.p1 != self.mgmt_alg {
                return Err(sw::INCORRECT_DATA);
            }
            return self.mgmt_auth(get(0x80), get(0x81), get(0x82));
        }
        let key = self.keys.get(&apdu.p2).cloned().ok_or(sw::INCORRECT_DATA)?;
        if key.alg() != apdu.p1 {
            return Err(sw::INCORRECT_DATA);
        }
        match key.pin_policy {
            PIN_NEVER => {}
            _ if !self.verified => return Err(sw::SECURITY),
            PIN_ALWAYS => self.verified = false,
            _ => {}
        }
        match (get(0x82), get(0x81)) {
            (Some([]), Some(digest)) => {
                let sig = key.sign_digest(digest).ok_or(sw::INCORRECT_DATA)?;
                Ok(tlv(0x7C, &tlv(0x82, &sig)))
            }
            _ => Err(sw::INCORRECT_DATA),
        }
    }

    fn mgmt_auth(&mut self, witness: Option<&[u8]>, challenge: Option<&[u8]>, response: Option<&[u8]>) -> Reply {
        let block = if self.mgmt_alg == ALG_3DES { 8 } else { 16 };
        let step = self.auth_step.take();
        match (witness, challenge, response) {
            // Step 1 of mutual authentication: hand out an encrypted witness.
            (Some([]), None, None) => {
                let plain = random(block);
                let enc = self.cipher(&plain, true)?;
                self.auth_step = Some(AuthStep::Witness(plain));
                Ok(tlv(0x7C, &tlv(0x80, &enc)))
            }
            // Step 2: the client proves it decrypted the witness and challenges the card.
            (Some(decrypted), Some(chal), None) => match step {
                Some(AuthStep::Witness(expected)) if expected == decrypted && chal.len() == block => {
                    self.authenticated = true;
                    let enc = self.cipher(chal, true)?;
                    Ok(tlv(0x7C, &tlv(0x82, &enc)))
                }
                _ => {
                    self.authenticated = false;
                    Err(sw::SECURITY)
                }
            },
            // One-sided authentication: plain challenge out, encrypted challenge back.
            (None, Some([]), None) => {
                let plain = random(block);
                self.auth_step = Some(AuthStep::Challenge(plain.clone()));
                Ok(tlv(0x7C, &tlv(0x81, &plain)))
            }
            (None, None, Some(enc)) => match step {
                Some(AuthStep::Challenge(plain)) if self.cipher(&plain, true)? == enc => {
                    self.authenticated = true;
                    Ok(Vec::new())
                }
                _ => {
                    self.authenticated = false;
                    Err(sw::SECURITY)
                }
            },
            _ => Err(sw::INCORRECT_DATA),
        }
    }

    /// One block of ECB with the management key.
    fn cipher(&self, block: &[u8], encrypt: bool) -> Result<Vec<u8>, u16> {
        fn run<C: KeyInit + BlockEncrypt + BlockDecrypt>(key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>> {
            let c = C::new_from_slice(key).ok()?;
            if block.len() != C::block_size() {
                return None;
            }
            let mut b = GenericArray::clone_from_slice(block);
            if encrypt {
                c.encrypt_block(&mut b);
            } else {
                c.decrypt_block(&mut b);
            }
            Some(b.to_vec())
        }
        let key = &self.mgmt_key;
        match self.mgmt_alg {
            ALG_3DES => run::<des::TdesEde3>(key, block, encrypt),
            ALG_AES128 => run::<aes::Aes128>(key, block, encrypt),
            ALG_AES192 => run::<aes::Aes192>(key, block, encrypt),
            ALG_AES256 => run::<aes::Aes256>(key, block, encrypt),
            _ => None,
        }
        .ok_or(sw::INCORRECT_DATA)
    }

    fn generate(&mut self, apdu: &Apdu) -> Reply {
        if !self.authenticated {
            return Err(sw::SECURITY);
        }
        let slot = apdu.p2;
        if !is_key_slot(slot) {
            return Err(sw::INCORRECT_DATA);
        }
        let template = tlv::find(&apdu.data, 0xAC).ok_or(sw::INCORRECT_DATA)?;
        let alg = *tlv::find(template, 0x80).and_then(|a| a.first()).ok_or(sw::INCORRECT_DATA)?;
        let pin_policy = tlv::find(template, 0xAA).and_then(|v| v.first().copied()).unwrap_or(0);
        let touch_policy = tlv::find(template, 0xAB).and_then(|v| v.first().copied()).unwrap_or(0);
        let mut rng = rand::thread_rng();
        let material = match alg {
            ALG_P256 => SlotKeyMaterial::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            ALG_P384 => SlotKeyMaterial::P384(p384::ecdsa::SigningKey::random(&mut rng)),
            ALG_RSA1024 | ALG_RSA2048 | ALG_RSA3072 | ALG_RSA4096 => {
                let bits = match alg {
                    ALG_RSA1024 => 1024,
                    ALG_RSA2048 => 2048,
                    ALG_RSA3072 => 3072,
                    _ => 4096,
                };
                if bits > 2048 && self.firmware < (5, 7, 0) {
                    return Err(sw::INCORRECT_DATA);
                }
                let key = rsa::RsaPrivateKey::new(&mut rng, bits).map_err(|_| sw::NO_PRECISE)?;
                SlotKeyMaterial::Rsa(alg, Box::new(key))
            }
            _ => return Err(sw::INCORRECT_DATA),
        };
        let key = SlotKey {
            material,
            pin_policy: if pin_policy == 0 { default_pin_policy(slot) } else { pin_policy },
            touch_policy: if touch_policy == 0 { TOUCH_NEVER } else { touch_policy },
            generated: true,
        };
        let public = key.public_tlvs();
        self.keys.insert(slot, key);
        Ok(tlv(0x7F49, &public))
    }

    fn get_data(&mut self, apdu: &Apdu) -> Reply {
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        let id = tlv::find(&apdu.data, 0x5C).ok_or(sw::INCORRECT_DATA)?;
        if id == [0x7E] {
            // Discovery object: PIV AID, PIN usage policy (application PIN only).
            let aid = tlv(0x4F, &[0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00]);
            return Ok(tlv(0x7E, &[aid, tlv(0x5F2F, &[0x40, 0x00])].concat()));
        }
        let id = object_id(id).ok_or(sw::NOT_FOUND)?;
        if matches!(id, 0x5FC103 | 0x5FC108 | 0x5FC109) && !self.verified {
            return Err(sw::SECURITY);
        }
        let obj = self.objects.get(&id).ok_or(sw::NOT_FOUND)?;
        Ok(tlv(0x53, obj))
    }

    fn put_data(&mut self, apdu: &Apdu) -> Reply {
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.authenticated {
            return Err(sw::SECURITY);
        }
        let items = tlv::parse(&apdu.data).ok_or(sw::INCORRECT_DATA)?;
        let id = items.iter().find(|(t, _)| *t == 0x5C).map(|(_, v)| *v).ok_or(sw::INCORRECT_DATA)?;
        let value = items.iter().find(|(t, _)| *t == 0x53).map(|(_, v)| *v).ok_or(sw::INCORRECT_DATA)?;
        let id = object_id(id).ok_or(sw::INCORRECT_DATA)?;
        if value.is_empty() {
            self.objects.remove(&id);
        } else {
            self.objects.insert(id, value.to_vec());
        }
        Ok(Vec::new())
    }

    fn attest(&mut self, apdu: &Apdu) -> Reply {
        let slot = apdu.p1;
        let key = self.keys.get(&slot).ok_or(sw::REF_NOT_FOUND)?;
        if !key.generated {
            return Err(sw::INCORRECT_DATA);
        }
        let spki = key.spki_der();
        let att = SlotAttestation {
            slot,
            spki_der: &spki,
            firmware: self.firmware,
            serial: self.serial,
            pin_policy: key.pin_policy,
            touch_policy: key.touch_policy,
        };
        attestation::attest_slot(&self.f9_key, self.serial, &att).ok_or(sw::NO_PRECISE)
    }

    fn metadata(&mut self, apdu: &Apdu) -> Reply {
        let slot = apdu.p2;
        match slot {
            0x80 | 0x81 => {
                let (default, total, left) = if slot == 0x80 {
                    (self.pin_default, self.pin_total, self.pin_left)
                } else {
                    (self.puk_default, self.puk_total, self.puk_left)
                };
                Ok([tlv(0x01, &[0xFF]), tlv(0x05, &[u8::from(default)]), tlv(0x06, &[total, left])].concat())
            }
            SLOT_MGMT => Ok([
                tlv(0x01, &[self.mgmt_alg]),
                tlv(0x02, &[0x00, self.mgmt_touch]),
                tlv(0x05, &[u8::from(self.mgmt_default)]),
            ]
            .concat()),
            SLOT_ATTESTATION => {
                let point = self.f9_key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
                Ok([
                    tlv(0x01, &[ALG_P256]),
                    tlv(0x02, &[PIN_NEVER, TOUCH_NEVER]),
                    tlv(0x03, &[0x02]),
                    tlv(0x04, &tlv(0x86, &point)),
                ]
                .concat())
            }
            s if is_key_slot(s) => {
                let key = self.keys.get(&s).ok_or(sw::REF_NOT_FOUND)?;
                Ok([
                    tlv(0x01, &[key.alg()]),
                    tlv(0x02, &[key.pin_policy, key.touch_policy]),
                    tlv(0x03, &[if key.generated { 0x01 } else { 0x02 }]),
                    tlv(0x04, &key.public_tlvs()),
                ]
                .concat())
            }
            _ => Err(sw::REF_NOT_FOUND),
        }
    }

    fn reset(&mut self) -> Reply {
        if self.pin_left != 0 || self.puk_left != 0 {
            return Err(sw::CONDITIONS);
        }
        self.factory_reset();
        Ok(Vec::new())
    }

    fn set_pin_retries(&mut self, apdu: &Apdu) -> Reply {
        if !self.authenticated || !self.verified {
            return Err(sw::SECURITY);
        }
        if apdu.p1 == 0 || apdu.p2 == 0 {
            return Err(sw::WRONG_P1P2);
        }
        (self.pin_total, self.pin_left, self.puk_total, self.puk_left) = (apdu.p1, apdu.p1, apdu.p2, apdu.p2);
        self.pin = b"123456".to_vec();
        self.puk = b"12345678".to_vec();
        (self.pin_default, self.puk_default) = (true, true);
        Ok(Vec::new())
    }
}

/// Compares a PIN/PUK, maintaining its retry counter; returns (ok, status word on failure).
fn check_secret(secret: &[u8], given: &[u8], left: &mut u8, total: u8) -> (bool, u16) {
    if *left == 0 {
        return (false, sw::AUTH_BLOCKED);
    }
    if secret == given {
        *left = total;
        (true, sw::OK)
    } else {
        *left -= 1;
        (false, if *left == 0 { sw::AUTH_BLOCKED } else { 0x63C0 | u16::from(*left) })
    }
}

/// Strips the 0xFF padding of an 8-byte PIN block.
fn unpad(block: &[u8]) -> Option<Vec<u8>> {
    if block.len() != 8 {
        return None;
    }
    let end = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
    Some(block[..end].to_vec())
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

fn object_id(id: &[u8]) -> Option<u32> {
    match id {
        [a, b, c] => Some(u32::from_be_bytes([0, *a, *b, *c])),
        _ => None,
    }
}

fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

fn default_pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => PIN_ALWAYS,
        0x9E => PIN_NEVER,
        _ => PIN_ONCE,
    }
}

/// The data object that holds a slot's certificate.
pub(crate) fn cert_object_id(slot: u8) -> Option<u32> {
    match slot {
        0x9A => Some(0x5FC105),
        0x9C => Some(0x5FC10A),
        0x9D => Some(0x5FC10B),
        0x9E => Some(0x5FC101),
        0x82..=0x95 => Some(0x5FC10D + u32::from(slot - 0x82)),
        0xF9 => Some(0x5FFF01),
        _ => None,
    }
}

/// A certificate wrapped as a PIV certificate object (uncompressed).
fn cert_object(der: &[u8]) -> Vec<u8> {
    [tlv(0x70, der), tlv(0x71, &[0x00]), tlv(0xFE, &[])].concat()
}
