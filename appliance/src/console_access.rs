//! Who may use the web console, and their sessions (issue 18).
//!
//! Console users are principals of their own (`console_user`): a name, a password kept only as
//! an HSM verifier, a [`Role`] and, for the helpdesk, the realms they act in. Their second
//! factor is an ordinary Countersign token of the internal user of the same name in the
//! console realm (`[console] realm`), checked by the validation engine like any other check:
//! replay protection, fail counters, the reject floor and the audit all apply. A TOTP token is
//! enrolled when the user is added; passkeys can be added to the same user.
//!
//! A session is a cookie whose value is HSM-MACed claims (its own domain): the user, the
//! session id, the client address it is bound to, when it started, when the user last proved
//! both factors, and the user's session epoch. It lasts [`IDLE_SECONDS`] past its last renewal
//! and never more than [`MAX_SECONDS`] past its start; sign-out, removal and a role change
//! replace the epoch, which ends every session of the user. Role and realms are read from the
//! row on every request, never from the cookie.
//!
//! Owns: console users' rows, sign-in, sessions, CSRF tokens and what each role may do
//! ([`ConsoleUser::may`]). Must never: keep a password or code, tell which factor failed, or
//! trust a role or realm the request names.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use countersign_core::caller::{Caller, Principal};
use countersign_core::error::Refusal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::address_window::AddressWindow;
use crate::api_access::throttle::LoginThrottle;
use crate::clock::Clock;
use crate::resolvers::Realms;
use crate::service_error::{blocking, off_runtime, TokenError};
use crate::store::{AuthAuditRow, CheckTarget, ConsoleCredential, ConsoleUserRow, Store};
use crate::token_secrets::TokenSecrets;
use crate::tokens::{InitRequest, TokenService};
use crate::validate::{CheckRequest, ValidateService};

/// A session ends this long after its last renewal (each request renews it).
pub const IDLE_SECONDS: i64 = 15 * 60;
/// A session ends this long after its sign-in, however active.
pub const MAX_SECONDS: i64 = 8 * 3600;
/// A destructive action needs both factors proved within this long.
pub const REAUTH_SECONDS: i64 = 5 * 60;
/// A session's cookie is renewed when it is older than this (not on every request: a renewal
/// costs an HSM operation).
const RENEW_AFTER_SECONDS: i64 = 60;
/// A failed sign-in answers no sooner than this after it began, whichever step failed, so that
/// an unknown name, a wrong password and a wrong code take the same time.
const FAILED_SIGN_IN_FLOOR: Duration = Duration::from_millis(400);

/// Passkey sign-in challenges one client address may ask for in a minute. Anyone may ask
/// (the sign-in page has no session yet) and each is a stored row; a person signing in needs
/// one or two, so this bounds a flood from one address far below the store's global cap of
/// open sign-ins without getting in an admin's way.
pub const PASSKEY_CHALLENGES_PER_MINUTE: u32 = 10;

/// Client addresses the challenge limit tracks at once (a few MB at most).
const TRACKED_ADDRESSES: usize = 100_000;

/// What a console user is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything the admin policies grant.
    Admin,
    /// User and token actions in the user's realms.
    Helpdesk,
    /// Reads the audit, the dashboard and the configuration; changes nothing.
    Auditor,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Result<Role, Refusal> {
        match s {
            "admin" => Ok(Role::Admin),
            "helpdesk" => Ok(Role::Helpdesk),
            "auditor" => Ok(Role::Auditor),
            other => Err(Refusal::Invalid(format!(
                "unknown console role '{}'; use admin, helpdesk or auditor",
                other.escape_debug()
            ))),
        }
    }
}

/// What a console request wants to do; [`ConsoleUser::may`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// See the dashboard (health, readiness, queues).
    SeeDashboard,
    /// Find users and see a user's tokens and recent audit, in a realm.
    SeeUsers,
    /// Change a token or enrol one, for a user in a realm.
    ChangeTokens,
    /// Search and export the whole audit.
    SeeAudit,
    /// See policies, realms, resolvers, gateways, keys and settings.
    SeeSystem,
    /// Change policies, realms, resolvers, gateways, keys and grants.
    ChangeSystem,
}

/// A console user as loaded for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    /// The sign-in name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// A helpdesk user's realms.
    pub realms: Vec<String>,
}

impl ConsoleUser {
    /// Whether the user may use `power` on something in `realm` (`None`: nothing in a realm,
    /// such as an unassigned token or a system page). Admins may do everything (the admin
    /// policies then judge each action); a helpdesk user sees the dashboard and acts on users
    /// and tokens in their realms only; an auditor reads and never changes.
    pub fn may(&self, power: Power, realm: Option<&str>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Helpdesk => match power {
                Power::SeeDashboard => true,
                Power::SeeUsers | Power::ChangeTokens => realm.is_some_and(|r| self.realms.iter().any(|m| m == r)),
                Power::SeeAudit | Power::SeeSystem | Power::ChangeSystem => false,
            },
            Role::Auditor => matches!(power, Power::SeeDashboard | Power::SeeAudit | Power::SeeSystem),
        }
    }

    /// The realms whose users the user may see; `None`: every realm.
    pub fn realm_limit(&self) -> Option<&[String]> {
        match self.role {
            Role::Helpdesk => Some(&self.realms),
            Role::Admin | Role::Auditor => None,
        }
    }

    fn of_row(row: &ConsoleUserRow) -> Result<ConsoleUser, Refusal> {
        Ok(ConsoleUser {
            name: row.name.clone(),
            role: Role::parse(&row.role)?,
            realms: row.realms.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
        })
    }
}

/// The second factor of a sign-in.
#[derive(Debug)]
pub enum SecondFactor {
    /// A code of one of the user's tokens in the console realm (TOTP, HOTP, ...).
    Code(SecretString),
    /// A passkey's assertion over a sign-in challenge (`/validate/initialize`'s).
    Passkey {
        /// The sign-in challenge's transaction id.
        transaction_id: String,
        /// The authenticator's assertion.
        assertion: crate::webauthn::Assertion,
    },
}

/// A session as a request presents it, checked. Debug leaves out the CSRF token and the
/// renewed cookie (a bearer credential).
#[derive(Clone)]
pub struct ConsoleSession {
    /// The user, as loaded now.
    pub user: ConsoleUser,
    /// The caller to audit the request's changes under (`console:NAME ip:ADDR`).
    pub caller: Caller,
    /// The token a form must carry for a change ([`csrf_token`] of the session id).
    pub csrf: String,
    /// When the user last proved both factors, Unix seconds.
    pub auth_time: i64,
    /// When the session was checked for this request, by the appliance's clock (Unix
    /// seconds): what the request's time-dependent judgements use, so that tests moving the
    /// clock move them too.
    pub now_s: i64,
    /// A renewed cookie value to send back, when the session was renewed.
    pub renewed: Option<String>,
    /// The session id and when the session started (kept by a reauthentication).
    sid: (String, i64),
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("user", &self.user)
            .field("caller", &self.caller)
            .field("auth_time", &self.auth_time)
            .finish_non_exhaustive()
    }
}

impl ConsoleSession {
    /// Whether both factors were proved recently enough for a destructive action.
    pub fn fresh(&self) -> bool {
        self.now_s - self.auth_time < REAUTH_SECONDS
    }
}

/// Why a sign-in or a session was not accepted. Messages are what the browser shows: they
/// never say which factor failed or whether a name exists.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleAuthError {
    /// An unknown name, a wrong password or a second factor refused, which read the same.
    #[error("Sign-in failed: the name, password or second factor is wrong.")]
    Failed,
    /// This client failed too often.
    #[error("Too many failed sign-ins from this address; try again in {0} seconds.")]
    TooManyFailures(i64),
    /// This client address started too many passkey sign-ins.
    #[error("Too many passkey sign-ins were started from this address; try again in {0} seconds.")]
    TooManyChallenges(i64),
    /// No session, or one that is not valid (MAC, client address, ended by sign-out).
    #[error("Please sign in.")]
    NoSession,
    /// The session ran out.
    #[error("Your session has ended; please sign in again.")]
    Expired,
    /// The store or the HSM failed: the console cannot decide now.
    #[error("The appliance cannot check sign-ins right now ({0}); try again shortly.")]
    Unavailable(String),
}

/// A session's claims, MACed by the HSM.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    /// The console user.
    sub: String,
    /// The session id, random, fixed for the session's life (the CSRF token derives from it).
    sid: String,
    /// The client address the session is bound to.
    ip: String,
    /// When the session started (sign-in), Unix seconds.
    start: i64,
    /// When both factors were last proved.
    auth_time: i64,
    /// When this cookie was issued.
    iat: i64,
    /// When it expires.
    exp: i64,
    /// The user's session epoch (hex) when issued.
    epoch: String,
}

/// The CSRF token of session `sid`: only who holds the session's cookie (HttpOnly) or a page
/// rendered for it knows it.
pub fn csrf_token(sid: &str) -> String {
    let d = Sha256::digest([b"countersign/console-csrf/v1\0".as_slice(), sid.as_bytes()].concat());
    hex::encode(&d[..16])
}

/// What adding a console user returns, once.
#[derive(Debug)]
pub struct AddedConsoleUser {
    /// The user as stored.
    pub user: ConsoleUserRow,
    /// The serial of the TOTP token enrolled as the second factor.
    pub serial: String,
    /// Its `otpauth://` URI, carrying the seed: shown this once.
    pub otpauth_uri: Option<SecretString>,
}

/// Console users, sign-ins and sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConsoleAccess {
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
    realms: Realms,
    tokens: TokenService,
    validate: ValidateService,
    realm: Arc<String>,
    throttle: LoginThrottle,
    /// Password checks run one at a time, so parallel guesses cannot all pass the backoff
    /// before any is counted.
    logins: Arc<Mutex<()>>,
    /// The passkey challenges each client address asked for.
    challenges: Arc<AddressWindow>,
}

fn internal(e: &dyn std::fmt::Display) -> ConsoleAuthError {
    ConsoleAuthError::Unavailable(e.to_string())
}

/// Runs a sign-in; a failed one answers no sooner than [`FAILED_SIGN_IN_FLOOR`] after it began.
async fn floored<T>(
    sign_in: impl std::future::Future<Output = Result<T, ConsoleAuthError>>,
) -> Result<T, ConsoleAuthError> {
    let started = tokio::time::Instant::now();
    let answer = sign_in.await;
    if matches!(answer, Err(ConsoleAuthError::Failed)) {
        tokio::time::sleep_until(started + FAILED_SIGN_IN_FLOOR).await;
    }
    answer
}

/// The throttle's name for a console user: its own namespace beside the API admins'.
fn throttle_name(name: &str) -> String {
    format!("console:{name}")
}

impl ConsoleAccess {
    /// The service: users' second factors live in realm `realm`.
    pub fn new(
        store: Arc<Store>,
        secrets: TokenSecrets,
        clock: Clock,
        realms: Realms,
        tokens: TokenService,
        validate: ValidateService,
        realm: String,
    ) -> ConsoleAccess {
        ConsoleAccess {
            throttle: LoginThrottle::new(store.clone()),
            store,
            secrets,
            clock,
            realms,
            tokens,
            validate,
            realm: Arc::new(realm),
            logins: Arc::new(Mutex::new(())),
            challenges: Arc::new(AddressWindow::new(PASSKEY_CHALLENGES_PER_MINUTE, 60_000, TRACKED_ADDRESSES)),
        }
    }

    /// Whether `caller` may have one more passkey sign-in challenge now
    /// ([`PASSKEY_CHALLENGES_PER_MINUTE`] an address; a caller without an address, which the
    /// network listener never makes, is refused).
    pub fn admit_passkey_challenge(&self, caller: &Caller) -> Result<(), ConsoleAuthError> {
        let Some(ip) = caller.client() else { return Err(ConsoleAuthError::TooManyChallenges(60)) };
        self.challenges.admit(ip, self.clock.now_ms()).map_err(ConsoleAuthError::TooManyChallenges)
    }

    /// The realm of the console users' second factors.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Adds console user `name` with `password` (at least 12 characters), `role` and, for the
    /// helpdesk, `realms` (each must exist); makes the console realm and its internal user when
    /// missing and enrols a TOTP token as the user's second factor, whose URI is returned once.
    pub async fn add_user(
        &self,
        caller: Caller,
        name: String,
        password: SecretString,
        role: Role,
        realms: Vec<String>,
    ) -> Result<AddedConsoleUser, TokenError> {
        crate::api_access::valid_name("console user", &name)?;
        if password.expose_secret().chars().count() < 12 {
            return Err(Refusal::Invalid("a console password has at least 12 characters".into()).into());
        }
        let realms = self.checked_realms(role, realms)?;
        let this = self.clone();
        let (n, c) = (name.clone(), caller.clone());
        blocking(move || {
            if this.store.console_credential(&n)?.is_some() {
                return Err(Refusal::Duplicate(format!("console user {n}")).into());
            }
            if !this.realms.is_realm(&this.realm) {
                this.realms
                    .create_realm(&c, &this.realm, &[], false)
                    .map_err(|e| TokenError::Internal(e.to_string()))?;
            }
            Ok(())
        })
        .await?;
        let internal_user = countersign_core::user::User {
            login: name.clone(),
            realm: self.realm.to_string(),
            email: None,
            phone: None,
            given_name: None,
            surname: None,
        };
        match self.tokens.create_user(caller.clone(), internal_user).await {
            Ok(_) | Err(TokenError::Refused(Refusal::Duplicate(_))) => {}
            Err(e) => return Err(e),
        }
        let mut init = InitRequest::of_type("totp");
        init.user = Some(name.clone());
        init.realm = Some(self.realm.to_string());
        init.issuer = Some("Countersign console".into());
        init.description = "console sign-in".into();
        let enrolled = self.tokens.init(caller.clone(), init).await?;
        let this = self.clone();
        let serial = enrolled.token.serial.clone();
        let (caller_row, serial_row) = (caller.clone(), serial.clone());
        let user = blocking(move || {
            let (caller, serial) = (caller_row, serial_row);
            let verifier = this.console_verifier(&name, &password)?;
            let epoch = this.secrets.random(16)?;
            let row = ConsoleUserRow {
                name: name.clone(),
                role: role.as_str().into(),
                realms: realms.join(","),
                created_at: this.now_s(),
                last_login_ms: None,
            };
            let mut audit = AuthAuditRow::new(&caller, "console-user/add", "ok");
            audit.login = Some(name.clone());
            audit.detail = Some(format!("role {}, second factor {serial}", row.role));
            this.store.add_console_user(&row, &verifier, &epoch, &audit)?;
            Ok(row)
        })
        .await;
        let user = match user {
            Ok(user) => user,
            Err(e) => {
                // The TOTP token enrolled above would otherwise stay a working second factor of
                // this name, its secret printed to an admin whose add failed (two adds of one
                // name racing, on one node or two): it goes, or the error says it could not.
                return Err(match self.tokens.delete(caller, serial.clone()).await {
                    Ok(()) => e,
                    Err(d) => TokenError::Internal(format!(
                        "{e}; and the second factor {serial} enrolled for it could not be deleted ({d}): delete it with \
                         `countersign token delete {serial}`"
                    )),
                });
            }
        };
        Ok(AddedConsoleUser { user, serial: enrolled.token.serial, otpauth_uri: enrolled.otpauth_uri })
    }

    fn checked_realms(&self, role: Role, realms: Vec<String>) -> Result<Vec<String>, TokenError> {
        match role {
            Role::Helpdesk if realms.is_empty() => {
                Err(Refusal::Invalid("a helpdesk user needs at least one realm (--realm)".into()).into())
            }
            Role::Helpdesk => {
                if let Some(r) = realms.iter().find(|r| !self.realms.is_realm(r)) {
                    return Err(Refusal::NotFound(format!("realm {r}")).into());
                }
                Ok(realms)
            }
            _ if !realms.is_empty() => {
                Err(Refusal::Invalid("only a helpdesk user is limited to realms; give no --realm".into()).into())
            }
            _ => Ok(realms),
        }
    }

    fn console_verifier(&self, name: &str, password: &SecretString) -> Result<Vec<u8>, TokenError> {
        Ok(self.secrets.console_verifier(name, password.expose_secret().as_bytes())?)
    }

    /// Removes console user `name`: their sessions end, and their internal user in the console
    /// realm goes (their tokens stay, unassigned, for the audit).
    pub async fn remove_user(&self, caller: Caller, name: String) -> Result<(), TokenError> {
        let this = self.clone();
        let (n, c) = (name.clone(), caller.clone());
        blocking(move || {
            let mut audit = AuthAuditRow::new(&c, "console-user/remove", "ok");
            audit.login = Some(n.clone());
            Ok(this.store.remove_console_user(&n, &audit)?)
        })
        .await?;
        match self.tokens.delete_user(caller, name, Some(self.realm.to_string())).await {
            Ok(()) | Err(TokenError::Refused(Refusal::NotFound(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives console user `name` a new role and realms; their sessions end.
    pub async fn set_role(
        &self,
        caller: Caller,
        name: String,
        role: Role,
        realms: Vec<String>,
    ) -> Result<(), TokenError> {
        let realms = self.checked_realms(role, realms)?;
        let this = self.clone();
        blocking(move || {
            let epoch = this.secrets.random(16)?;
            let mut audit = AuthAuditRow::new(&caller, "console-user/role", "ok");
            audit.login = Some(name.clone());
            audit.detail = Some(format!(
                "role {}{}",
                role.as_str(),
                if realms.is_empty() { String::new() } else { format!(" in {}", realms.join(", ")) }
            ));
            Ok(this.store.set_console_role(&name, role.as_str(), &realms.join(","), &epoch, &audit)?)
        })
        .await
    }

    /// Every console user (no verifier).
    pub async fn users(&self) -> Result<Vec<ConsoleUserRow>, TokenError> {
        let this = self.clone();
        blocking(move || Ok(this.store.console_users()?)).await
    }

    /// Signs `name` in with `password` and `second`, from `caller` (the client's address is
    /// what the session is bound to); the session's cookie value. Every attempt is audited
    /// (`console/sign-in`); failures answer alike and no sooner than a fixed floor.
    pub async fn sign_in(
        &self,
        caller: Caller,
        name: String,
        password: SecretString,
        second: SecondFactor,
    ) -> Result<String, ConsoleAuthError> {
        floored(self.sign_in_inner(caller, name, password, second, None)).await
    }

    /// Proves both factors again within `session` (before a destructive action): a cookie
    /// with a fresh `auth_time`, same session id.
    pub async fn reauthenticate(
        &self,
        session: &ConsoleSession,
        password: SecretString,
        second: SecondFactor,
    ) -> Result<String, ConsoleAuthError> {
        floored(self.sign_in_inner(session.caller.clone(), session.user.name.clone(), password, second, Some(session)))
            .await
    }

    /// A failed sign-in (a wrong password, or a refused second factor): counted for the
    /// back-off, audited with `why`; the error the caller answers with (`Failed`, or what
    /// kept it from being counted). Blocking: call it off the runtime.
    fn sign_in_failed(&self, caller: &Caller, name: &str, action: &str, why: String, now_ms: i64) -> ConsoleAuthError {
        let mut audit = AuthAuditRow::new(caller, action, "reject");
        audit.login = Some(name.to_owned());
        audit.realm = Some(self.realm.to_string());
        audit.detail = Some(why);
        let counted = self
            .throttle
            .failed(caller, &throttle_name(name), now_ms)
            .map_err(|e| internal(&e))
            .and_then(|()| self.store.audit_auth(&audit).map(drop).map_err(|e| internal(&e)));
        counted.err().unwrap_or(ConsoleAuthError::Failed)
    }

    async fn sign_in_inner(
        &self,
        caller: Caller,
        name: String,
        password: SecretString,
        second: SecondFactor,
        within: Option<&ConsoleSession>,
    ) -> Result<String, ConsoleAuthError> {
        let action = if within.is_some() { "console/reauthenticate" } else { "console/sign-in" };
        let this = self.clone();
        let (c, n) = (caller.clone(), name.clone());
        // Step 1, on a blocking thread: the throttle and the password (one HSM operation,
        // spent for unknown names too).
        let password_ok = off_runtime(
            move || {
                let _one_at_a_time = this.logins.lock().unwrap_or_else(PoisonError::into_inner);
                let now_ms = this.clock.now_ms();
                if let Some(wait) = this.throttle.wait_s(&c, &throttle_name(&n), now_ms).map_err(|e| internal(&e))? {
                    let mut audit = AuthAuditRow::new(&c, action, "refused");
                    audit.login = Some(n.clone());
                    audit.detail = Some(format!("this client failed repeatedly; next attempt checked in {wait} s"));
                    this.store.audit_auth(&audit).map_err(|e| internal(&e))?;
                    return Err(ConsoleAuthError::TooManyFailures(wait));
                }
                let cred = this.store.console_credential(&n).map_err(|e| internal(&e))?;
                let pw = password.expose_secret().as_bytes();
                let checked = match &cred {
                    Some(cr) => {
                        let ok = this.secrets.console_verifier(&n, pw).map_err(|e| internal(&e))?;
                        bool::from(ok.ct_eq(&cr.verifier)).then_some(()).ok_or("wrong password")
                    }
                    None => {
                        let _ = this.secrets.console_verifier(&n, pw);
                        Err("no such console user")
                    }
                };
                // A wrong password is counted before the lock is let go: parallel guesses
                // then meet the back-off one by one, not all before any was counted.
                match checked {
                    Err(why) => Err(this.sign_in_failed(&c, &n, action, why.to_owned(), now_ms)),
                    Ok(()) => Ok(()),
                }
            },
            ConsoleAuthError::Unavailable,
        )
        .await;
        password_ok?;
        // Step 2: the second factor, through the validation engine (its own audit row).
        let second_ok = self.second_factor(&caller, &name, second).await?;
        let this = self.clone();
        let sid = within.map(|s| s.sid.clone());
        off_runtime(
            move || {
                let now_ms = this.clock.now_ms();
                if let Err(why) = second_ok {
                    return Err(this.sign_in_failed(&caller, &name, action, why, now_ms));
                }
                let mut audit = AuthAuditRow::new(&caller, action, "ok");
                audit.login = Some(name.clone());
                audit.realm = Some(this.realm.to_string());
                this.throttle.succeeded(&caller, &throttle_name(&name), now_ms).map_err(|e| internal(&e))?;
                let cred =
                    this.store.console_credential(&name).map_err(|e| internal(&e))?.ok_or(ConsoleAuthError::Failed)?;
                let now = now_ms / 1000;
                let (sid, start) = match sid {
                    Some((sid, start)) => (sid, start),
                    None => (hex::encode(this.secrets.random(16).map_err(|e| internal(&e))?), now),
                };
                let claims = Claims {
                    sub: name.clone(),
                    sid,
                    ip: caller.client().map(|ip| ip.to_string()).unwrap_or_default(),
                    start,
                    auth_time: now,
                    iat: now,
                    exp: (now + IDLE_SECONDS).min(start + MAX_SECONDS),
                    epoch: hex::encode(&cred.epoch),
                };
                let cookie = this.cookie(&claims)?;
                this.store.console_user_signed_in(&name, &audit).map_err(|e| internal(&e))?;
                Ok(cookie)
            },
            ConsoleAuthError::Unavailable,
        )
        .await
    }

    /// Checks `second` for console user `name`: `Ok(Err(why))` when refused.
    async fn second_factor(
        &self,
        caller: &Caller,
        name: &str,
        second: SecondFactor,
    ) -> Result<Result<(), String>, ConsoleAuthError> {
        let (target, pass, transaction_id, webauthn, uv) = match second {
            SecondFactor::Code(code) => (
                CheckTarget::User { login: name.to_owned(), realm: Some(self.realm.to_string()), serial: None },
                code,
                None,
                None,
                false,
            ),
            SecondFactor::Passkey { transaction_id, assertion } => (
                CheckTarget::Credential(assertion.credential_id.clone()),
                SecretString::from(""),
                Some(transaction_id),
                Some(assertion),
                true,
            ),
        };
        let check = CheckRequest {
            target,
            pass,
            transaction_id,
            caller: caller.clone(),
            webauthn,
            require_user_verification: uv,
        };
        let o = self.validate.check(check).await.map_err(|e| internal(&e))?;
        if !o.accepted {
            return Ok(Err(format!("second factor refused (audit row {})", o.audit_id)));
        }
        // A passkey names its owner: it must be this user, in the console realm.
        if o.user.as_deref() != Some(name) || o.realm.as_deref() != Some(self.realm.as_str()) {
            return Ok(Err(format!(
                "the second factor is not {name}'s in realm {} (audit row {})",
                self.realm, o.audit_id
            )));
        }
        Ok(Ok(()))
    }

    fn cookie(&self, claims: &Claims) -> Result<String, ConsoleAuthError> {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|e| internal(&e))?);
        let mac = self.secrets.console_mac(body.as_bytes()).map_err(|e| internal(&e))?;
        Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac)))
    }

    /// The session `cookie` stands for, presented by `caller`: MAC, expiry, client address,
    /// and the user's current epoch; the user's role and realms as loaded now. A renewed cookie
    /// comes with it when due.
    pub async fn session(&self, cookie: String, caller: Caller) -> Result<ConsoleSession, ConsoleAuthError> {
        let this = self.clone();
        off_runtime(move || this.session_blocking(&cookie, caller), ConsoleAuthError::Unavailable).await
    }

    fn session_blocking(&self, cookie: &str, caller: Caller) -> Result<ConsoleSession, ConsoleAuthError> {
        let (body, mac) = cookie.split_once('.').ok_or(ConsoleAuthError::NoSession)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| ConsoleAuthError::NoSession)?;
        let expected = self.secrets.console_mac(body.as_bytes()).map_err(|e| internal(&e))?;
        if !bool::from(expected.ct_eq(&mac)) {
            return Err(ConsoleAuthError::NoSession);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(ConsoleAuthError::NoSession)?;
        let now = self.now_s();
        if claims.exp <= now {
            return Err(ConsoleAuthError::Expired);
        }
        if caller.client().map(|ip| ip.to_string()).unwrap_or_default() != claims.ip {
            return Err(ConsoleAuthError::NoSession);
        }
        let cred: ConsoleCredential =
            self.store.console_credential(&claims.sub).map_err(|e| internal(&e))?.ok_or(ConsoleAuthError::NoSession)?;
        if cred.epoch.is_empty() || hex::encode(&cred.epoch) != claims.epoch {
            return Err(ConsoleAuthError::NoSession);
        }
        let user = ConsoleUser::of_row(&cred.user).map_err(|e| internal(&e))?;
        let renewed = if now - claims.iat >= RENEW_AFTER_SECONDS {
            let next = Claims { iat: now, exp: (now + IDLE_SECONDS).min(claims.start + MAX_SECONDS), ..claims.clone() };
            Some(self.cookie(&next)?)
        } else {
            None
        };
        Ok(ConsoleSession {
            caller: caller.as_principal(Principal::Console(user.name.clone())),
            user,
            csrf: csrf_token(&claims.sid),
            auth_time: claims.auth_time,
            now_s: now,
            renewed,
            sid: (claims.sid, claims.start),
        })
    }

    /// Ends every session of the session's user (a new epoch), audited as `console/sign-out`.
    pub async fn sign_out(&self, session: &ConsoleSession) -> Result<(), TokenError> {
        let this = self.clone();
        let (caller, name) = (session.caller.clone(), session.user.name.clone());
        blocking(move || {
            let epoch = this.secrets.random(16)?;
            let mut audit = AuthAuditRow::new(&caller, "console/sign-out", "ok");
            audit.login = Some(name.clone());
            Ok(this.store.new_console_epoch(&name, &epoch, &audit)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, realms: &[&str]) -> ConsoleUser {
        ConsoleUser { name: "u".into(), role, realms: realms.iter().map(|r| (*r).to_owned()).collect() }
    }

    #[test]
    fn a_helpdesk_user_acts_on_users_and_tokens_in_their_realms_only() {
        let hd = user(Role::Helpdesk, &["staff"]);
        assert!(hd.may(Power::SeeUsers, Some("staff")));
        assert!(hd.may(Power::ChangeTokens, Some("staff")));
        assert!(!hd.may(Power::ChangeTokens, Some("partners")));
        assert!(!hd.may(Power::ChangeTokens, None), "an unassigned token is in no realm of theirs");
        assert!(!hd.may(Power::SeeAudit, None));
        assert!(!hd.may(Power::SeeSystem, None));
        assert!(!hd.may(Power::ChangeSystem, None));
        assert!(hd.may(Power::SeeDashboard, None));
        assert_eq!(hd.realm_limit(), Some(["staff".to_owned()].as_slice()));
    }

    #[test]
    fn an_auditor_reads_and_changes_nothing() {
        let au = user(Role::Auditor, &[]);
        for p in [Power::SeeDashboard, Power::SeeAudit, Power::SeeSystem] {
            assert!(au.may(p, None), "{p:?}");
        }
        for realm in [None, Some("staff")] {
            assert!(!au.may(Power::ChangeTokens, realm));
            assert!(!au.may(Power::ChangeSystem, realm));
            assert!(!au.may(Power::SeeUsers, realm));
        }
    }

    #[test]
    fn an_admin_may_everything_the_policies_then_judge() {
        let ad = user(Role::Admin, &[]);
        for p in [Power::SeeUsers, Power::ChangeTokens, Power::SeeAudit, Power::SeeSystem, Power::ChangeSystem] {
            assert!(ad.may(p, Some("any")) && ad.may(p, None), "{p:?}");
        }
        assert_eq!(ad.realm_limit(), None);
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in [Role::Admin, Role::Helpdesk, Role::Auditor] {
            assert_eq!(Role::parse(r.as_str()).ok(), Some(r));
        }
        assert!(Role::parse("Admin").is_err());
        assert!(Role::parse("").is_err());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_do_not_reveal_it() {
        let a = csrf_token("aaaa");
        assert_eq!(a, csrf_token("aaaa"));
        assert_ne!(a, csrf_token("aaab"));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("aaaa"));
    }
}
