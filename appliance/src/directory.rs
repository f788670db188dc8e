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

/// An integration as the signing path sees it.
#[derive(Debug, Clone)]
pub struct IntegrationEntry {
    /// The integration's name.
    pub name: String,
    /// The applications whose keys it may use.
    pub granted: HashSet<String>,
}

/// One key version of an application.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    /// The key pair's id on the HSM (never the key itself).
    pub key_id: KeyId,
    /// Active (signs), or retired (verifies only).
    pub state: KeyState,
    /// The public key, to hand out without an HSM call.
    pub public_key: PublicKey,
}

/// An application's key and its versions.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The application's name, which callers name the key by.
    pub name: String,
    /// The algorithm of every version.
    pub algorithm: KeyAlgorithm,
    /// The version that signs; 0 when none is active.
    pub active: u32,
    /// Every version, by number.
    pub versions: BTreeMap<u32, VersionEntry>,
}

/// One snapshot of who may use which key.
#[derive(Debug, Default)]
pub struct Directory {
    /// Integrations by the Unix uid they are registered for.
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
    /// The handle with a snapshot read from `store` (the tables' seals must verify).
    pub fn load(store: &Store) -> Result<DirectoryHandle, StoreError> {
        Ok(DirectoryHandle { current: RwLock::new(Arc::new(Directory::load(store)?)) })
    }

    /// The snapshot to read; cheap (an `Arc` clone).
    pub fn current(&self) -> Arc<Directory> {
        // The lock only guards an Arc swap; a poisoned lock still holds a complete snapshot.
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads a new snapshot from `store` and swaps it in; on error the old one stays.
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let fresh = Arc::new(Directory::load(store)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}
