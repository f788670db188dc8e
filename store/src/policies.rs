//! Stored policies: create, replace, read, enable/disable and delete, each change together with
//! its audit row in one transaction.
//!
//! This module stores what the policy service has already checked; it never judges an action
//! or a condition, and never evaluates a policy.

use crate::db::{args, Row, Sql};
use countersign_core::error::Refusal;
use serde::Serialize;

use super::{unique_as, AuthAuditRow, Store, StoreError};

pub use countersign_core::policy::PolicyRecord;

const COLUMNS: &str = "name, scope, active, priority, actions, realms, resolvers, users, clients, time, \
                       admin_realms, admin_users, description, created_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<PolicyRecord, StoreError> {
    fn parse<T: serde::de::DeserializeOwned>(r: &Row<'_>, i: usize) -> Result<T, StoreError> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Sql(crate::DbError::other(format!("column {i}: {e}"))))
    }
    Ok(PolicyRecord {
        name: r.get(0)?,
        scope: r.get(1)?,
        active: r.get(2)?,
        priority: r.get(3)?,
        actions: parse(r, 4)?,
        realms: parse(r, 5)?,
        resolvers: parse(r, 6)?,
        users: parse(r, 7)?,
        clients: parse(r, 8)?,
        time: r.get(9)?,
        admin_realms: parse(r, 10)?,
        admin_users: parse(r, 11)?,
        description: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

fn json(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Refused(Refusal::Invalid(e.to_string())))
}

fn policy_in(tx: &dyn Sql, name: &str) -> Result<PolicyRecord, StoreError> {
    tx.query_opt(&format!("SELECT {COLUMNS} FROM policy WHERE name = ?1"), args![name], from_row)?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("policy {name}"))))
}

impl Store {
    /// Stores a policy. `replace`: an existing policy of that name is overwritten (keeping its
    /// creation time); otherwise an existing name is a [`Refusal::Duplicate`](countersign_core::error::Refusal::Duplicate).
    pub fn put_policy(
        &self,
        p: &PolicyRecord,
        replace: bool,
        audit: &AuthAuditRow,
    ) -> Result<PolicyRecord, StoreError> {
        self.sealed_change(&["policy"], audit, |tx| {
            let now = crate::now_ms() / 1000;
            let values = args![
                p.name,
                p.scope,
                p.active,
                p.priority,
                json(&p.actions)?,
                json(&p.realms)?,
                json(&p.resolvers)?,
                json(&p.users)?,
                json(&p.clients)?,
                p.time,
                json(&p.admin_realms)?,
                json(&p.admin_users)?,
                p.description,
                now,
            ];
            let sql = if replace {
                "INSERT INTO policy (name, scope, active, priority, actions, realms, resolvers, users, clients, time,
                                     admin_realms, admin_users, description, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)
                 ON CONFLICT (name) DO UPDATE SET scope = excluded.scope, active = excluded.active,
                     priority = excluded.priority, actions = excluded.actions, realms = excluded.realms,
                     resolvers = excluded.resolvers, users = excluded.users, clients = excluded.clients,
                     time = excluded.time, admin_realms = excluded.admin_realms, admin_users = excluded.admin_users,
                     description = excluded.description, updated_at = excluded.updated_at"
            } else {
                "INSERT INTO policy (name, scope, active, priority, actions, realms, resolvers, users, clients, time,
                                     admin_realms, admin_users, description, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)"
            };
            tx.execute(sql, values)
                .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("policy {}", p.name)))))?;
            policy_in(tx, &p.name)
        })
    }

    /// The policy `name`, once the table's seal verifies.
    pub fn policy(&self, name: &str) -> Result<PolicyRecord, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["policy"])?;
            policy_in(conn, name)
        })
    }

    /// Every policy, by scope, priority and name.
    pub fn policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["policy"])?;
            conn.query_map(&format!("SELECT {COLUMNS} FROM policy ORDER BY scope, priority, name"), args![], from_row)
        })
    }

    /// Turns a policy on or off.
    pub fn set_policy_active(
        &self,
        name: &str,
        active: bool,
        audit: &AuthAuditRow,
    ) -> Result<PolicyRecord, StoreError> {
        self.sealed_change(&["policy"], audit, |tx| {
            let n = tx.execute(
                "UPDATE policy SET active = ?1, updated_at = ?2 WHERE name = ?3",
                args![active, crate::now_ms() / 1000, name],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("policy {name}"))));
            }
            policy_in(tx, name)
        })
    }

    /// Deletes the policy `name` with its audit row and renews the table's seal.
    pub fn delete_policy(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("policy", "name", name, "policy", audit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::Synchronous;

    fn record(name: &str) -> PolicyRecord {
        let mut actions = serde_json::Map::new();
        actions.insert("otppin".into(), "userstore".into());
        PolicyRecord {
            name: name.into(),
            scope: "authentication".into(),
            active: true,
            priority: 2,
            actions,
            realms: vec!["default".into()],
            resolvers: vec![],
            users: vec!["alice".into()],
            clients: vec!["10.0.0.0/8".into()],
            time: "Mon-Fri: 08:00-18:00".into(),
            admin_realms: vec![],
            admin_users: vec![],
            description: "test".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn audits(store: &Store) -> Vec<String> {
        store.auth_audit(&crate::AuthAuditQuery::default()).unwrap().into_iter().map(|r| r.action).collect()
    }

    #[test]
    fn crud_writes_an_audit_row_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        let a = |act: &str| AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), act, "ok");
        let stored = store.put_policy(&record("p1"), false, &a("policy/create")).unwrap();
        assert_eq!(stored.users, vec!["alice".to_owned()]);
        assert!(stored.created_at > 0);
        assert!(matches!(
            store.put_policy(&record("p1"), false, &a("policy/create")),
            Err(StoreError::Refused(Refusal::Duplicate(_)))
        ));
        let mut changed = record("p1");
        changed.priority = 5;
        assert_eq!(store.put_policy(&changed, true, &a("policy/set")).unwrap().priority, 5);
        assert!(!store.set_policy_active("p1", false, &a("policy/disable")).unwrap().active);
        assert_eq!(store.policies().unwrap().len(), 1);
        store.delete_policy("p1", &a("policy/delete")).unwrap();
        assert!(matches!(store.policy("p1"), Err(StoreError::Refused(Refusal::NotFound(_)))));
        assert!(matches!(
            store.delete_policy("p1", &a("policy/delete")),
            Err(StoreError::Refused(Refusal::NotFound(_)))
        ));
        assert_eq!(audits(&store), ["policy/delete", "policy/disable", "policy/set", "policy/create"]);
    }
}
