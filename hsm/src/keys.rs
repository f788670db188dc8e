//! Key generation inside the token. Every private and secret key is created with
//! `CKA_SENSITIVE=true` and `CKA_EXTRACTABLE=false`, so its value can never be read out.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use cryptoki::types::Ulong;

use crate::pubkey::{curve_oid_der, PublicKey};
use crate::token::OpError;
use crate::{Hsm, HsmError, KeyAlgorithm, Result};

pub use countersign_core::keys::KeyId;

/// A keypair that was just generated on the token.
#[derive(Debug, Clone)]
pub struct GeneratedKeyPair {
    /// The CKA_ID both halves carry (16 random bytes from the token); record it to use the key.
    pub id: KeyId,
    /// The public half, as the token reports it.
    pub public_key: PublicKey,
}

/// Symmetric keys the appliance keeps on the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKeyKind {
    /// AES-256 for AES-GCM sealing of secrets at rest.
    Aes256,
    /// 512-bit generic secret for HMAC-SHA-2 verifiers.
    Hmac,
}

/// What a private key may do besides signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Sign only (every signing application's key).
    Sign,
    /// Sign and agree keys by ECDH (`CKA_DERIVE`): a PowerAuth application's master key, which
    /// protocol versions before 3.3 use for application-scope ECIES.
    SignAndAgree,
}

const KEY_ID_LEN: usize = 16;

fn private_template(label: &str, id: &KeyId, key_use: KeyUse) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(key_use == KeyUse::SignAndAgree),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.as_bytes().to_vec()),
    ]
}

fn public_template(label: &str, id: &KeyId) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.as_bytes().to_vec()),
    ]
}

impl Hsm {
    /// Generates an asymmetric keypair on the token and returns its id and public key.
    pub fn generate_key_pair(&self, label: &str, alg: KeyAlgorithm) -> Result<GeneratedKeyPair> {
        self.generate_key_pair_for(label, alg, KeyUse::Sign)
    }

    /// [`Hsm::generate_key_pair`] for `key_use` (only EC keys may agree keys).
    pub fn generate_key_pair_for(&self, label: &str, alg: KeyAlgorithm, key_use: KeyUse) -> Result<GeneratedKeyPair> {
        if key_use == KeyUse::SignAndAgree && !matches!(alg, KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384) {
            return Err(HsmError::InvalidInput(format!("{alg} keys cannot agree keys by ECDH")));
        }
        let mut extra = Vec::new();
        let mechanism = match alg {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                extra.push(Attribute::EcParams(curve_oid_der(alg).to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Ed25519 => {
                extra.push(Attribute::EcParams(curve_oid_der(alg).to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
                let bits: Ulong = if alg == KeyAlgorithm::Rsa2048 { 2048 } else { 3072 }.into();
                extra.push(Attribute::ModulusBits(bits));
                extra.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let id = self.create_objects("C_GenerateKeyPair", |s, id| {
            let mut public = public_template(label, id);
            public.extend(extra.iter().cloned());
            s.generate_key_pair(&mechanism, &public, &private_template(label, id, key_use)).map(|_| ())
        })?;
        let public_key = self.public_key(&id, alg)?;
        Ok(GeneratedKeyPair { id, public_key })
    }

    /// Reads the public half of a keypair from the token.
    pub fn public_key(&self, id: &KeyId, alg: KeyAlgorithm) -> Result<PublicKey> {
        self.with_session("C_GetAttributeValue", |hsm, s| {
            let h = hsm.handle(s, id, ObjectClass::PUBLIC_KEY)?;
            let want = match alg {
                KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
                    vec![cryptoki::object::AttributeType::Modulus, cryptoki::object::AttributeType::PublicExponent]
                }
                _ => vec![cryptoki::object::AttributeType::EcPoint],
            };
            let attrs = s.get_attributes(h, &want)?;
            let mut point = None;
            let mut modulus = None;
            let mut exponent = None;
            for a in attrs {
                match a {
                    Attribute::EcPoint(p) => point = Some(p),
                    Attribute::Modulus(n) => modulus = Some(n),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            let missing =
                || OpError::from(HsmError::Encoding("the token did not return the public key attributes".into()));
            Ok(match alg {
                KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
                    PublicKey::Rsa { n: modulus.ok_or_else(missing)?, e: exponent.ok_or_else(missing)? }
                }
                _ => PublicKey::from_ec_point(alg, &point.ok_or_else(missing)?)?,
            })
        })
    }

    /// Generates a symmetric key on the token.
    pub fn generate_secret_key(&self, label: &str, kind: SecretKeyKind) -> Result<KeyId> {
        let mut template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let mechanism = match kind {
            SecretKeyKind::Aes256 => {
                template.extend([
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ]);
                Mechanism::AesKeyGen
            }
            SecretKeyKind::Hmac => {
                // SoftHSM refuses HMAC-SHA-512 with keys shorter than its 64-byte output.
                template.extend([
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::ValueLen(64u64.into()),
                    Attribute::Sign(true),
                    Attribute::Verify(true),
                ]);
                Mechanism::GenericSecretKeyGen
            }
        };
        self.create_objects("C_GenerateKey", |s, id| {
            let mut t = template.clone();
            t.push(Attribute::Id(id.as_bytes().to_vec()));
            s.generate_key(&mechanism, &t).map(|_| ())
        })
    }

    /// Creates token objects under a fresh CKA_ID, one creation at a time. SoftHSM 2.6's file
    /// store can lose a race with other sessions while it writes a new object and then fails
    /// the creation (CKR_GENERAL_ERROR or CKR_TEMPLATE_INCONSISTENT; SoftHSMv2 issue 573):
    /// such an attempt is cleaned up and repeated under a new id.
    fn create_objects(
        &self,
        op: &'static str,
        create: impl Fn(&Session, &KeyId) -> std::result::Result<(), CkError>,
    ) -> Result<KeyId> {
        const TRIES: u32 = 3;
        let _one_at_a_time = self.creating();
        let mut attempt = 1;
        loop {
            let id = KeyId::from_bytes(self.random(KEY_ID_LEN)?);
            let raced = self.with_session(op, |_, s| match create(s, &id) {
                Ok(()) => Ok(false),
                Err(CkError::Pkcs11(RvError::GeneralError | RvError::TemplateInconsistent, _)) if attempt < TRIES => {
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            })?;
            if !raced {
                return Ok(id);
            }
            tracing::warn!(op, key_id = %id, attempt, "the token failed to create an object; retrying under a new id");
            self.destroy_objects(&id)?;
            attempt += 1;
        }
    }

    /// Destroys every object with this CKA_ID: what a failed creation left behind, or a key
    /// the caller generated but could not record. Never call it for a key that is in use.
    pub fn destroy_objects(&self, id: &KeyId) -> Result<()> {
        self.with_session("C_DestroyObject", |_, s| {
            for h in s.find_objects(&[Attribute::Id(id.as_bytes().to_vec())])? {
                s.destroy_object(h)?;
            }
            Ok(())
        })
    }

    /// The ids of the secret keys (`secret`) or key pairs (by their private key) that carry
    /// exactly `label`. Labels are set only at generation and the appliance gives each role its
    /// own (`countersign/system/<role>`), so a caller can find a system key without trusting a
    /// database that names it.
    pub fn keys_labelled(&self, label: &str, secret: bool) -> Result<Vec<KeyId>> {
        let class = if secret { ObjectClass::SECRET_KEY } else { ObjectClass::PRIVATE_KEY };
        self.with_session("C_FindObjects", |_, s| {
            let mut ids = Vec::new();
            for h in s.find_objects(&[
                Attribute::Token(true),
                Attribute::Class(class),
                Attribute::Label(label.as_bytes().to_vec()),
            ])? {
                for attr in s.get_attributes(h, &[AttributeType::Id])? {
                    if let Attribute::Id(id) = attr {
                        ids.push(KeyId::from_bytes(id));
                    }
                }
            }
            Ok(ids)
        })
    }

    /// Whether a private or secret key with this id is on the token.
    pub fn has_key(&self, id: &KeyId, secret: bool) -> Result<bool> {
        let class = if secret { ObjectClass::SECRET_KEY } else { ObjectClass::PRIVATE_KEY };
        self.with_session("C_FindObjects", |hsm, s| match hsm.handle(s, id, class) {
            Ok(_) => Ok(true),
            Err(OpError::Hsm(HsmError::KeyNotFound(_))) => Ok(false),
            Err(e) => Err(e),
        })
    }
}
