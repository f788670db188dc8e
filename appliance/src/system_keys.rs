//! The appliance's own key pairs (response signing, the audit key): generated inside the HSM
//! on first use and named in `system_key` by role, so every later start finds the same one.
//! A role the store names but the token lacks is an error, never a silent regeneration: that
//! would orphan everything the old key signed.

use countersign_core::error::Refusal;
use countersign_hsm::{Hsm, HsmError, KeyAlgorithm, KeyId};

use crate::store::{Store, StoreError};

/// Why a system key could not be found, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum SystemKeyError {
    /// The HSM failed (looking the key up, generating it).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The store failed, or the token holds more than one key of the role's label.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store names a key the token does not hold; it is never silently regenerated.
    #[error("the store names {role} key {key}, but the token does not hold it; restore the token from backup")]
    Missing {
        /// The key's role (`audit-signing`, `response-signing`, `table-seal`, ...).
        role: String,
        /// The key id the store names, hex.
        key: String,
    },
    /// The table seals do not verify, or cannot be checked.
    #[error("{0}")]
    Sealing(String),
}

/// The key pair of `role`, generated as `alg` when there is none yet.
pub fn key_pair(hsm: &Hsm, store: &Store, role: &str, alg: KeyAlgorithm) -> Result<KeyId, SystemKeyError> {
    match store.system_key(role)? {
        Some(hex) => {
            let id = KeyId::from_hex(&hex).map_err(countersign_hsm::HsmError::from)?;
            if !hsm.has_key(&id, false)? {
                return Err(SystemKeyError::Missing { role: role.to_owned(), key: hex });
            }
            Ok(id)
        }
        None => {
            // Made under the store's write lock: appliances on one database that need the key
            // at the same first use make it once; the others find it.
            let (hex, made) = store.system_key_or_make(
                role,
                || -> Result<String, SystemKeyError> {
                    Ok(hsm.generate_key_pair(&format!("countersign/system/{role}"), alg)?.id.to_hex())
                },
                |hex| {
                    if let Ok(id) = KeyId::from_hex(hex) {
                        let _ = hsm.destroy_objects(&id);
                    }
                },
            )?;
            let id = KeyId::from_hex(&hex).map_err(countersign_hsm::HsmError::from)?;
            if made {
                tracing::info!(key_id = %id, role, "generated a system key pair on the token");
            } else if !hsm.has_key(&id, false)? {
                return Err(SystemKeyError::Missing { role: role.to_owned(), key: hex });
            }
            Ok(id)
        }
    }
}

/// The HSM key of the table seals (HMAC-SHA-256, role `table-seal`).
///
/// API admins and service accounts are checked on every API request that carries a session
/// or key, and a token row on every check; most reads find the row or table as the appliance
/// last sealed it, so the MACs of recent digests are remembered and an unchanged row or table
/// costs its (software) digest only, no HSM call. A remembered MAC is one the HSM computed for
/// exactly that digest, so changed content still needs the HSM. A seal the appliance writes is
/// remembered as it is made, so the next check of that token reads it without the HSM.
#[derive(Debug)]
struct TableSealKey {
    hsm: Hsm,
    id: KeyId,
    seen: std::sync::Mutex<Remembered>,
}

/// Digests whose MACs are remembered: two generations of this many (about 100 bytes each), the
/// older dropped when the newer is full, so what is used stays and what is not ages out.
const REMEMBERED_DIGESTS: usize = 16_384;

#[derive(Debug, Default)]
struct Remembered {
    new: std::collections::HashMap<[u8; 32], [u8; 32]>,
    old: std::collections::HashMap<[u8; 32], [u8; 32]>,
}

impl Remembered {
    fn get(&mut self, digest: &[u8; 32]) -> Option<[u8; 32]> {
        if let Some(mac) = self.new.get(digest) {
            return Some(*mac);
        }
        let mac = self.old.remove(digest)?;
        self.put(*digest, mac);
        Some(mac)
    }

    fn put(&mut self, digest: [u8; 32], mac: [u8; 32]) {
        if self.new.len() >= REMEMBERED_DIGESTS {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(digest, mac);
    }
}

impl crate::store::seals::SealKey for TableSealKey {
    fn mac(&self, digest: &[u8]) -> Result<Vec<u8>, String> {
        // Digests are SHA-256 (32 bytes); anything else is MACed without being remembered.
        let key = <[u8; 32]>::try_from(digest).ok();
        if let Some(k) = &key {
            if let Some(mac) = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(k) {
                return Ok(mac.to_vec());
            }
        }
        // The HSM is asked without holding the lock: checks on other threads go on meanwhile.
        let mac = self.hsm.hmac(&self.id, countersign_hsm::HashAlg::Sha256, digest).map_err(|e| e.to_string())?;
        if let (Some(k), Ok(m)) = (key, <[u8; 32]>::try_from(mac.as_slice())) {
            self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).put(k, m);
        }
        Ok(mac)
    }

    fn work(&self) {
        // Past the remembered MACs, as a new row's seal is: the HSM computes it.
        let _ = self.hsm.hmac(&self.id, countersign_hsm::HashAlg::Sha256, &[0; 32]);
    }
}

/// Starts the table seals ([`crate::store::seals`]). The key is found on the token by its label,
/// not through the database: an edited database cannot make the appliance adopt its edits.
/// With no such key on the token (the first start with seals), one is generated and the tables
/// are sealed as they are; with one, every seal must verify or the start fails.
pub fn start_table_sealing(hsm: &Hsm, store: &Store) -> Result<(), SystemKeyError> {
    const ROLE: &str = "table-seal";
    let label = format!("countersign/system/{ROLE}");
    let found = hsm.keys_labelled(&label, true)?;
    let (id, adopt) = match found.as_slice() {
        [id] => (id.clone(), false),
        [] => {
            // Made under the store's write lock, so two appliances starting on a new database
            // make one key; a store that names a key the token lacks is refused.
            let (hex, made) = store.system_key_or_make(
                ROLE,
                || -> Result<String, SystemKeyError> {
                    Ok(hsm.generate_secret_key(&label, countersign_hsm::SecretKeyKind::Hmac)?.to_hex())
                },
                |hex| {
                    if let Ok(id) = KeyId::from_hex(hex) {
                        let _ = hsm.destroy_objects(&id);
                    }
                },
            )?;
            let id = KeyId::from_hex(&hex).map_err(countersign_hsm::HsmError::from)?;
            if made {
                tracing::info!(key_id = %id, "generated the table-seal key; sealing the tables that grant power");
            } else if !hsm.has_key(&id, true)? {
                return Err(SystemKeyError::Missing { role: ROLE.to_owned(), key: hex });
            }
            (id, made)
        }
        more => {
            return Err(SystemKeyError::Store(StoreError::Refused(Refusal::Invalid(format!(
                "the token holds {} keys labelled {label}; remove the ones the store does not name",
                more.len()
            )))))
        }
    };
    store.start_sealing(table_seal_key(hsm, id), adopt).map_err(|e| SystemKeyError::Sealing(e.to_string()))
}

/// The seal key of HSM key `id` as the daemon uses it (remembering recent MACs); public for
/// `bench-seals`.
pub fn table_seal_key(hsm: &Hsm, id: KeyId) -> std::sync::Arc<dyn crate::store::seals::SealKey> {
    std::sync::Arc::new(TableSealKey { hsm: hsm.clone(), id, seen: Default::default() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn d(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn remembered_macs_stay_while_used_and_age_out_otherwise() {
        let mut r = Remembered::default();
        r.put(d(1), d(101));
        assert_eq!(r.get(&d(1)), Some(d(101)));
        assert_eq!(r.get(&d(2)), None, "only what the HSM computed is remembered");
        // Fill the newer generation: the first digest moves to the older one, still found, and
        // is promoted back when used.
        for i in 0..REMEMBERED_DIGESTS {
            r.put(i.to_be_bytes().repeat(4).try_into().unwrap(), d(7));
        }
        assert_eq!(r.get(&d(1)), Some(d(101)));
        // Two more generations without using it: gone.
        for round in 0..2u64 {
            for i in 0..REMEMBERED_DIGESTS as u64 {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(round + 2).to_be_bytes());
                k[8..16].copy_from_slice(&i.to_be_bytes());
                r.put(k, d(8));
            }
        }
        assert_eq!(r.get(&d(1)), None);
        assert!(r.new.len() + r.old.len() <= 2 * REMEMBERED_DIGESTS);
    }
}
