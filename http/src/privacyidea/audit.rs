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
use crate::SharedState;

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/audit/", get(audit))
}

/// privacyIDEA's audit columns, in its order.
const COLUMNS: [&str; 27] = [
    "number",
    "action",
    "success",
    "authentication",
    "serial",
    "date",
    "startdate",
    "duration",
    "token_type",
    "user",
    "realm",
    "administrator",
    "action_detail",
    "info",
    "privacyidea_server",
    "client",
    "user_agent",
    "user_agent_version",
    "log_level",
    "policies",
    "clearance_level",
    "sig_check",
    "missing_line",
    "resolver",
    "thread_id",
    "container_serial",
    "container_type",
];

/// A time as privacyIDEA writes its audit dates: `2026-12-06T11:37:33.006000`, UTC.
fn iso(unix_ms: i64) -> String {
    super::times::python_datetime(unix_ms, 'T')
}

/// The action as privacyIDEA writes it, `METHOD /path`. Countersign's audit records what was
/// done (`validate/check`, `token/enable`, `read /token/`), not the HTTP method, so the method is
/// the one privacyIDEA's clients use for it: reads `GET`, deletions `DELETE`, the rest `POST`.
fn pi_action(action: &str) -> String {
    if let Some(route) = action.strip_prefix("read ") {
        return format!("GET {route}");
    }
    match action.split_once('/') {
        Some((object, "delete")) => format!("DELETE /{object}/"),
        _ => format!("POST /{action}"),
    }
}

/// An `action` filter as privacyIDEA's clients write it (`POST /validate/check`), as the native
/// audit records it (`validate/check`); a native name passes unchanged.
fn native_action(filter: &str) -> String {
    match filter.split_once(' ') {
        Some(("GET", route)) => format!("read {route}"),
        Some(("DELETE", route)) => format!("{}delete", route.trim_start_matches('/')),
        Some(("POST", route)) => route.trim_start_matches('/').to_owned(),
        _ => filter.to_owned(),
    }
}

/// One audit row in privacyIDEA's columns. `linked`: whether the row still matches its chain
/// link (`sig_check`; whole-chain verification against the signed checkpoints is
/// `countersign audit verify`); `neighbours`: whether the links before and after it are there
/// (`missing_line`).
fn pi_row(
    a: &countersign::store::AuthAuditRow,
    (linked, neighbours): (bool, bool),
    token_type: Option<&String>,
) -> Value {
    let validation = a.action.starts_with("validate/");
    let authentication = match (validation, a.result.as_str()) {
        (true, "accept") => "ACCEPT",
        (true, "reject") => "REJECT",
        (true, "challenge") => "CHALLENGE",
        _ => "",
    };
    let ok = |b: bool| if b { "OK" } else { "FAIL" };
    let detail = a.detail.clone().unwrap_or_default();
    let (action_detail, info) = if validation { (String::new(), detail) } else { (detail, String::new()) };
    json!({
        "number": a.id,
        "date": iso(a.at_ms),
        "sig_check": ok(linked),
        "missing_line": ok(neighbours),
        "action": pi_action(&a.action),
        "authentication": authentication,
        "success": i32::from(matches!(a.result.as_str(), "ok" | "accept" | "challenge")),
        "serial": a.serial.clone().unwrap_or_default(),
        "token_type": token_type.cloned().unwrap_or_default(),
        "container_serial": Value::Null,
        "container_type": Value::Null,
        "user": a.login.clone().unwrap_or_default(),
        "realm": a.realm.clone().unwrap_or_default(),
        "resolver": a.resolver.clone().unwrap_or_default(),
        "administrator": a.caller,
        "action_detail": action_detail,
        "info": info,
        "privacyidea_server": "",
        "policies": a.policies.clone().unwrap_or_default(),
        "client": a.client.clone().unwrap_or_default(),
        "user_agent": "",
        "user_agent_version": "",
        "log_level": "INFO",
        "clearance_level": "default",
        "startdate": iso(a.at_ms - a.duration_ms.unwrap_or(0)),
        "duration": a.duration_ms.map(|ms| ms as f64 / 1000.0),
        "thread_id": "",
    })
}

fn internal(e: impl std::fmt::Display) -> PiResponse {
    PiResponse::error(ErrorKind::Internal, &e.to_string())
}

/// `{"auditdata": [...], "count", "current", "next", "prev"}`, newest first. `count` is the
/// number of rows matching the filters (counted on a read connection of its own: on a large
/// audit without filters that takes a moment, as in privacyIDEA).
async fn audit(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
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
        let query = countersign::store::AuthAuditQuery {
            serial: p.owned("serial"),
            user: p.owned("user"),
            action: p.get("action").map(native_action),
            limit: Some(u32::try_from(page * size + 1).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        let total = st.tokens.audit_count(query.clone()).await.map_err(internal)?;
        let rows = st.tokens.audit(query).await.map_err(internal)?;
        let more = rows.len() > page * size;
        let rows: Vec<_> = rows.into_iter().skip((page - 1) * size).take(size).collect();
        let (rows, facts) = st.tokens.audit_facts(rows).await.map_err(internal)?;
        let data: Vec<Value> = rows
            .iter()
            .zip(facts.links)
            .map(|(a, links)| pi_row(a, links, a.serial.as_ref().and_then(|s| facts.token_types.get(s))))
            .collect();
        Ok(PiResponse::ok(
            json!({ "auditdata": data, "auditcolumns": COLUMNS, "count": total, "current": page,
                    "next": more.then_some(page + 1), "prev": (page > 1).then(|| page - 1) }),
            None,
            Value::Null,
        ))
    }
    .await;
    audit_read(&st, &admin, "/audit/", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_both_ways_and_dates_are_privacyideas() {
        for native in ["validate/check", "token/enable", "read /token/", "token/delete"] {
            assert_eq!(native_action(&pi_action(native)), native);
        }
        assert_eq!(pi_action("validate/check"), "POST /validate/check");
        assert_eq!(pi_action("read /audit/"), "GET /audit/");
        assert_eq!(native_action("validate/check"), "validate/check");
        assert_eq!(iso(1_796_557_053_006), "2026-12-06T11:37:33.006000");
    }
}
