//! privacyIDEA's management API for admins: `/auth` (a session token for an API admin) and
//! the token endpoints (`/token/`, `/token/init`, `assign`, `unassign`, `enable`, `disable`,
//! `revoke`, `resync`, `reset`, `setpin`, `set`, `description`, each also with the serial in the
//! path; `challenges/`; `DELETE /token/<serial>`), each carried out by
//! [`countersign::tokens::TokenService`] with the admin named in the audit. Every API admin may do
//! every token action until admin policies arrive.
//!
//! Admin policies are judged on the object as stored, never on what the request names: a
//! token's owner, realm and resolver are loaded before the decision ([`Subject::of_token`]),
//! listings show only tokens the admin may list, an enrolment or assignment is judged on the
//! target user in the realm it resolves to, and system-wide actions (policies, resolvers,
//! realms, the audit) on no user and no realm at all, so a realm-limited admin policy never
//! grants them.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use countersign_core::caller::{Caller, Principal};
use countersign_core::error::Refusal;
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::caller::{session_error, ApiCaller, Who};
use super::envelope::{ErrorKind, PiResponse};
use super::params::Params;
use crate::extract::Origin;
use crate::target_user::{TargetError, TargetUser};
use crate::{AppState, SharedState};
use countersign::api_access::SessionError;
use countersign::tokens::{ExpectedOwner, InitRequest, SeedFormat, TokenError, TokenService, TokenSettings};
use countersign_api::Token;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/v1/auth/logout", post(logout))
        .route("/token/", get(list))
        .route("/token/init", post(init))
        .route("/token/assign", post(assign))
        .route("/token/unassign", post(unassign))
        .route("/token/enable", post(enable))
        .route("/token/enable/{serial}", post(enable))
        .route("/token/disable", post(disable))
        .route("/token/disable/{serial}", post(disable))
        .route("/token/revoke", post(revoke))
        .route("/token/revoke/{serial}", post(revoke))
        .route("/token/resync", post(resync))
        .route("/token/resync/{serial}", post(resync))
        .route("/token/reset", post(reset))
        .route("/token/reset/{serial}", post(reset))
        .route("/token/setpin", post(setpin))
        .route("/token/setpin/{serial}", post(setpin))
        .route("/token/set", post(set))
        .route("/token/set/{serial}", post(set))
        .route("/token/description", post(description))
        .route("/token/description/{serial}", post(description))
        .route("/token/challenges/", get(challenges))
        .route("/token/challenges/{serial}", get(challenges))
        .route("/token/lost/{serial}", post(losttoken))
        .route("/token/info/{serial}/{key}", post(set_info).delete(delete_info))
        .route("/token/{serial}", delete(remove))
}

fn token_error(e: TokenError) -> PiResponse {
    match e {
        // privacyIDEA's words: a revoked token is "locked".
        TokenError::Revoked(_) => {
            PiResponse::error(ErrorKind::TokenLocked, "This action is not possible, since the token is locked")
        }
        TokenError::Unassigned(_) => {
            PiResponse::error(ErrorKind::Unassigned, "You can only define a lost token for an assigned token.")
        }
        // A duplicate's message is privacyIDEA's parameter error with the name alone.
        TokenError::Refused(Refusal::Duplicate(m)) => PiResponse::error(ErrorKind::Parameter, &m),
        other => PiResponse::failure(&other),
    }
}

/// An API admin, from the request's session token; anyone else gets 401.
pub(super) struct PiAdmin {
    /// How the audit names the caller: `pi-admin:<name> ip:<addr>`.
    pub(super) caller: Caller,
    name: String,
}

/// Who an admin action is about, as the policies see it: a token's owner as stored, a target
/// user in the realm the name resolves to, or nobody (system-wide actions).
#[derive(Debug, Default, Clone)]
pub(super) struct Subject {
    user: Option<String>,
    realm: Option<String>,
    resolver: Option<String>,
}

impl Subject {
    /// A system-wide action: realm- or user-limited admin policies do not match it.
    pub(super) fn system() -> Subject {
        Subject::default()
    }

    /// The token's owner, realm and resolver as loaded from the store (none when unassigned).
    pub(super) fn of_token(t: &Token) -> Subject {
        Subject { user: t.user.clone(), realm: t.realm.clone(), resolver: t.resolver.clone() }
    }

    /// Anyone in `realm`: a realm-wide read (the user list).
    pub(super) fn in_realm(realm: &str) -> Subject {
        Subject { user: None, realm: Some(realm.to_owned()), resolver: None }
    }

    /// The user `login` names in `realm` (the default realm when not named), as the realm's
    /// resolvers find them ([`TargetUser`]): a policy's user condition sees the person the
    /// action will touch, never the string typed.
    pub(super) async fn user_in(st: &AppState, login: &str, realm: Option<&str>) -> Result<Subject, PiResponse> {
        match TargetUser::find(st, login, realm).await {
            Ok(u) => Ok(Subject { user: Some(u.user), realm: Some(u.realm), resolver: u.resolver }),
            Err(TargetError::NoRealm(e)) => {
                Err(PiResponse::error(ErrorKind::Parameter, &format!("{e} does not exist")))
            }
            Err(TargetError::Unreachable(e)) => Err(PiResponse::error(ErrorKind::Internal, &e)),
        }
    }
}

/// privacyIDEA's admin rule: with no active admin policy every admin may do everything; once
/// one exists, only what a policy matching the admin and the object (its user and realm, as
/// loaded) allows.
pub(super) fn allowed(st: &AppState, admin: &PiAdmin, action: &str, on: &Subject) -> Result<(), PiResponse> {
    let target = countersign::policy::AdminTarget {
        user: on.user.as_deref(),
        realm: on.realm.as_deref(),
        resolver: on.resolver.as_deref(),
    };
    let now_s = countersign::now_ms() / 1000;
    match countersign::policy::admin_allows(&st.policies.snapshot(), &admin.name, &admin.caller, action, target, now_s)
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(PiResponse::error(
            ErrorKind::Policy,
            &format!(
                "Admin actions are defined, but the action {action} is not allowed for {}{}",
                admin.name,
                on.realm.as_deref().map(|r| format!(" in realm {r}")).unwrap_or_default()
            ),
        )),
        Err(e) => Err(PiResponse::error(ErrorKind::Policy, &format!("policy conflict, refused: {e}"))),
    }
}

/// Audits a read by an API admin (`read <route>`), as admin.sock audits its reads.
pub(super) async fn audit_read(st: &AppState, admin: &PiAdmin, route: &str, answer: &Result<PiResponse, PiResponse>) {
    let status = match answer {
        Ok(r) | Err(r) => r.status,
    };
    crate::admin::record_read(st, admin.caller.clone(), route, status, None).await;
}

impl PiAdmin {
    /// The API admin who sent a request another extractor identified; `None` for any other
    /// caller (a service account, a socket's uid, nobody).
    pub(super) fn of(c: &ApiCaller) -> Option<PiAdmin> {
        match &c.who {
            Who::Admin(name) => Some(PiAdmin { caller: c.caller.clone(), name: name.clone() }),
            _ => None,
        }
    }
}

impl FromRequestParts<SharedState> for PiAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &SharedState) -> Result<Self, Self::Rejection> {
        let c = ApiCaller::from_request_parts(parts, st).await?;
        if let Some(admin) = PiAdmin::of(&c) {
            return Ok(admin);
        }
        match c.who {
            Who::Anonymous => Err(session_error(&SessionError::Missing).finish(&st.responses, None)),
            _ => Err(PiResponse::error(ErrorKind::Policy, "only an API admin (see /auth) may manage tokens")
                .finish(&st.responses, None)),
        }
    }
}

/// The admin actions Countersign implements that the admin's policies grant on the whole system
/// or in at least one realm (all of them while no admin policy exists), in the catalogue's
/// order: `/auth`'s `rights`, as privacyIDEA lists a help-desk admin's realm-limited rights.
/// What the admin may do to each object is still judged on that object.
fn rights_of(st: &AppState, admin: &PiAdmin) -> Vec<&'static str> {
    let places: Vec<Subject> = std::iter::once(Subject::system())
        .chain(st.realms.names().into_iter().map(|r| Subject { realm: Some(r), ..Subject::default() }))
        .collect();
    countersign::policy::actions::in_scope(countersign::policy::Scope::Admin)
        .map(|a| a.name)
        .filter(|name| !EDUMFA_RIGHTS.contains(name))
        .filter(|name| places.iter().any(|on| allowed(st, admin, name, on).is_ok()))
        .collect()
}

/// eduMFA's admin rights, which privacyIDEA's web UI (the client of `/auth`'s `rights`) does not
/// know; the policies still grant them.
const EDUMFA_RIGHTS: &[&str] = &["enrollEDUPUSH"];

/// The parts of privacyIDEA's web UI these rights open (`/auth`'s `menus`).
fn menus_of(rights: &[&str]) -> Vec<&'static str> {
    let has = |any: &[&str]| any.iter().any(|r| rights.contains(r));
    [
        ("users", has(&["userlist"])),
        ("tokens", has(&["tokenlist"])),
        ("config", has(&["resolverread", "policyread", "smsgateway_read", "caconnectorread"])),
        ("audit", has(&["auditlog"])),
    ]
    .into_iter()
    .filter_map(|(menu, open)| open.then_some(menu))
    .collect()
}

async fn auth(State(st): State<SharedState>, Origin(origin): Origin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let (token, claims) = match super::webauthn::assertion(&p)? {
            Some(assertion) => passkey_login(&st, &origin, &p, assertion).await?,
            None => {
                let name = p.required("username")?.to_owned();
                let password = p.secret("password")?;
                st.api_access.login(origin.clone(), name, password).await.map_err(|e| session_error(&e))?
            }
        };
        // Judged as the admin's next requests will be, from this client (admin policies may
        // name clients).
        let admin = PiAdmin {
            caller: origin.clone().as_principal(Principal::ApiAdmin(claims.username.clone())),
            name: claims.username.clone(),
        };
        let rights = rights_of(&st, &admin);
        let menus = menus_of(&rights);
        Ok::<_, PiResponse>(PiResponse::ok(
            json!({
                "token": token,
                "username": claims.username,
                "realm": claims.realm,
                "role": claims.role,
                "auth": true,
                "rights": rights,
                "menus": menus,
                "log_level": 20,
                "logout_time": countersign::api_access::SESSION_SECONDS,
                "default_tokentype": "hotp",
            }),
            Some("ACCEPT"),
            Value::Null,
        ))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// privacyIDEA 3.11's passkey login at `/auth`: the answer to a `/validate/initialize`
/// sign-in (`transaction_id`, `credential_id`, `authenticatorData`, `clientDataJSON`,
/// `signature`, `userHandle`), checked as `/validate/check` checks it but with user verification
/// required; the passkey's owner, in one of `webauthn.admin_realms`, names the API admin.
async fn passkey_login(
    st: &AppState,
    origin: &Caller,
    p: &Params,
    assertion: countersign::webauthn::Assertion,
) -> Result<(String, countersign::api_access::Claims), PiResponse> {
    let refused = || PiResponse::error(ErrorKind::WrongCredentials, "Authentication failure using passkey.");
    let check = countersign::validate::CheckRequest {
        target: countersign::store::CheckTarget::Credential(assertion.credential_id.clone()),
        pass: secrecy::SecretString::from(""),
        transaction_id: Some(p.required("transaction_id")?.to_owned()),
        caller: origin.clone(),
        webauthn: Some(assertion),
        require_user_verification: true,
    };
    let o = st.validate.check(check).await.map_err(|e| super::validate::check_error(&e))?;
    match (o.accepted, o.token_type.as_deref(), o.user, o.realm, o.serial) {
        (true, Some("passkey"), Some(login), Some(realm), Some(serial)) => {
            st.api_access.passkey_login(origin.clone(), login, realm, serial).await.map_err(|e| session_error(&e))
        }
        (accepted, kind, ..) => {
            let why = match (accepted, kind) {
                (true, _) => "the credential is not a passkey's".to_owned(),
                (false, _) => format!("the sign-in was not accepted ({}; audit row {})", o.message, o.audit_id),
            };
            st.api_access.passkey_refused(origin.clone(), why).await.map_err(|e| session_error(&e))?;
            Err(refused())
        }
    }
}

/// Ends the caller's sessions: every session token of this API admin stops working at once
/// (privacyIDEA has no logout; its clients just forget the token).
async fn logout(State(st): State<SharedState>, admin: PiAdmin) -> Result<axum::http::StatusCode, crate::ApiError> {
    st.api_access.revoke_sessions(admin.caller, admin.name, "api/logout").await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A token as privacyIDEA lists it.
fn pi_token(t: &Token, id: usize) -> Value {
    let digits = t.params.get("digits").cloned().unwrap_or(json!(6));
    let mut info = serde_json::Map::new();
    if let Some(h) = t.params.get("hash").and_then(Value::as_str) {
        info.insert("hashlib".into(), h.into());
    }
    if let Some(s) = t.params.get("step") {
        info.insert("timeStep".into(), s.clone());
    }
    info.insert("creation_date".into(), super::times::iso_seconds(t.created_at).into());
    if let Some(ms) = t.last_auth_ms {
        info.insert("last_auth".into(), super::times::auth_date(ms).into());
    }
    let validity = countersign::store::Validity::of(&t.params);
    for (name, bound) in [("validity_period_start", validity.from_ms), ("validity_period_end", validity.until_ms)] {
        if let Some(ms) = bound {
            info.insert(name.into(), super::times::date_minutes(ms).into());
        }
    }
    // A push token's phone, under privacyIDEA's info names, and when it was last seen.
    if let Some(p) = &t.push {
        for (name, param) in [("public_key_smartphone", "phone_key"), ("firebase_token", "fbtoken")] {
            if let Some(v) = t.params.get(param).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                info.insert(name.into(), v.into());
            }
        }
        info.insert("push_firebase_configuration".into(), p.delivery.clone().into());
        // Only when an admin set it, as privacyIDEA lists a token info.
        if t.params.get("polling_allowed").is_some() {
            info.insert("polling_allowed".into(), if p.polling_allowed { "True" } else { "False" }.into());
        }
        info.insert("push_state".into(), p.state.clone().into());
        for (name, at) in [("last_poll", p.last_poll_ms), ("last_answer", p.last_answer_ms)] {
            if let Some(ms) = at {
                info.insert(name.into(), super::times::auth_date(ms).into());
            }
        }
    }
    // privacyIDEA's kinds: a token on a card is hardware, the others software.
    info.insert("tokenkind".into(), if t.device.is_some() { "hardware" } else { "software" }.into());
    json!({
        "id": id,
        "serial": t.serial,
        "tokentype": t.token_type,
        "active": t.active,
        "revoked": t.revoked,
        "locked": t.revoked,
        "description": t.description,
        "username": t.user.clone().unwrap_or_default(),
        "user_realm": t.realm.clone().unwrap_or_default(),
        "realms": t.realm.iter().collect::<Vec<_>>(),
        // The resolver the owner was found through; the internal user store otherwise.
        "resolver": match (&t.user, &t.resolver) {
            (None, _) => String::new(),
            (Some(_), Some(r)) => r.clone(),
            (Some(_), None) => "internal".into(),
        },
        "user_id": t.user_id.clone().unwrap_or_default(),
        "maxfail": t.fails.max,
        "failcount": t.fails.count,
        "count": t.counter,
        "count_window": t.otp_window,
        "sync_window": 1000,
        "otplen": digits,
        "info": info,
        // A two-step enrolment's state (webauthn, passkey: `clientwait`, then `enrolled`).
        "rollout_state": t.params.get(countersign::store::ROLLOUT_STATE).and_then(Value::as_str).unwrap_or_default(),
        "tokengroup": [],
        "container_serial": "",
        // privacyIDEA says null for a token without an owner.
        "user_editable": if t.user.is_some() { json!(false) } else { Value::Null },
    })
}

pub(super) fn page_of(p: &Params, name: &str, default: usize) -> Result<usize, PiResponse> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| PiResponse::error(ErrorKind::Parameter, &format!("{name} must be a positive number"))),
    }
}

/// Where page `page` of `size` tokens starts among `count`, and the next and previous pages.
pub(super) fn page_window(page: usize, size: usize, count: usize) -> (usize, Option<usize>, Option<usize>) {
    let start = page.saturating_sub(1).saturating_mul(size);
    let next = (start.saturating_add(size) < count).then_some(page.saturating_add(1));
    let prev = (page > 1).then(|| page - 1);
    (start, next, prev)
}

async fn list(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let page = page_of(&p, "page", 1)?;
        let size = page_of(&p, "pagesize", 15)?;
        let mut tokens = {
            let (user, realm) = super::user_realm(&st, &p);
            st.tokens.list(user, realm, p.owned("type")).await.map_err(token_error)?
        };
        if let Some(serial) = p.get("serial") {
            tokens.retain(|t| t.serial == serial);
        }
        // Only tokens the admin may list, judged on each token's own owner and realm.
        tokens.retain(|t| allowed(&st, &admin, "tokenlist", &Subject::of_token(t)).is_ok());
        let count = tokens.len();
        let (start, next, prev) = page_window(page, size, count);
        let shown: Vec<Value> =
            tokens.iter().enumerate().skip(start).take(size).map(|(i, t)| pi_token(t, i + 1)).collect();
        Ok::<_, PiResponse>((shown, json!({ "count": count, "current": page, "next": next, "prev": prev })))
    }
    .await;
    // privacyIDEA's export: the page's tokens as its CSV, unsigned as privacyIDEA's is.
    let csv = p.get("outform") == Some("csv");
    let (answer, csv) = match answer {
        Ok((shown, _)) if csv => (Ok(PiResponse::value(Value::Null)), Some(super::csv::tokens(&shown))),
        Ok((shown, mut page)) => {
            page["tokens"] = Value::Array(shown);
            (Ok(PiResponse::ok(page, None, Value::Null)), None)
        }
        Err(e) => (Err(e), None),
    };
    audit_read(&st, &admin, "/token/", &answer).await;
    csv.unwrap_or_else(|| answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref()))
}

async fn init(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let token_type = p.get("type").unwrap_or("hotp").to_ascii_lowercase();
        if matches!(token_type.as_str(), "webauthn" | "passkey") {
            if let Some(reg) = super::webauthn::registration(&p)? {
                return finish_webauthn(&st, &admin, &p, reg).await;
            }
        }
        let (user, realm) = super::user_realm(&st, &p);
        let subject = match &user {
            Some(user) => Subject::user_in(&st, user, realm.as_deref()).await?,
            None => Subject::system(),
        };
        allowed(&st, &admin, &format!("enroll{}", token_type.to_ascii_uppercase()), &subject)?;
        let genkey = p.flag("genkey", false).map_err(|m| PiResponse::error(ErrorKind::Parameter, &m))?;
        let seed = match (p.get("otpkey"), genkey) {
            (Some(_), true) => {
                return Err(PiResponse::error(ErrorKind::Parameter, "give either otpkey or genkey, not both"))
            }
            (Some(k), false) => Some(SecretString::from(k)),
            (None, _) => None,
        };
        // A pw token's otpkey is its password, an indexedsecret token's its secret: not seeds.
        // spass and registration tokens have none (privacyIDEA ignores or overwrites it).
        let (seed, password) = match token_type.as_str() {
            "pw" | "indexedsecret" => (None, seed),
            // A tan token's TANs, when the admin has them (privacyIDEA derives TANs from an
            // otpkey; Countersign keeps no seed, so an otpkey is refused below).
            "tan" if p.get("tans").is_some() => (seed, p.get("tans").map(SecretString::from)),
            "spass" | "registration" => (None, None),
            _ => (seed, None),
        };
        let count = p
            .get(if token_type == "tan" { "tantoken_count" } else { "papertoken_count" })
            .filter(|_| matches!(token_type.as_str(), "paper" | "tan"))
            .map(str::parse::<u32>)
            .transpose()
            .map_err(|_| PiResponse::error(ErrorKind::Parameter, "the token count must be a number"))?;
        let digits = p
            .get("otplen")
            .map(str::parse::<u32>)
            .transpose()
            .map_err(|_| PiResponse::error(ErrorKind::Parameter, "otplen must be a number"))?;
        let step = p
            .get("timeStep")
            .map(str::parse::<u64>)
            .transpose()
            .map_err(|_| PiResponse::error(ErrorKind::Parameter, "timeStep must be a number"))?;
        // yubikey: the public id, when the enrolling client knows it (privacyIDEA learns it
        // at the first check; here it is what a check without a user finds the token by).
        let params = (token_type == "yubikey")
            .then(|| p.get("yubikey.prefix").or_else(|| p.get("prefix")))
            .flatten()
            .map(|prefix| json!({ "prefix": prefix }));
        let req = InitRequest {
            token_type,
            serial: p.owned("serial"),
            seed,
            seed_format: SeedFormat::Hex,
            digits,
            hash: p.owned("hashlib"),
            step,
            params,
            password,
            count,
            window: None,
            user,
            realm,
            // privacyIDEA's enroll_pin: an admin without the right `enrollpin` on the target
            // sets no PIN at enrolment; the PIN sent is dropped, not refused (a PIN policy such
            // as otp_pin_random may then set one).
            pin: p.get("pin").filter(|_| allowed(&st, &admin, "enrollpin", &subject).is_ok()).map(SecretString::from),
            max_fail: None,
            fail_clear_s: None,
            description: p.owned("description").unwrap_or_default(),
            phone: p.owned("phone"),
            email: p.owned("email"),
            issuer: p.owned("tokenissuer"),
            qr_png: true,
            webauthn: None,
        };
        let e = st.tokens.init(admin.caller, req).await.map_err(token_error)?;
        let mut detail = json!({ "serial": e.token.serial, "rollout_state": "" });
        if let Some(uri) = &e.otpauth_uri {
            let uri = uri.expose_secret();
            detail["googleurl"] = json!({
                "description": "URL for google Authenticator",
                "value": uri,
                "img": e.qr_png.as_ref().map(|png| format!("data:image/png;base64,{png}")),
            });
            // privacyIDEA shows the key once, as `seed://<hex>` (with its QR code) and in Base32,
            // like the URI (enrolment only).
            if let Some(secret) = countersign::tokens::otpauth_secret(uri) {
                if let Ok(raw) = BASE32_NOPAD.decode(secret.as_bytes()) {
                    let raw = zeroize::Zeroizing::new(raw);
                    let value = zeroize::Zeroizing::new(format!("seed://{}", HEXLOWER.encode(&raw)));
                    let img = countersign::enrolment_qr::qr_png(&value)
                        .map_err(|e| PiResponse::error(ErrorKind::Internal, &e))?;
                    detail["otpkey"] = json!({
                        "description": "OTP seed",
                        "value": value.as_str(),
                        "value_b32": secret,
                        "img": format!("data:image/png;base64,{img}"),
                    });
                }
            }
        }
        super::init_detail::shown(e.shown.as_ref(), &mut detail)
            .map_err(|e| PiResponse::error(ErrorKind::Internal, &e))?;
        super::webauthn::init_detail(e.webauthn.as_ref(), &mut detail);
        super::push::init_detail(e.push.as_ref(), &mut detail)
            .map_err(|e| PiResponse::error(ErrorKind::Internal, &e))?;
        Ok::<_, PiResponse>(PiResponse::ok(json!(true), None, detail))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// The second step of a webauthn enrolment: the admin's right judged on the token as loaded
/// (its owner and realm, not the user the request names), and the registration run only if the
/// token still has that owner.
async fn finish_webauthn(
    st: &AppState,
    admin: &PiAdmin,
    p: &Params,
    reg: countersign::webauthn::Registration,
) -> Result<PiResponse, PiResponse> {
    let serial = p.owned("serial").ok_or_else(|| {
        PiResponse::error(ErrorKind::Parameter, "Missing parameter: serial (the token of the enrolment's first step)")
    })?;
    let t = st.tokens.show(serial.clone()).await.map_err(token_lookup_error)?;
    allowed(st, admin, &format!("enroll{}", t.token_type.to_ascii_uppercase()), &Subject::of_token(&t))?;
    let req = InitRequest {
        token_type: t.token_type.clone(),
        serial: Some(serial),
        description: p.owned("description").unwrap_or_default(),
        webauthn: Some(reg),
        ..InitRequest::default()
    };
    let e = st.tokens.expecting(ExpectedOwner::of(&t)).init(admin.caller.clone(), req).await.map_err(token_error)?;
    let mut detail = json!({ "serial": e.token.serial });
    super::webauthn::init_detail(e.webauthn.as_ref(), &mut detail);
    Ok(PiResponse::ok(json!(true), None, detail))
}

/// A token named by serial that could not be loaded: privacyIDEA's 404 when it does not exist.
fn token_lookup_error(e: TokenError) -> PiResponse {
    match e {
        TokenError::Refused(Refusal::NotFound(_)) => {
            PiResponse::error(ErrorKind::NotFound, "The requested token could not be found.")
        }
        other => token_error(other),
    }
}

/// Runs a change on one token (by `serial`) or on every token of `user`, answering the count.
/// Every token is loaded first and `action` judged on its stored owner and realm; one refusal
/// refuses the whole request before anything changes. Each change gets the token service
/// [`expecting`](countersign::tokens::TokenService::expecting) the owner the right was judged on, so
/// it runs only if the token still has that owner inside the change's transaction.
async fn each_token<F, Fut, T>(
    st: &AppState,
    admin: &PiAdmin,
    action: &str,
    p: &Params,
    by_user: bool,
    f: F,
) -> Result<Vec<(Token, T)>, PiResponse>
where
    F: Fn(TokenService, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, TokenError>>,
{
    let (user, realm) = super::user_realm(st, p);
    let tokens = match (p.owned("serial"), user) {
        (Some(s), _) => vec![st.tokens.show(s).await.map_err(token_lookup_error)?],
        (None, Some(user)) if by_user => st.tokens.list(Some(user), realm, None).await.map_err(token_error)?,
        (None, _) if by_user => {
            return Err(PiResponse::error(ErrorKind::Parameter, "You either need to provide user or serial"))
        }
        _ => return Err(PiResponse::error(ErrorKind::Parameter, "Missing parameter: 'serial'")),
    };
    for t in &tokens {
        allowed(st, admin, action, &Subject::of_token(t))?;
    }
    let mut done = Vec::with_capacity(tokens.len());
    for t in tokens {
        let outcome = f(st.tokens.expecting(ExpectedOwner::of(&t)), t.serial.clone()).await.map_err(token_error)?;
        done.push((t, outcome));
    }
    Ok(done)
}

/// privacyIDEA's answer to a change: how many tokens it changed.
fn changed<T>(tokens: Vec<(Token, T)>) -> PiResponse {
    PiResponse::value(json!(tokens.len()))
}

macro_rules! token_action {
    ($name:ident, $by_user:expr, |$tokens:ident, $caller:ident, $p:ident, $serial:ident| $body:expr) => {
        token_action!($name, $by_user, changed, |$tokens, $caller, $p, $serial| $body);
    };
    ($name:ident, $by_user:expr, $answer:expr, |$tokens:ident, $caller:ident, $p:ident, $serial:ident| $body:expr) => {
        async fn $name(State(st): State<SharedState>, admin: PiAdmin, $p: Params) -> Response {
            let nonce = $p.nonce();
            let $caller = admin.caller.clone();
            let answer =
                each_token(&st, &admin, stringify!($name), &$p, $by_user, |$tokens: TokenService, $serial: String| {
                    let $caller = $caller.clone();
                    let $p = &$p;
                    async move { $body }
                })
                .await
                .map($answer);
            answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
        }
    };
}

/// privacyIDEA counts the tokens whose state the change turned (enabling an enabled token
/// counts 0).
fn turned<T>(active: bool) -> impl Fn(Vec<(Token, T)>) -> PiResponse {
    move |tokens| PiResponse::value(json!(tokens.iter().filter(|(before, _)| before.active != active).count()))
}

token_action!(enable, true, turned(true), |tokens, caller, p, serial| {
    let _ = p;
    tokens.set_active(caller, serial, true).await
});
token_action!(disable, true, turned(false), |tokens, caller, p, serial| {
    let _ = p;
    tokens.set_active(caller, serial, false).await
});
token_action!(unassign, false, |tokens, caller, p, serial| {
    let _ = p;
    tokens.unassign(caller, serial).await
});
token_action!(reset, true, |tokens, caller, p, serial| {
    let _ = p;
    tokens.reset(caller, serial).await
});
/// Assigning needs the right on the token as it is (its current owner) and on the new owner.
async fn assign(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let (user, realm) = super::user_realm(&st, &p);
        let user = user.ok_or_else(|| PiResponse::error(ErrorKind::Parameter, "Missing parameter: 'user'"))?;
        allowed(&st, &admin, "assign", &Subject::user_in(&st, &user, realm.as_deref()).await?)?;
        let caller = admin.caller.clone();
        each_token(&st, &admin, "assign", &p, false, |tokens: TokenService, serial: String| {
            let (caller, user, realm) = (caller.clone(), user.clone(), realm.clone());
            async move { tokens.assign(caller, serial, user, realm).await }
        })
        .await
        .map(|_| PiResponse::value(json!(true)))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}
token_action!(setpin, false, |tokens, caller, p, serial| {
    let pin = p.get("otppin").or_else(|| p.get("pin")).map(SecretString::from);
    tokens.set_pin(caller, serial, pin).await
});
/// privacyIDEA answers a resync with whether the token is in sync now: two codes that are not
/// consecutive are `false`, not an error.
fn in_sync(tokens: Vec<(Token, bool)>) -> PiResponse {
    PiResponse::value(json!(tokens.iter().all(|(_, synced)| *synced)))
}

token_action!(resync, false, in_sync, |tokens, caller, p, serial| {
    match (p.get("otp1"), p.get("otp2")) {
        (Some(a), Some(b)) => match tokens.resync(caller, serial, SecretString::from(a), SecretString::from(b)).await {
            Ok(_) => Ok(true),
            Err(TokenError::OutOfSync(_)) => Ok(false),
            Err(e) => Err(e),
        },
        (None, _) => Err(TokenError::Refused(Refusal::Invalid("Missing parameter: 'otp1'".into()))),
        (_, None) => Err(TokenError::Refused(Refusal::Invalid("Missing parameter: 'otp2'".into()))),
    }
});
token_action!(revoke, true, |tokens, caller, p, serial| {
    let _ = p;
    tokens.revoke(caller, serial).await
});
// `POST /token/lost/<serial>`, judged by the admin action `losttoken` on the lost token.
token_action!(losttoken, false, lost_answer, |tokens, caller, p, serial| {
    let _ = p;
    tokens.lost(caller, serial).await
});

/// privacyIDEA's answer to `/token/lost`: the replacement's serial and password (shown this
/// once) and until when it works; `valid_to` is the placeholder privacyIDEA sends.
fn lost_answer(done: Vec<(Token, countersign_api::Replacement)>) -> PiResponse {
    match done.first() {
        Some((before, r)) => PiResponse::value(json!({
            "serial": r.token.serial,
            "init": true,
            "user": true,
            "pin": true,
            "valid_to": "xxxx",
            "password": r.password.expose_secret(),
            "end_date": super::times::date_minutes(r.valid_until_ms),
            // How many tokens this disabled (privacyIDEA's enable_token count).
            "disable": usize::from(before.active && !r.lost.active),
        })),
        None => PiResponse::error(ErrorKind::Parameter, "Missing parameter: 'serial'"),
    }
}

/// Token attributes privacyIDEA's `/token/set` takes that Countersign keeps elsewhere or not at
/// all, and what to do instead. Refused rather than ignored, so a script learns it did nothing.
const UNSUPPORTED_SETTINGS: &[(&str, &str)] = &[
    ("sync_window", "the resync window is the appliance's [validate] sync_window"),
    ("hashlib", "a token's hash function is fixed at enrolment; enrol a new token"),
    ("count_auth_max", "Countersign does not count authentications per token"),
    ("count_auth_success_max", "Countersign does not count authentications per token"),
];

/// `/token/set`: the attributes privacyIDEA 3.11 reads (snake_case names only; privacyideaadm's
/// older camelCase names are ignored there too), on the token `serial`. The answer counts the
/// attributes set, as privacyIDEA's does.
async fn set(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        p.required("serial")?;
        if let Some((name, why)) = UNSUPPORTED_SETTINGS.iter().find(|(name, _)| p.get(name).is_some()) {
            return Err(PiResponse::error(ErrorKind::Parameter, &format!("{name} cannot be set: {why}")));
        }
        let number = |name: &str| -> Result<Option<u32>, PiResponse> {
            p.get(name)
                .map(|v| {
                    v.trim().parse::<u32>().map_err(|_| {
                        PiResponse::error(ErrorKind::Parameter, &format!("{name} must be a whole number, not {v:?}"))
                    })
                })
                .transpose()
        };
        // privacyIDEA's dates (the forms `times::parse_date` lists, in its words when none
        // fits); an empty one removes that end of the period.
        let date = |name: &str, end: &str| -> Result<Option<Option<i64>>, PiResponse> {
            match p.get(name).map(str::trim) {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(v) => countersign::dates::parse(v).map(|ms| Some(Some(ms))).ok_or_else(|| {
                    PiResponse::error(ErrorKind::TokenAdmin, &format!("Could not parse validity period {end} date!"))
                }),
            }
        };
        let settings = TokenSettings {
            max_fail: number("max_failcount")?,
            fail_clear_s: None,
            otp_window: number("count_window")?,
            description: p.owned("description"),
            valid_from_ms: date("validity_period_start", "start")?,
            valid_until_ms: date("validity_period_end", "end")?,
            polling_allowed: None,
        };
        let attributes = usize::from(settings.max_fail.is_some())
            + usize::from(settings.otp_window.is_some())
            + usize::from(settings.description.is_some())
            + usize::from(settings.valid_from_ms.is_some())
            + usize::from(settings.valid_until_ms.is_some());
        let caller = admin.caller.clone();
        let tokens = each_token(&st, &admin, "set", &p, false, |tokens: TokenService, serial: String| {
            let (caller, settings) = (caller.clone(), settings.clone());
            async move {
                // Nothing to set: the token was loaded and judged already; nothing changes.
                match attributes {
                    0 => Ok(()),
                    _ => tokens.set(caller, serial, settings).await.map(|_| ()),
                }
            }
        })
        .await?;
        Ok(PiResponse::value(json!(attributes * tokens.len())))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// `/token/description`: the description of the token `serial`.
async fn description(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let text = p.required("description")?.to_owned();
        let caller = admin.caller.clone();
        let settings = TokenSettings { description: Some(text), ..TokenSettings::default() };
        each_token(&st, &admin, "set", &p, false, |tokens: TokenService, serial: String| {
            let (caller, settings) = (caller.clone(), settings.clone());
            async move { tokens.set(caller, serial, settings).await }
        })
        .await
        .map(changed)
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// `POST /token/info/<serial>/<key>` with `value`: a token info, for the keys an admin may set
/// ([`token_info`]). Needs `settokeninfo`.
async fn set_info(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    token_info(&st, &admin, &p, true).await
}

/// `DELETE /token/info/<serial>/<key>`: removes a token info an admin may set.
async fn delete_info(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    token_info(&st, &admin, &p, false).await
}

/// privacyIDEA's token info, where any key may be written. Countersign keeps a token's
/// settings typed (and sealed), so only the infos that mean something here are settable, each
/// through the token settings: `polling_allowed` of push tokens (`push_allow_polling=token`).
/// Values as privacyIDEA's `is_true` reads them; anything else is refused rather than stored.
async fn token_info(st: &AppState, admin: &PiAdmin, p: &Params, set: bool) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let key = p.required("key")?;
        if key != "polling_allowed" {
            return Err(PiResponse::error(
                ErrorKind::Parameter,
                &format!(
                    "the token info {key:?} cannot be set: Countersign keeps token settings typed, and the one info \
                     an admin sets is polling_allowed (push tokens); use /token/set for the others"
                ),
            ));
        }
        let allowed = match (set, p.get("value").map(str::trim)) {
            (false, _) => None,
            (true, Some(v)) => Some(countersign_core::truth::truth_word(v).ok_or_else(|| {
                PiResponse::error(ErrorKind::Parameter, &format!("polling_allowed must be True or False, not {v:?}"))
            })?),
            (true, None) => return Err(PiResponse::error(ErrorKind::Parameter, "Missing parameter: 'value'")),
        };
        let settings = TokenSettings { polling_allowed: Some(allowed), ..TokenSettings::default() };
        let caller = admin.caller.clone();
        let tokens = each_token(st, admin, "settokeninfo", p, false, |tokens: TokenService, serial: String| {
            let (caller, settings) = (caller.clone(), settings.clone());
            async move { tokens.set(caller, serial, settings).await }
        })
        .await?;
        Ok(PiResponse::value(json!(!tokens.is_empty())))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// `GET /token/challenges/[<serial>]`: the challenges not answered yet, in privacyIDEA's page
/// shape. Never a code: `challenge` and `data` are empty, as privacyIDEA leaves them for OTP
/// tokens. Needs `getchallenges` on the whole system: a challenge list crosses realms.
async fn challenges(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        allowed(&st, &admin, "getchallenges", &Subject::system())?;
        let page = page_of(&p, "page", 1)?;
        let size = page_of(&p, "pagesize", 15)?;
        let newest_first = match p.get("sortdir") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(PiResponse::error(
                    ErrorKind::Parameter,
                    &format!("sortdir must be asc or desc, not {other:?}"),
                ))
            }
        };
        let (start, _, _) = page_window(page, size, usize::MAX);
        let query = countersign::store::ChallengeQuery {
            serial: p.owned("serial"),
            transaction_id: p.owned("transaction_id"),
            newest_first,
            offset: u64::try_from(start).unwrap_or(u64::MAX),
            limit: u64::try_from(size).unwrap_or(u64::MAX),
        };
        let (rows, total) = st.challenges.list(query).await.map_err(token_error)?;
        let (_, next, prev) = page_window(page, size, usize::try_from(total).unwrap_or(usize::MAX));
        let list: Vec<Value> = rows
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "transaction_id": c.transaction_id,
                    "serial": c.serial,
                    "challenge": "",
                    "data": "",
                    "timestamp": super::times::http_date(c.created_ms),
                    "expiration": super::times::http_date(c.expires_ms),
                    "otp_received": false,
                    "received_count": 0,
                    "otp_valid": false,
                })
            })
            .collect();
        Ok(PiResponse::value(
            json!({ "challenges": list, "count": total, "current": page, "next": next, "prev": prev }),
        ))
    }
    .await;
    audit_read(&st, &admin, "/token/challenges/", &answer).await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

async fn remove(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let serial = p.view_arg("serial");
    let answer = async {
        let token = st.tokens.show(serial.clone()).await.map_err(token_lookup_error)?;
        allowed(&st, &admin, "delete", &Subject::of_token(&token))?;
        let tokens = st.tokens.expecting(ExpectedOwner::of(&token));
        tokens.delete(admin.caller.clone(), serial).await.map_err(token_error)?;
        Ok::<_, PiResponse>(PiResponse::ok(json!(1), None, Value::Null))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /token/?page=99999999999&pagesize=99999999999` overflowed `start + size` (a panic
    /// in debug builds, a wrong `next` page in release); found while writing the `pi_params`
    /// fuzz target, which now reaches it.
    #[test]
    fn huge_page_numbers_do_not_overflow() {
        assert_eq!(page_window(99_999_999_999, 99_999_999_999, 20), (usize::MAX, None, Some(99_999_999_998)));
        assert_eq!(page_window(usize::MAX, usize::MAX, usize::MAX), (usize::MAX, None, Some(usize::MAX - 1)));
        assert_eq!(page_window(1, 15, 20), (0, Some(2), None));
        assert_eq!(page_window(2, 15, 20), (15, None, Some(1)));
        crate::fuzzing::pi_params(include_bytes!("../../../fuzz/regressions/pi_params/page_overflow"));
    }
}
