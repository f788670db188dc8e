//! Applications, their versioned master keypairs, integrations and grants.

use countersign_core::error::Refusal;
use countersign_core::keys::{KeyAlgorithm, KeyId};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::AuthAuditRow;
use super::{is_unique_violation, Store, StoreError};

/// Where a key version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The version new signatures are made with.
    Active,
    /// Kept so earlier signatures still verify; never signs again.
    Retired,
}

/// One version of an application's master keypair: the HSM holds the private key, this only names
/// it. The native API shows it as `countersign_api::application::KeyVersion`, which the engine
/// makes of this row.
#[derive(Debug, Clone)]
pub struct KeyVersion {
    /// The version number, from 1, one more at each rotation.
    pub version: u32,
    /// The keypair's algorithm (the application's).
    pub algorithm: KeyAlgorithm,
    /// The keypair's CKA_ID on the HSM.
    pub key_id: KeyId,
    /// The keypair's CKA_LABEL, for operators using pkcs11-tool.
    pub label: String,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// Active (signs) or retired (only verifies).
    pub state: KeyState,
    /// When the version was recorded, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When it was retired, in seconds since the Unix epoch; `None` while active.
    pub retired_at: Option<i64>,
}

/// A signing application: a named key with versioned master keypairs in the HSM. The native API
/// shows it as `countersign_api::application::Application`, which the engine makes of this row.
#[derive(Debug, Clone)]
pub struct Application {
    /// The application's row id.
    pub id: i64,
    /// The application's unique name, which callers name its key by.
    pub name: String,
    /// The algorithm of every one of its key versions.
    pub algorithm: KeyAlgorithm,
    /// When the application was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Oldest first.
    pub versions: Vec<KeyVersion>,
}

impl Application {
    /// The version new signatures are made with; `None` if none is active.
    pub fn active(&self) -> Option<&KeyVersion> {
        self.versions.iter().find(|v| v.state == KeyState::Active)
    }
}

/// A local service allowed to ask for signatures: a Unix uid with a name and its grants. The
/// native API shows it as `countersign_api::application::Integration`, which the engine makes of
/// this row.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The integration's row id.
    pub id: i64,
    /// The integration's unique name.
    pub name: String,
    /// The Unix uid its requests come from (`SO_PEERCRED`), unique.
    pub uid: u32,
    /// When it was registered, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Names of the applications whose keys it may use.
    pub grants: Vec<String>,
}

/// A freshly generated keypair to record.
#[derive(Debug, Clone)]
pub struct NewKeyVersion {
    /// The new keypair's CKA_ID on the HSM.
    pub key_id: KeyId,
    /// The new keypair's CKA_LABEL.
    pub label: String,
    /// Its public key, SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
}

fn now_s() -> i64 {
    crate::now_ms() / 1000
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn key_version(r: &Row<'_>) -> rusqlite::Result<KeyVersion> {
    let alg: String = r.get("algorithm")?;
    let key_id: String = r.get("hsm_key_id")?;
    let state: String = r.get("state")?;
    Ok(KeyVersion {
        version: r.get("version")?,
        algorithm: alg.parse().map_err(conversion)?,
        key_id: KeyId::from_hex(&key_id).map_err(conversion)?,
        label: r.get("hsm_label")?,
        public_key_der: r.get("public_key")?,
        state: if state == "active" { KeyState::Active } else { KeyState::Retired },
        created_at: r.get("created_at")?,
        retired_at: r.get("retired_at")?,
    })
}

fn load_versions(conn: &Connection, app_id: i64) -> rusqlite::Result<Vec<KeyVersion>> {
    let mut st = conn.prepare_cached(
        "SELECT version, algorithm, hsm_key_id, hsm_label, public_key, state, created_at, retired_at
         FROM master_keypair WHERE application_id = ?1 ORDER BY version",
    )?;
    let rows = st.query_map([app_id], key_version)?;
    rows.collect()
}

fn insert_version(
    conn: &Connection,
    app_id: i64,
    version: u32,
    alg: KeyAlgorithm,
    k: &NewKeyVersion,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO master_keypair (application_id, version, algorithm, hsm_key_id, hsm_label, public_key, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7)",
        params![app_id, version, alg.as_str(), k.key_id.to_hex(), k.label, k.public_key_der, now_s()],
    )?;
    Ok(())
}

impl Store {
    /// Records a new application with its first (active) key version.
    pub fn create_application(
        &self,
        name: &str,
        alg: KeyAlgorithm,
        first: &NewKeyVersion,
        audit: &AuthAuditRow,
    ) -> Result<Application, StoreError> {
        self.sealed_change(&["application", "master_keypair"], audit, |tx| {
            match tx.execute(
                "INSERT INTO application (name, algorithm, created_at) VALUES (?1, ?2, ?3)",
                params![name, alg.as_str(), now_s()],
            ) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Refused(Refusal::Duplicate(format!("application '{name}'"))))
                }
                other => other?,
            };
            let id = tx.last_insert_rowid();
            insert_version(tx, id, 1, alg, first)?;
            Ok(())
        })?;
        self.application(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))
    }

    /// The version number the next rotation of `name` will get.
    pub fn next_version(&self, name: &str) -> Result<u32, StoreError> {
        let conn = self.conn();
        let v: Option<u32> = conn
            .query_row(
                "SELECT max(k.version) FROM master_keypair k JOIN application a ON a.id = k.application_id WHERE a.name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        v.map(|v| v + 1).ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))
    }

    /// Retires the active version of `name` and records `next` as the new active one.
    pub fn add_key_version(
        &self,
        name: &str,
        version: u32,
        next: &NewKeyVersion,
        audit: &AuthAuditRow,
    ) -> Result<Application, StoreError> {
        self.sealed_change(&["master_keypair"], audit, |tx| {
            let (app_id, alg): (i64, String) = tx
                .query_row("SELECT id, algorithm FROM application WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))?;
            let alg: KeyAlgorithm = alg.parse().map_err(conversion)?;
            tx.execute(
                "UPDATE master_keypair SET state = 'retired', retired_at = ?2 WHERE application_id = ?1 AND state = 'active'",
                params![app_id, now_s()],
            )?;
            match insert_version(tx, app_id, version, alg, next) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Refused(Refusal::Duplicate(format!(
                        "version {version} of application '{name}'"
                    ))))
                }
                other => other?,
            }
            Ok(())
        })?;
        self.application(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))
    }

    /// The application `name` with its key versions, oldest first, once the tables' seals verify;
    /// `None` if there is none.
    pub fn application(&self, name: &str) -> Result<Option<Application>, StoreError> {
        let conn = self.conn();
        self.check_seals(&conn, &["application", "master_keypair"])?;
        let row = conn
            .query_row("SELECT id, name, algorithm, created_at FROM application WHERE name = ?1", [name], app_row)
            .optional()?;
        row.map(|mut a| {
            a.versions = load_versions(&conn, a.id)?;
            Ok(a)
        })
        .transpose()
    }

    /// Every application with its key versions, by name, once the tables' seals verify.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        let conn = self.conn();
        self.check_seals(&conn, &["application", "master_keypair"])?;
        let mut st = conn.prepare_cached("SELECT id, name, algorithm, created_at FROM application ORDER BY name")?;
        let apps: Vec<Application> = st.query_map([], app_row)?.collect::<rusqlite::Result<_>>()?;
        apps.into_iter()
            .map(|mut a| {
                a.versions = load_versions(&conn, a.id)?;
                Ok(a)
            })
            .collect()
    }

    /// Registers `uid` as the integration `name`, with its audit row, and renews the table's seal;
    /// refuses a name or uid already registered.
    pub fn create_integration(&self, name: &str, uid: u32, audit: &AuthAuditRow) -> Result<Integration, StoreError> {
        self.sealed_change(&["integration"], audit, |tx| {
            match tx.execute(
                "INSERT INTO integration (name, uid, created_at) VALUES (?1, ?2, ?3)",
                params![name, uid, now_s()],
            ) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Refused(Refusal::Duplicate(format!(
                        "an integration named '{name}' or with uid {uid}"
                    ))))
                }
                other => other?,
            };
            Ok(())
        })?;
        self.integration(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("integration '{name}'"))))
    }

    /// Removes the integration `name` and its grants, with its audit row, and renews the seals.
    pub fn delete_integration(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["integration", "integration_grant"], audit, |tx| {
            let n = tx.execute("DELETE FROM integration WHERE name = ?1", [name])?;
            if n == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("integration '{name}'"))));
            }
            // Grants go with the integration (ON DELETE CASCADE).
            Ok(())
        })
    }

    /// The integration `name` with its grants, if there is one.
    pub fn integration(&self, name: &str) -> Result<Option<Integration>, StoreError> {
        Ok(self.integrations()?.into_iter().find(|i| i.name == name))
    }

    /// Every integration with the names of the applications it may use, by name, once the tables'
    /// seals verify.
    pub fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let conn = self.conn();
        self.check_seals(&conn, &["integration", "integration_grant", "application"])?;
        let mut st = conn.prepare_cached(
            "SELECT i.id, i.name, i.uid, i.created_at, group_concat(a.name, char(31))
             FROM integration i
             LEFT JOIN integration_grant g ON g.integration_id = i.id
             LEFT JOIN application a ON a.id = g.application_id
             GROUP BY i.id ORDER BY i.name",
        )?;
        let rows = st.query_map([], |r| {
            let grants: Option<String> = r.get(4)?;
            let mut grants: Vec<String> =
                grants.map(|g| g.split('\u{1f}').map(str::to_owned).collect()).unwrap_or_default();
            grants.sort();
            Ok(Integration { id: r.get(0)?, name: r.get(1)?, uid: r.get(2)?, created_at: r.get(3)?, grants })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Lets `integration` use the keys of `application`. Granting twice is not an error.
    pub fn grant(&self, integration: &str, application: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["integration_grant"], audit, |tx| {
            let (i, a) = ids(tx, integration, application)?;
            tx.execute(
                "INSERT OR IGNORE INTO integration_grant (integration_id, application_id, granted_at) VALUES (?1, ?2, ?3)",
                params![i, a, now_s()],
            )?;
            Ok(())
        })
    }

    /// Withdraws a grant, with its audit row; without such a grant nothing changes and the
    /// answer is a [`Refusal::NotFound`] naming it.
    pub fn revoke(&self, integration: &str, application: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["integration_grant"], audit, |tx| {
            let (i, a) = ids(tx, integration, application)?;
            let n = tx.execute(
                "DELETE FROM integration_grant WHERE integration_id = ?1 AND application_id = ?2",
                params![i, a],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!(
                    "a grant of application '{application}' to integration '{integration}'"
                ))));
            }
            Ok(())
        })
    }
}

fn app_row(r: &Row<'_>) -> rusqlite::Result<Application> {
    let alg: String = r.get(2)?;
    Ok(Application {
        id: r.get(0)?,
        name: r.get(1)?,
        algorithm: alg.parse().map_err(conversion)?,
        created_at: r.get(3)?,
        versions: Vec::new(),
    })
}

fn ids(conn: &Connection, integration: &str, application: &str) -> Result<(i64, i64), StoreError> {
    let i: i64 = conn
        .query_row("SELECT id FROM integration WHERE name = ?1", [integration], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("integration '{integration}'"))))?;
    let a: i64 = conn
        .query_row("SELECT id FROM application WHERE name = ?1", [application], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{application}'"))))?;
    Ok((i, a))
}
