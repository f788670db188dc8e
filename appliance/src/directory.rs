//! An in-memory snapshot of who may use which key: integrations by uid with their grants, and
//! every application's key versions with their public keys.
//!
//! The signing hot path reads only this snapshot (no database round trip); every admin change
//! reloads it from the store before it is acknowledged, so a revoked grant is never honoured
//! after the admin saw "revoked".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use countersign_hsm::{KeyAlgorithm, KeyId, PublicKey};

use crate::store::{KeyState, Store, StoreError};

#[derive(Debug, Clone)]
pub struct IntegrationEntry {
    pub name: String,
    pub granted: HashSet<String>,
}

#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub key_id: KeyId,
    pub state: KeyState,
    pub public_key: PublicKey,
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub name: String,
    pub algorithm: KeyAlgorithm,
    pub active: u32,
    pub versions: BTreeMap<u32, VersionEntry>,
}

#[derive(Debug, Default)]
pub struct Directory {
    pub by_uid: HashMap<u32, IntegrationEntry>,
    /// Shared so that a request holds its key entry without copying it.
    pub keys: HashMap<String, Arc<KeyEntry>>,
}

impl Directory {
    fn load(store: &Store) -> Result<Directory, StoreError> {
        let mut dir = Directory::default();
        for app in store.applications()? {
            let mut versions = BTreeMap::new();
            for v in &app.versions {
                let public_key = PublicKey::from_spki_der(&v.public_key_der).map_err(|e| {
                    StoreError::Tampered(format!("stored public key of {} v{} is unreadable: {e}", app.name, v.version))
                })?;
                versions.insert(v.version, VersionEntry { key_id: v.key_id.clone(), state: v.state, public_key });
            }
            let active = app.active().map_or(0, |v| v.version);
            dir.keys.insert(
                app.name.clone(),
                Arc::new(KeyEntry { name: app.name, algorithm: app.algorithm, active, versions }),
            );
        }
        for i in store.integrations()? {
            dir.by_uid.insert(i.uid, IntegrationEntry { name: i.name, granted: i.grants.into_iter().collect() });
        }
        Ok(dir)
    }
}

/// The current snapshot, swapped whole on reload.
#[derive(Debug, Default)]
pub struct DirectoryHandle {
    current: RwLock<Arc<Directory>>,
}

impl DirectoryHandle {
    pub fn load(store: &Store) -> Result<DirectoryHandle, StoreError> {
        Ok(DirectoryHandle { current: RwLock::new(Arc::new(Directory::load(store)?)) })
    }

    pub fn current(&self) -> Arc<Directory> {
        // The lock only guards an Arc swap; a poisoned lock still holds a complete snapshot.
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let fresh = Arc::new(Directory::load(store)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}
