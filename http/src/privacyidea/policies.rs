//! privacyIDEA's policy endpoints for API admins: `GET /policy/[<name>]`, `POST /policy/<name>`
//! (define or replace), `POST /policy/enable/<name>`, `POST /policy/disable/<name>` and
//! `DELETE /policy/<name>`, carried out by [`countersign::policy::PolicyService`] (which checks every
//! action against the catalogue) with the admin actions `policyread`, `policywrite` and
//! `policydelete`.
//!
//! Conditions privacyIDEA has and Countersign does not evaluate (`check_all_resolvers`,
//! extended `conditions`, `pinode`, `user_agents`) are refused when set, never dropped: a
//! policy that silently matched more widely than written would be worse than none.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use countersign_core::error::Refusal;
use serde_json::{json, Map, Value};

use super::admin::{allowed, audit_read, PiAdmin, Subject};
use super::envelope::{respond, ErrorKind, PiResponse};
use super::params::Params;
use crate::SharedState;
use countersign::policy::{PolicyDefinition, PolicyError};
use countersign::store::PolicyRecord;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/policy/", get(list))
        .route("/policy/{name}", get(show).post(set).delete(remove))
        .route("/policy/enable/{name}", post(enable))
        .route("/policy/disable/{name}", post(disable))
}

fn policy_error(e: PolicyError) -> PiResponse {
    PiResponse::failure(&e)
}

/// A policy with privacyIDEA's field names.
fn pi_policy(x: &PolicyRecord) -> Value {
    json!({
        "name": x.name,
        "scope": x.scope,
        "active": x.active,
        "priority": x.priority,
        "action": x.actions,
        "realm": x.realms,
        "resolver": x.resolvers,
        "user": x.users,
        "client": x.clients,
        "time": x.time,
        "adminrealm": x.admin_realms,
        "adminuser": x.admin_users,
        // privacyIDEA keeps no description unless one was given.
        "description": (!x.description.is_empty()).then_some(&x.description),
        // Refused when set (`definition`), so always their defaults here.
        "check_all_resolvers": false,
        "user_case_insensitive": false,
        "conditions": [],
        "pinode": [],
    })
}

async fn list(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let r = async {
        allowed(&st, &admin, "policyread", &Subject::system())?;
        let list = st.policies.list().await.map_err(policy_error)?;
        let scope = p.get("scope");
        let active = p
            .get("active")
            .map(|_| p.flag("active", true))
            .transpose()
            .map_err(|m| PiResponse::error(ErrorKind::Parameter, &m))?;
        let out: Vec<Value> = list
            .iter()
            .filter(|x| scope.is_none_or(|s| s == x.scope) && active.is_none_or(|a| a == x.active))
            .map(pi_policy)
            .collect();
        Ok(PiResponse::value(json!(out)))
    }
    .await;
    audit_read(&st, &admin, "/policy/", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

/// privacyIDEA answers a list here too (of the one policy).
async fn show(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("name");
    let r = async {
        allowed(&st, &admin, "policyread", &Subject::system())?;
        // A name no policy has is an empty list, as privacyIDEA answers.
        match st.policies.show(name).await {
            Ok(one) => Ok(PiResponse::value(json!([pi_policy(&one)]))),
            Err(countersign::policy::PolicyError::Refused(Refusal::NotFound(_))) => Ok(PiResponse::value(json!([]))),
            Err(e) => Err(policy_error(e)),
        }
    }
    .await;
    audit_read(&st, &admin, "/policy/{name}", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

/// Splits privacyIDEA's action text (`otppin=userstore, passthru, smstext='Code: {otp}, bye'`)
/// into action → value; a bare name is `true`. A JSON object is taken as it is.
pub(crate) fn parse_actions(text: &str) -> Result<Map<String, Value>, String> {
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("action is not a JSON object: {e}"));
    }
    let mut items = Vec::new();
    // A quote opens only at the start of a value, so "challenge_text=Don't" is plain text.
    let (mut current, mut quote, mut value_start) = (String::new(), None::<char>, false);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            (None, ',') => {
                items.push(std::mem::take(&mut current));
                value_start = false;
            }
            (None, '=') => {
                current.push(c);
                value_start = true;
            }
            (None, '\'' | '"') if value_start => {
                quote = Some(c);
                current.push(c);
                value_start = false;
            }
            (None, c) => {
                value_start &= c.is_whitespace();
                current.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("action has an unclosed quote".into());
    }
    items.push(current);
    let mut out = Map::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => {
                let v = v.trim();
                let unquoted = ['\'', '"']
                    .iter()
                    .find_map(|q| v.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
                    .unwrap_or(v);
                (n.trim(), Value::String(unquoted.to_owned()))
            }
            None => (item, Value::Bool(true)),
        };
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("action {name} is given twice"));
        }
    }
    Ok(out)
}

/// Reads a policy as privacyIDEA's clients send it.
pub(super) fn definition(p: &Params) -> Result<PolicyDefinition, PiResponse> {
    let bad = |m: String| PiResponse::error(ErrorKind::Parameter, &m);
    for unsupported in ["check_all_resolvers", "user_case_insensitive"] {
        if p.flag(unsupported, false).map_err(bad)? {
            return Err(bad(format!("{unsupported} is not supported by Countersign; leave it unset or false")));
        }
    }
    for unsupported in ["conditions", "pinode", "user_agents"] {
        if !p.list(unsupported)?.is_empty() {
            return Err(bad(format!("{unsupported} is not supported by Countersign; leave it empty")));
        }
    }
    let actions = parse_actions(p.required("action")?).map_err(bad)?;
    let priority = match p.get("priority") {
        None => 1,
        Some(v) => v.trim().parse::<u32>().map_err(|_| bad(format!("priority must be a whole number, not '{v}'")))?,
    };
    Ok(PolicyDefinition {
        name: None,
        scope: p.required("scope")?.to_owned(),
        active: p.flag("active", true).map_err(bad)?,
        priority,
        actions,
        realms: p.list("realm")?,
        resolvers: p.list("resolver")?,
        users: p.list("user")?,
        clients: p.list("client")?,
        time: p.owned("time").unwrap_or_default(),
        admin_realms: p.list("adminrealm")?,
        admin_users: p.list("adminuser")?,
        description: p.owned("description").unwrap_or_default(),
    })
}

/// Defines the policy or replaces the one of that name, as privacyIDEA does.
async fn set(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("name");
    let r = async {
        allowed(&st, &admin, "policywrite", &Subject::system())?;
        let def = definition(&p)?;
        let stored = st.policies.put(admin.caller.clone(), Some(name), def, true).await.map_err(policy_error)?;
        Ok(PiResponse::value(json!({ format!("setPolicy {}", stored.name): 1 })))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn switch(st: SharedState, admin: PiAdmin, name: String, p: Params, active: bool) -> Response {
    let r = async {
        allowed(&st, &admin, "policywrite", &Subject::system())?;
        st.policies.set_active(admin.caller.clone(), name, active).await.map_err(policy_error)?;
        Ok(PiResponse::value(json!(1)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn enable(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("name");
    switch(st, admin, name, p, true).await
}

async fn disable(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("name");
    switch(st, admin, name, p, false).await
}

async fn remove(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("name");
    let r = async {
        allowed(&st, &admin, "policydelete", &Subject::system())?;
        st.policies.delete(admin.caller.clone(), name).await.map_err(policy_error)?;
        Ok(PiResponse::value(json!(1)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use super::*;

    #[test]
    fn privacyidea_action_text_is_split_outside_quotes() {
        let a =
            parse_actions("otppin=userstore, passthru ,smstext='Your code: {otp}, valid 5 min', auth_max_fail=3/5m")
                .unwrap();
        assert_eq!(a["otppin"], "userstore");
        assert_eq!(a["passthru"], true);
        assert_eq!(a["smstext"], "Your code: {otp}, valid 5 min");
        assert_eq!(a["auth_max_fail"], "3/5m");
        assert_eq!(a.len(), 4);
        assert_eq!(parse_actions(r#"{"otppin": "none"}"#).unwrap()["otppin"], "none");
        assert!(parse_actions("smstext='open").unwrap_err().contains("unclosed"));
        let a = parse_actions("challenge_text=Don't panic, passthru").unwrap();
        assert_eq!((a["challenge_text"].as_str(), a.len()), (Some("Don't panic"), 2));
        assert!(parse_actions("passthru, passthru").unwrap_err().contains("twice"));
        assert!(parse_actions("").unwrap().is_empty());
    }
}
