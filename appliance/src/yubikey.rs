//! The host's side of the yubikey token type (Yubico OTP, AES mode, as privacyIDEA's
//! `yubikey`).
//!
//! It owns what the row's secret column holds (the 16-byte AES key, followed once learned by
//! the 6-byte private id, sealed together under `token-seal` with the serial as associated
//! data), the AES-128-ECB decryption a plugin's `aes_ecb_decrypt` asks for (in software, on
//! the key opened for that one call, zeroized after), and the host's own judgement of the
//! block it decrypted ([`Saw`]: CRC, private id, counter), which the check requires to agree
//! with the plugin's answer. The private id is learned from the first accepted OTP when the
//! enrolment gave none, as privacyIDEA learns `yubikey.tokenid`, and so is the public id (the
//! token's `params.prefix`, which checks by OTP alone and `/ttype/yubikey` find it by), as it
//! learns `yubikey.prefix`; both are stored in the same transaction as that accept
//! ([`crate::store::AfterAccept::Learn`]).
//!
//! It must never return, log or store the key or the private id in the clear, nor decrypt
//! for anything but the block of the check it serves.

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, KeyInit};
use countersign_hsm::HsmError;
use countersign_yubico_otp::UID_LEN;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::AfterAccept;
use crate::token_secrets::TokenSecrets;

/// Bytes of the AES key.
pub const KEY_LEN: usize = 16;
/// privacyIDEA's default OTP length: a 12-character public id and the 32-character token.
pub const DEFAULT_OTP_LEN: usize = 44;

/// The sealed key (and private id, when given) and the parameters of a new token: `digits`
/// is the OTP's length (privacyIDEA's `otplen`: 32 + the public id's length), `prefix` the
/// public id (modhex) when known.
pub fn material(
    secrets: &TokenSecrets,
    serial: &str,
    key_hex: &str,
    otp_len: Option<u32>,
    prefix: Option<&str>,
    uid_hex: Option<&str>,
) -> Result<crate::simple_tokens::Material, crate::simple_tokens::MaterialError> {
    use crate::simple_tokens::MaterialError::Invalid;
    // The personalisation tools show the key as spaced hex pairs; privacyIDEA drops spaces.
    let cleaned = Zeroizing::new(key_hex.chars().filter(|c| !c.is_whitespace()).collect::<String>());
    let mut secret = Zeroizing::new(
        hex::decode(cleaned.as_str())
            .ok()
            .filter(|k| k.len() == KEY_LEN)
            .ok_or_else(|| Invalid("the otpkey must be the 16-byte AES key as 32 hex characters".into()))?,
    );
    if let Some(uid) = uid_hex {
        let uid = hex::decode(uid)
            .ok()
            .filter(|u| u.len() == UID_LEN)
            .ok_or_else(|| Invalid("the private id must be 6 bytes as 12 hex characters".into()))?;
        secret.extend_from_slice(&uid);
    }
    let prefix = match prefix.map(str::to_ascii_lowercase) {
        Some(p) if countersign_yubico_otp::modhex_decode(&p).is_none() || p.len() > 32 => {
            return Err(Invalid("the public id (yubikey.prefix) must be modhex, at most 32 characters".into()))
        }
        p => p,
    };
    let len = match (otp_len, &prefix) {
        (Some(n), _) => usize::try_from(n).unwrap_or(usize::MAX),
        (None, Some(p)) => p.len() + countersign_yubico_otp::TOKEN_CHARS,
        (None, None) => DEFAULT_OTP_LEN,
    };
    if !(countersign_yubico_otp::TOKEN_CHARS..=64).contains(&len) {
        return Err(Invalid(format!("a Yubico OTP has 32 to 64 characters, not {len}")));
    }
    if let Some(p) = &prefix {
        if p.len() + countersign_yubico_otp::TOKEN_CHARS != len {
            return Err(Invalid(format!(
                "the public id has {} characters, the otplen {len} needs {}",
                p.len(),
                len - 32
            )));
        }
    }
    let mut params = serde_json::json!({ "digits": len });
    if let Some(p) = prefix {
        params["prefix"] = p.into();
    }
    Ok(crate::simple_tokens::Material { stored: secrets.seal_seed(serial, &secret)?, params, shown: None })
}

/// The target of a check by OTP alone (the native check without serial or user, and the
/// Yubico validation protocol): the public id of the Yubico OTP that `pass` is, at least one
/// character before the 32 of the token; `None` when it is no such OTP.
pub fn public_id_target(pass: &str) -> Option<crate::store::CheckTarget> {
    countersign_yubico_otp::split(pass)
        .filter(|t| !t.public_id.is_empty())
        .map(|t| crate::store::CheckTarget::PublicId(t.public_id))
}

/// AES-128-ECB decryption of one block under the key at the start of `opened` (the token's
/// opened secret); `None` when it holds no key.
pub fn decrypt(opened: &[u8], block: &[u8; 16]) -> Option<[u8; 16]> {
    let key = opened.get(..KEY_LEN)?;
    let cipher = aes::Aes128::new_from_slice(key).ok()?;
    let mut out = GenericArray::clone_from_slice(block);
    cipher.decrypt_block(&mut out);
    let mut plain = [0u8; 16];
    plain.copy_from_slice(&out);
    Some(plain)
}

/// What the host made of the block it decrypted for a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saw {
    /// The CRC failed: not this key's OTP, or garbled.
    Garbled,
    /// A valid block of a key with another private id.
    WrongUid,
    /// A valid block with this token's private id (or the first, to be learned), at `counter`.
    Valid {
        /// The OTP's counter as privacyIDEA compares it (`usage << 8 | session_use`).
        counter: u64,
        /// The key and the private id sealed anew, when the private id is learned now.
        learn: Option<Vec<u8>>,
    },
}

/// Judges the decrypted `plain` against token `serial`'s opened secret; seals key + private
/// id when the token has none yet (only for a block whose CRC holds).
pub fn judge(secrets: &TokenSecrets, serial: &str, opened: &[u8], plain: &[u8; 16]) -> Result<Saw, HsmError> {
    let Some(fields) = countersign_yubico_otp::parse(plain) else { return Ok(Saw::Garbled) };
    match opened.get(KEY_LEN..) {
        Some(uid) if uid.len() == UID_LEN => Ok(if bool::from(uid.ct_eq(&fields.uid)) {
            Saw::Valid { counter: fields.counter(), learn: None }
        } else {
            Saw::WrongUid
        }),
        _ => {
            let mut both = Zeroizing::new(opened.get(..KEY_LEN).unwrap_or_default().to_vec());
            both.extend_from_slice(&fields.uid);
            Ok(Saw::Valid { counter: fields.counter(), learn: Some(secrets.seal_seed(serial, &both)?) })
        }
    }
}

/// The public id a check of token `t` with `otp` (the part after the PIN) would teach it: the
/// characters before the OTP's last 32, when `t` is a yubikey enrolled without one (privacyIDEA
/// learns `yubikey.prefix` the same way, so `/ttype/yubikey` and checks by OTP alone find it).
pub fn public_id_to_learn(t: &crate::store::TokenRecord, otp: &str) -> Option<String> {
    if t.token_type != "yubikey" || t.params.get("prefix").is_some() {
        return None;
    }
    countersign_yubico_otp::split(otp).map(|typed| typed.public_id).filter(|id| !id.is_empty())
}

/// Whether a plugin's match at `counter` is what the host saw: `Ok` with what the accept
/// stores besides the counter (the private id and the public id, `public_id`, when they are
/// learnt now), or why not (`Err(true)`: the OTP is another key's, a guess; `Err(false)`: the
/// plugin's answer disagrees with the host).
pub fn confirm(saw: Option<&Saw>, counter: u64, public_id: Option<String>) -> Result<AfterAccept, bool> {
    match saw {
        Some(Saw::Valid { counter: c, learn }) if *c == counter => Ok(match (learn, public_id) {
            (None, None) => AfterAccept::Keep,
            (secret, public_id) => AfterAccept::Learn { secret: secret.clone(), public_id },
        }),
        Some(Saw::WrongUid) => Err(true),
        _ => Err(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_accepts_only_the_counter_it_decrypted() {
        let valid = Saw::Valid { counter: 5, learn: None };
        assert_eq!(confirm(Some(&valid), 5, None), Ok(AfterAccept::Keep));
        assert_eq!(confirm(Some(&valid), 6, None), Err(false), "the plugin named another counter");
        assert_eq!(confirm(None, 5, None), Err(false), "nothing decrypted");
        assert_eq!(confirm(Some(&Saw::Garbled), 5, None), Err(false));
        assert_eq!(confirm(Some(&Saw::WrongUid), 5, Some("vv".into())), Err(true));
        let learn = Saw::Valid { counter: 5, learn: Some(vec![1]) };
        assert_eq!(confirm(Some(&learn), 5, None), Ok(AfterAccept::Learn { secret: Some(vec![1]), public_id: None }));
        assert_eq!(
            confirm(Some(&valid), 5, Some("vvcc".into())),
            Ok(AfterAccept::Learn { secret: None, public_id: Some("vvcc".into()) })
        );
    }

    #[test]
    fn decrypts_yubicos_published_example() {
        // ministrycentered/yubikey README (https://github.com/ministrycentered/yubikey): key
        // ecde18dbe76fbd0c33330f1c354871db, OTP dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh →
        // private id 8792ebfe26cc, 19 insertions, session counter 17.
        let key = hex::decode("ecde18dbe76fbd0c33330f1c354871db").unwrap_or_default();
        let typed = countersign_yubico_otp::split("dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh").unwrap();
        assert_eq!(typed.public_id, "dteffuje");
        let plain = decrypt(&key, &typed.token).unwrap();
        let f = countersign_yubico_otp::parse(&plain).unwrap();
        assert_eq!((hex::encode(f.uid).as_str(), f.usage, f.session_use), ("8792ebfe26cc", 19, 17));
        assert_eq!(decrypt(&[0; 4], &typed.token), None, "no key");
    }
}
