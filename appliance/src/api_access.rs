//! Who may use the HTTP API beyond `/validate/check`:
//! - administrators of the privacyIDEA-compatible API: `/auth` checks a name and password
//!   against an HSM-made verifier and issues a JWT-shaped session token whose MAC is computed
//!   in the HSM (HMAC-SHA-256 under the verifier key, with a domain prefix of its own). Tokens
//!   expire after [`SESSION_SECONDS`] and are bound to the admin row's session epoch (random,
//!   replaced at logout): deleting the admin, creating one of the same name again, logging out
//!   or revoking its sessions ends every session issued before. Every login, failed or not, is
//!   audited; failing peers back off ([`throttle`]), without a lockout of the admin;
//! - service accounts (an IdP plugin, a RADIUS server): an API key `cs_<prefix>_<secret>`
//!   shown once at creation, found by its public prefix and checked against its verifier.
//!
//! Passwords and keys never leave this module in any form but their verifier; failed logins
//! all read the same, whether the name exists or not.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::service_error::{blocking, off_runtime, TokenError};
use crate::store::{ApiAdminView, AuthAuditRow, ServiceAccountView, Store};
use crate::token_secrets::TokenSecrets;

pub mod throttle;

/// How long a session token is valid.
pub const SESSION_SECONDS: i64 = 3600;

/// The claims of a session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The API admin's name.
    pub username: String,
    /// Empty: API admins belong to no realm.
    pub realm: String,
    /// `admin`, the only role issued.
    pub role: String,
    /// `password`, how the session was opened.
    pub authtype: String,
    /// When the token was issued, Unix seconds.
    pub iat: i64,
    /// When the token expires, Unix seconds ([`SESSION_SECONDS`] after `iat`).
    pub exp: i64,
    /// The token's id: 12 random bytes from the HSM, hex.
    pub jti: String,
    /// The admin row's session epoch (hex) when the token was issued.
    pub epoch: String,
}

/// Why a login, a session token or an API key was not accepted. The messages are what the
/// caller may read: they never say whether a name exists.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The request carried no session token (the front-ends' case; nothing here returns it).
    #[error("Authentication failure. Missing Authorization header.")]
    Missing,
    /// An unknown name or a wrong password, which read the same.
    #[error("Authentication failure. Wrong credentials.")]
    WrongCredentials,
    /// The token does not parse, its MAC does not verify, or its admin is gone or has a new
    /// session epoch (logged out, sessions revoked).
    #[error("Authentication failure. The session token is not valid.")]
    Invalid,
    /// The token is past its `exp`.
    #[error("Authentication failure. The session token has expired; log in again.")]
    Expired,
    /// This client failed too often; the seconds until its next attempt is checked.
    #[error("Authentication failure. Too many failed logins from this client; try again in {0} seconds.")]
    TooManyFailures(i64),
    /// The store or the HSM failed.
    #[error("{0}")]
    Internal(String),
}

/// API admins and their sessions, and service accounts and their API keys. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
    /// Logins run one at a time, so parallel guesses cannot all pass the backoff before any of
    /// them is counted. A login costs one HSM operation.
    logins: Arc<Mutex<()>>,
    throttle: throttle::LoginThrottle,
    /// Realms whose users' passkeys sign in the API admin of the same name
    /// ([`ApiAccess::with_passkey_realms`]).
    passkey_realms: Arc<Vec<String>>,
}

/// Whether `name` may name an API admin, a service account or a console user (`what`, for the
/// message): 1-64 of A-Z a-z 0-9 - _ . @.
pub(crate) fn valid_name(what: &str, name: &str) -> Result<(), TokenError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
        return Err(TokenError::Refused(Refusal::Invalid(format!(
            "{what} name '{}' is not valid: 1-64 of A-Z a-z 0-9 - _ . @",
            name.escape_debug()
        ))));
    }
    Ok(())
}

impl ApiAccess {
    /// The service over the store, the HSM keys that make verifiers and MACs, and the clock.
    pub fn new(store: Arc<Store>, secrets: TokenSecrets, clock: Clock) -> ApiAccess {
        ApiAccess {
            throttle: throttle::LoginThrottle::new(store.clone()),
            store,
            secrets,
            clock,
            logins: Arc::new(Mutex::new(())),
            passkey_realms: Arc::new(Vec::new()),
        }
    }

    /// The service letting passkeys of users in `realms` sign in API admins (privacyIDEA's
    /// superuser realms): a passkey sign-in of `alice` in one of them opens a session of the API
    /// admin `alice`, if there is one. Empty (the default): no passkey signs an admin in.
    pub fn with_passkey_realms(mut self, realms: Vec<String>) -> ApiAccess {
        self.passkey_realms = Arc::new(realms);
        self
    }

    /// Records a passkey login at `/auth` that the check refused (`why`, for the audit; the
    /// check's own row has the detail).
    pub async fn passkey_refused(&self, caller: Caller, why: String) -> Result<(), SessionError> {
        let this = self.clone();
        off_runtime(
            move || {
                let mut audit = AuthAuditRow::new(&caller, "api/auth", "reject");
                audit.detail = Some(format!("passkey login refused: {why}"));
                this.store.audit_auth(&audit).map(|_| ()).map_err(|e| SessionError::Internal(e.to_string()))
            },
            SessionError::Internal,
        )
        .await
    }

    /// A session for the API admin `login`, whose passkey sign-in (`serial`, of `login` in
    /// `realm`) the check just accepted with user verification: only when `realm` is one of
    /// the passkey realms and an API admin of that name exists. Audited either way.
    pub async fn passkey_login(
        &self,
        caller: Caller,
        login: String,
        realm: String,
        serial: String,
    ) -> Result<(String, Claims), SessionError> {
        let this = self.clone();
        off_runtime(
            move || {
                let internal = |e: &dyn std::fmt::Display| SessionError::Internal(e.to_string());
                let mut audit = AuthAuditRow::new(&caller, "api/auth", "ok");
                audit.login = Some(login.clone());
                audit.realm = Some(realm.clone());
                audit.serial = Some(serial.clone());
                let admin = this.passkey_realms.contains(&realm);
                let epoch = match admin {
                    true => this.store.api_admin_epoch(&login).map_err(|e| internal(&e))?,
                    false => None,
                };
                let Some(epoch) = epoch else {
                    audit.result = "reject".into();
                    audit.detail = Some(format!(
                        "passkey {serial} of {login} in realm {realm}: {}",
                        if admin {
                            "no API admin has this name"
                        } else {
                            "the realm is not one of webauthn.admin_realms"
                        }
                    ));
                    this.store.audit_auth(&audit).map_err(|e| internal(&e))?;
                    return Err(SessionError::WrongCredentials);
                };
                audit.detail = Some(format!("passkey {serial} of {login} in realm {realm}, user verified"));
                this.issue_session(&login, epoch, "passkey", &audit)
            },
            SessionError::Internal,
        )
        .await
    }

    /// [`Self::add_admin`] on the calling thread.
    fn add_admin_blocking(
        &self,
        caller: &Caller,
        name: &str,
        password: &SecretString,
    ) -> Result<ApiAdminView, TokenError> {
        valid_name("admin", name)?;
        if password.expose_secret().chars().count() < 12 {
            return Err(TokenError::Refused(Refusal::Invalid(
                "an API admin password has at least 12 characters".into(),
            )));
        }
        let verifier = self.secrets.api_admin_verifier(name, password.expose_secret().as_bytes())?;
        let mut audit = AuthAuditRow::new(caller, "api-admin/add", "ok");
        audit.login = Some(name.to_owned());
        let epoch = self.secrets.random(16)?;
        self.store.add_api_admin(name, &verifier, &epoch, &audit)?;
        self.store
            .api_admins()?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| TokenError::Internal("the admin just added is missing".into()))
    }

    /// [`Self::remove_admin`] on the calling thread.
    fn remove_admin_blocking(&self, caller: &Caller, name: &str) -> Result<(), TokenError> {
        let mut audit = AuthAuditRow::new(caller, "api-admin/remove", "ok");
        audit.login = Some(name.to_owned());
        Ok(self.store.remove_api_admin(name, &audit)?)
    }

    /// [`Self::revoke_sessions`] on the calling thread.
    fn revoke_sessions_blocking(&self, caller: &Caller, name: &str, action: &str) -> Result<(), TokenError> {
        let mut audit = AuthAuditRow::new(caller, action, "ok");
        audit.login = Some(name.to_owned());
        let epoch = self.secrets.random(16)?;
        Ok(self.store.new_api_admin_epoch(name, &epoch, &audit)?)
    }

    /// [`Self::admins`] on the calling thread.
    fn admins_blocking(&self) -> Result<Vec<ApiAdminView>, TokenError> {
        Ok(self.store.api_admins()?)
    }

    /// Adds API admin `name` with `password` (at least 12 characters), which is kept only as
    /// its HSM verifier.
    pub async fn add_admin(
        &self,
        caller: Caller,
        name: String,
        password: SecretString,
    ) -> Result<ApiAdminView, TokenError> {
        let this = self.clone();
        blocking(move || this.add_admin_blocking(&caller, &name, &password)).await
    }

    /// Removes API admin `name`; its sessions end with it.
    pub async fn remove_admin(&self, caller: Caller, name: String) -> Result<(), TokenError> {
        let this = self.clone();
        blocking(move || this.remove_admin_blocking(&caller, &name)).await
    }

    /// Ends every session of `name` (a new session epoch); `action` names it in the audit.
    pub async fn revoke_sessions(&self, caller: Caller, name: String, action: &'static str) -> Result<(), TokenError> {
        let this = self.clone();
        blocking(move || this.revoke_sessions_blocking(&caller, &name, action)).await
    }

    /// Every API admin (names and times, no verifier).
    pub async fn admins(&self) -> Result<Vec<ApiAdminView>, TokenError> {
        let this = self.clone();
        blocking(move || this.admins_blocking()).await
    }

    /// Creates a service account; returns its API key, shown this once.
    pub async fn add_service(
        &self,
        caller: Caller,
        name: String,
        description: String,
    ) -> Result<(ServiceAccountView, SecretString), TokenError> {
        let this = self.clone();
        blocking(move || this.add_service_blocking(&caller, &name, &description)).await
    }

    /// Removes service account `name`; its API key stops working.
    pub async fn remove_service(&self, caller: Caller, name: String) -> Result<(), TokenError> {
        let this = self.clone();
        blocking(move || this.remove_service_blocking(&caller, &name)).await
    }

    /// Every service account (names, key prefixes and times; no key or verifier).
    pub async fn services(&self) -> Result<Vec<ServiceAccountView>, TokenError> {
        let this = self.clone();
        blocking(move || this.services_blocking()).await
    }

    /// Checks `name`'s password (from `caller`, for the login throttle and the audit) and
    /// issues a session token with its claims.
    pub async fn login(
        &self,
        caller: Caller,
        name: String,
        password: SecretString,
    ) -> Result<(String, Claims), SessionError> {
        let this = self.clone();
        off_runtime(move || this.login_blocking(&caller, &name, &password), SessionError::Internal).await
    }

    /// Checks a session token: its MAC, its expiry, and that its admin still exists with the
    /// session epoch the token was issued under; its claims.
    pub async fn verify(&self, token: String) -> Result<Claims, SessionError> {
        let this = self.clone();
        off_runtime(move || this.verify_blocking(&token), SessionError::Internal).await
    }

    /// The service account an API key belongs to; `None` for a key that is not one.
    pub async fn verify_key(&self, key: String) -> Result<Option<String>, SessionError> {
        let this = self.clone();
        off_runtime(move || this.verify_key_blocking(&key), SessionError::Internal).await
    }

    /// [`Self::login`] on the calling thread.
    fn login_blocking(
        &self,
        caller: &Caller,
        name: &str,
        password: &SecretString,
    ) -> Result<(String, Claims), SessionError> {
        let internal = |e: &dyn std::fmt::Display| SessionError::Internal(e.to_string());
        let _one_at_a_time = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
        let now_ms = self.clock.now_ms();
        if let Some(wait) = self.throttle.wait_s(caller, name, now_ms).map_err(|e| internal(&e))? {
            let mut audit = AuthAuditRow::new(caller, "api/auth", "refused");
            audit.login = Some(name.to_owned());
            audit.detail = Some(format!("this client failed repeatedly; next attempt checked in {wait} s"));
            self.store.audit_auth(&audit).map_err(|e| internal(&e))?;
            return Err(SessionError::TooManyFailures(wait));
        }
        let verifier = self.store.api_admin_verifier(name).map_err(|e| internal(&e))?;
        let ok = match &verifier {
            Some(v) => self
                .secrets
                .api_admin_matches(name, password.expose_secret().as_bytes(), v)
                .map_err(|e| internal(&e))?,
            // Spend the same HSM operation for an unknown name.
            None => {
                let _ = self.secrets.api_admin_verifier(name, password.expose_secret().as_bytes());
                false
            }
        };
        let mut audit = AuthAuditRow::new(caller, "api/auth", if ok { "ok" } else { "reject" });
        audit.login = Some(name.to_owned());
        if !ok {
            audit.detail = Some(if verifier.is_some() { "wrong password".into() } else { "no such API admin".into() });
            self.throttle.failed(caller, name, now_ms).map_err(|e| internal(&e))?;
            self.store.audit_auth(&audit).map_err(|e| internal(&e))?;
            return Err(SessionError::WrongCredentials);
        }
        self.throttle.succeeded(caller, name, now_ms).map_err(|e| internal(&e))?;
        // Deleted meanwhile: no session.
        let epoch =
            self.store.api_admin_epoch(name).map_err(|e| internal(&e))?.ok_or(SessionError::WrongCredentials)?;
        self.issue_session(name, epoch, "password", &audit)
    }

    /// A session token of API admin `name` under its session `epoch`, recording the login
    /// (`audit`).
    fn issue_session(
        &self,
        name: &str,
        epoch: Vec<u8>,
        authtype: &str,
        audit: &AuthAuditRow,
    ) -> Result<(String, Claims), SessionError> {
        let internal = |e: &dyn std::fmt::Display| SessionError::Internal(e.to_string());
        let now = self.clock.now_ms() / 1000;
        let claims = Claims {
            username: name.to_owned(),
            realm: String::new(),
            role: "admin".into(),
            authtype: authtype.into(),
            iat: now,
            exp: now + SESSION_SECONDS,
            jti: hex::encode(self.secrets.random(12).map_err(|e| internal(&e))?),
            epoch: hex::encode(epoch),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|e| internal(&e))?);
        let input = format!("{header}.{body}");
        let mac = self.secrets.session_mac(input.as_bytes()).map_err(|e| internal(&e))?;
        self.store.api_admin_logged_in(name, audit).map_err(|e| internal(&e))?;
        Ok((format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac)), claims))
    }

    /// [`Self::verify`] on the calling thread.
    fn verify_blocking(&self, token: &str) -> Result<Claims, SessionError> {
        let token = token.trim().strip_prefix("Bearer ").unwrap_or(token.trim());
        let (input, mac) = token.rsplit_once('.').ok_or(SessionError::Invalid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| SessionError::Invalid)?;
        let expected = self.secrets.session_mac(input.as_bytes()).map_err(|e| SessionError::Internal(e.to_string()))?;
        if !bool::from(expected.ct_eq(&mac)) {
            return Err(SessionError::Invalid);
        }
        let body = input.split_once('.').map(|(_, b)| b).ok_or(SessionError::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(SessionError::Invalid)?;
        if claims.exp <= self.clock.now_ms() / 1000 {
            return Err(SessionError::Expired);
        }
        match self.store.api_admin_epoch(&claims.username) {
            Ok(Some(epoch)) if !epoch.is_empty() && hex::encode(&epoch) == claims.epoch => Ok(claims),
            Ok(_) => Err(SessionError::Invalid),
            Err(e) => Err(SessionError::Internal(e.to_string())),
        }
    }

    /// [`Self::add_service`] on the calling thread.
    fn add_service_blocking(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<(ServiceAccountView, SecretString), TokenError> {
        valid_name("admin", name)?;
        let prefix = hex::encode(self.secrets.random(6)?);
        let secret = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(self.secrets.random(32)?));
        let key = SecretString::from(format!("cs_{prefix}_{}", secret.as_str()));
        let verifier = self.secrets.api_admin_verifier(&format!("service:{prefix}"), key.expose_secret().as_bytes())?;
        let mut audit = AuthAuditRow::new(caller, "service-account/add", "ok");
        audit.login = Some(name.to_owned());
        audit.detail = Some(format!("key prefix {prefix}"));
        self.store.add_service_account(name, &prefix, &verifier, description, &audit)?;
        let view = self
            .store
            .service_accounts()?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| TokenError::Internal("the service account just added is missing".into()))?;
        Ok((view, key))
    }

    /// [`Self::remove_service`] on the calling thread.
    fn remove_service_blocking(&self, caller: &Caller, name: &str) -> Result<(), TokenError> {
        let mut audit = AuthAuditRow::new(caller, "service-account/remove", "ok");
        audit.login = Some(name.to_owned());
        Ok(self.store.remove_service_account(name, &audit)?)
    }

    /// [`Self::services`] on the calling thread.
    fn services_blocking(&self) -> Result<Vec<ServiceAccountView>, TokenError> {
        Ok(self.store.service_accounts()?)
    }

    /// [`Self::verify_key`] on the calling thread.
    fn verify_key_blocking(&self, key: &str) -> Result<Option<String>, SessionError> {
        let Some((prefix, _)) = key.strip_prefix("cs_").and_then(|k| k.split_once('_')) else { return Ok(None) };
        let internal = |e: &dyn std::fmt::Display| SessionError::Internal(e.to_string());
        let Some((name, verifier)) = self.store.service_account_by_prefix(prefix).map_err(|e| internal(&e))? else {
            return Ok(None);
        };
        let ok = self
            .secrets
            .api_admin_matches(&format!("service:{prefix}"), key.as_bytes(), &verifier)
            .map_err(|e| internal(&e))?;
        if !ok {
            return Ok(None);
        }
        // Bookkeeping for admins looking for unused keys, not a decision: a failure is logged.
        if let Err(e) = self.store.service_account_used(&name, self.clock.now_ms()) {
            tracing::warn!(account = %name, error = %e, "cannot record a service account's last use");
        }
        Ok(Some(name))
    }
}
