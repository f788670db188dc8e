//! privacyIDEA's `GET /audit/` for API admins holding `auditlog`, read from the
//! authentication audit in privacyIDEA's shape.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::admin::{allowed, audit_read, PiAdmin, Subject};
use super::envelope::{respond, ErrorKind, PiResponse};
use super::params::Params;
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/audit/", get(audit))
}

fn internal(e: impl std::fmt::Display) -> PiResponse {
    PiResponse::error(ErrorKind::Internal, &e.to_string())
}

/// `{"auditdata": [...], "count", "current", "next", "prev"}`, newest first. `count` is the
/// number of rows matching the filters (counted on a read connection of its own: on a large
/// audit without filters that takes a moment, as in privacyIDEA).
async fn audit(State(st): State<AppState>, admin: PiAdmin, p: Params) -> Response {
    let r = async {
        allowed(&st, &admin, "auditlog", &Subject::system())?;
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
        let total = st.tokens.audit_count(query.clone()).await.map_err(internal)?;
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
                    "resolver": a.resolver,
                    "client": a.client,
                    "policies": a.policies,
                    "duration": a.duration_ms.map(|ms| format!("{}.{:03}", ms / 1000, ms % 1000)),
                })
            })
            .collect();
        Ok(PiResponse::ok(
            json!({ "auditdata": data, "count": total, "current": page,
                    "next": more.then_some(page + 1), "prev": (page > 1).then(|| page - 1) }),
            None,
            Value::Null,
        ))
    }
    .await;
    audit_read(&st, &admin, "/audit/", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}
