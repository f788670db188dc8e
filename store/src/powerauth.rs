//! PowerAuth applications and their versions (issue 19, part 1), as the reference schema's
//! `pa_application`, `pa_master_keypair` and `pa_application_version` have them.
//!
//! A PowerAuth application *is* a signing application (`application`, algorithm ec-p256) whose
//! one master key pair is its `master_keypair` row (generated in the HSM by the same path as
//! every signing key; only its CKA_ID and public key are here), marked by a
//! `powerauth_application` row. The mark takes the key out of the signing API: a grant of it
//! to an integration, and a rotation through `app rotate`, are refused (the master key signs
//! activation codes an SDK trusts; its public key is built into the mobile app). Versions carry
//! APP_KEY in the clear (the SDK sends it in every request) and APP_SECRET only as the HSM's
//! ciphertext, which the engine seals and opens.
//!
//! Owns: `powerauth_application`, `powerauth_app_version`, each change with its audit row and
//! the tables' seals in one transaction. Must never: hold APP_SECRET in the clear, or read a
//! PowerAuth table for a decision without checking its seal.

use countersign_core::error::Refusal;
use countersign_core::keys::KeyAlgorithm;

use super::db::{args, Sql};
use super::keys::{insert_version, load_versions, KeyState, KeyVersion, NewKeyVersion};
use super::{unique_as, AuthAuditRow, Store, StoreError};

/// The tables whose seals every read of a PowerAuth application checks.
/// The first four are what [`Store::powerauth_app_key`] reads.
const TABLES: &[&str] = &[
    "application",
    "master_keypair",
    "powerauth_application",
    "powerauth_app_version",
    "powerauth_application_role",
    "powerauth_application_config",
];

/// One version of a PowerAuth application: what the store shows of it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerAuthVersion {
    /// The version's name, unique in its application (for example `3.1`).
    pub name: String,
    /// APP_KEY: 16 random bytes, Base64; the SDK sends it, so it is no secret.
    pub app_key: String,
    /// Whether clients of this version may activate and sign.
    pub supported: bool,
    /// When the version was added, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// A PowerAuth application: the signing application it is, its master key pair and versions.
#[derive(Debug, Clone)]
pub struct PowerAuthApplication {
    /// The row id of the signing application it is.
    pub id: i64,
    /// Its unique name (also the signing application's).
    pub name: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// The master key pair (P-256, private key in the HSM).
    pub master: KeyVersion,
    /// Its versions, oldest first.
    pub versions: Vec<PowerAuthVersion>,
    /// Its roles, sorted (answered with every signature verification).
    pub roles: Vec<String>,
    /// Its configuration: key and JSON array, by key.
    pub config: Vec<(String, String)>,
}

/// What a request's APP_KEY names: its version, application and master key, with the sealed
/// APP_SECRET.
#[derive(Debug, Clone)]
pub struct PowerAuthAppKey {
    /// The application's name.
    pub application: String,
    /// The application's row id.
    pub application_id: i64,
    /// The version's name.
    pub version: String,
    /// Whether clients of the version may activate and sign.
    pub supported: bool,
    /// APP_SECRET as the HSM's ciphertext.
    pub sealed_secret: Vec<u8>,
    /// The master key pair.
    pub master: KeyVersion,
}

/// A version to record: its APP_SECRET already sealed by the HSM.
#[derive(Debug, Clone)]
pub struct NewPowerAuthVersion {
    /// The version's name.
    pub name: String,
    /// APP_KEY, Base64.
    pub app_key: String,
    /// APP_SECRET as the HSM's AES-GCM ciphertext (AAD binding application, version and APP_KEY).
    pub sealed_secret: Vec<u8>,
}

fn now_s() -> i64 {
    crate::now_ms() / 1000
}

fn not_found(name: &str) -> StoreError {
    StoreError::Refused(Refusal::NotFound(format!("PowerAuth application '{name}'")))
}

fn version_not_found(app: &str, version: &str) -> StoreError {
    StoreError::Refused(Refusal::NotFound(format!("version '{version}' of PowerAuth application '{app}'")))
}

/// The id of PowerAuth application `name`, if there is one.
fn app_id(conn: &dyn Sql, name: &str) -> Result<Option<i64>, StoreError> {
    conn.query_opt(
        "SELECT a.id FROM application a JOIN powerauth_application p ON p.application_id = a.id WHERE a.name = ?1",
        args![name],
        |r| r.get(0),
    )
}

fn load(conn: &dyn Sql, id: i64, name: String, created_at: i64) -> Result<PowerAuthApplication, StoreError> {
    let master = load_versions(conn, id)?
        .into_iter()
        .find(|k| k.state == KeyState::Active)
        .ok_or_else(|| StoreError::Tampered(format!("PowerAuth application '{name}' has no active master key")))?;
    let versions = conn.query_map(
        "SELECT name, app_key, supported, created_at FROM powerauth_app_version WHERE application_id = ?1 ORDER BY id",
        args![id],
        |r| {
            Ok(PowerAuthVersion {
                name: r.get(0)?,
                app_key: r.get(1)?,
                supported: r.get::<i64>(2)? != 0,
                created_at: r.get(3)?,
            })
        },
    )?;
    let roles = conn.query_map(
        "SELECT role FROM powerauth_application_role WHERE application_id = ?1 ORDER BY role",
        args![id],
        |r| r.get(0),
    )?;
    let config = conn.query_map(
        "SELECT config_key, config_values FROM powerauth_application_config WHERE application_id = ?1 ORDER BY config_key",
        args![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(PowerAuthApplication { id, name, created_at, master, versions, roles, config })
}

impl Store {
    /// The version, application and master key APP_KEY `app_key` names, once the tables' seals
    /// verify; `None` for an APP_KEY no version has.
    pub fn powerauth_app_key(&self, app_key: &str) -> Result<Option<PowerAuthAppKey>, StoreError> {
        self.read(|conn| {
            // The tables this reads, no more: every signature verification asks it, and each
            // sealed table is digested in full to be checked.
            self.check_seals(conn, &TABLES[..4])?;
            let row = conn.query_opt(
                "SELECT a.id, a.name, v.name, v.supported, v.sealed_secret FROM powerauth_app_version v
                 JOIN application a ON a.id = v.application_id WHERE v.app_key = ?1",
                args![app_key],
                |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<i64>(3)?,
                        r.get::<Vec<u8>>(4)?,
                    ))
                },
            )?;
            let Some((application_id, application, version, supported, sealed_secret)) = row else { return Ok(None) };
            let master =
                load_versions(conn, application_id)?.into_iter().find(|k| k.state == KeyState::Active).ok_or_else(
                    || StoreError::Tampered(format!("PowerAuth application '{application}' has no active master key")),
                )?;
            Ok(Some(PowerAuthAppKey {
                application,
                application_id,
                version,
                supported: supported != 0,
                sealed_secret,
                master,
            }))
        })
    }

    /// The roles of the application with row id `application_id`, once their table's seal
    /// verifies (the signature path asks this, so it reads one small table only).
    pub fn powerauth_roles(&self, application_id: i64) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["powerauth_application_role"])?;
            conn.query_map(
                "SELECT role FROM powerauth_application_role WHERE application_id = ?1 ORDER BY role",
                args![application_id],
                |r| r.get(0),
            )
        })
    }

    /// Adds `add` to and removes `remove` from application `app`'s roles, with `audit`, in one
    /// transaction. Adding a role it has, or removing one it lacks, changes nothing.
    pub fn change_powerauth_roles(
        &self,
        app: &str,
        add: &[String],
        remove: &[String],
        audit: &AuthAuditRow,
    ) -> Result<Vec<String>, StoreError> {
        self.sealed_change(&["powerauth_application_role"], audit, |tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let id = app_id(tx, app)?.ok_or_else(|| not_found(app))?;
            for role in add {
                tx.execute(
                    "INSERT INTO powerauth_application_role (application_id, role) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    args![id, role],
                )?;
            }
            for role in remove {
                tx.execute(
                    "DELETE FROM powerauth_application_role WHERE application_id = ?1 AND role = ?2",
                    args![id, role],
                )?;
            }
            tx.query_map(
                "SELECT role FROM powerauth_application_role WHERE application_id = ?1 ORDER BY role",
                args![id],
                |r| r.get(0),
            )
        })
    }

    /// Sets (`Some`, a JSON array the caller checked) or removes (`None`) configuration `key` of
    /// application `app`, with `audit`, in one transaction. Removing a key it lacks is a
    /// [`Refusal::NotFound`].
    pub fn set_powerauth_config(
        &self,
        app: &str,
        key: &str,
        values: Option<&str>,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["powerauth_application_config"], audit, |tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let id = app_id(tx, app)?.ok_or_else(|| not_found(app))?;
            match values {
                Some(v) => {
                    tx.execute(
                        "INSERT INTO powerauth_application_config (application_id, config_key, config_values) \
                         VALUES (?1, ?2, ?3) ON CONFLICT (application_id, config_key) DO UPDATE SET config_values = excluded.config_values",
                        args![id, key, v],
                    )?;
                }
                None => {
                    let gone = tx.execute(
                        "DELETE FROM powerauth_application_config WHERE application_id = ?1 AND config_key = ?2",
                        args![id, key],
                    )?;
                    if gone == 0 {
                        return Err(StoreError::Refused(Refusal::NotFound(format!(
                            "configuration '{key}' of PowerAuth application '{app}'"
                        ))));
                    }
                }
            }
            Ok(())
        })
    }

    /// Records PowerAuth application `name`: the signing application (ec-p256) with its master
    /// key pair `master` as version 1, and the mark that makes it PowerAuth's, with `audit`, in
    /// one transaction. A name any application has is a [`Refusal::Duplicate`].
    pub fn create_powerauth_application(
        &self,
        name: &str,
        master: &NewKeyVersion,
        audit: &AuthAuditRow,
    ) -> Result<PowerAuthApplication, StoreError> {
        let alg = KeyAlgorithm::EcP256;
        self.sealed_change(&["application", "master_keypair", "powerauth_application"], audit, |tx| {
            let now = now_s();
            let id = tx
                .insert(
                    "INSERT INTO application (name, algorithm, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                    args![name, alg.as_str(), now],
                )
                .map_err(|e| {
                    unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("application '{name}'"))))
                })?;
            insert_version(tx, id, 1, alg, master)?;
            tx.execute(
                "INSERT INTO powerauth_application (application_id, created_at) VALUES (?1, ?2)",
                args![id, now],
            )?;
            Ok(())
        })?;
        self.powerauth_application(name)?.ok_or_else(|| not_found(name))
    }

    /// PowerAuth application `name` with its master key and versions, once the tables' seals
    /// verify; `None` if there is none.
    pub fn powerauth_application(&self, name: &str) -> Result<Option<PowerAuthApplication>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, TABLES)?;
            let row = conn.query_opt(
                "SELECT a.id, a.name, p.created_at FROM application a
                 JOIN powerauth_application p ON p.application_id = a.id WHERE a.name = ?1",
                args![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            row.map(|(id, name, created_at)| load(conn, id, name, created_at)).transpose()
        })
    }

    /// Every PowerAuth application, by name, once the tables' seals verify.
    pub fn powerauth_applications(&self) -> Result<Vec<PowerAuthApplication>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, TABLES)?;
            let rows: Vec<(i64, String, i64)> = conn.query_map(
                "SELECT a.id, a.name, p.created_at FROM application a
                 JOIN powerauth_application p ON p.application_id = a.id ORDER BY a.name",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            rows.into_iter().map(|(id, name, created_at)| load(conn, id, name, created_at)).collect()
        })
    }

    /// Adds version `v` (supported) to PowerAuth application `app`, with `audit`, in one
    /// transaction. A version name the application has, or an APP_KEY any version has, is a
    /// [`Refusal::Duplicate`].
    pub fn add_powerauth_version(
        &self,
        app: &str,
        v: &NewPowerAuthVersion,
        audit: &AuthAuditRow,
    ) -> Result<PowerAuthVersion, StoreError> {
        self.sealed_change(&["powerauth_app_version"], audit, |tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let id = app_id(tx, app)?.ok_or_else(|| not_found(app))?;
            tx.execute(
                "INSERT INTO powerauth_app_version (application_id, name, app_key, sealed_secret, supported, created_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                args![id, v.name, v.app_key, v.sealed_secret, now_s()],
            )
            .map_err(|e| {
                unique_as(e, || {
                    StoreError::Refused(Refusal::Duplicate(format!(
                        "version '{}' of PowerAuth application '{app}' (or its APP_KEY)",
                        v.name
                    )))
                })
            })?;
            Ok(())
        })?;
        self.powerauth_application(app)?
            .and_then(|a| a.versions.into_iter().find(|x| x.name == v.name))
            .ok_or_else(|| version_not_found(app, &v.name))
    }

    /// Marks version `version` of `app` supported or not, with `audit`, in one transaction.
    pub fn set_powerauth_version_supported(
        &self,
        app: &str,
        version: &str,
        supported: bool,
        audit: &AuthAuditRow,
    ) -> Result<PowerAuthVersion, StoreError> {
        self.sealed_change(&["powerauth_app_version"], audit, |tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let id = app_id(tx, app)?.ok_or_else(|| not_found(app))?;
            let n = tx.execute(
                "UPDATE powerauth_app_version SET supported = ?3 WHERE application_id = ?1 AND name = ?2",
                args![id, version, i64::from(supported)],
            )?;
            if n == 0 {
                return Err(version_not_found(app, version));
            }
            Ok(())
        })?;
        self.powerauth_application(app)?
            .and_then(|a| a.versions.into_iter().find(|x| x.name == version))
            .ok_or_else(|| version_not_found(app, version))
    }

    /// APP_KEY and the sealed APP_SECRET of version `version` of `app`, once the tables' seals
    /// verify (a secret swapped offline is refused, not opened); `None` for no such version.
    pub fn powerauth_version_secret(&self, app: &str, version: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, TABLES)?;
            let Some(id) = app_id(conn, app)? else { return Ok(None) };
            conn.query_opt(
                "SELECT app_key, sealed_secret FROM powerauth_app_version WHERE application_id = ?1 AND name = ?2",
                args![id, version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::Arc;

    use super::*;
    use crate::seals::TestKey;
    use crate::testing::each_store;
    use countersign_core::keys::KeyId;

    fn master(id: u8) -> NewKeyVersion {
        NewKeyVersion {
            key_id: KeyId::from_bytes(vec![0x9a, id]),
            label: format!("countersign/powerauth/test/{id}"),
            public_key_der: vec![1, 2, id],
        }
    }

    fn version(name: &str, key: &str) -> NewPowerAuthVersion {
        NewPowerAuthVersion { name: name.into(), app_key: key.into(), sealed_secret: vec![0xee; 44] }
    }

    #[test]
    fn applications_and_versions_are_kept_sealed_and_out_of_the_signing_api() {
        each_store(|store, engine| {
            store.start_sealing(Arc::new(TestKey), true).unwrap();
            let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok");
            let app = store.create_powerauth_application("mobile", &master(1), &audit).unwrap();
            assert_eq!(app.master.key_id, KeyId::from_bytes(vec![0x9a, 1]), "{engine}");
            assert_eq!(app.master.algorithm, KeyAlgorithm::EcP256);
            assert!(app.versions.is_empty());
            // Any application's name is taken, PowerAuth's or a signing one's.
            assert!(matches!(
                store.create_powerauth_application("mobile", &master(2), &audit),
                Err(StoreError::Refused(Refusal::Duplicate(_)))
            ));
            let v = store.add_powerauth_version("mobile", &version("3.1", "KEY1"), &audit).unwrap();
            assert_eq!(
                v,
                PowerAuthVersion {
                    created_at: v.created_at,
                    name: "3.1".into(),
                    app_key: "KEY1".into(),
                    supported: true
                }
            );
            for dup in [version("3.1", "KEY2"), version("3.2", "KEY1")] {
                assert!(
                    matches!(
                        store.add_powerauth_version("mobile", &dup, &audit),
                        Err(StoreError::Refused(Refusal::Duplicate(_)))
                    ),
                    "{engine}"
                );
            }
            assert!(matches!(
                store.add_powerauth_version("nope", &version("1", "KEY3"), &audit),
                Err(StoreError::Refused(Refusal::NotFound(_)))
            ));
            assert!(!store.set_powerauth_version_supported("mobile", "3.1", false, &audit).unwrap().supported);
            assert!(matches!(
                store.set_powerauth_version_supported("mobile", "9", true, &audit),
                Err(StoreError::Refused(Refusal::NotFound(_)))
            ));
            assert_eq!(
                store.powerauth_version_secret("mobile", "3.1").unwrap(),
                Some(("KEY1".to_owned(), vec![0xee; 44]))
            );
            assert_eq!(store.powerauth_version_secret("mobile", "9").unwrap(), None);
            let all = store.powerauth_applications().unwrap();
            assert_eq!(all.len(), 1);
            assert!(!all[0].versions[0].supported);

            // The master key is PowerAuth's alone: no grant, no rotation through the signing API.
            store.create_integration("svc", 1000, &audit).unwrap();
            assert!(matches!(store.grant("svc", "mobile", &audit), Err(StoreError::Refused(Refusal::Invalid(_)))));
            assert!(matches!(
                store.add_key_version("mobile", 2, &master(3), &audit),
                Err(StoreError::Refused(Refusal::Invalid(_)))
            ));

            // A version made supported (or a secret swapped) behind the appliance's back is refused.
            store
                .write(|tx| {
                    tx.execute("UPDATE powerauth_app_version SET supported = 1", args![])?;
                    Ok(())
                })
                .unwrap();
            assert!(matches!(store.powerauth_application("mobile"), Err(StoreError::Tampered(_))), "{engine}");
            assert!(matches!(store.powerauth_version_secret("mobile", "3.1"), Err(StoreError::Tampered(_))));
        });
    }
}
