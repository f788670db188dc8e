//! The in-memory policy snapshot the daemon evaluates on every request: policies compiled once
//! (conditions parsed, actions typed), grouped by scope and sorted by priority; the effective
//! value of an action for a context with privacyIDEA's semantics; and the explanation of every
//! policy's conditions for `policy check`.
//!
//! Evaluation is pure and never touches the database: the appliance swaps the snapshot whole
//! after each admin change. It never decides what an action does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::actions::{self, ActionValue, Scope};
use super::conditions::{ClientList, LocalTime, NameList, TimeSpec};
use super::{PolicyInvalid, PolicyRecord};

/// What a request looks like to the policies.
#[derive(Debug, Clone, Copy)]
pub struct PolicyContext<'a> {
    /// The authenticating user (or, in the admin scope, the user whose token is administered).
    pub user: Option<&'a str>,
    /// The user's realm.
    pub realm: Option<&'a str>,
    /// The resolver the user was found through.
    pub resolver: Option<&'a str>,
    /// The client's address (for RADIUS/PAM: the address the caller reports, else the peer).
    pub client: Option<IpAddr>,
    /// Unix seconds.
    pub now_s: i64,
    /// Seconds east of UTC that time conditions are read in (the appliance's local time zone;
    /// 0 = UTC).
    pub utc_offset_s: i32,
    /// Admin scope: the administrator and the realm the administrator belongs to.
    pub admin: Option<&'a str>,
    /// The realm the administrator belongs to.
    pub admin_realm: Option<&'a str>,
}

impl<'a> PolicyContext<'a> {
    /// The context of a request: who it is about (user, realm, resolver), the caller's client
    /// address (none on a Unix socket), at `now_s` read `utc_offset_s` seconds east of UTC (the
    /// appliance's local time).
    pub fn for_request(
        user: Option<&'a str>,
        realm: Option<&'a str>,
        resolver: Option<&'a str>,
        caller: &crate::caller::Caller,
        now_s: i64,
        utc_offset_s: i32,
    ) -> PolicyContext<'a> {
        PolicyContext {
            user,
            realm,
            resolver,
            client: caller.client(),
            now_s,
            utc_offset_s,
            admin: None,
            admin_realm: None,
        }
    }

    /// A context with nothing but the time: every name and client condition fails to match.
    pub fn at(now_s: i64, utc_offset_s: i32) -> PolicyContext<'static> {
        PolicyContext {
            user: None,
            realm: None,
            resolver: None,
            client: None,
            now_s,
            utc_offset_s,
            admin: None,
            admin_realm: None,
        }
    }
}

/// Policies at the same (winning) priority give an action different values: the caller must
/// refuse the request, not pick one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conflicting policies for {scope} action {action} at priority {priority}: {}; give them different priorities or the same value", describe(.policies))]
pub struct PolicyConflict {
    /// The scope of the conflicting policies.
    pub scope: Scope,
    /// The action they disagree on.
    pub action: String,
    /// The priority they share.
    pub priority: u32,
    /// Each policy at that priority that matched, with its value.
    pub policies: Vec<(String, ActionValue)>,
}

fn describe(p: &[(String, ActionValue)]) -> String {
    p.iter().map(|(n, v)| format!("{n} ({v})")).collect::<Vec<_>>().join(", ")
}

/// One policy, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The policy's name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// Whether it takes part in evaluation.
    pub active: bool,
    /// Lower number wins.
    pub priority: u32,
    /// Its actions, checked against the catalogue.
    pub actions: BTreeMap<String, ActionValue>,
    realms: NameList,
    resolvers: NameList,
    users: NameList,
    clients: ClientList,
    time: TimeSpec,
    admin_realms: NameList,
    admin_users: NameList,
}

/// One condition of one policy against one context.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConditionResult {
    /// realm, resolver, user, client, time, admin_realm, admin_user
    pub condition: String,
    /// Whether the condition let the request through.
    pub matched: bool,
    /// Why, in words.
    pub reason: String,
}

impl CompiledPolicy {
    /// Checks every action and condition of a stored policy. The error names what is wrong.
    pub fn compile(r: &PolicyRecord) -> Result<CompiledPolicy, PolicyInvalid> {
        let bad = |m: String| PolicyInvalid(format!("policy {}: {m}", r.name));
        let scope = Scope::parse(&r.scope).map_err(bad)?;
        if r.priority == 0 {
            return Err(bad("priority must be 1 or more (1 wins over 2)".into()));
        }
        if r.actions.is_empty() {
            return Err(bad(format!(
                "sets no action; actions of scope {scope}: {}",
                actions::in_scope(scope).map(|a| a.name).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut acts = BTreeMap::new();
        for (name, value) in &r.actions {
            acts.insert(name.clone(), actions::check(scope, name, value).map_err(bad)?);
        }
        let admin_only = |what: &str, l: &[String]| {
            if scope != Scope::Admin && !l.is_empty() {
                Err(bad(format!("{what} applies to admin policies only")))
            } else {
                Ok(())
            }
        };
        admin_only("admin_realms", &r.admin_realms)?;
        admin_only("admin_users", &r.admin_users)?;
        Ok(CompiledPolicy {
            name: r.name.clone(),
            scope,
            active: r.active,
            priority: r.priority,
            actions: acts,
            realms: NameList::parse("realm", &r.realms, true).map_err(bad)?,
            resolvers: NameList::parse("resolver", &r.resolvers, false).map_err(bad)?,
            users: NameList::parse("user", &r.users, false).map_err(bad)?,
            clients: ClientList::parse(&r.clients).map_err(bad)?,
            time: TimeSpec::parse(&r.time).map_err(bad)?,
            admin_realms: NameList::parse("admin realm", &r.admin_realms, true).map_err(bad)?,
            admin_users: NameList::parse("admin", &r.admin_users, false).map_err(bad)?,
        })
    }

    /// Whether every condition matches (activity is not a condition; see [`Self::active`]).
    pub fn matches(&self, ctx: &PolicyContext<'_>) -> bool {
        self.realms.test(ctx.realm)
            && self.resolvers.test(ctx.resolver)
            && self.users.test(ctx.user)
            && self.clients.test(ctx.client)
            && self.time.test(LocalTime::at(ctx.now_s, ctx.utc_offset_s))
            && self.admin_realms.test(ctx.admin_realm)
            && self.admin_users.test(ctx.admin)
    }

    /// Every condition with whether it matched and why.
    pub fn conditions(&self, ctx: &PolicyContext<'_>) -> Vec<ConditionResult> {
        let t = LocalTime::at(ctx.now_s, ctx.utc_offset_s);
        let r = |condition: &str, matched, reason| ConditionResult { condition: condition.to_owned(), matched, reason };
        let mut out = vec![
            r("realm", self.realms.test(ctx.realm), self.realms.reason("realm", ctx.realm)),
            r("resolver", self.resolvers.test(ctx.resolver), self.resolvers.reason("resolver", ctx.resolver)),
            r("user", self.users.test(ctx.user), self.users.reason("user", ctx.user)),
            r("client", self.clients.test(ctx.client), self.clients.reason(ctx.client)),
            r("time", self.time.test(t), self.time.reason(t)),
        ];
        if self.scope == Scope::Admin {
            out.push(r(
                "admin_realm",
                self.admin_realms.test(ctx.admin_realm),
                self.admin_realms.reason("admin realm", ctx.admin_realm),
            ));
            out.push(r("admin_user", self.admin_users.test(ctx.admin), self.admin_users.reason("admin", ctx.admin)));
        }
        out
    }
}

/// How one policy of the scope fared in a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyExplanation {
    /// The policy's name.
    pub name: String,
    /// Its priority.
    pub priority: u32,
    /// Whether it is active.
    pub active: bool,
    /// Active and every condition matched.
    pub matched: bool,
    /// The value this policy gives the action, if it sets it.
    pub sets: Option<ActionValue>,
    /// This policy supplied the effective value.
    pub effective: bool,
    /// Each condition with whether it matched and why.
    pub conditions: Vec<ConditionResult>,
}

/// The answer of `policy check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    /// The scope checked.
    pub scope: Scope,
    /// The action checked.
    pub action: String,
    /// The effective value; `None`: no matching policy sets it (the default applies), or a conflict.
    pub value: Option<ActionValue>,
    /// The policies that supplied it.
    pub from: Vec<String>,
    /// Set when policies conflict; the request would be refused.
    pub conflict: Option<String>,
    /// The local time the time conditions were read at.
    pub time: String,
    /// Every policy of the scope, by priority.
    pub policies: Vec<PolicyExplanation>,
}

/// Every policy, compiled, by scope and priority.
#[derive(Debug, Default)]
pub struct PolicySnapshot {
    by_scope: BTreeMap<Scope, Vec<CompiledPolicy>>,
}

impl PolicySnapshot {
    /// Compiles stored policies; a stored policy this build cannot read fails the whole load
    /// (fail closed) with its name.
    pub fn build(records: &[PolicyRecord]) -> Result<PolicySnapshot, PolicyInvalid> {
        let mut snap = PolicySnapshot::default();
        for r in records {
            let p = CompiledPolicy::compile(r)?;
            snap.by_scope.entry(p.scope).or_default().push(p);
        }
        for list in snap.by_scope.values_mut() {
            list.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.name.cmp(&b.name)));
        }
        Ok(snap)
    }

    /// The policies of a scope, by priority then name.
    pub fn policies(&self, scope: Scope) -> &[CompiledPolicy] {
        self.by_scope.get(&scope).map_or(&[], Vec::as_slice)
    }

    /// Whether any active policy exists in the scope.
    pub fn has_active(&self, scope: Scope) -> bool {
        self.policies(scope).iter().any(|p| p.active)
    }

    /// The effective value of `action` for `ctx`: among active policies of `scope` whose
    /// conditions all match and that set the action, the lowest priority number wins. `None`:
    /// no such policy (the caller's default applies). Different values at the winning priority
    /// are a [`PolicyConflict`]: the caller must fail closed. Also returns the policies that
    /// supplied the value.
    pub fn value(
        &self,
        scope: Scope,
        action: &str,
        ctx: &PolicyContext<'_>,
    ) -> Result<Option<(ActionValue, Vec<String>)>, PolicyConflict> {
        let mut winners: Vec<(&CompiledPolicy, &ActionValue)> = Vec::new();
        for p in self.policies(scope) {
            if winners.first().is_some_and(|(w, _)| p.priority > w.priority) {
                break;
            }
            if !p.active {
                continue;
            }
            let Some(v) = p.actions.get(action) else {
                continue;
            };
            if p.matches(ctx) {
                winners.push((p, v));
            }
        }
        let Some((first, value)) = winners.first() else {
            return Ok(None);
        };
        if winners.iter().any(|(_, v)| v != value) {
            return Err(PolicyConflict {
                scope,
                action: action.to_owned(),
                priority: first.priority,
                policies: winners.iter().map(|(p, v)| (p.name.clone(), (*v).clone())).collect(),
            });
        }
        Ok(Some(((*value).clone(), winners.iter().map(|(p, _)| p.name.clone()).collect())))
    }

    /// A boolean action's effective value; unset is `false`.
    pub fn flag(&self, scope: Scope, action: &str, ctx: &PolicyContext<'_>) -> Result<bool, PolicyConflict> {
        Ok(self.value(scope, action, ctx)?.is_some_and(|(v, _)| v.as_bool() == Some(true)))
    }

    /// privacyIDEA's admin rule: with no active admin policy every admin may do everything;
    /// once one exists, an admin may do only what a matching admin policy allows.
    pub fn admin_allowed(&self, action: &str, ctx: &PolicyContext<'_>) -> Result<bool, PolicyConflict> {
        if !self.has_active(Scope::Admin) {
            return Ok(true);
        }
        self.flag(Scope::Admin, action, ctx)
    }

    /// The effective value with, for every policy of the scope, whether it matched and why.
    pub fn explain(&self, scope: Scope, action: &str, ctx: &PolicyContext<'_>) -> Explanation {
        let (value, from, conflict) = match self.value(scope, action, ctx) {
            Ok(Some((v, from))) => (Some(v), from, None),
            Ok(None) => (None, Vec::new(), None),
            Err(c) => (None, Vec::new(), Some(c.to_string())),
        };
        let policies = self
            .policies(scope)
            .iter()
            .map(|p| {
                let conditions = p.conditions(ctx);
                PolicyExplanation {
                    name: p.name.clone(),
                    priority: p.priority,
                    active: p.active,
                    matched: p.active && conditions.iter().all(|c| c.matched),
                    sets: p.actions.get(action).cloned(),
                    effective: from.contains(&p.name),
                    conditions,
                }
            })
            .collect();
        Explanation {
            scope,
            action: action.to_owned(),
            value,
            from,
            conflict,
            time: LocalTime::at(ctx.now_s, ctx.utc_offset_s).to_string(),
            policies,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// Monday 2024-01-01 10:00 UTC.
    const MON_10: i64 = 1_704_103_200;

    fn policy(name: &str, scope: &str, priority: u32, actions: serde_json::Value) -> PolicyRecord {
        PolicyRecord { priority, ..PolicyRecord::new(name, scope, actions.as_object().unwrap().clone()) }
    }

    fn ctx<'a>(user: &'a str, realm: &'a str, client: &str) -> PolicyContext<'a> {
        PolicyContext {
            user: Some(user),
            realm: Some(realm),
            resolver: Some("internal"),
            client: Some(client.parse().unwrap()),
            now_s: MON_10,
            utc_offset_s: 0,
            admin: None,
            admin_realm: None,
        }
    }

    fn text(s: &str) -> ActionValue {
        ActionValue::Text(s.into())
    }

    #[test]
    fn lowest_priority_number_wins() {
        let snap = PolicySnapshot::build(&[
            policy("general", "authentication", 10, json!({"otppin": "tokenpin"})),
            policy("ldap", "authentication", 2, json!({"otppin": "userstore"})),
        ])
        .unwrap();
        let (v, from) =
            snap.value(Scope::Authentication, "otppin", &ctx("alice", "default", "10.0.0.1")).unwrap().unwrap();
        assert_eq!((v, from), (text("userstore"), vec!["ldap".to_owned()]));
    }

    #[test]
    fn a_non_matching_or_inactive_policy_lets_the_next_priority_win() {
        let mut ldap = policy("ldap", "authentication", 1, json!({"otppin": "userstore"}));
        ldap.realms = vec!["corp".into()];
        let mut off = policy("off", "authentication", 1, json!({"otppin": "none"}));
        off.active = false;
        let general = policy("general", "authentication", 5, json!({"otppin": "tokenpin"}));
        let snap = PolicySnapshot::build(&[ldap, off, general]).unwrap();
        let c = ctx("alice", "default", "10.0.0.1");
        assert_eq!(snap.value(Scope::Authentication, "otppin", &c).unwrap().unwrap().0, text("tokenpin"));
        let corp = ctx("alice", "CORP", "10.0.0.1");
        assert_eq!(snap.value(Scope::Authentication, "otppin", &corp).unwrap().unwrap().0, text("userstore"));
    }

    #[test]
    fn unset_action_is_none_and_other_scopes_do_not_count() {
        let snap = PolicySnapshot::build(&[policy("e", "enrollment", 1, json!({"max_token_per_user": 2}))]).unwrap();
        let c = ctx("alice", "default", "10.0.0.1");
        assert_eq!(snap.value(Scope::Authentication, "otppin", &c).unwrap(), None);
        assert_eq!(snap.value(Scope::Authentication, "max_token_per_user", &c).unwrap(), None);
        assert_eq!(snap.value(Scope::Enrollment, "max_token_per_user", &c).unwrap().unwrap().0, ActionValue::Int(2));
    }

    #[test]
    fn conflicting_values_at_the_same_priority_fail_closed_and_name_the_policies() {
        let snap = PolicySnapshot::build(&[
            policy("a", "authentication", 3, json!({"otppin": "userstore"})),
            policy("b", "authentication", 3, json!({"otppin": "none"})),
            policy("c", "authentication", 9, json!({"otppin": "tokenpin"})),
        ])
        .unwrap();
        let e = snap.value(Scope::Authentication, "otppin", &ctx("alice", "default", "10.0.0.1")).unwrap_err();
        assert_eq!(e.priority, 3);
        assert_eq!(e.policies, vec![("a".to_owned(), text("userstore")), ("b".to_owned(), text("none"))]);
        let msg = e.to_string();
        assert!(msg.contains("a (userstore), b (none)") && msg.contains("priority 3"), "{msg}");
        let ex = snap.explain(Scope::Authentication, "otppin", &ctx("alice", "default", "10.0.0.1"));
        assert!(ex.value.is_none() && ex.conflict.is_some());
    }

    #[test]
    fn equal_values_at_the_same_priority_are_no_conflict() {
        let snap = PolicySnapshot::build(&[
            policy("a", "authentication", 1, json!({"passthru": true})),
            policy("b", "authentication", 1, json!({"passthru": "true"})),
        ])
        .unwrap();
        let (v, from) =
            snap.value(Scope::Authentication, "passthru", &ctx("alice", "default", "10.0.0.1")).unwrap().unwrap();
        assert_eq!((v, from), (ActionValue::Bool(true), vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn a_conflict_only_counts_among_matching_policies() {
        let mut b = policy("b", "authentication", 1, json!({"otppin": "none"}));
        b.users = vec!["bob".into()];
        let snap =
            PolicySnapshot::build(&[policy("a", "authentication", 1, json!({"otppin": "userstore"})), b]).unwrap();
        assert!(snap.value(Scope::Authentication, "otppin", &ctx("alice", "default", "10.0.0.1")).is_ok());
        assert!(snap.value(Scope::Authentication, "otppin", &ctx("bob", "default", "10.0.0.1")).is_err());
    }

    #[test]
    fn every_condition_type_matches_and_not() {
        let mut p = policy("p", "authorization", 1, json!({"auth_max_fail": "3/5m"}));
        p.realms = vec!["default".into()];
        p.resolvers = vec!["internal".into()];
        p.users = vec!["alice".into()];
        p.clients = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
        p.time = "Mon-Fri: 08:00-18:00".into();
        let snap = PolicySnapshot::build(&[p]).unwrap();
        let get = |c: &PolicyContext<'_>| snap.value(Scope::Authorization, "auth_max_fail", c).unwrap().is_some();
        let base = ctx("alice", "default", "10.1.2.3");
        assert!(get(&base));
        assert!(get(&PolicyContext { client: Some("2001:db8::5".parse().unwrap()), ..base }));
        assert!(!get(&PolicyContext { client: Some("192.168.0.1".parse().unwrap()), ..base }), "client");
        assert!(!get(&PolicyContext { client: Some("2001:db9::5".parse().unwrap()), ..base }), "client v6");
        assert!(!get(&PolicyContext { client: None, ..base }), "no client");
        assert!(!get(&PolicyContext { user: Some("bob"), ..base }), "user");
        assert!(!get(&PolicyContext { realm: Some("corp"), ..base }), "realm");
        assert!(!get(&PolicyContext { resolver: Some("ldap"), ..base }), "resolver");
        assert!(!get(&PolicyContext { now_s: MON_10 + 9 * 3600, ..base }), "19:00");
        assert!(!get(&PolicyContext { now_s: MON_10 + 5 * 86_400, ..base }), "Saturday");
        assert!(get(&PolicyContext { now_s: MON_10 - 1800, utc_offset_s: 3600, ..base }), "10:30 at UTC+1");
        assert!(!get(&PolicyContext { now_s: MON_10 - 2 * 3600 - 1, utc_offset_s: 0, ..base }), "07:59 UTC");
        let rate = snap.value(Scope::Authorization, "auth_max_fail", &base).unwrap().unwrap().0.as_rate().unwrap();
        assert_eq!((rate.count, rate.period_s), (3, 300));
    }

    #[test]
    fn explanation_says_why_per_condition() {
        let mut p = policy("office", "authentication", 1, json!({"otppin": "userstore"}));
        p.clients = vec!["192.168.0.0/16".into()];
        p.time = "Mon-Fri: 08:00-18:00".into();
        let mut off = policy("off", "authentication", 2, json!({"passthru": true}));
        off.active = false;
        let snap = PolicySnapshot::build(&[p, off]).unwrap();
        let ex = snap.explain(Scope::Authentication, "otppin", &ctx("alice", "default", "10.0.0.5"));
        assert_eq!(ex.value, None);
        assert_eq!(ex.policies.len(), 2);
        let office = &ex.policies[0];
        assert!(!office.matched && !office.effective);
        assert_eq!(office.sets, Some(text("userstore")));
        let client = office.conditions.iter().find(|c| c.condition == "client").unwrap();
        assert_eq!((client.matched, client.reason.as_str()), (false, "client 10.0.0.5 not in 192.168.0.0/16"));
        let time = office.conditions.iter().find(|c| c.condition == "time").unwrap();
        assert_eq!(time.reason, "Mon 10:00 UTC in Mon-Fri: 08:00-18:00");
        assert!(!ex.policies[1].active && !ex.policies[1].matched && ex.policies[1].sets.is_none());
        let ok = snap.explain(Scope::Authentication, "otppin", &ctx("alice", "default", "192.168.3.3"));
        assert_eq!((ok.value, ok.from), (Some(text("userstore")), vec!["office".to_owned()]));
        assert!(ok.policies[0].effective);
    }

    #[test]
    fn admin_rights() {
        let c = PolicyContext {
            admin: Some("uid:1000"),
            admin_realm: Some("helpdesk"),
            ..ctx("alice", "default", "10.0.0.1")
        };
        let empty = PolicySnapshot::build(&[]).unwrap();
        assert!(empty.admin_allowed("delete", &c).unwrap(), "no admin policy: everything allowed");
        let mut hd = policy("helpdesk", "admin", 1, json!({"enable": true, "disable": true, "tokenlist": true}));
        hd.admin_realms = vec!["helpdesk".into()];
        hd.realms = vec!["default".into()];
        let snap = PolicySnapshot::build(&[hd]).unwrap();
        assert!(snap.admin_allowed("enable", &c).unwrap());
        assert!(!snap.admin_allowed("delete", &c).unwrap(), "not listed");
        assert!(!snap.admin_allowed("enable", &PolicyContext { admin_realm: Some("ops"), ..c }).unwrap());
        assert!(
            !snap.admin_allowed("enable", &PolicyContext { realm: Some("corp"), ..c }).unwrap(),
            "other users' realm"
        );
        let ex = snap.explain(Scope::Admin, "enable", &c);
        assert!(ex.policies[0].conditions.iter().any(|x| x.condition == "admin_realm" && x.matched));
    }

    #[test]
    fn saving_refuses_what_the_evaluator_could_not_honour() {
        let bad = |r: PolicyRecord| CompiledPolicy::compile(&r).unwrap_err().to_string();
        assert!(bad(policy("x", "authentication", 1, json!({"otppin": "ldap"}))).contains("tokenpin, userstore, none"));
        assert!(bad(policy("x", "authentication", 1, json!({"nope": true}))).contains("unknown action 'nope'"));
        assert!(bad(policy("x", "authentication", 1, json!({}))).contains("sets no action"));
        assert!(bad(policy("x", "user", 1, json!({"otppin": "none"}))).contains("unknown scope"));
        assert!(bad(policy("x", "authentication", 0, json!({"otppin": "none"}))).contains("priority"));
        let mut r = policy("x", "authentication", 1, json!({"otppin": "none"}));
        r.admin_realms = vec!["a".into()];
        assert!(bad(r).contains("admin policies only"));
        let mut r = policy("x", "authentication", 1, json!({"otppin": "none"}));
        r.clients = vec!["10.0.0.1/8".into()];
        assert!(bad(r).contains("host bits"));
        let mut r = policy("x", "authentication", 1, json!({"otppin": "none"}));
        r.time = "weekdays".into();
        assert!(bad(r).contains("DAYS: HH:MM-HH:MM"));
    }
}
