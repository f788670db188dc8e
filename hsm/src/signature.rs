//! Signing and verification with keys on the token (the ECDSA signature encodings live in
//! `countersign-pki`).
//!
//! Messages are hashed here and the token signs the digest (`CKM_ECDSA`, `CKM_RSA_PKCS` over a
//! DigestInfo, `CKM_RSA_PKCS_PSS`), which also serves callers that send a prehashed digest.
//! Ed25519 signs the message itself. ECDSA signatures come back raw (`r || s`).

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectClass;

use crate::{HashAlg, Hsm, HsmError, KeyAlgorithm, KeyId, Result, SignScheme};

/// What the caller hands in: the message itself, or its digest under the request's hash.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The message itself; it is hashed here (Ed25519 signs it as it is).
    Message(&'a [u8]),
    /// A digest the caller computed with the request's hash; it must be exactly that hash's
    /// length, and Ed25519 refuses it.
    Digest(&'a [u8]),
}

/// The bytes the token's mechanism works on, and the mechanism's parameters.
struct Prepared {
    data: Vec<u8>,
    mechanism: MechanismChoice,
}

#[derive(Clone, Copy)]
enum MechanismChoice {
    Ecdsa,
    Eddsa,
    RsaPkcs,
    RsaPss(PkcsPssParams),
}

impl MechanismChoice {
    fn mechanism(&self) -> Mechanism<'static> {
        match *self {
            MechanismChoice::Ecdsa => Mechanism::Ecdsa,
            MechanismChoice::Eddsa => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            MechanismChoice::RsaPkcs => Mechanism::RsaPkcs,
            MechanismChoice::RsaPss(p) => Mechanism::RsaPkcsPss(p),
        }
    }
}

fn prepare(alg: KeyAlgorithm, scheme: SignScheme, hash: HashAlg, input: SignInput<'_>) -> Result<Prepared> {
    if !alg.allows(scheme) {
        return Err(HsmError::Unsupported(format!("a key of type {alg} cannot make {scheme} signatures")));
    }
    // Every scheme but Ed25519 signs a digest of the message (or the caller's digest).
    let digest = || match input {
        SignInput::Message(m) => Ok(hash.digest(m)),
        SignInput::Digest(d) if d.len() == hash.digest_len() => Ok(d.to_vec()),
        SignInput::Digest(d) => {
            Err(HsmError::InvalidInput(format!("a {hash} digest is {} bytes, got {}", hash.digest_len(), d.len())))
        }
    };
    Ok(match scheme {
        SignScheme::Ed25519 => match input {
            SignInput::Message(m) => Prepared { data: m.to_vec(), mechanism: MechanismChoice::Eddsa },
            SignInput::Digest(_) => {
                return Err(HsmError::Unsupported(
                    "Ed25519 signs the message itself; send the message, not a digest".into(),
                ))
            }
        },
        SignScheme::Ecdsa => Prepared { data: digest()?, mechanism: MechanismChoice::Ecdsa },
        SignScheme::RsaPkcs1v15 => {
            let mut data = crate::algorithms::digest_info_prefix(hash).to_vec();
            data.extend_from_slice(&digest()?);
            Prepared { data, mechanism: MechanismChoice::RsaPkcs }
        }
        SignScheme::RsaPss => {
            let (hash_alg, mgf) = match hash {
                HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
            };
            let s_len = (hash.digest_len() as u64).into();
            Prepared { data: digest()?, mechanism: MechanismChoice::RsaPss(PkcsPssParams { hash_alg, mgf, s_len }) }
        }
    })
}

impl Hsm {
    /// Signs with the private key `id`. ECDSA output is raw `r || s`.
    pub fn sign(
        &self,
        id: &KeyId,
        alg: KeyAlgorithm,
        scheme: SignScheme,
        hash: HashAlg,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        let p = prepare(alg, scheme, hash, input)?;
        let mechanism = p.mechanism.mechanism();
        self.with_session("C_Sign", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::PRIVATE_KEY)?;
            Ok(s.sign(&mechanism, h, &p.data)?)
        })
    }

    /// Verifies with the public key `id`. ECDSA signatures are raw `r || s`.
    /// A wrong signature is `Ok(false)`; only token trouble is an error.
    pub fn verify(
        &self,
        id: &KeyId,
        alg: KeyAlgorithm,
        scheme: SignScheme,
        hash: HashAlg,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let p = prepare(alg, scheme, hash, input)?;
        let mechanism = p.mechanism.mechanism();
        self.with_session("C_Verify", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::PUBLIC_KEY)?;
            match s.verify(&mechanism, h, &p.data, signature) {
                Ok(()) => Ok(true),
                Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_refuses_digests() {
        let e = prepare(KeyAlgorithm::Ed25519, SignScheme::Ed25519, HashAlg::Sha256, SignInput::Digest(&[0; 32]));
        assert!(matches!(e, Err(HsmError::Unsupported(_))));
    }

    #[test]
    fn scheme_must_fit_key() {
        let e = prepare(KeyAlgorithm::EcP256, SignScheme::RsaPss, HashAlg::Sha256, SignInput::Message(b"x"));
        assert!(matches!(e, Err(HsmError::Unsupported(_))));
    }
}
