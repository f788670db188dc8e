//! Console users on `admin.sock` (`countersign console ...`): adding one (the bootstrap of the
//! first console admin; its TOTP URI is answered once), listing, changing a role, removing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use countersign::console_access::Role;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Body, Origin, Path};
use crate::SharedState;

/// The admin routes of console users.
pub(crate) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/console/users", get(list).post(add))
        .route("/v1/admin/console/users/{name}", delete(remove))
        .route("/v1/admin/console/users/{name}/role", put(set_role))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: secrecy::SecretString,
    role: Role,
    #[serde(default)]
    realms: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    role: Role,
    #[serde(default)]
    realms: Vec<String>,
}

async fn add(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let added = st.console.add_user(caller, b.name, b.password, b.role, b.realms).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user": added.user,
            "serial": added.serial,
            "realm": st.console.realm(),
            // Shown this once: the second factor's secret, for the user's authenticator app.
            "otpauth_uri": added.otpauth_uri.as_ref().map(|u| u.expose_secret().to_owned()),
        })),
    ))
}

async fn list(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "users": st.console.users().await? })))
}

async fn remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.console.remove_user(caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_role(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<NewRole>,
) -> Result<StatusCode, ApiError> {
    st.console.set_role(caller, name, b.role, b.realms).await?;
    Ok(StatusCode::NO_CONTENT)
}
