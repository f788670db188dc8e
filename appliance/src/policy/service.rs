//! Policy administration: define or replace, list, show, enable/disable, delete — each checked
//! against the catalogue before it is stored, stored with its audit row in one transaction, and
//! followed by a snapshot reload before the admin hears "done" — and `check`, which explains the
//! effective value of an action for a context the admin describes.
//!
//! Changes are serialised so that a reload never installs an older state over a newer one.
//! This module never enforces an action.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_core::names::PolicyName;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use super::actions::{self, Scope};
use super::snapshot::{CompiledPolicy, Explanation, PolicyContext, PolicySnapshot};
use super::PolicyHandle;
use super::{local_utc_offset_s, PolicyError};
use crate::clock::Clock;
use crate::store::{AuthAuditRow, PolicyRecord, Store};

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// A policy as an admin writes it (`POST /v1/admin/policies`, `PUT /v1/admin/policies/{name}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDefinition {
    /// Required for POST; for PUT it comes from the path (and must agree if given).
    #[serde(default)]
    pub name: Option<String>,
    /// `authentication`, `authorization`, `enrollment` or `admin`.
    pub scope: String,
    /// Whether it takes part in evaluation; default true.
    #[serde(default = "yes")]
    pub active: bool,
    /// Lower number wins, at least 1; default 1.
    #[serde(default = "one")]
    pub priority: u32,
    /// Action name → value (`true`, an integer or text; "3" and "true" are read as 3 and true).
    pub actions: serde_json::Map<String, serde_json::Value>,
    /// The realms of the users it applies to (`!realm` excludes); empty: all.
    #[serde(default)]
    pub realms: Vec<String>,
    /// The resolvers of the users it applies to; empty: all.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// The users it applies to; empty: all.
    #[serde(default)]
    pub users: Vec<String>,
    /// Client addresses and networks (`10.0.0.0/8`, `!10.0.0.5`); empty: all.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Weekday and time ranges as privacyIDEA writes them (`Mon-Fri: 08:00-18:00`), in the
    /// appliance's local time; empty: always.
    #[serde(default)]
    pub time: String,
    /// Admin scope: the realms of the administrators it applies to; empty: all.
    #[serde(default)]
    pub admin_realms: Vec<String>,
    /// Admin scope: the administrators it applies to; empty: all.
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// What it is for, in the admin's words; at most 1000 characters.
    #[serde(default)]
    pub description: String,
}

/// The time a check is evaluated at: Unix seconds, or a weekday and local time ("Sat 10:00").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CheckTime {
    /// Unix seconds.
    Unix(i64),
    /// Unix seconds as text, or a weekday and local time (`Sat 10:00`).
    Text(String),
}

/// What `policy check` asks (`POST /v1/admin/policies/check`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Default: the scope the action belongs to.
    #[serde(default)]
    pub scope: Option<String>,
    /// The action to explain, by its privacyIDEA name.
    pub action: String,
    /// The user the request is about; `None`: no user.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's realm; `None`: none.
    #[serde(default)]
    pub realm: Option<String>,
    /// The user's resolver; `None`: none.
    #[serde(default)]
    pub resolver: Option<String>,
    /// The client's IP address; `None` or empty: no client.
    #[serde(default)]
    pub client: Option<String>,
    /// Default: now, in the appliance's local time zone.
    #[serde(default)]
    pub time: Option<CheckTime>,
    /// The administrator making the request (admin scope); `None`: none.
    #[serde(default)]
    pub admin: Option<String>,
    /// That administrator's realm; `None`: none.
    #[serde(default)]
    pub admin_realm: Option<String>,
}

/// Policy administration and `policy check`, over the snapshot handle the request paths
/// evaluate. Changes run one at a time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyService {
    store: Arc<Store>,
    handle: Arc<PolicyHandle>,
    clock: Clock,
    writes: Arc<Mutex<()>>,
}

/// The record a definition becomes, checked (name, description, every action and condition
/// compiled) and with its action values as the evaluator reads them ("3" -> 3, "true" -> true).
pub fn checked_record(name: String, def: PolicyDefinition) -> Result<PolicyRecord, PolicyError> {
    validate_name(&name)?;
    if def.description.len() > 1000 {
        return Err(PolicyError::Refused(Refusal::Invalid("description: at most 1000 characters".into())));
    }
    let mut record = PolicyRecord {
        name,
        scope: def.scope.trim().to_owned(),
        active: def.active,
        priority: def.priority,
        actions: def.actions,
        realms: trimmed(def.realms),
        resolvers: trimmed(def.resolvers),
        users: trimmed(def.users),
        clients: trimmed(def.clients),
        time: def.time.trim().to_owned(),
        admin_realms: trimmed(def.admin_realms),
        admin_users: trimmed(def.admin_users),
        description: def.description,
        created_at: 0,
        updated_at: 0,
    };
    let compiled = CompiledPolicy::compile(&record)?;
    record.actions = compiled.actions.iter().map(|(k, v)| (k.clone(), actions::to_json(v))).collect();
    Ok(record)
}

/// The policy name rule is the core's ([`PolicyName`]).
fn validate_name(name: &str) -> Result<(), PolicyError> {
    PolicyName::check(name).map_err(|e| PolicyError::Refused(Refusal::Invalid(e.to_string())))
}

fn trimmed(l: Vec<String>) -> Vec<String> {
    l.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// A one-line description of a policy for the audit row.
fn summary(r: &PolicyRecord) -> String {
    let actions: Vec<String> =
        r.actions.iter().map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned))).collect();
    let mut s = format!(
        "{} priority {}{}: {}",
        r.scope,
        r.priority,
        if r.active { "" } else { " (inactive)" },
        actions.join(", ")
    );
    for (what, l) in [
        ("realms", &r.realms),
        ("resolvers", &r.resolvers),
        ("users", &r.users),
        ("clients", &r.clients),
        ("admin_realms", &r.admin_realms),
        ("admin_users", &r.admin_users),
    ] {
        if !l.is_empty() {
            s += &format!("; {what} {}", l.join(","));
        }
    }
    if !r.time.is_empty() {
        s += &format!("; time {}", r.time);
    }
    s
}

fn audit(caller: &Caller, action: &str, name: &str, detail: String) -> AuthAuditRow {
    AuthAuditRow { detail: Some(format!("policy {name}: {detail}")), ..AuthAuditRow::new(caller, action, "ok") }
}

/// "Mon 09:30" → Unix seconds in the first week of 2024 (2024-01-01 was a Monday), UTC.
fn weekday_time(s: &str) -> Result<i64, PolicyError> {
    let bad = || {
        PolicyError::Refused(Refusal::Invalid(format!(
            "time '{s}' is not Unix seconds or a weekday and time like 'Sat 10:00'"
        )))
    };
    let (day, hm) = s.trim().split_once(' ').ok_or_else(bad)?;
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| d.eq_ignore_ascii_case(day.trim()))
        .ok_or_else(bad)?;
    let (h, m) = hm.trim().split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().ok().filter(|h| (0..24).contains(h)).ok_or_else(bad)?;
    let m: i64 = m.parse().ok().filter(|m| (0..60).contains(m)).ok_or_else(bad)?;
    let day = i64::try_from(day).map_err(|_| bad())?;
    Ok(1_704_067_200 + day * 86_400 + h * 3600 + m * 60)
}

impl PolicyService {
    /// The service over the store and the snapshot handle it reloads after each change.
    pub fn new(store: Arc<Store>, handle: Arc<PolicyHandle>, clock: Clock) -> PolicyService {
        PolicyService { store, handle, clock, writes: Arc::new(Mutex::new(())) }
    }

    /// The snapshot handle the request paths evaluate against.
    pub fn handle(&self) -> Arc<PolicyHandle> {
        self.handle.clone()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.handle.current()
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, PolicyError> + Send + 'static,
    ) -> Result<T, PolicyError> {
        crate::service_error::off_runtime(f, PolicyError::Internal).await
    }

    /// Runs a store change and reloads the snapshot, one change at a time.
    fn change<T>(&self, f: impl FnOnce(&Store) -> Result<T, PolicyError>) -> Result<T, PolicyError> {
        let _one_at_a_time = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&self.store)?;
        self.handle
            .reload(&self.store)
            .map_err(|e| PolicyError::Internal(format!("the change is stored but the policies did not reload: {e}")))?;
        Ok(out)
    }

    /// Defines a policy (`replace`: or overwrites the one of that name, as privacyIDEA does).
    pub async fn put(
        &self,
        caller: Caller,
        name: Option<String>,
        def: PolicyDefinition,
        replace: bool,
    ) -> Result<PolicyRecord, PolicyError> {
        let svc = self.clone();
        Self::blocking(move || svc.put_blocking(&caller, name, def, replace)).await
    }

    fn put_blocking(
        &self,
        caller: &Caller,
        path_name: Option<String>,
        def: PolicyDefinition,
        replace: bool,
    ) -> Result<PolicyRecord, PolicyError> {
        let name = match (path_name, def.name.clone()) {
            (Some(p), Some(b)) if p != b => {
                return Err(PolicyError::Refused(Refusal::Invalid(format!(
                    "the body names policy {b} but the path names {p}"
                ))))
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => return Err(PolicyError::Refused(Refusal::Invalid("a policy needs a name".into()))),
        };
        let record = checked_record(name.clone(), def)?;
        let action = if replace { "policy/set" } else { "policy/create" };
        let row = audit(caller, action, &name, summary(&record));
        self.change(|s| Ok(s.put_policy(&record, replace, &row)?))
    }

    /// Every stored policy.
    pub async fn list(&self) -> Result<Vec<PolicyRecord>, PolicyError> {
        let store = self.store.clone();
        Self::blocking(move || Ok(store.policies()?)).await
    }

    /// Policy `name`.
    pub async fn show(&self, name: String) -> Result<PolicyRecord, PolicyError> {
        let store = self.store.clone();
        Self::blocking(move || Ok(store.policy(&name)?)).await
    }

    /// Enables or disables policy `name`.
    pub async fn set_active(&self, caller: Caller, name: String, active: bool) -> Result<PolicyRecord, PolicyError> {
        let svc = self.clone();
        Self::blocking(move || {
            let action = if active { "policy/enable" } else { "policy/disable" };
            let row = audit(&caller, action, &name, if active { "enabled" } else { "disabled" }.into());
            svc.change(|s| Ok(s.set_policy_active(&name, active, &row)?))
        })
        .await
    }

    /// Deletes policy `name`.
    pub async fn delete(&self, caller: Caller, name: String) -> Result<(), PolicyError> {
        let svc = self.clone();
        Self::blocking(move || {
            let row = audit(&caller, "policy/delete", &name, "deleted".into());
            svc.change(|s| Ok(s.delete_policy(&name, &row)?))
        })
        .await
    }

    /// The effective value of an action for the described context, and why, per policy.
    pub fn check(&self, q: &CheckRequest) -> Result<Explanation, PolicyError> {
        let unknown = || {
            let names: Vec<&str> = actions::CATALOGUE.iter().map(|a| a.name).collect();
            PolicyError::Refused(Refusal::Invalid(format!(
                "unknown action '{}'; accepted: {}",
                q.action,
                names.join(", ")
            )))
        };
        // Some of privacyIDEA's actions have one name in two scopes (webauthn_timeout, ...):
        // the scope must then be given.
        let scope = match &q.scope {
            Some(s) => Scope::parse(s).map_err(|m| PolicyError::Refused(Refusal::Invalid(m)))?,
            None => match actions::scopes_of(&q.action).as_slice() {
                [] => return Err(unknown()),
                [one] => *one,
                several => {
                    let names: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                    return Err(PolicyError::Refused(Refusal::Invalid(format!(
                        "action {} is in scopes {}; say which with scope",
                        q.action,
                        names.join(" and ")
                    ))));
                }
            },
        };
        if actions::lookup_in(scope, &q.action).is_none() {
            let scopes = actions::scopes_of(&q.action);
            if scopes.is_empty() {
                return Err(unknown());
            }
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            return Err(PolicyError::Refused(Refusal::Invalid(format!(
                "action {} belongs to scope {}, not {scope}",
                q.action,
                names.join(" and ")
            ))));
        }
        let client: Option<IpAddr> =
            match q.client.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => Some(c.parse().map_err(|_| {
                    PolicyError::Refused(Refusal::Invalid(format!("client '{c}' is not an IP address")))
                })?),
                None => None,
            };
        let (now_s, utc_offset_s) = match &q.time {
            None => {
                let now = self.clock.now_ms() / 1000;
                (now, local_utc_offset_s(now))
            }
            Some(CheckTime::Unix(t)) => (*t, local_utc_offset_s(*t)),
            Some(CheckTime::Text(s)) => match s.trim().parse::<i64>() {
                Ok(t) => (t, local_utc_offset_s(t)),
                Err(_) => {
                    // The weekday and time are local: shown with the appliance's current offset.
                    let offset = local_utc_offset_s(self.clock.now_ms() / 1000);
                    (weekday_time(s)? - i64::from(offset), offset)
                }
            },
        };
        let ctx = PolicyContext {
            user: q.user.as_deref(),
            realm: q.realm.as_deref(),
            resolver: q.resolver.as_deref(),
            client,
            now_s,
            utc_offset_s,
            admin: q.admin.as_deref(),
            admin_realm: q.admin_realm.as_deref(),
        };
        Ok(self.handle.current().explain(scope, &q.action, &ctx))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "Office-Hours_2", "x.y"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a b", "check", "actions", &"x".repeat(65), "ä"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekday_times() {
        assert_eq!(weekday_time("Mon 00:00").unwrap(), 1_704_067_200);
        assert_eq!(weekday_time("sat 10:30").unwrap(), 1_704_067_200 + 5 * 86_400 + 10 * 3600 + 1800);
        assert!(weekday_time("Sat 25:00").is_err());
        assert!(weekday_time("tomorrow").is_err());
    }
}
