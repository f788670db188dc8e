//! The two steps of registering a WebAuthn authenticator (a passkey or a security key) from a
//! console page, for one owner the page names: the first answers the script with the options
//! for `navigator.credentials.create`, the second takes the authenticator's answer from the
//! form the script filled. Used by the account page (a console user's own passkey) and the user
//! page (a user's key, at the admin's computer). The appliance's ordinary enrolment runs both
//! steps: policies, the plugin's attestation check, the audit under the console user.
//!
//! Must never: finish a registration whose token, as loaded, is not of the kind and owner the
//! page stands for (and still is when the credential is stored: `expecting`); judge who may
//! register for whom (the pages do, before calling).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign::console_access::ConsoleSession;
use countersign::tokens::{ExpectedOwner, InitRequest};
use countersign::webauthn::{Enrolment, Registration};
use countersign_core::error::{ErrorKind, Kinded};

use super::session::FormFields;
use crate::SharedState;

/// The kinds of authenticator a page registers.
pub(super) const KINDS: [(&str, &str); 2] =
    [("passkey", "Register a passkey"), ("webauthn", "Register a security key")];

/// Whom a registration is for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner<'a> {
    pub login: &'a str,
    pub realm: &'a str,
}

/// A JSON error for the script, which shows the message.
pub(super) fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The first step: a token of `kind` for `owner` waiting for its registration, and what the
/// script passes to `navigator.credentials.create`.
pub(super) async fn start(
    st: &SharedState,
    s: &ConsoleSession,
    kind: &str,
    owner: Owner<'_>,
    description: &str,
) -> Response {
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        return json_error(StatusCode::BAD_REQUEST, "Only passkeys and security keys are registered here.");
    }
    let mut req = InitRequest::of_type(kind);
    req.user = Some(owner.login.to_owned());
    req.realm = Some(owner.realm.to_owned());
    req.description = description.to_owned();
    match st.tokens.init(s.caller.clone(), req).await {
        Ok(e) => match e.webauthn {
            Some(Enrolment::Register(r)) => axum::Json(serde_json::json!({
                "serial": e.token.serial,
                "transaction_id": r.transaction_id,
                "publicKey": r.creation_options(),
            }))
            .into_response(),
            _ => json_error(StatusCode::INTERNAL_SERVER_ERROR, "The enrolment gave no registration request."),
        },
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// Why a second step was not done: the status and what to tell the admin.
pub(super) type Refused = (StatusCode, String);

/// The second step, from the form the script filled: the registration of the token the form
/// names, which must be of one of `kinds` (those the page may register) and `owner`'s.
pub(super) async fn finish(
    st: &SharedState,
    s: &ConsoleSession,
    owner: Owner<'_>,
    kinds: &[&str],
    f: &FormFields,
) -> Result<(), Refused> {
    let serial = f.get("serial").to_owned();
    // A serial that does not exist and one of someone else's get the same answer (no oracle of
    // which serials exist).
    let not_this =
        || (StatusCode::FORBIDDEN, "No registration of this user's is waiting under this serial.".to_owned());
    let token = match st.tokens.show(serial.clone()).await {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_this()),
        Err(e) => {
            return Err((StatusCode::SERVICE_UNAVAILABLE, format!("The appliance could not read the token: {e}")))
        }
    };
    if !kinds.iter().any(|k| KINDS.iter().any(|(known, _)| known == k) && *k == token.token_type)
        || token.user.as_deref() != Some(owner.login)
        || token.realm.as_deref() != Some(owner.realm)
    {
        return Err(not_this());
    }
    let mut req = InitRequest::of_type(&token.token_type);
    req.serial = Some(serial);
    req.user = Some(owner.login.to_owned());
    req.realm = Some(owner.realm.to_owned());
    req.webauthn = Some(Registration {
        transaction_id: f.get("transaction_id").to_owned(),
        attestation_object: f.get("attestation_object").to_owned(),
        client_data_json: f.get("client_data").to_owned(),
    });
    match st.tokens.expecting(ExpectedOwner::of(&token)).init(s.caller.clone(), req).await {
        Ok(_) => Ok(()),
        Err(e) => Err((StatusCode::UNPROCESSABLE_ENTITY, format!("The authenticator was not registered: {e}"))),
    }
}
