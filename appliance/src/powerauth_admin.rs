//! PowerAuth applications for admins (issue 19, part 1): applications with their master key
//! pair, versions with APP_KEY and APP_SECRET. (Activations, with their codes signed by the
//! master key, are `powerauth_server`'s.)
//!
//! A PowerAuth application is a signing application of algorithm ec-p256 (its master key pair
//! generated in the HSM by [`Hsm::generate_key_pair`], the signing applications' own path, and
//! recorded in `master_keypair`) plus the PowerAuth mark, which keeps the key out of the signing
//! API (ARCHITECTURE.md says why it is not a reference to an application an admin made).
//!
//! Owns: APP_KEY and APP_SECRET generation (16 bytes each from the HSM's generator), sealing
//! APP_SECRET under `token-seal` bound to application, version and APP_KEY, and the one audited
//! way to see it again. Must never: store, log or answer APP_SECRET except in the answer made
//! to show it; answer a secret whose audit row was not committed.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign_api::powerauth::{PowerAuthApplication, PowerAuthVersion, PowerAuthVersionSecret};
use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_hsm::{Hsm, HsmError, KeyAlgorithm, PublicKey};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::admin::{validate_name, AdminError, AdminService};
use crate::directory::DirectoryHandle;
use crate::service_error::OffRuntime;
use crate::store::{AuthAuditRow, NewKeyVersion, NewPowerAuthVersion, Store, StoreError};
use crate::token_secrets::TokenSecrets;

/// Bytes of APP_KEY and of APP_SECRET (the reference server's 16).
const APP_KEY_LEN: usize = 16;

/// PowerAuth applications and versions for admins. Every change is audited
/// in its transaction; cheap to clone.
#[derive(Debug, Clone)]
pub struct PowerAuthAdmin {
    hsm: Hsm,
    store: Arc<Store>,
    secrets: TokenSecrets,
    directory: Arc<DirectoryHandle>,
    /// The signing applications' admin service's lock: changes of both are serialised, so
    /// directory reloads never interleave.
    changes: Arc<tokio::sync::Mutex<()>>,
}

fn label(app: &str) -> String {
    format!("countersign/powerauth/{app}/master")
}

fn audit(caller: &Caller, action: &str, detail: String) -> AuthAuditRow {
    AuthAuditRow { detail: Some(detail), ..AuthAuditRow::new(caller, action, "ok") }
}

fn not_found(app: &str) -> AdminError {
    AdminError::Refused(Refusal::NotFound(format!("PowerAuth application '{app}'")))
}

/// The master public key as PowerAuth's SDK is configured with it: the uncompressed SEC1 point
/// of the stored SubjectPublicKeyInfo, Base64.
fn master_public_key(spki: &[u8]) -> Result<String, AdminError> {
    match PublicKey::from_spki_der(spki)? {
        PublicKey::Ec { alg: KeyAlgorithm::EcP256, point } => Ok(STANDARD.encode(point)),
        other => Err(AdminError::Store(StoreError::Tampered(format!(
            "a PowerAuth master key is {}, not ec-p256",
            other.algorithm()
        )))),
    }
}

fn version(v: crate::store::PowerAuthVersion) -> PowerAuthVersion {
    PowerAuthVersion { name: v.name, app_key: v.app_key, supported: v.supported, created_at: v.created_at }
}

fn application(a: crate::store::PowerAuthApplication) -> Result<PowerAuthApplication, AdminError> {
    Ok(PowerAuthApplication {
        master_public_key: master_public_key(&a.master.public_key_der)?,
        master_key_id: a.master.key_id.to_hex(),
        name: a.name,
        created_at: a.created_at,
        versions: a.versions.into_iter().map(version).collect(),
        roles: a.roles,
        config: a
            .config
            .into_iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(&v)
                    .map_err(|_| AdminError::Store(StoreError::Tampered(format!("configuration '{k}' is not JSON"))))?;
                Ok((k, value))
            })
            .collect::<Result<_, AdminError>>()?,
    })
}

/// The configuration keys the reference server knows, and what each holds.
const CONFIG_KEYS: &[(&str, &str)] = &[
    ("fido2_attestation_fmt_allowed", "attestation formats, as strings"),
    ("fido2_aaguids_allowed", "AAGUIDs, as strings"),
    ("fido2_root_ca_certs", "PEM certificates, as strings"),
    ("oauth2_providers", "provider objects"),
];

/// A role: 1 to 64 of letters, digits, `_`, `-`, `.`, `:`.
fn valid_role(role: &str) -> Result<(), AdminError> {
    let ok = (1..=64).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Refused(Refusal::Invalid(format!(
            "role '{role}' is not 1 to 64 letters, digits, '_', '-', '.' or ':'"
        ))))
    }
}

/// `values` for configuration `key`: a JSON array, of strings for the FIDO2 keys and of objects
/// for `oauth2_providers`; a key the reference does not know is refused.
fn valid_config(key: &str, values: &serde_json::Value) -> Result<String, AdminError> {
    let refuse = |why: String| Err(AdminError::Refused(Refusal::Invalid(why)));
    let Some((_, what)) = CONFIG_KEYS.iter().find(|(k, _)| *k == key) else {
        let known: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
        return refuse(format!("unknown configuration key '{key}' (known: {})", known.join(", ")));
    };
    let Some(items) = values.as_array() else { return refuse(format!("'{key}' is a JSON array of {what}")) };
    let strings = key != "oauth2_providers";
    if items.iter().any(|v| if strings { !v.is_string() } else { !v.is_object() }) {
        return refuse(format!("'{key}' is a JSON array of {what}"));
    }
    Ok(values.to_string())
}

/// `len` bytes of the HSM's generator, Base64; the bytes are zeroized once encoded.
fn random_base64(secrets: &TokenSecrets, len: usize) -> Result<Zeroizing<String>, HsmError> {
    let bytes = Zeroizing::new(secrets.random(len)?);
    Ok(Zeroizing::new(STANDARD.encode(bytes.as_slice())))
}

impl PowerAuthAdmin {
    /// The service beside `admin` (whose HSM, store, signing directory and change lock it
    /// shares: a PowerAuth application is one of its applications) with the sealing keys.
    pub fn new(admin: &AdminService, secrets: TokenSecrets) -> Self {
        let (hsm, store, directory, changes) = admin.shared();
        PowerAuthAdmin { hsm, store, secrets, directory, changes }
    }

    async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PowerAuthAdmin) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let _one_at_a_time = self.changes.lock().await;
        self.blocking(move |me| {
            let out = f(me);
            me.directory.reload(&me.store)?;
            out
        })
        .await
    }

    /// Creates PowerAuth application `name` with its master key pair (P-256, generated in the
    /// HSM, sensitive and non-extractable); audited under `caller`. A key the store cannot
    /// record is destroyed again.
    pub async fn create(&self, caller: Caller, name: String) -> Result<PowerAuthApplication, AdminError> {
        validate_name("application", &name)?;
        self.change(move |me| {
            if me.store.application(&name)?.is_some() {
                return Err(AdminError::Refused(Refusal::Duplicate(format!("application '{name}'"))));
            }
            let label = label(&name);
            // Signs activation codes and 3.3 temporary keys' answers; agrees keys (ECDH in the HSM)
            // for application-scope ECIES of protocol versions before 3.3.
            let kp =
                me.hsm.generate_key_pair_for(&label, KeyAlgorithm::EcP256, countersign_hsm::KeyUse::SignAndAgree)?;
            let master = NewKeyVersion { key_id: kp.id, label, public_key_der: kp.public_key.to_spki_der()? };
            let row = audit(&caller, "powerauth/app/create", format!("{name}: master key {}", master.key_id));
            let stored = me.store.create_powerauth_application(&name, &master, &row);
            let app = crate::admin::recorded_or_destroyed(&me.hsm, &master, stored)?;
            tracing::info!(application = %name, key_id = %master.key_id, "created PowerAuth application");
            application(app)
        })
        .await
    }

    /// Every PowerAuth application with its versions (no secret).
    pub async fn list(&self) -> Result<Vec<PowerAuthApplication>, AdminError> {
        self.blocking(|me| me.store.powerauth_applications()?.into_iter().map(application).collect()).await
    }

    /// PowerAuth application `name` with its versions (no secret).
    pub async fn show(&self, name: String) -> Result<PowerAuthApplication, AdminError> {
        self.blocking(move |me| {
            me.store.powerauth_application(&name)?.map(application).ok_or_else(|| not_found(&name))?
        })
        .await
    }

    /// Adds version `version` (supported) to `app` with a new APP_KEY and APP_SECRET from the
    /// HSM's generator, the secret sealed before it is stored; answers the secret this once.
    pub async fn add_version(
        &self,
        caller: Caller,
        app: String,
        version_name: String,
    ) -> Result<PowerAuthVersionSecret, AdminError> {
        validate_name("PowerAuth version", &version_name)?;
        self.change(move |me| {
            let app_key = random_base64(&me.secrets, APP_KEY_LEN)?;
            let app_secret = random_base64(&me.secrets, APP_KEY_LEN)?;
            let sealed_secret =
                me.secrets.seal_powerauth_app_secret(&app, &version_name, &app_key, app_secret.as_bytes())?;
            let new = NewPowerAuthVersion { name: version_name.clone(), app_key: app_key.to_string(), sealed_secret };
            let row =
                audit(&caller, "powerauth/version/add", format!("{app}: version {version_name}, APP_KEY {}", *app_key));
            let v = me.store.add_powerauth_version(&app, &new, &row)?;
            tracing::info!(application = %app, version = %version_name, "added PowerAuth version");
            Ok(PowerAuthVersionSecret {
                application: app,
                version: version(v),
                app_secret: SecretString::from(app_secret.to_string()),
            })
        })
        .await
    }

    /// Adds and removes roles of `app`; answers the application.
    pub async fn change_roles(
        &self,
        caller: Caller,
        app: String,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<PowerAuthApplication, AdminError> {
        for role in add.iter().chain(&remove) {
            valid_role(role)?;
        }
        self.change(move |me| {
            let row = audit(&caller, "powerauth/app/roles", format!("{app}: add {add:?}, remove {remove:?}"));
            me.store.change_powerauth_roles(&app, &add, &remove, &row)?;
            me.store.powerauth_application(&app)?.map(application).ok_or_else(|| not_found(&app))?
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) configuration `key` of `app`; answers the application.
    pub async fn set_config(
        &self,
        caller: Caller,
        app: String,
        key: String,
        values: Option<serde_json::Value>,
    ) -> Result<PowerAuthApplication, AdminError> {
        let text = values.as_ref().map(|v| valid_config(&key, v)).transpose()?;
        self.change(move |me| {
            let what = if text.is_some() { "set" } else { "removed" };
            let row = audit(&caller, "powerauth/app/config", format!("{app}: {key} {what}"));
            me.store.set_powerauth_config(&app, &key, text.as_deref(), &row)?;
            me.store.powerauth_application(&app)?.map(application).ok_or_else(|| not_found(&app))?
        })
        .await
    }

    /// Marks version `version_name` of `app` supported or not.
    pub async fn set_supported(
        &self,
        caller: Caller,
        app: String,
        version_name: String,
        supported: bool,
    ) -> Result<PowerAuthVersion, AdminError> {
        self.change(move |me| {
            let row = audit(
                &caller,
                "powerauth/version/support",
                format!("{app}: version {version_name} supported {supported}"),
            );
            let v = me.store.set_powerauth_version_supported(&app, &version_name, supported, &row)?;
            tracing::info!(application = %app, version = %version_name, supported, "PowerAuth version support set");
            Ok(version(v))
        })
        .await
    }

    /// Version `version_name` of `app` with its APP_SECRET: the audit row that `caller` was
    /// shown it commits first, and no secret is answered without it.
    pub async fn show_secret(
        &self,
        caller: Caller,
        app: String,
        version_name: String,
    ) -> Result<PowerAuthVersionSecret, AdminError> {
        self.blocking(move |me| {
            let (app_key, sealed) = me.store.powerauth_version_secret(&app, &version_name)?.ok_or_else(|| {
                AdminError::Refused(Refusal::NotFound(format!(
                    "version '{version_name}' of PowerAuth application '{app}'"
                )))
            })?;
            let v = me
                .store
                .powerauth_application(&app)?
                .and_then(|a| a.versions.into_iter().find(|v| v.name == version_name))
                .ok_or_else(|| not_found(&app))?;
            me.store.audit_auth(&audit(
                &caller,
                "powerauth/version/show-secret",
                format!("{app}: version {version_name}"),
            ))?;
            let secret = me.secrets.open_powerauth_app_secret(&app, &version_name, &app_key, &sealed)?;
            // Borrowed, not converted: a failed conversion would drop an unzeroized copy.
            let text = std::str::from_utf8(&secret).map_err(|_| {
                AdminError::Store(StoreError::Tampered(format!("the APP_SECRET of {app} {version_name} is not text")))
            })?;
            let app_secret = SecretString::from(text.to_owned());
            Ok(PowerAuthVersionSecret { application: app, version: version(v), app_secret })
        })
        .await
    }
}

impl OffRuntime for PowerAuthAdmin {
    type Error = AdminError;

    fn internal(message: String) -> AdminError {
        AdminError::Internal(message)
    }
}
