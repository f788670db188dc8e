//! Resolver definitions, realms as ordered lists of resolvers, and internal users' password
//! verifiers. Every change is written with its audit row in the same transaction.
//!
//! This module never sees a password in the clear: bind passwords arrive sealed, user
//! passwords as HMAC verifiers.

use crate::db::{args, Row, Sql};
use countersign_core::error::Refusal;
pub use countersign_core::realm::RealmRecord;

use super::row_seals::{Identity, RowSeal, RowTable};
use super::{unique_as, AuthAuditRow, Store, StoreError};

/// A resolver as stored.
#[derive(Debug, Clone)]
pub struct ResolverRecord {
    /// The resolver's row id (ignored when inserting).
    pub id: i64,
    /// The resolver's unique name; its sealed bind password is bound to it.
    pub name: String,
    /// `internal`, `passwd` or `ldap`.
    pub kind: String,
    /// Kind-specific options; never a secret.
    pub options: serde_json::Value,
    /// LDAP only: the bind password, AES-GCM sealed under the HSM key `token-seal` with the
    /// resolver's name as associated data; `None`: an anonymous bind, or no password. Never in the
    /// clear.
    pub sealed_bind_password: Option<Vec<u8>>,
    /// When the resolver was defined, in seconds since the Unix epoch (set when inserting).
    pub created_at: i64,
    /// When it last changed, in seconds since the Unix epoch; every update raises it by at least
    /// one, so a reload sees the change (set when inserting).
    pub updated_at: i64,
}

/// An internal user with the verifier of their password, if one is set.
#[derive(Debug, Clone)]
pub struct InternalUser {
    /// The user's `app_user` row id.
    pub id: i64,
    /// The user's login, realm and contact details.
    pub user: super::User,
    /// The password's HMAC-SHA-256 verifier under the HSM key `pin-verifier`, bound to realm and
    /// login; `None`: no password set. Never the password.
    pub password_verifier: Option<Vec<u8>>,
}

fn from_row(r: &Row<'_>) -> Result<ResolverRecord, StoreError> {
    let options: String = r.get(3)?;
    Ok(ResolverRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        options: serde_json::from_str(&options)
            .map_err(|e| StoreError::Sql(crate::DbError::other(format!("column 3: {e}"))))?,
        sealed_bind_password: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

const COLUMNS: &str = "id, name, kind, options, sealed_bind_password, created_at, updated_at";

fn resolver_id(conn: &dyn Sql, name: &str) -> Result<i64, StoreError> {
    conn.query_opt("SELECT id FROM resolver WHERE name = ?1", args![name], |r| r.get(0))?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("resolver {name}"))))
}

fn realm_id(conn: &dyn Sql, name: &str) -> Result<i64, StoreError> {
    conn.query_opt("SELECT id FROM realm WHERE name = ?1", args![name], |r| r.get(0))?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("realm {name}"))))
}

impl Store {
    /// Stores a new resolver (`r.id` and the times are set here) with its audit row and renews the
    /// table's seal; refuses a name already taken.
    pub fn insert_resolver(&self, r: &ResolverRecord, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["resolver"], audit, |tx| {
            let now = crate::now_ms() / 1000;
            tx.execute(
                "INSERT INTO resolver (name, kind, options, sealed_bind_password, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                args![r.name, r.kind, r.options.to_string(), r.sealed_bind_password, now],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("resolver {}", r.name)))))?;
            Ok(())
        })
    }

    /// Replaces a resolver's options (its kind stays); the sealed bind password is replaced
    /// only when `sealed_bind_password` is `Some` (`Some(None)` removes it).
    pub fn update_resolver(
        &self,
        name: &str,
        options: &serde_json::Value,
        sealed_bind_password: Option<Option<&[u8]>>,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["resolver"], audit, |tx| {
            let id = resolver_id(tx, name)?;
            // Updates are ordered: a reload that sees a newer stamp rebuilds the resolver. (The
            // larger of the two by CASE: a two-argument max() is SQLite's alone.)
            let now_ms = crate::now_ms();
            tx.execute(
                "UPDATE resolver SET options = ?2,
                     updated_at = CASE WHEN updated_at + 1 > ?3 THEN updated_at + 1 ELSE ?3 END
                 WHERE id = ?1",
                args![id, options.to_string(), now_ms / 1000],
            )?;
            if let Some(sealed) = sealed_bind_password {
                tx.execute("UPDATE resolver SET sealed_bind_password = ?2 WHERE id = ?1", args![id, sealed])?;
            }
            Ok(())
        })
    }

    /// Removes a resolver; refused while a realm lists it.
    pub fn delete_resolver(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["resolver"], audit, |tx| {
            let id = resolver_id(tx, name)?;
            let realms: Vec<String> = tx.query_map(
                "SELECT r.name FROM realm_resolver rr JOIN realm r ON r.id = rr.realm_id WHERE rr.resolver_id = ?1
                 ORDER BY r.name",
                args![id],
                |r| r.get(0),
            )?;
            if !realms.is_empty() {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "resolver {name} is used by realm {}; change the realm first",
                    realms.join(", ")
                ))));
            }
            tx.execute("DELETE FROM resolver WHERE id = ?1", args![id])?;
            Ok(())
        })
    }

    /// The resolver `name`, once the table's seal verifies.
    pub fn resolver(&self, name: &str) -> Result<ResolverRecord, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["resolver"])?;
            conn.query_opt(&format!("SELECT {COLUMNS} FROM resolver WHERE name = ?1"), args![name], from_row)?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("resolver {name}"))))
        })
    }

    /// Every resolver, by name, once the table's seal verifies.
    pub fn resolvers(&self) -> Result<Vec<ResolverRecord>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["resolver"])?;
            conn.query_map(&format!("SELECT {COLUMNS} FROM resolver ORDER BY name"), args![], from_row)
        })
    }

    /// Every realm with its resolvers in priority order.
    pub fn realms(&self) -> Result<Vec<RealmRecord>, StoreError> {
        let rows = self.read(|conn| {
            self.check_seals(conn, &["realm", "realm_resolver", "resolver"])?;
            conn.query_map(
                "SELECT r.name, r.is_default, r.created_at, s.name FROM realm r
                 LEFT JOIN realm_resolver rr ON rr.realm_id = r.id LEFT JOIN resolver s ON s.id = rr.resolver_id
                 ORDER BY r.name, rr.priority",
                args![],
                |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?, r.get::<i64>(2)?, r.get::<Option<String>>(3)?)),
            )
        })?;
        let mut out: Vec<RealmRecord> = Vec::new();
        for (name, default, created_at, resolver) in rows {
            if out.last().is_none_or(|l| l.name != name) {
                out.push(RealmRecord { name, default, resolvers: Vec::new(), created_at });
            }
            if let (Some(last), Some(res)) = (out.last_mut(), resolver) {
                last.resolvers.push(res);
            }
        }
        Ok(out)
    }

    /// Makes a realm without resolvers (not the default), with its audit row, and renews the
    /// table's seal; refuses a name already taken.
    pub fn create_realm(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["realm"], audit, |tx| {
            tx.execute(
                "INSERT INTO realm (name, is_default, created_at) VALUES (?1, 0, ?2)",
                args![name, crate::now_ms() / 1000],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("realm {name}")))))?;
            Ok(())
        })
    }

    /// Whether no user row lives in `realm` (internal users, or directory users recorded there).
    pub fn realm_is_empty(&self, realm: &str) -> Result<bool, StoreError> {
        let n: i64 = self.read(|conn| {
            conn.query_value(
                "SELECT count(*) FROM app_user WHERE realm_id = (SELECT id FROM realm WHERE name = ?1)",
                args![realm],
            )
        })?;
        Ok(n == 0)
    }

    /// Removes a realm; refused for the default realm and while internal users live in it.
    pub fn delete_realm(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["realm", "realm_resolver"], audit, |tx| {
            let (id, default): (i64, bool) = tx
                .query_opt("SELECT id, is_default FROM realm WHERE name = ?1", args![name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("realm {name}"))))?;
            if default {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "realm {name} is the default realm; make another the default first"
                ))));
            }
            let users: i64 = tx.query_value("SELECT count(*) FROM app_user WHERE realm_id = ?1", args![id])?;
            if users > 0 {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "realm {name} holds {users} internal user(s); remove them first"
                ))));
            }
            tx.execute("DELETE FROM realm WHERE id = ?1", args![id])?;
            Ok(())
        })
    }

    /// Replaces a realm's resolvers; the first is asked first.
    pub fn set_realm_resolvers(
        &self,
        realm: &str,
        resolvers: &[String],
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["realm_resolver"], audit, |tx| {
            let realm_id = realm_id(tx, realm)?;
            tx.execute("DELETE FROM realm_resolver WHERE realm_id = ?1", args![realm_id])?;
            for (i, name) in resolvers.iter().enumerate() {
                let id = resolver_id(tx, name)?;
                tx.execute(
                    "INSERT INTO realm_resolver (realm_id, resolver_id, priority) VALUES (?1, ?2, ?3)",
                    args![realm_id, id, i64::try_from(i + 1).unwrap_or(i64::MAX)],
                )
                .map_err(|e| {
                    unique_as(e, || StoreError::Refused(Refusal::Invalid(format!("resolver {name} is listed twice"))))
                })?;
            }
            Ok(())
        })
    }

    /// Makes `realm` the default realm (and no other), with its audit row, and renews the table's
    /// seal.
    pub fn set_default_realm(&self, realm: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["realm"], audit, |tx| {
            let id = realm_id(tx, realm)?;
            tx.execute("UPDATE realm SET is_default = 0 WHERE is_default = 1 AND id <> ?1", args![id])?;
            tx.execute("UPDATE realm SET is_default = 1 WHERE id = ?1", args![id])?;
            Ok(())
        })
    }

    /// An internal user of `realm` (by name), with their password verifier; their row's seal
    /// is checked first.
    pub fn internal_user(&self, realm: &str, login: &str) -> Result<Option<InternalUser>, StoreError> {
        let found = self.read(|conn| {
            let found = conn.query_opt(
                &format!(
                    "SELECT u.id, u.login, r.name, u.email, u.phone, u.given_name, u.surname, u.password_verifier, {}
                     FROM app_user u JOIN realm r ON r.id = u.realm_id
                     WHERE r.name = ?1 AND u.login = ?2 AND u.resolver IS NULL",
                    RowTable::User.select_list("u")
                ),
                args![realm, login],
                |r| {
                    let user = InternalUser {
                        id: r.get(0)?,
                        user: super::User {
                            login: r.get(1)?,
                            realm: r.get(2)?,
                            email: r.get(3)?,
                            phone: r.get(4)?,
                            given_name: r.get(5)?,
                            surname: r.get(6)?,
                        },
                        password_verifier: r.get(7)?,
                    };
                    Ok((user, RowSeal::read(r, RowTable::User, 8)?))
                },
            )?;
            if found.is_none() {
                // Not there: prove the row was never there rather than deleted behind our back
                // (an internal user deleted so would become unknown, and passOnNoUser let in).
                let realm_id: Option<i64> =
                    conn.query_opt("SELECT id FROM realm WHERE name = ?1", args![realm], |r| r.get(0))?;
                if let Some(realm_id) = realm_id {
                    self.row_seals().check_absent(conn, &[Identity::Internal { realm_id, login }])?;
                }
            }
            Ok(found)
        })?;
        let Some((user, seal)) = found else {
            return Ok(None);
        };
        if let Some(seal) = seal {
            self.row_seals().check(&seal, || format!("user {login} in realm {realm}"))?;
        }
        Ok(Some(user))
    }

    /// Sets (or with `None` clears) an internal user's password verifier.
    pub fn set_user_password(
        &self,
        realm: &str,
        login: &str,
        verifier: Option<&[u8]>,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let id: i64 = tx
                .query_opt(
                    "SELECT id FROM app_user
                     WHERE login = ?2 AND realm_id = (SELECT id FROM realm WHERE name = ?1) AND resolver IS NULL",
                    args![realm, login],
                    |r| r.get(0),
                )?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("user {login} in realm {realm}"))))?;
            self.row_seals().update(tx, RowTable::User, id, || {
                tx.execute("UPDATE app_user SET password_verifier = ?2 WHERE id = ?1", args![id, verifier])
            })?;
            super::chain::insert_audit(tx, audit)?;
            Ok(())
        })
    }

    /// The name of the default realm.
    pub fn default_realm(&self) -> Result<String, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["realm"])?;
            conn.query_opt("SELECT name FROM realm WHERE is_default = 1", args![], |r| r.get(0))?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound("default realm".into())))
        })
    }
}
