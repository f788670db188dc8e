//! ECDH key agreement with a private key on the token (CKM_ECDH1_DERIVE, no KDF): what
//! PowerAuth's application-scope ECIES before protocol 3.3 needs of an application's master key.
//!
//! The derived shared secret is made a session object that may be read (it is the input of the
//! protocol's X9.63 KDF, which PKCS#11 tokens do not offer with PowerAuth's info), read once and
//! destroyed in the same session; only keys generated for agreement (`KeyUse::SignAndAgree`)
//! allow it. Must never: keep the derived object, or derive with a key not generated for it.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use zeroize::Zeroizing;

use crate::token::OpError;
use crate::{Hsm, HsmError, KeyId, Result};

impl Hsm {
    /// The raw ECDH shared secret (the X coordinate, `len` bytes) of private key `id` and the
    /// peer's uncompressed SEC1 point.
    pub fn ecdh(&self, id: &KeyId, peer_point: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
        let value_len = u64::try_from(len).map_err(|_| HsmError::InvalidInput("the shared secret length".into()))?;
        self.with_session("C_DeriveKey", |hsm, s| {
            let private = hsm.handle(s, id, ObjectClass::PRIVATE_KEY)?;
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point);
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::ValueLen(value_len.into()),
            ];
            let derived = match s.derive_key(&Mechanism::Ecdh1Derive(params), private, &template) {
                Ok(h) => h,
                Err(CkError::Pkcs11(RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent, _)) => {
                    return Err(OpError::Hsm(HsmError::Unsupported(format!(
                        "key {id} was not generated for key agreement (ECDH)"
                    ))))
                }
                Err(e) => return Err(e.into()),
            };
            let value = s.get_attributes(derived, &[AttributeType::Value]);
            // Destroyed whatever the read gave: the session object must not outlive the call.
            let destroyed = s.destroy_object(derived);
            let mut secret = None;
            for a in value? {
                if let Attribute::Value(v) = a {
                    secret = Some(Zeroizing::new(v));
                }
            }
            destroyed?;
            secret.filter(|v| v.len() == len).ok_or_else(|| {
                OpError::from(HsmError::Encoding("the token did not return the derived shared secret".into()))
            })
        })
    }
}
