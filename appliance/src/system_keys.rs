//! The appliance's own key pairs (response signing, the audit key): generated inside the HSM
//! on first use and named in `system_key` by role, so every later start finds the same one.
//! A role the store names but the token lacks is an error, never a silent regeneration: that
//! would orphan everything the old key signed.

use countersign_hsm::{Hsm, HsmError, KeyAlgorithm, KeyId};

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SystemKeyError {
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the store names {role} key {key}, but the token does not hold it; restore the token from backup")]
    Missing { role: String, key: String },
}

/// The key pair of `role`, generated as `alg` when there is none yet.
pub fn key_pair(hsm: &Hsm, store: &Store, role: &str, alg: KeyAlgorithm) -> Result<KeyId, SystemKeyError> {
    match store.system_key(role)? {
        Some(hex) => {
            let id = KeyId::from_hex(&hex)?;
            if !hsm.has_key(&id, false)? {
                return Err(SystemKeyError::Missing { role: role.to_owned(), key: hex });
            }
            Ok(id)
        }
        None => {
            let pair = hsm.generate_key_pair(&format!("countersign/system/{role}"), alg)?;
            if let Err(e) = store.insert_system_key(role, &pair.id.to_hex()) {
                let _ = hsm.destroy_objects(&pair.id);
                return Err(e.into());
            }
            tracing::info!(key_id = %pair.id, role, "generated a system key pair on the token");
            Ok(pair.id)
        }
    }
}
