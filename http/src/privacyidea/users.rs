//! `GET /user/`: the users of a realm as privacyIDEA lists them, for admin scripts and
//! privacyideaadm's `user list`. Filters on `username`, `userid`, `email`, `description`,
//! `givenname`, `surname` and `resolver` take privacyIDEA's `*` wildcard; each user shows its
//! login, the resolver's id, names, contact fields and the GECOS-like description, with `""`
//! where the source has nothing. Must never: list users of a realm the admin may not see, or
//! show a password or verifier.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::admin::{allowed, audit_read, PiAdmin, Subject};
use super::envelope::PiResponse;
use super::params::Params;
use super::realms::resolver_error;
use crate::SharedState;
use countersign::resolvers::UserInfo;

/// The most users one listing answers (privacyIDEA has no limit; a directory can be large).
const MAX_USERS: usize = 10_000;

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/user/", get(users))
}

/// privacyIDEA's wildcard match: `*` stands for any text, everything else matches as it is.
fn matches(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    // No `*`: one part, matched exactly.
    let [first, middle @ .., last] = parts.as_slice() else { return value == pattern };
    let Some(mut rest) = value.strip_prefix(first) else { return false };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A user in privacyIDEA's shape.
fn pi_user(u: &UserInfo) -> Value {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    json!({
        "username": u.login,
        "userid": u.uid,
        "resolver": u.resolver,
        "givenname": text(&u.given_name),
        "surname": text(&u.surname),
        "email": text(&u.email),
        "phone": text(&u.phone),
        "mobile": text(&u.mobile),
        "description": text(&u.description),
        "editable": false,
    })
}

async fn users(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let realm = st.realms.realm_name(p.get("realm")).map_err(resolver_error)?;
        allowed(&st, &admin, "userlist", &Subject::in_realm(&realm))?;
        // The resolvers list logins containing a text: the longest literal piece of a username
        // pattern narrows the listing where the users are (a directory search), the pattern
        // itself is matched below.
        let hint = p.get("username").and_then(|pat| pat.split('*').max_by_key(|s| s.len())).map(str::to_owned);
        let r = realm.clone();
        let listed = st
            .realms
            .run(move |realms| realms.list_users(Some(&r), hint.as_deref(), MAX_USERS))
            .await
            .map_err(resolver_error)?;
        let filters: Vec<(&str, &str)> =
            ["username", "userid", "email", "description", "givenname", "surname", "resolver"]
                .into_iter()
                .filter_map(|k| p.get(k).map(|v| (k, v)))
                .collect();
        let shown: Vec<Value> = listed
            .iter()
            .map(pi_user)
            .filter(|u| filters.iter().all(|(k, pat)| matches(pat, u[*k].as_str().unwrap_or_default())))
            .collect();
        Ok::<_, PiResponse>(PiResponse::ok(Value::Array(shown), None, Value::Null))
    }
    .await;
    audit_read(&st, &admin, "/user/", &answer).await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_privacyidea_does() {
        assert!(matches("alice", "alice"));
        assert!(!matches("alice", "alice2"));
        assert!(matches("al*", "alice"));
        assert!(matches("*ce", "alice"));
        assert!(matches("a*i*e", "alice"));
        assert!(matches("*", ""));
        assert!(!matches("b*", "alice"));
        assert!(!matches("a*e*e", "alice"));
        assert!(matches("j\u{f6}*", "j\u{f6}rg"));
    }
}
