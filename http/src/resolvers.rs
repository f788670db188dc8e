//! Resolvers, realms and internal users' passwords on `admin.sock` (`/v1/admin/resolvers`,
//! `/v1/admin/realms`, `/v1/admin/users/{login}/password`). Wire types live here;
//! [`countersign::resolvers::Realms`] does the work. A bind password or user password is accepted in
//! a request body only and never answered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::answer::Answer;
use super::error::{to_json, ApiError};
use super::extract::{Body, Origin, Path, Query};
use super::SharedState;
use countersign::resolvers::realms::{NewResolver, ResolverUpdate};
use countersign_api::resolver::{NewRealm, Realm, RealmChange, RealmList, ResolverList, ResolverTest, ResolverView};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/resolvers", get(list).post(define))
        .route("/v1/admin/resolvers/{name}", get(show).put(update).delete(remove))
        .route("/v1/admin/resolvers/{name}/test", post(test))
        .route("/v1/admin/realms", get(realms).post(create_realm))
        .route("/v1/admin/realms/{name}", put(change_realm).delete(remove_realm))
        .route("/v1/admin/realms/{name}/users", get(realm_users))
        .route("/v1/admin/realms/{name}/users/{login}", get(realm_user))
        .route("/v1/admin/realms/{name}/check-password", post(check_password))
        .route("/v1/admin/users/{login}/password", put(set_password))
}

async fn define(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewResolver>,
) -> Result<(StatusCode, Answer<ResolverView>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.realms.run(move |r| r.define_resolver(&caller, b)).await?)))
}

async fn list(State(st): State<SharedState>) -> Result<Answer<ResolverList>, ApiError> {
    Ok(Answer(ResolverList { resolvers: st.realms.run(|r| r.list_resolvers()).await? }))
}

async fn show(State(st): State<SharedState>, Path(name): Path<String>) -> Result<Answer<ResolverView>, ApiError> {
    Ok(Answer(st.realms.run(move |r| r.show_resolver(&name)).await?))
}

async fn update(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<ResolverUpdate>,
) -> Result<Answer<ResolverView>, ApiError> {
    Ok(Answer(st.realms.run(move |r| r.update_resolver(&caller, &name, b)).await?))
}

async fn remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.realms.run(move |r| r.remove_resolver(&caller, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    login: String,
    #[serde(default)]
    password: Option<SecretString>,
}

async fn test(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<TestBody>,
) -> Result<Answer<ResolverTest>, ApiError> {
    Ok(Answer(st.realms.run(move |r| r.test_resolver(&caller, &name, &b.login, b.password.as_ref())).await?))
}

async fn realms(State(st): State<SharedState>) -> Result<Answer<RealmList>, ApiError> {
    Ok(Answer(RealmList { realms: st.realms.run(|r| r.list_realms()).await? }))
}

async fn create_realm(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewRealm>,
) -> Result<(StatusCode, Answer<Realm>), ApiError> {
    let realm = st.realms.run(move |r| r.create_realm(&caller, &b.name, &b.resolvers, b.default)).await?;
    Ok((StatusCode::CREATED, Answer(realm)))
}

async fn change_realm(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<RealmChange>,
) -> Result<Answer<Realm>, ApiError> {
    let realm = st
        .realms
        .run(move |r| {
            if let Some(list) = &b.resolvers {
                r.set_resolvers(&caller, &name, list)?;
            }
            if b.default {
                r.set_default(&caller, &name)?;
            }
            r.show_realm(&name)
        })
        .await?;
    Ok(Answer(realm))
}

async fn remove_realm(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.realms.run(move |r| r.remove_realm(&caller, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    filter: Option<String>,
    limit: Option<usize>,
}

async fn realm_users(
    State(st): State<SharedState>,
    Path(name): Path<String>,
    Query(q): Query<UsersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let users = st.realms.run(move |r| r.list_users(Some(&name), q.filter.as_deref(), limit)).await?;
    to_json(json!({ "users": users }))
}

/// A user found through the realm (resolver order, caches used), with the time it took.
async fn realm_user(
    State(st): State<SharedState>,
    Path((name, login)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (user, ms) = st
        .realms
        .run(move |r| {
            let start = std::time::Instant::now();
            let u = r.find_user(Some(&name), &login)?;
            Ok((u, start.elapsed().as_secs_f64() * 1000.0))
        })
        .await?;
    match user {
        Some(u) => to_json(json!({ "user": u, "elapsed_ms": ms })),
        None => Err(ApiError::not_found("no such user in this realm")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordCheck {
    login: String,
    password: SecretString,
}

/// Checks a user's password in the realm's resolvers (what `otppin=userstore` will do).
async fn check_password(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<PasswordCheck>,
) -> Result<Json<Value>, ApiError> {
    let (accepted, ms) = st
        .realms
        .run(move |r| {
            let start = std::time::Instant::now();
            let ok = r.admin_check_password(&caller, Some(&name), &b.login, &b.password)?;
            Ok((ok, start.elapsed().as_secs_f64() * 1000.0))
        })
        .await?;
    to_json(json!({ "accepted": accepted, "elapsed_ms": ms }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    password: SecretString,
    #[serde(default)]
    realm: Option<String>,
}

async fn set_password(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(login): Path<String>,
    Body(b): Body<SetPassword>,
) -> Result<StatusCode, ApiError> {
    st.realms.run(move |r| r.set_user_password(&caller, b.realm.as_deref(), &login, &b.password)).await?;
    Ok(StatusCode::NO_CONTENT)
}
