//! privacyIDEA's read endpoints for API admins: `/realm/`, `/resolver/`, `/policy/` and
//! `/audit/`, in privacyIDEA's shapes, read from the realms, policies and the auth audit.
//! Changes to realms, resolvers and policies go through `countersign` and `admin.sock`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::admin::PiAdmin;
use super::envelope::{ErrorKind, PiResponse};
use super::params::Params;
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/realm/", get(realms))
        .route("/resolver/", get(resolvers))
        .route("/policy/", get(policies))
        .route("/audit/", get(audit))
}

fn internal(e: impl std::fmt::Display) -> PiResponse {
    PiResponse::error(ErrorKind::Internal, &e.to_string())
}

fn sign(st: &AppState, p: &Params, r: Result<PiResponse, PiResponse>) -> Response {
    r.unwrap_or_else(|e| e).finish(&st.responses, p.nonce().as_deref())
}

/// `{"<realm>": {"default": bool, "id": n, "resolver": [{"name", "type", "priority"}]}}`
async fn realms(State(st): State<AppState>, _a: PiAdmin, p: Params) -> Response {
    let realms = st.realms.clone();
    let r = async {
        let (list, resolvers) = realms.run(|r| Ok((r.list_realms()?, r.list_resolvers()?))).await.map_err(internal)?;
        let mut out = Map::new();
        for (i, realm) in list.iter().enumerate() {
            let res: Vec<Value> = realm
                .resolvers
                .iter()
                .enumerate()
                .map(|(prio, name)| {
                    let kind = resolvers.iter().find(|x| &x.name == name).map(|x| x.kind.clone()).unwrap_or_default();
                    json!({ "name": name, "type": kind, "priority": prio + 1 })
                })
                .collect();
            out.insert(realm.name.clone(), json!({ "default": realm.default, "id": i + 1, "resolver": res }));
        }
        Ok(PiResponse::ok(Value::Object(out), None, Value::Null))
    }
    .await;
    sign(&st, &p, r)
}

/// `{"<resolver>": {"resolvername", "type", "censor_keys", "data"}}`; secrets are never listed.
async fn resolvers(State(st): State<AppState>, _a: PiAdmin, p: Params) -> Response {
    let realms = st.realms.clone();
    let r = async {
        let list = realms.run(|r| r.list_resolvers()).await.map_err(internal)?;
        let mut out = Map::new();
        for x in list {
            let censor: Vec<&str> = if x.bind_password_set { vec!["BINDPW"] } else { Vec::new() };
            out.insert(
                x.name.clone(),
                json!({ "resolvername": x.name, "type": x.kind, "censor_keys": censor, "data": x.options }),
            );
        }
        Ok(PiResponse::ok(Value::Object(out), None, Value::Null))
    }
    .await;
    sign(&st, &p, r)
}

/// A list of policies with privacyIDEA's field names (conditions as comma-separated text).
async fn policies(State(st): State<AppState>, _a: PiAdmin, p: Params) -> Response {
    let r = async {
        let list = st.policies.list().await.map_err(internal)?;
        let scope = p.get("scope");
        let out: Vec<Value> = list
            .iter()
            .filter(|x| scope.is_none_or(|s| s == x.scope))
            .map(|x| {
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
                })
            })
            .collect();
        Ok(PiResponse::ok(json!(out), None, Value::Null))
    }
    .await;
    sign(&st, &p, r)
}

/// `{"auditdata": [...], "count", "current", "next", "prev"}`, newest first. `count` is the
/// number of rows up to and including this page (one more when a next page exists), not a
/// total over the whole audit: counting every row would scan the table.
async fn audit(State(st): State<AppState>, _a: PiAdmin, p: Params) -> Response {
    let r = async {
        let page: usize = p.get("page").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(1);
        let size: usize = p
            .get("page_size")
            .or_else(|| p.get("rp"))
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(15)
            .min(500);
        let query = crate::store::AuthAuditQuery {
            serial: p.owned("serial"),
            user: p.owned("user"),
            action: p.owned("action"),
            result: None,
            before_id: None,
            limit: Some(u32::try_from(page * size + 1).unwrap_or(u32::MAX)),
        };
        let rows = st.tokens.audit(query).await.map_err(internal)?;
        let more = rows.len() > page * size;
        let data: Vec<Value> = rows
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|a| {
                json!({
                    "number": a.id,
                    "date": a.at_ms,
                    "action": a.action,
                    "success": matches!(a.result.as_str(), "ok" | "accept"),
                    "serial": a.serial,
                    "user": a.login,
                    "realm": a.realm,
                    "administrator": a.caller,
                    "info": a.detail,
                })
            })
            .collect();
        Ok(PiResponse::ok(
            json!({ "auditdata": data, "count": rows.len(), "current": page,
                    "next": more.then_some(page + 1), "prev": (page > 1).then(|| page - 1) }),
            None,
            Value::Null,
        ))
    }
    .await;
    sign(&st, &p, r)
}
