//! The admin service behind `admin.sock`: applications and their master keypairs (created and
//! rotated inside the HSM), integrations and grants, and reading the signature audit.
//!
//! Every change is committed to the store and then reloaded into the signing directory before
//! it is acknowledged. It never handles private key material.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_core::names::ObjectName;
use std::sync::Arc;

use countersign_hsm::{Hsm, HsmError, KeyAlgorithm};

use crate::directory::DirectoryHandle;
use crate::store::{AuditQuery, NewKeyVersion, SignatureAuditRow, Store, StoreError};
use countersign_api::application::{Application, Integration, KeyState, KeyVersion};

/// Why an admin change or read of applications, integrations or the signature audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A malformed name; an application, integration or grant named that does not exist; or
    /// an application or integration of that name (or an integration of that uid) that exists.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The HSM failed (generating a key pair, reading its public key).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The store failed for a reason the request cannot fix.
    #[error("store: {0}")]
    Store(StoreError),
    /// The blocking task doing the work failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => AdminError::Refused(r),
            other => AdminError::Store(other),
        }
    }
}

/// Applications (signing keys generated and rotated in the HSM), integrations and their
/// grants, and the signature audit, for admins. Every change is audited and reloaded into the
/// signing directory before it returns. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminService {
    hsm: Hsm,
    store: Arc<Store>,
    directory: Arc<DirectoryHandle>,
    /// Serialises changes so version numbers and directory reloads never interleave.
    changes: Arc<tokio::sync::Mutex<()>>,
}

/// Names of applications, integrations, gateways, resolvers and realms: the core's rule
/// ([`ObjectName`]), with the error naming the `kind`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), AdminError> {
    ObjectName::check_as(kind, name).map_err(|e| AdminError::Refused(Refusal::Invalid(e.to_string())))
}

/// A keypair the store could not record is destroyed again, so that the token holds no key
/// the appliance does not know about.
pub(crate) fn recorded_or_destroyed<T>(
    hsm: &Hsm,
    key: &NewKeyVersion,
    stored: Result<T, StoreError>,
) -> Result<T, AdminError> {
    stored.map_err(|e| {
        match hsm.destroy_objects(&key.key_id) {
            Ok(()) => tracing::warn!(key_id = %key.key_id, error = %e, "key not recorded; destroyed it on the token"),
            Err(d) => tracing::error!(
                key_id = %key.key_id, error = %e, destroy_error = %d,
                "key not recorded and could not be destroyed; remove it with pkcs11-tool --delete-object"
            ),
        }
        AdminError::from(e)
    })
}

fn label(app: &str, version: u32) -> String {
    format!("countersign/app/{app}/v{version}")
}

impl AdminService {
    /// The service over the HSM, the store and the signing directory it reloads after changes.
    pub fn new(hsm: Hsm, store: Arc<Store>, directory: Arc<DirectoryHandle>) -> Self {
        AdminService { hsm, store, directory, changes: Arc::new(tokio::sync::Mutex::new(())) }
    }

    /// What another admin service over the same applications shares with this one (the
    /// PowerAuth applications' service): the HSM, the store, the signing directory and the lock
    /// that serialises changes, so their directory reloads never interleave either (a reload
    /// that read the store before the other's change must not be swapped in after it).
    pub(crate) fn shared(&self) -> (Hsm, Arc<Store>, Arc<DirectoryHandle>, Arc<tokio::sync::Mutex<()>>) {
        (self.hsm.clone(), self.store.clone(), self.directory.clone(), self.changes.clone())
    }

    /// Runs blocking store/HSM work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hsm, &Store) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let hsm = self.hsm.clone();
        let store = self.store.clone();
        crate::service_error::off_runtime(move || f(&hsm, &store), AdminError::Internal).await
    }

    /// Runs a change and reloads the signing directory before returning. Each change writes
    /// its audit row in the transaction that makes it.
    async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hsm, &Store) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let _one_at_a_time = self.changes.lock().await;
        let directory = self.directory.clone();
        self.blocking(move |hsm, store| {
            let out = f(hsm, store);
            directory.reload(store)?;
            out
        })
        .await
    }

    /// Creates application `name` with its first key pair (version 1), generated in the HSM as
    /// `alg`; audited under `caller`. A key the store cannot record is destroyed again.
    pub async fn create_application(
        &self,
        caller: Caller,
        name: String,
        alg: KeyAlgorithm,
    ) -> Result<Application, AdminError> {
        validate_name("application", &name)?;
        self.change(move |hsm, store| {
            if store.application(&name)?.is_some() {
                return Err(AdminError::Refused(Refusal::Duplicate(format!("application '{name}'"))));
            }
            let label = label(&name, 1);
            let kp = hsm.generate_key_pair(&label, alg)?;
            let first = NewKeyVersion { key_id: kp.id, label, public_key_der: kp.public_key.to_spki_der()? };
            let audit = admin_audit(&caller, "app/create", format!("{name}: {alg}, key {}", first.key_id));
            let app = recorded_or_destroyed(hsm, &first, store.create_application(&name, alg, &first, &audit))?;
            tracing::info!(application = %name, algorithm = %alg, key_id = %first.key_id, "created application");
            Ok(application(app))
        })
        .await
    }

    /// Generates a new keypair version; the previous one is retired (verify only).
    pub async fn rotate(&self, caller: Caller, name: String) -> Result<Application, AdminError> {
        self.change(move |hsm, store| {
            let app = store
                .application(&name)?
                .ok_or_else(|| AdminError::Refused(Refusal::NotFound(format!("application '{name}'"))))?;
            let version = store.next_version(&name)?;
            let label = label(&name, version);
            let kp = hsm.generate_key_pair(&label, app.algorithm)?;
            let next = NewKeyVersion { key_id: kp.id, label, public_key_der: kp.public_key.to_spki_der()? };
            let audit = admin_audit(&caller, "app/rotate", format!("{name}: version {version}, key {}", next.key_id));
            let app = recorded_or_destroyed(hsm, &next, store.add_key_version(&name, version, &next, &audit))?;
            tracing::info!(application = %name, version, key_id = %next.key_id, "rotated master keypair");
            Ok(application(app))
        })
        .await
    }

    /// Every application with its key versions.
    pub async fn applications(&self) -> Result<Vec<Application>, AdminError> {
        self.blocking(|_, store| Ok(store.applications()?.into_iter().map(application).collect())).await
    }

    /// Application `name` with its key versions.
    pub async fn application(&self, name: String) -> Result<Application, AdminError> {
        self.blocking(move |_, store| {
            store
                .application(&name)?
                .map(application)
                .ok_or_else(|| AdminError::Refused(Refusal::NotFound(format!("application '{name}'"))))
        })
        .await
    }

    /// Registers integration `name` for the Unix uid `uid` (whose connections to `api.sock`
    /// act as it), with no grants yet.
    pub async fn create_integration(&self, caller: Caller, name: String, uid: u32) -> Result<Integration, AdminError> {
        validate_name("integration", &name)?;
        self.change(move |_, store| {
            let i = store.create_integration(
                &name,
                uid,
                &admin_audit(&caller, "integration/add", format!("{name}: uid {uid}")),
            )?;
            tracing::info!(integration = %name, uid, "registered integration");
            Ok(integration(i))
        })
        .await
    }

    /// Removes integration `name` and its grants.
    pub async fn delete_integration(&self, caller: Caller, name: String) -> Result<(), AdminError> {
        self.change(move |_, store| {
            store.delete_integration(&name, &admin_audit(&caller, "integration/remove", name.clone()))?;
            tracing::info!(integration = %name, "removed integration");
            Ok(())
        })
        .await
    }

    /// Every integration with the applications it is granted.
    pub async fn integrations(&self) -> Result<Vec<Integration>, AdminError> {
        self.blocking(|_, store| Ok(store.integrations()?.into_iter().map(integration).collect())).await
    }

    /// Lets `integration` use `application`'s keys (granting twice changes nothing); returns
    /// the integration as it now is.
    pub async fn grant(
        &self,
        caller: Caller,
        integration: String,
        application: String,
    ) -> Result<Integration, AdminError> {
        self.set_grant(caller, integration, application, true).await
    }

    /// Withdraws `integration`'s grant of `application`; `NotFound` when there was none.
    /// Returns the integration as it now is.
    pub async fn revoke(
        &self,
        caller: Caller,
        integration: String,
        application: String,
    ) -> Result<Integration, AdminError> {
        self.set_grant(caller, integration, application, false).await
    }

    /// Grants (`grant`) or withdraws a grant, with its audit row; the integration as it now is.
    async fn set_grant(
        &self,
        caller: Caller,
        integration: String,
        application: String,
        grant: bool,
    ) -> Result<Integration, AdminError> {
        self.change(move |_, store| {
            if grant {
                let audit = admin_audit(&caller, "integration/grant", format!("{application} to {integration}"));
                store.grant(&integration, &application, &audit)?;
                tracing::info!(integration = %integration, application = %application, "granted key");
            } else {
                let audit = admin_audit(&caller, "integration/revoke", format!("{application} from {integration}"));
                store.revoke(&integration, &application, &audit)?;
                tracing::info!(integration = %integration, application = %application, "revoked key");
            }
            store
                .integration(&integration)?
                .map(self::integration)
                .ok_or_else(|| AdminError::Refused(Refusal::NotFound(format!("integration '{integration}'"))))
        })
        .await
    }

    /// The signature audit rows `q` selects, newest first.
    pub async fn signature_audit(
        &self,
        q: AuditQuery,
    ) -> Result<Vec<countersign_api::audit::SignatureAuditRow>, AdminError> {
        self.blocking(move |_, store| Ok(store.signature_audit(&q)?.into_iter().map(signature_row).collect())).await
    }
}

/// An application as the native API shows it: its key versions without their public keys,
/// each HSM key id as hex.
fn application(a: crate::store::Application) -> Application {
    Application {
        id: a.id,
        name: a.name,
        algorithm: a.algorithm,
        created_at: a.created_at,
        versions: a.versions.into_iter().map(key_version).collect(),
    }
}

fn key_version(k: crate::store::KeyVersion) -> KeyVersion {
    KeyVersion {
        version: k.version,
        algorithm: k.algorithm,
        key_id: k.key_id.to_hex(),
        label: k.label,
        state: match k.state {
            crate::store::KeyState::Active => KeyState::Active,
            crate::store::KeyState::Retired => KeyState::Retired,
        },
        created_at: k.created_at,
        retired_at: k.retired_at,
    }
}

/// An integration as the native API shows it.
fn integration(i: crate::store::Integration) -> Integration {
    Integration { id: i.id, name: i.name, uid: i.uid, created_at: i.created_at, grants: i.grants }
}

/// A signature audit row as the native API shows it: the input's digest as hex.
fn signature_row(r: SignatureAuditRow) -> countersign_api::audit::SignatureAuditRow {
    countersign_api::audit::SignatureAuditRow {
        id: r.id,
        at_ms: r.at_ms,
        uid: r.uid,
        pid: r.pid,
        integration: r.integration,
        operation: r.operation,
        key_name: r.key_name,
        key_version: r.key_version,
        scheme: r.scheme,
        hash: r.hash,
        input_kind: r.input_kind,
        input_sha256: r.input_sha256.map(hex::encode),
        result: r.result,
        detail: r.detail,
    }
}

/// The audit row of a signing-key or integration change.
fn admin_audit(caller: &Caller, action: &str, detail: String) -> crate::store::AuthAuditRow {
    crate::store::AuthAuditRow { detail: Some(detail), ..crate::store::AuthAuditRow::new(caller, action, "ok") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_answers_without_its_public_key_and_with_its_key_id_in_hex() {
        use countersign_core::keys::KeyId;
        let row = crate::store::Application {
            id: 7,
            name: "billing".into(),
            algorithm: KeyAlgorithm::EcP256,
            created_at: 1_700_000_000,
            versions: vec![crate::store::KeyVersion {
                version: 1,
                algorithm: KeyAlgorithm::EcP256,
                key_id: KeyId::from_bytes(vec![0x0a, 0xff]),
                label: "countersign:billing:v1".into(),
                public_key_der: vec![1, 2, 3],
                state: crate::store::KeyState::Active,
                created_at: 1_700_000_001,
                retired_at: None,
            }],
        };
        let json = serde_json::to_value(application(row)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 7, "name": "billing", "algorithm": "ec-p256", "created_at": 1_700_000_000,
                "versions": [{
                    "version": 1, "algorithm": "ec-p256", "key_id": "0aff",
                    "label": "countersign:billing:v1", "state": "active",
                    "created_at": 1_700_000_001, "retired_at": null
                }]
            })
        );
        let back: Application = serde_json::from_value(json).unwrap();
        assert_eq!(back.active().map(|k| k.key_id.as_str()), Some("0aff"));
    }

    #[test]
    fn the_stores_refusals_keep_their_kind() {
        use countersign_core::error::{ErrorKind, Kinded};
        let kind = |e: StoreError| AdminError::from(e).kind();
        assert_eq!(kind(StoreError::Refused(Refusal::Invalid("bad".into()))), ErrorKind::Invalid);
        assert_eq!(kind(StoreError::Refused(Refusal::NotFound("x".into()))), ErrorKind::NotFound);
        assert_eq!(kind(StoreError::Refused(Refusal::Duplicate("x".into()))), ErrorKind::Conflict);
        assert_eq!(kind(StoreError::Tampered("x".into())), ErrorKind::Internal);
    }
}
