//! Applications, their versioned master keypairs, integrations and grants.

use countersign_core::error::Refusal;
use countersign_core::keys::{KeyAlgorithm, KeyId};

use super::db::{args, Row, Sql};
use super::AuthAuditRow;
use super::{unique_as, DbError, Store, StoreError};

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

/// A stored value (an algorithm, a key id) that does not parse, as a database error.
fn conversion(e: impl std::fmt::Display) -> StoreError {
    StoreError::Sql(DbError::other(format!("a stored value does not parse: {e}")))
}

/// A `master_keypair` row, its columns in the order [`load_versions`] selects them.
fn key_version(r: &Row<'_>) -> Result<KeyVersion, StoreError> {
    let alg: String = r.get(1)?;
    let key_id: String = r.get(2)?;
    let state: String = r.get(5)?;
    Ok(KeyVersion {
        version: r.get(0)?,
        algorithm: alg.parse().map_err(conversion)?,
        key_id: KeyId::from_hex(&key_id).map_err(conversion)?,
        label: r.get(3)?,
        public_key_der: r.get(4)?,
        state: if state == "active" { KeyState::Active } else { KeyState::Retired },
        created_at: r.get(6)?,
        retired_at: r.get(7)?,
    })
}

pub(crate) fn load_versions(conn: &dyn Sql, app_id: i64) -> Result<Vec<KeyVersion>, StoreError> {
    conn.query_map(
        "SELECT version, algorithm, hsm_key_id, hsm_label, public_key, state, created_at, retired_at
         FROM master_keypair WHERE application_id = ?1 ORDER BY version",
        args![app_id],
        key_version,
    )
}

pub(crate) fn insert_version(
    conn: &dyn Sql,
    app_id: i64,
    version: u32,
    alg: KeyAlgorithm,
    k: &NewKeyVersion,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO master_keypair (application_id, version, algorithm, hsm_key_id, hsm_label, public_key, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7)",
        args![app_id, version, alg.as_str(), k.key_id.to_hex(), k.label, k.public_key_der, now_s()],
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
            let id = tx
                .insert(
                    "INSERT INTO application (name, algorithm, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                    args![name, alg.as_str(), now_s()],
                )
                .map_err(|e| {
                    unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("application '{name}'"))))
                })?;
            insert_version(tx, id, 1, alg, first)?;
            Ok(())
        })?;
        self.application(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))
    }

    /// The version number the next rotation of `name` will get.
    pub fn next_version(&self, name: &str) -> Result<u32, StoreError> {
        let v: Option<u32> = self.read(|conn| {
            conn.query_value(
                "SELECT max(k.version) FROM master_keypair k JOIN application a ON a.id = k.application_id WHERE a.name = ?1",
                args![name],
            )
        })?;
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
                .query_opt("SELECT id, algorithm FROM application WHERE name = ?1", args![name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))?;
            let alg: KeyAlgorithm = alg.parse().map_err(conversion)?;
            // A PowerAuth master key is rotated (if ever) as PowerAuth's: mobile apps carry its
            // public key, so a rotation here would silently break every installed client.
            self.check_seals(tx, &["powerauth_application"])?;
            if is_powerauth(tx, app_id)? {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "'{name}' is a PowerAuth application; its master key is not rotated through the signing API"
                ))));
            }
            tx.execute(
                "UPDATE master_keypair SET state = 'retired', retired_at = ?2 WHERE application_id = ?1 AND state = 'active'",
                args![app_id, now_s()],
            )?;
            insert_version(tx, app_id, version, alg, next).map_err(|e| {
                unique_as(e, || {
                    StoreError::Refused(Refusal::Duplicate(format!("version {version} of application '{name}'")))
                })
            })?;
            Ok(())
        })?;
        self.application(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{name}'"))))
    }

    /// The application `name` with its key versions, oldest first, once the tables' seals verify;
    /// `None` if there is none.
    pub fn application(&self, name: &str) -> Result<Option<Application>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["application", "master_keypair"])?;
            let row = conn.query_opt(
                "SELECT id, name, algorithm, created_at FROM application WHERE name = ?1",
                args![name],
                app_row,
            )?;
            row.map(|mut a| {
                a.versions = load_versions(conn, a.id)?;
                Ok(a)
            })
            .transpose()
        })
    }

    /// Every application with its key versions, by name, once the tables' seals verify.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["application", "master_keypair"])?;
            let apps: Vec<Application> = conn.query_map(
                "SELECT id, name, algorithm, created_at FROM application ORDER BY name",
                args![],
                app_row,
            )?;
            apps.into_iter()
                .map(|mut a| {
                    a.versions = load_versions(conn, a.id)?;
                    Ok(a)
                })
                .collect()
        })
    }

    /// Registers `uid` as the integration `name`, with its audit row, and renews the table's seal;
    /// refuses a name or uid already registered.
    pub fn create_integration(&self, name: &str, uid: u32, audit: &AuthAuditRow) -> Result<Integration, StoreError> {
        self.sealed_change(&["integration"], audit, |tx| {
            tx.execute(
                "INSERT INTO integration (name, uid, created_at) VALUES (?1, ?2, ?3)",
                args![name, uid, now_s()],
            )
            .map_err(|e| {
                unique_as(e, || {
                    StoreError::Refused(Refusal::Duplicate(format!("an integration named '{name}' or with uid {uid}")))
                })
            })?;
            Ok(())
        })?;
        self.integration(name)?.ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("integration '{name}'"))))
    }

    /// Removes the integration `name` and its grants, with its audit row, and renews the seals.
    pub fn delete_integration(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["integration", "integration_grant"], audit, |tx| {
            let n = tx.execute("DELETE FROM integration WHERE name = ?1", args![name])?;
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
        self.read(|conn| {
            self.check_seals(conn, &["integration", "integration_grant", "application"])?;
            // One row per grant (or one with no application for an integration without any),
            // gathered here: the engines name their string aggregates differently.
            let rows = conn.query_map(
                "SELECT i.id, i.name, i.uid, i.created_at, a.name
                 FROM integration i
                 LEFT JOIN integration_grant g ON g.integration_id = i.id
                 LEFT JOIN application a ON a.id = g.application_id
                 ORDER BY i.name, i.id",
                args![],
                |r| {
                    let i = Integration {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        uid: r.get(2)?,
                        created_at: r.get(3)?,
                        grants: Vec::new(),
                    };
                    Ok((i, r.get::<Option<String>>(4)?))
                },
            )?;
            let mut out: Vec<Integration> = Vec::new();
            for (i, grant) in rows {
                if out.last().map(|last| last.id) != Some(i.id) {
                    out.push(i);
                }
                if let (Some(last), Some(g)) = (out.last_mut(), grant) {
                    last.grants.push(g);
                }
            }
            for i in &mut out {
                i.grants.sort();
            }
            Ok(out)
        })
    }

    /// Lets `integration` use the keys of `application`. Granting twice is not an error.
    pub fn grant(&self, integration: &str, application: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["integration_grant"], audit, |tx| {
            let (i, a) = ids(tx, integration, application)?;
            // A PowerAuth master key signs activation codes that mobile SDKs trust: a local
            // service that could sign with it could forge them.
            self.check_seals(tx, &["powerauth_application"])?;
            if is_powerauth(tx, a)? {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "'{application}' is a PowerAuth application; its master key cannot be granted"
                ))));
            }
            tx.execute(
                "INSERT INTO integration_grant (integration_id, application_id, granted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                args![i, a, now_s()],
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
                args![i, a],
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

/// Whether signing application `app_id` is a PowerAuth application's (`powerauth_application`),
/// and so out of the signing API's reach. The caller checks that table's
/// seal. Here rather than there: the PowerAuth module builds on this one, not the reverse.
fn is_powerauth(conn: &dyn Sql, app_id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt("SELECT 1 FROM powerauth_application WHERE application_id = ?1", args![app_id], |_| Ok(()))?
        .is_some())
}

fn app_row(r: &Row<'_>) -> Result<Application, StoreError> {
    let alg: String = r.get(2)?;
    Ok(Application {
        id: r.get(0)?,
        name: r.get(1)?,
        algorithm: alg.parse().map_err(conversion)?,
        created_at: r.get(3)?,
        versions: Vec::new(),
    })
}

fn ids(conn: &dyn Sql, integration: &str, application: &str) -> Result<(i64, i64), StoreError> {
    let i: i64 = conn
        .query_opt("SELECT id FROM integration WHERE name = ?1", args![integration], |r| r.get(0))?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("integration '{integration}'"))))?;
    let a: i64 = conn
        .query_opt("SELECT id FROM application WHERE name = ?1", args![application], |r| r.get(0))?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("application '{application}'"))))?;
    Ok((i, a))
}
