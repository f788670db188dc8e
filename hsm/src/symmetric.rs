//! AES-256-GCM sealing and HMAC with secret keys that never leave the token.
//!
//! Sealed blobs are `version (1) || IV (12) || ciphertext || tag (16)`; the IV comes from the
//! token's generator. Associated data is mandatory: it binds a ciphertext to the row it belongs
//! to, and SoftHSM 2.6 can crash on empty AAD.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectClass;
use zeroize::Zeroizing;

use crate::token::OpError;
use crate::{HashAlg, Hsm, HsmError, KeyId, Result};

const SEAL_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

impl Hsm {
    /// Encrypts `plaintext` under AES key `id`, bound to `aad`.
    pub fn seal(&self, id: &KeyId, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        if aad.is_empty() {
            return Err(HsmError::InvalidInput("AES-GCM sealing requires associated data".into()));
        }
        self.with_session("C_Encrypt", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::SECRET_KEY)?;
            let mut iv = [0u8; IV_LEN];
            s.generate_random_slice(&mut iv)?;
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, TAG_BITS.into())?;
            let ct = s.encrypt(&Mechanism::AesGcm(params), h, plaintext)?;
            let mut out = Vec::with_capacity(1 + IV_LEN + ct.len());
            out.push(SEAL_VERSION);
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
            Ok(out)
        })
    }

    /// Decrypts a blob made by [`Hsm::seal`] with the same key and `aad`.
    pub fn unseal(&self, id: &KeyId, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if aad.is_empty() {
            return Err(HsmError::InvalidInput("AES-GCM opening requires associated data".into()));
        }
        let (version, rest) = sealed.split_first().ok_or(HsmError::OpenFailed)?;
        if *version != SEAL_VERSION || rest.len() < IV_LEN + 16 {
            return Err(HsmError::OpenFailed);
        }
        let (iv, ct) = rest.split_at(IV_LEN);
        self.with_session("C_Decrypt", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::SECRET_KEY)?;
            let mut iv_param = [0u8; IV_LEN];
            iv_param.copy_from_slice(iv);
            let params = GcmParams::new(&mut iv_param, aad, TAG_BITS.into())?;
            // SoftHSM 2.6 reports a failed tag check as CKR_GENERAL_ERROR rather than
            // CKR_ENCRYPTED_DATA_INVALID; both mean "does not open", never "retry".
            match s.decrypt(&Mechanism::AesGcm(params), h, ct) {
                Ok(pt) => Ok(Zeroizing::new(pt)),
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::EncryptedDataInvalid
                    | cryptoki::error::RvError::EncryptedDataLenRange
                    | cryptoki::error::RvError::GeneralError,
                    _,
                )) => Err(OpError::Hsm(HsmError::OpenFailed)),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// HMAC of `data` under generic secret key `id`.
    pub fn hmac(&self, id: &KeyId, hash: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
        let mechanism = match hash {
            HashAlg::Sha256 => Mechanism::Sha256Hmac,
            HashAlg::Sha384 => Mechanism::Sha384Hmac,
            HashAlg::Sha512 => Mechanism::Sha512Hmac,
        };
        self.with_session("C_Sign", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::SECRET_KEY)?;
            Ok(s.sign(&mechanism, h, data)?)
        })
    }
}
