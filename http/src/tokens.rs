//! Token lifecycle and internal users on `admin.sock` (`/v1/admin/tokens`, `/v1/admin/users`),
//! and the authentication audit. The wire types are `countersign_api`'s; [`countersign::tokens`]
//! does the work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use countersign_api::audit::AuthAudit;
use countersign_api::token::{AssignRequest, PinRequest, ResyncRequest};
use countersign_api::user::NewUser;
use countersign_api::{Enrolled, Replacement, Token, TokenList, UserList};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::answer::Answer;
use super::error::ApiError;
use super::extract::{Body, Origin, Path, Query};
use super::SharedState;
use countersign::simple_tokens::Shown;
use countersign::store::{AuthAuditQuery, User};
use countersign::tokens::{InitRequest, TokenSettings};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/tokens", get(list).post(init))
        .route("/v1/admin/tokens/{serial}", get(show).delete(delete).patch(set))
        .route("/v1/admin/tokens/{serial}/assign", post(assign))
        .route("/v1/admin/tokens/{serial}/unassign", post(unassign))
        .route("/v1/admin/tokens/{serial}/enable", post(enable))
        .route("/v1/admin/tokens/{serial}/disable", post(disable))
        .route("/v1/admin/tokens/{serial}/pin", post(set_pin))
        .route("/v1/admin/tokens/{serial}/reset", post(reset))
        .route("/v1/admin/tokens/{serial}/resync", post(resync))
        .route("/v1/admin/tokens/{serial}/revoke", post(revoke))
        .route("/v1/admin/tokens/{serial}/lost", post(lost))
        .route("/v1/admin/users", get(users).post(create_user))
        .route("/v1/admin/users/{login}", axum::routing::delete(delete_user))
        .route("/v1/admin/audit/auth", get(audit))
}

async fn init(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<InitRequest>,
) -> Result<(StatusCode, Answer<Enrolled>), ApiError> {
    Ok((StatusCode::CREATED, Answer(enrolled(st.tokens.init(caller, b).await?))))
}

/// The enrolment answer: what the token shows once goes in the field of its kind.
fn enrolled(e: countersign::tokens::Enrolled) -> Enrolled {
    let mut answer = Enrolled {
        token: e.token,
        // A push token's enrolment URI (with its credential) is what its phone scans.
        otpauth_uri: e.otpauth_uri.or_else(|| e.push.as_ref().map(|p| SecretString::from(p.uri.expose_secret()))),
        qr_png: e.qr_png,
        pin: e.pin,
        password: None,
        registration_code: None,
        secret: None,
        otps: None,
        webauthn: e.webauthn.as_ref().map(countersign::webauthn::Enrolment::to_api),
    };
    match e.shown {
        None => {}
        Some(Shown::Password(p)) => answer.password = Some(p),
        Some(Shown::RegistrationCode(c)) => answer.registration_code = Some(c),
        Some(Shown::Secret(s)) => answer.secret = Some(s),
        Some(Shown::Otps(o)) => answer.otps = Some(o),
    }
    answer
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    user: Option<String>,
    realm: Option<String>,
    #[serde(rename = "type")]
    token_type: Option<String>,
}

async fn list(State(st): State<SharedState>, Query(q): Query<ListQuery>) -> Result<Answer<TokenList>, ApiError> {
    Ok(Answer(TokenList { tokens: st.tokens.list(q.user, q.realm, q.token_type).await? }))
}

async fn show(State(st): State<SharedState>, Path(serial): Path<String>) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.show(serial).await?))
}

async fn set(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
    Body(b): Body<TokenSettings>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.set(caller, serial, b).await?))
}

async fn delete(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.tokens.delete(caller, serial).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn assign(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
    Body(b): Body<AssignRequest>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.assign(caller, serial, b.user, b.realm).await?))
}

async fn unassign(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.unassign(caller, serial).await?))
}

async fn enable(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.set_active(caller, serial, true).await?))
}

async fn disable(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.set_active(caller, serial, false).await?))
}

async fn set_pin(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
    Body(b): Body<PinRequest>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.set_pin(caller, serial, b.pin).await?))
}

async fn reset(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.reset(caller, serial).await?))
}

async fn resync(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
    Body(b): Body<ResyncRequest>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.resync(caller, serial, b.otp1, b.otp2).await?))
}

async fn revoke(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Token>, ApiError> {
    Ok(Answer(st.tokens.revoke(caller, serial).await?))
}

/// The token is lost: its owner gets a temporary password token with its PIN, and it is
/// disabled ([`countersign::tokens::TokenService::lost`]). The password is in this answer only.
async fn lost(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(serial): Path<String>,
) -> Result<Answer<Replacement>, ApiError> {
    Ok(Answer(st.tokens.lost(caller, serial).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealmQuery {
    realm: Option<String>,
}

async fn users(State(st): State<SharedState>, Query(q): Query<RealmQuery>) -> Result<Answer<UserList>, ApiError> {
    Ok(Answer(UserList { users: st.tokens.users(q.realm).await? }))
}

async fn create_user(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewUser>,
) -> Result<(StatusCode, Answer<User>), ApiError> {
    let u = User {
        login: b.login,
        realm: b.realm.unwrap_or_default(),
        email: b.email,
        phone: b.phone,
        given_name: b.given_name,
        surname: b.surname,
    };
    Ok((StatusCode::CREATED, Answer(st.tokens.create_user(caller, u).await?)))
}

async fn delete_user(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(login): Path<String>,
    Query(q): Query<RealmQuery>,
) -> Result<StatusCode, ApiError> {
    st.tokens.delete_user(caller, login, q.realm).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(State(st): State<SharedState>, Query(q): Query<AuthAuditQuery>) -> Result<Answer<AuthAudit>, ApiError> {
    Ok(Answer(AuthAudit { rows: st.tokens.audit_rows(q).await? }))
}
