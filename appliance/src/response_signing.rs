//! The key that signs privacyIDEA-compatible API responses (`signature: rsa_sha256_pss:<hex>`),
//! as privacyIDEA clients expect: an RSA-2048 key pair generated in the HSM on first use and
//! named in `system_key` as `response-signing`. Its public key is exported for clients to
//! verify with; the private key never leaves the HSM.

use std::sync::{Arc, Mutex};

use countersign_hsm::{HashAlg, Hsm, HsmError, KeyAlgorithm, KeyId, SignInput, SignScheme};

use crate::store::Store;

const ROLE: &str = "response-signing";

/// Why a response could not be signed or the public key not read.
#[derive(Debug, thiserror::Error)]
pub enum ResponseSigningError {
    /// The HSM failed to sign or to give the public key.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The key pair could not be found or generated ([`crate::system_keys::key_pair`]).
    #[error(transparent)]
    Key(#[from] crate::system_keys::SystemKeyError),
    /// The blocking task doing the work failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Signs response bodies with the HSM key; created lazily so daemons that never serve the
/// privacyIDEA API never generate it.
#[derive(Debug, Clone)]
pub struct ResponseSigner {
    hsm: Hsm,
    store: Arc<Store>,
    key: Arc<Mutex<Option<KeyId>>>,
}

impl ResponseSigner {
    /// The signer; its key pair is looked up (or generated) at the first signature.
    pub fn new(hsm: Hsm, store: Arc<Store>) -> ResponseSigner {
        ResponseSigner { hsm, store, key: Arc::new(Mutex::new(None)) }
    }

    fn key(&self) -> Result<KeyId, ResponseSigningError> {
        let mut guard = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = guard.as_ref() {
            return Ok(k.clone());
        }
        let id = crate::system_keys::key_pair(&self.hsm, &self.store, ROLE, KeyAlgorithm::Rsa2048)?;
        *guard = Some(id.clone());
        Ok(id)
    }

    /// `rsa_sha256_pss:<hex>` over `data`.
    pub fn sign(&self, data: &[u8]) -> Result<String, ResponseSigningError> {
        let key = self.key()?;
        let sig = self.hsm.sign(
            &key,
            KeyAlgorithm::Rsa2048,
            SignScheme::RsaPss,
            HashAlg::Sha256,
            SignInput::Message(data),
        )?;
        Ok(format!("rsa_sha256_pss:{}", hex::encode(sig)))
    }

    /// The public key clients verify with, PEM (read from the HSM off the async runtime).
    pub async fn public_key_pem(&self) -> Result<String, ResponseSigningError> {
        let this = self.clone();
        crate::service_error::off_runtime(
            move || {
                let key = this.key()?;
                Ok(this.hsm.public_key(&key, KeyAlgorithm::Rsa2048)?.to_pem()?)
            },
            ResponseSigningError::Internal,
        )
        .await
    }
}
