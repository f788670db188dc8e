//! Push tokens: privacyIDEA's `push` type, so the privacyIDEA Authenticator app approves a login
//! with a tap. This module owns the phone's side of the protocol (`/ttype/push`): the second
//! enrolment step, polling, the phone's signed answer, the Firebase token update; the making of
//! a push challenge (what the phone is shown, signed by the server's key in the HSM); and the
//! wait of a check with `push_wait`. The first enrolment step is the token service's
//! (`push_enrolment.rs`); the finalising check is the validation's (it reads the sealed answer
//! this module records and verifies the phone's signature again).
//!
//! Keys: the phone makes its RSA key pair and sends the public half; the server's key pair is
//! one per realm, made inside the HSM on the first enrolment in that realm (system key role
//! `push-server/<realm>`, RSA-3072, never extractable), and each token records which key it was
//! given, so a token that later changes realm keeps being signed for with the key its phone
//! holds. Both sides sign with RSA PKCS#1 v1.5 and SHA-256 and send Base32, as privacyIDEA.
//!
//! Must never: accept an answer whose signature it did not verify with the token's own phone
//! key; answer differently for an unknown serial, a wrong signature or a token in the wrong
//! state on the polling path (one answer, no oracle); hold a private key.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_core::policy::push::{AllowPolling, PushAuthPolicies, PushEnrolPolicies, PushFlavour};
use countersign_hsm::{HashAlg, Hsm, KeyAlgorithm, KeyId, SignInput, SignScheme};
use data_encoding::{BASE32, BASE32_NOPAD, BASE64};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::service_error::{blocking, off_runtime, TokenError};
use crate::store::{
    AuthAuditRow, NewPushChallenge, PushAnswer, PushChallenge, PushStatus, Store, StoreError, TokenChange, TokenRecord,
    TransactionState, CLIENTWAIT, ENROLLED, ROLLOUT_STATE,
};
use crate::token_secrets::TokenSecrets;

/// The server keys' algorithm: RSA, as the app verifies; 3072 bits (privacyIDEA makes 4096,
/// which the HSM does not offer; 3072 is NIST's 128-bit level).
pub const SERVER_KEY_ALG: KeyAlgorithm = KeyAlgorithm::Rsa3072;

/// The phone keys accepted: RSA of this many bits at least (the app makes 4096) ...
const MIN_PHONE_KEY_BITS: usize = 2048;
/// ... and at most (larger keys only cost verification time).
const MAX_PHONE_KEY_BITS: usize = 8192;

/// Bytes of a challenge's nonce: privacyIDEA's 20 random bytes, sent as 32 Base32 characters.
const NONCE_BYTES: usize = 20;

/// A poll's timestamp may be this far from the appliance's clock (privacyIDEA: one minute).
pub const POLL_WINDOW_MS: i64 = 60_000;

/// A Firebase token update's timestamp may be this far off (privacyIDEA: five minutes).
const FBTOKEN_WINDOW_MS: i64 = 300_000;

/// While a check waits for the tap (`push_wait`), how often it looks at the database besides
/// being woken by an answer on this appliance: an answer that reached another appliance of a
/// cluster is seen this late at most.
const WAIT_RECHECK: Duration = Duration::from_millis(250);

/// The token params a push token keeps (in its sealed row).
pub(crate) mod param {
    /// The enrolment credential's HSM verifier (hex), until the second step.
    pub(crate) const ENROLMENT_VERIFIER: &str = "enrollment_verifier";
    /// When the second step is too late (Unix ms): `push_ttl` after the first.
    pub(crate) const ENROLMENT_EXPIRES: &str = "enrollment_expires_ms";
    /// The phone's RSA public key, SubjectPublicKeyInfo DER in standard Base64.
    pub(crate) const PHONE_KEY: &str = "phone_key";
    /// The phone's Firebase token (empty for poll only).
    pub(crate) const FBTOKEN: &str = "fbtoken";
    /// The server key the phone was given (HSM key id, hex).
    pub(crate) const SERVER_KEY: &str = "server_key";
    /// `poll only` or the FCM gateway's name (`push_firebase_configuration` at enrolment).
    pub(crate) const DELIVERY: &str = "push_delivery";
    /// The registration URL the phone was given.
    pub(crate) const URL: &str = "registration_url";
    /// When the phone finished the enrolment (Unix ms).
    pub(crate) const ENROLLED_MS: &str = "enrolled_ms";
    /// privacyIDEA's `polling_allowed` token info (push_allow_polling `token`).
    pub(crate) const POLLING_ALLOWED: &str = "polling_allowed";
}

/// Why a phone's request was refused. The HTTP layer shapes each as privacyIDEA does.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A parameter is missing or wrong, or the token is not waiting for this step
    /// (privacyIDEA's ParameterError).
    #[error("{0}")]
    Parameter(String),
    /// No push token in the state the request needs (privacyIDEA's ResourceNotFoundError).
    #[error("{0}")]
    NotFound(String),
    /// The timestamp does not read as ISO 8601, or is outside the window.
    #[error("{0}")]
    Timestamp(String),
    /// A poll or token update whose token, signature or state did not verify: one answer for
    /// all of them, so a poll learns nothing about serials.
    #[error("Could not verify signature!")]
    Signature,
    /// `push_allow_polling` forbids polling.
    #[error("Polling not allowed!")]
    PollingDenied,
    /// The appliance could not serve (HSM, store, policy conflict).
    #[error(transparent)]
    Service(#[from] TokenError),
}

impl From<StoreError> for PushError {
    fn from(e: StoreError) -> Self {
        PushError::Service(e.into())
    }
}

impl From<countersign_hsm::HsmError> for PushError {
    fn from(e: countersign_hsm::HsmError) -> Self {
        PushError::Service(e.into())
    }
}

/// The phone's second enrolment step (`POST /ttype/push` with `enrollment_credential`).
#[derive(Debug)]
pub struct PhoneEnrolment {
    /// The endpoint it came to (`/ttype/push` or `/ttype/edupush`): only tokens of that
    /// flavour answer it.
    pub flavour: PushFlavour,
    /// The token's serial.
    pub serial: String,
    /// The credential from the enrolment URI.
    pub enrollment_credential: SecretString,
    /// The phone's public key: SubjectPublicKeyInfo DER in Base64 (URL-safe or not, as the app
    /// sends it).
    pub pubkey: String,
    /// The phone's Firebase token; empty for poll only.
    pub fbtoken: String,
    /// Who sent it (`ip:ADDR`).
    pub caller: Caller,
}

/// What the phone gets back from its second step.
#[derive(Debug, Clone)]
pub struct PhoneEnrolled {
    /// The token's serial.
    pub serial: String,
    /// The server's public key: PKCS#1 `RSAPublicKey` DER in Base64, in lines of 64 (the body
    /// of privacyIDEA's PEM), as the app reads it.
    pub public_key: String,
}

/// A phone's poll (`GET /ttype/push`).
#[derive(Debug)]
pub struct PhonePoll {
    /// The endpoint it came to (`/ttype/push` or `/ttype/edupush`): only tokens of that
    /// flavour answer it.
    pub flavour: PushFlavour,
    /// The token's serial.
    pub serial: String,
    /// The phone's time, ISO 8601, as it signed it.
    pub timestamp: String,
    /// Base32 signature over `serial|timestamp`.
    pub signature: String,
    /// Who sent it.
    pub caller: Caller,
}

/// A phone's answer to a challenge (`POST /ttype/push` with `signature`).
#[derive(Debug)]
pub struct PhoneAnswer {
    /// The endpoint it came to (`/ttype/push` or `/ttype/edupush`): only tokens of that
    /// flavour answer it.
    pub flavour: PushFlavour,
    /// The token's serial.
    pub serial: String,
    /// The challenge's nonce, as the app sends it; `None`: any open challenge of the token.
    pub nonce: Option<String>,
    /// Base32 signature over `nonce|serial` (`|decline`, `|presence_answer`).
    pub signature: String,
    /// The user declined.
    pub decline: bool,
    /// Number matching: the option the user tapped.
    pub presence_answer: Option<String>,
    /// Who sent it.
    pub caller: Caller,
}

/// A phone's Firebase token update (`POST /ttype/push` with `new_fb_token`).
#[derive(Debug)]
pub struct FbTokenUpdate {
    /// The endpoint it came to (`/ttype/push` or `/ttype/edupush`): only tokens of that
    /// flavour answer it.
    pub flavour: PushFlavour,
    /// The token's serial.
    pub serial: String,
    /// The new Firebase token.
    pub new_fb_token: String,
    /// The phone's time, ISO 8601.
    pub timestamp: String,
    /// Base32 signature over `new_fb_token|serial|timestamp`.
    pub signature: String,
    /// Who sent it.
    pub caller: Caller,
}

/// What the first step answers: the URI for the app (it carries the credential) and the
/// credential alone, both shown once.
#[derive(Debug)]
pub struct PushEnrolment {
    /// privacyIDEA's or eduMFA's description of the URI.
    pub description: &'static str,
    /// `otpauth://pipush/LABEL?url=...&ttl=...&issuer=...&enrollment_credential=...&v=1&serial=...`.
    pub uri: SecretString,
    /// The enrolment credential (hex).
    pub credential: SecretString,
    /// Minutes left for the phone's step.
    pub ttl_min: u32,
}

/// A push challenge just made: what the login client and the phone get.
#[derive(Debug, Clone)]
pub struct PushMade {
    /// The `challenge` row's id.
    pub challenge_id: i64,
    /// The message to the login client.
    pub message: String,
    /// Number matching: the option the login screen shows (privacyIDEA's `presence_answer`).
    pub presence_answer: Option<String>,
    /// What the phone is shown, signed (privacyIDEA's smartphone data), as strings: what an
    /// FCM message carries.
    pub smartphone: std::collections::BTreeMap<String, String>,
}

/// Number matching's options for one trigger: shared by every push token of the trigger, as
/// privacyIDEA shares them, so the one option the login screen shows is right on every phone.
#[derive(Debug, Clone, Default)]
pub struct Presence(Option<(Vec<String>, String)>);

/// The push protocol's phone side and the making of push challenges. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PushService {
    hsm: Hsm,
    store: Arc<Store>,
    secrets: TokenSecrets,
    policies: Arc<crate::policy::PolicyHandle>,
    clock: Clock,
    /// Woken whenever a phone answers on this appliance (checks waiting with `push_wait`).
    answered: Arc<tokio::sync::Notify>,
}

/// The text the phone signs when answering.
pub fn answer_message(nonce: &str, serial: &str, decline: bool, presence_answer: Option<&str>) -> String {
    let mut m = format!("{nonce}|{serial}");
    if decline {
        m.push_str("|decline");
    }
    if let Some(p) = presence_answer {
        m.push('|');
        m.push_str(p);
    }
    m
}

/// The text the server signs for the phone: `nonce|url|serial|question|title|sslverify`, and
/// `|require_presence` with number matching (privacyIDEA's version 2).
pub fn smartphone_message(data: &std::collections::BTreeMap<String, String>) -> String {
    let f = |k: &str| data.get(k).map(String::as_str).unwrap_or_default();
    let mut m = [f("nonce"), f("url"), f("serial"), f("question"), f("title"), f("sslverify")].join("|");
    if let Some(p) = data.get("require_presence") {
        m.push('|');
        m.push_str(p);
    }
    m
}

/// Base32 as privacyIDEA writes it (padded).
fn base32(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

/// Base32 as phones send it: padded or not, any case.
fn from_base32(s: &str) -> Option<Vec<u8>> {
    let s: String = s.trim().trim_end_matches('=').to_ascii_uppercase();
    BASE32_NOPAD.decode(s.as_bytes()).ok()
}

/// A public key as the app sends it: Base64 of the DER, URL-safe or not, padded or not, with
/// or without PEM lines.
fn phone_key_der(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let body = body.trim_end_matches('=');
    let padded = format!("{body}{}", "=".repeat((4 - body.len() % 4) % 4));
    BASE64.decode(padded.as_bytes()).ok()
}

/// Verifies a phone's signature over `message` with the phone key a token holds.
fn phone_signed(t: &TokenRecord, message: &str, signature: &str) -> bool {
    let Some(key) =
        t.params.get(param::PHONE_KEY).and_then(Value::as_str).and_then(|k| BASE64.decode(k.as_bytes()).ok())
    else {
        return false;
    };
    let Some(sig) = from_base32(signature) else { return false };
    countersign_pki::verify_rsa_sha256(&key, message.as_bytes(), &sig).is_ok()
}

/// Whether the phone's answer recorded with `c` verifies with `t`'s phone key: what the
/// finalising check asks again, so a status written into the database without the phone's
/// signature (or with one over another challenge) is not an accept.
pub fn answer_verifies(t: &TokenRecord, c: &PushChallenge) -> bool {
    let Some(sig) = &c.answer_signature else { return false };
    let decline = c.status == PushStatus::Declined;
    let presence = c.presence_answer.as_deref().filter(|_| !decline);
    c.token_id == t.id && phone_signed(t, &answer_message(&c.nonce, &t.serial, decline, presence), sig)
}

/// Whether `t` is a push token of `flavour` (a request to one endpoint reaches only tokens of
/// its flavour, as in privacyIDEA and eduMFA).
fn is_push(t: &TokenRecord, flavour: PushFlavour) -> bool {
    t.token_type == flavour.token_type()
}

/// Whether tokens of this type are push tokens (either flavour).
pub fn is_push_type(token_type: &str) -> bool {
    PushFlavour::of_type(token_type).is_some()
}

/// Whether a token's `polling_allowed` lets its phone poll: when it is not set, or says true
/// (privacyIDEA's `is_true`: `1`, `True`, `true`, `TRUE`); any other value keeps the phone out,
/// as in privacyIDEA.
fn polling_allowed(params: &Value) -> bool {
    match params.get(param::POLLING_ALLOWED) {
        None | Some(Value::Null) => true,
        Some(v) => countersign_core::truth::truth(v) == Some(true),
    }
}

/// A push token's params with its `polling_allowed` set (`Some`) or removed (`None`: the phone
/// may poll, as privacyIDEA reads a token without the info).
pub(crate) fn with_polling_allowed(params: &Value, allowed: Option<bool>) -> Value {
    let mut params = params.clone();
    // A push token's params are an object from its enrolment on.
    if let Some(map) = params.as_object_mut() {
        match allowed {
            Some(a) => {
                map.insert(param::POLLING_ALLOWED.into(), Value::Bool(a));
            }
            None => {
                map.remove(param::POLLING_ALLOWED);
            }
        }
    }
    params
}

/// The flavour of push token `t` (privacyIDEA's when the type is not a push type, which the
/// callers rule out first).
fn flavour_of(t: &TokenRecord) -> PushFlavour {
    PushFlavour::of_type(&t.token_type).unwrap_or(PushFlavour::Push)
}

impl PushService {
    /// The service.
    pub fn new(
        hsm: Hsm,
        store: Arc<Store>,
        secrets: TokenSecrets,
        policies: Arc<crate::policy::PolicyHandle>,
        clock: Clock,
    ) -> PushService {
        PushService { hsm, store, secrets, policies, clock, answered: Arc::default() }
    }

    fn audit(&self, caller: &Caller, action: &str, result: &str, t: &TokenRecord, detail: String) -> AuthAuditRow {
        AuthAuditRow {
            at_ms: self.clock.now_ms(),
            serial: Some(t.serial.clone()),
            login: t.login.clone(),
            realm: t.realm.clone(),
            detail: Some(detail),
            ..AuthAuditRow::new(caller, action, result)
        }
    }

    /// Writes the audit row of a refusal; a failure to write it is logged (the refusal stands).
    fn refused(&self, caller: &Caller, action: &str, t: &TokenRecord, why: &str) {
        if let Err(e) = self.store.audit_auth(&self.audit(caller, action, "refused", t, why.to_owned())) {
            tracing::error!(error = %e, serial = %t.serial, "cannot audit a refused push request");
        }
    }

    /// The server key of `realm` (made in the HSM on first use) and its public key, DER.
    fn server_key(&self, realm: &str) -> Result<(KeyId, Vec<u8>), TokenError> {
        let role = format!("push-server/{realm}");
        let id = crate::system_keys::key_pair(&self.hsm, &self.store, &role, SERVER_KEY_ALG).map_err(|e| match e {
            crate::system_keys::SystemKeyError::Hsm(e) => TokenError::Hsm(e),
            crate::system_keys::SystemKeyError::Store(e) => e.into(),
            other => TokenError::Internal(other.to_string()),
        })?;
        let public = self.hsm.public_key(&id, SERVER_KEY_ALG)?.to_spki_der()?;
        Ok((id, public))
    }

    /// The phone's second enrolment step: the credential from the URI, within `push_ttl`;
    /// the phone's key is kept and the realm's server key given.
    pub async fn enrol(&self, r: PhoneEnrolment) -> Result<PhoneEnrolled, PushError> {
        let svc = self.clone();
        off_runtime(move || svc.enrol_blocking(r), task_failed).await
    }

    fn enrol_blocking(&self, r: PhoneEnrolment) -> Result<PhoneEnrolled, PushError> {
        const ACTION: &str = "push/enrol";
        let not_waiting =
            || PushError::NotFound("No token with this serial number in the rollout state 'clientwait'.".into());
        let t = match self.store.token(&r.serial) {
            Ok(t) if is_push(&t, r.flavour) => t,
            Ok(_) | Err(StoreError::Refused(Refusal::NotFound(_))) => return Err(not_waiting()),
            Err(e) => return Err(e.into()),
        };
        if t.rollout_state() != CLIENTWAIT || t.revoked {
            self.refused(&r.caller, ACTION, &t, "the token is not waiting for its phone (already enrolled?)");
            return Err(not_waiting());
        }
        let verifier =
            t.params.get(param::ENROLMENT_VERIFIER).and_then(Value::as_str).and_then(|h| hex::decode(h).ok());
        let given = self.secrets.value_verifier(
            "push-enrolment",
            &t.serial,
            r.enrollment_credential.expose_secret().as_bytes(),
        )?;
        if !verifier.is_some_and(|v| bool::from(v.ct_eq(&given))) {
            self.refused(&r.caller, ACTION, &t, "wrong enrolment credential");
            return Err(PushError::Parameter(
                "Invalid enrollment credential. You are not authorized to finalize this token.".into(),
            ));
        }
        let now = self.clock.now_ms();
        let expires = t.params.get(param::ENROLMENT_EXPIRES).and_then(Value::as_i64).unwrap_or(0);
        if now >= expires {
            self.refused(&r.caller, ACTION, &t, "the enrolment's time (push_ttl) had run out");
            return Err(PushError::Parameter(format!(
                "The enrollment of token {} expired (push_ttl); enroll the token again.",
                t.serial
            )));
        }
        let key = phone_key_der(&r.pubkey).and_then(|der| {
            let bits = countersign_pki::rsa_key_bits(&der).ok()?;
            (MIN_PHONE_KEY_BITS..=MAX_PHONE_KEY_BITS).contains(&bits).then_some((der, bits))
        });
        let Some((phone_key, bits)) = key else {
            self.refused(&r.caller, ACTION, &t, "the phone's public key is not an RSA key of 2048 to 8192 bits");
            return Err(PushError::Parameter(format!(
                "the public key is not a Base64 SubjectPublicKeyInfo of an RSA key of {MIN_PHONE_KEY_BITS} to \
                 {MAX_PHONE_KEY_BITS} bits"
            )));
        };
        let realm = t.realm.clone().unwrap_or_default();
        let (server_key, server_public) = self.server_key(&realm)?;
        let phone_key_b64 = BASE64.encode(&phone_key);
        let (fbtoken, server_hex) = (r.fbtoken.clone(), server_key.to_hex());
        let enrolled = move |row: &TokenRecord| {
            let mut params = row.params.clone();
            if let Some(o) = params.as_object_mut() {
                o.remove(param::ENROLMENT_VERIFIER);
                o.remove(param::ENROLMENT_EXPIRES);
                o.insert(ROLLOUT_STATE.into(), ENROLLED.into());
                o.insert(param::PHONE_KEY.into(), phone_key_b64.into());
                o.insert(param::FBTOKEN.into(), fbtoken.into());
                o.insert(param::SERVER_KEY.into(), server_hex.into());
                o.insert(param::ENROLLED_MS.into(), now.into());
            }
            params
        };
        let mut audit = self.audit(
            &r.caller,
            ACTION,
            "ok",
            &t,
            format!(
                "phone enrolled: RSA key of {bits} bits, {}, server key {}",
                if r.fbtoken.is_empty() { "poll only" } else { "with a Firebase token" },
                server_key.to_hex()
            ),
        );
        audit.at_ms = now;
        let seen_verifier = t.params.get(param::ENROLMENT_VERIFIER).cloned();
        self.store.change_token(&t.serial, &audit, move |now_row| {
            // The second step runs once: a concurrent one that got here first changed the row.
            if now_row.rollout_state() != CLIENTWAIT
                || now_row.params.get(param::ENROLMENT_VERIFIER) != seen_verifier.as_ref()
            {
                return Err(StoreError::Refused(Refusal::Invalid(
                    "No token with this serial number in the rollout state 'clientwait'.".into(),
                )));
            }
            Ok(vec![TokenChange::SetParams(enrolled(now_row))])
        })?;
        // The app reads the server's key as PKCS#1, in PEM's lines (privacyIDEA's form).
        let pkcs1 = countersign_pki::rsa_pkcs1_public_key(&server_public)
            .map_err(|e| TokenError::Internal(format!("the push server key: {e}")))?;
        let text = BASE64.encode(&pkcs1);
        let lines: Vec<&str> = text.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        Ok(PhoneEnrolled { serial: t.serial, public_key: lines.join("\n") })
    }

    /// Loads the push token a signed phone request names and verifies the signature over
    /// `message`; every failure is [`PushError::Signature`], audited when the token exists.
    fn signed_request(
        &self,
        flavour: PushFlavour,
        serial: &str,
        message: &str,
        signature: &str,
        caller: &Caller,
        action: &str,
    ) -> Result<TokenRecord, PushError> {
        let t = match self.store.token(serial) {
            Ok(t) if is_push(&t, flavour) => t,
            // Unknown serials are not audited: anyone can send them, and a row each would let
            // them fill the audit.
            Ok(_) | Err(StoreError::Refused(Refusal::NotFound(_))) => return Err(PushError::Signature),
            Err(e) => return Err(e.into()),
        };
        if t.rollout_state() != ENROLLED || t.revoked {
            self.refused(caller, action, &t, "the token's phone has not finished the enrolment, or it is revoked");
            return Err(PushError::Signature);
        }
        if !phone_signed(&t, message, signature) {
            self.refused(caller, action, &t, "the phone's signature does not verify");
            return Err(PushError::Signature);
        }
        Ok(t)
    }

    /// Reads a phone's timestamp and checks it is within `window_ms` of the appliance's clock.
    fn timestamp(&self, text: &str, window_ms: i64) -> Result<(), PushError> {
        let at = countersign_core::dates::parse(text)
            .ok_or_else(|| PushError::Timestamp(format!("Could not parse timestamp {text}. ISO-Format required.")))?;
        let now = self.clock.now_ms();
        if (at - now).abs() > window_ms {
            return Err(PushError::Timestamp(format!("Timestamp {text} not in valid range.")));
        }
        Ok(())
    }

    /// A phone's poll: its open challenges, as it is shown them (signed by the server key).
    pub async fn poll(&self, r: PhonePoll) -> Result<Vec<Value>, PushError> {
        let svc = self.clone();
        off_runtime(move || svc.poll_blocking(r), task_failed).await
    }

    fn poll_blocking(&self, r: PhonePoll) -> Result<Vec<Value>, PushError> {
        const ACTION: &str = "push/poll";
        let message = format!("{}|{}", r.serial, r.timestamp);
        let t = self.signed_request(r.flavour, &r.serial, &message, &r.signature, &r.caller, ACTION)?;
        if let Err(e) = self.timestamp(&r.timestamp, POLL_WINDOW_MS) {
            self.refused(
                &r.caller,
                ACTION,
                &t,
                &format!("the poll's timestamp {} is not within a minute", r.timestamp),
            );
            return Err(e);
        }
        let now = self.clock.now_ms();
        let policies = self.auth_policies(&t, &r.caller)?;
        let allowed = match policies.allow_polling {
            AllowPolling::Allow => true,
            AllowPolling::Deny => false,
            AllowPolling::Token => polling_allowed(&t.params),
        };
        if !allowed {
            self.refused(&r.caller, ACTION, &t, "polling is not allowed (push_allow_polling)");
            return Err(PushError::PollingDenied);
        }
        self.store.push_polled(t.id, now)?;
        let open = self.store.open_push_challenges(t.id, now)?;
        let mut out = Vec::with_capacity(open.len());
        for c in &open {
            let data: Value = serde_json::from_str(&c.payload)
                .map_err(|e| TokenError::Internal(format!("a push challenge's payload does not read: {e}")))?;
            out.push(data);
        }
        // A poll that succeeds is not audited: the app polls every few seconds while a request
        // is open, and the row per poll would bury the answers; `push_device` keeps the last
        // poll for the help desk, and every refused poll is audited.
        Ok(out)
    }

    /// The phone's answer to one of its open challenges: accepted, declined, or (number
    /// matching) the wrong option, which declines it. `Ok(true)` when a challenge took the
    /// answer as privacyIDEA says it (a decline too); `Ok(false)` when none did.
    pub async fn answer(&self, r: PhoneAnswer) -> Result<bool, PushError> {
        let svc = self.clone();
        let out = off_runtime(move || svc.answer_blocking(r), task_failed).await;
        self.answered.notify_waiters();
        out
    }

    fn answer_blocking(&self, r: PhoneAnswer) -> Result<bool, PushError> {
        const ACTION: &str = "push/answer";
        let t = match self.store.token(&r.serial) {
            Ok(t) if is_push(&t, r.flavour) => t,
            Ok(_) | Err(StoreError::Refused(Refusal::NotFound(_))) => {
                return Err(PushError::NotFound("The requested token could not be found.".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now_ms();
        if t.rollout_state() != ENROLLED || t.revoked {
            self.refused(&r.caller, ACTION, &t, "the token's phone has not finished the enrolment, or it is revoked");
            return Ok(false);
        }
        let presence = r.presence_answer.as_deref().filter(|p| !p.is_empty());
        // The app names the challenge it answers; without a nonce (privacyIDEA does not read
        // it) every open challenge of the token is tried.
        let open: Vec<PushChallenge> = self
            .store
            .open_push_challenges(t.id, now)?
            .into_iter()
            .filter(|c| r.nonce.as_deref().is_none_or(|n| n == c.nonce))
            .collect();
        let signed = |c: &PushChallenge| {
            phone_signed(&t, &answer_message(&c.nonce, &t.serial, r.decline, presence), &r.signature)
        };
        let Some(c) = open.iter().find(|c| signed(c)) else {
            // Say why in the audit: a signature over a challenge already answered is a replay.
            let why = match self.store.push_challenge_by_signature(t.id, &r.signature)? {
                Some(_) => "a replayed answer: its challenge was answered already",
                None => "the signature verifies for none of the token's open challenges",
            };
            self.refused(&r.caller, ACTION, &t, why);
            return Ok(false);
        };
        let (status, reason, result) = if r.decline {
            (PushStatus::Declined, Some("declined on the phone".to_owned()), true)
        } else {
            match (&c.presence_answer, presence) {
                (None, None) => (PushStatus::Accepted, None, true),
                (Some(want), Some(got)) if want == got => (PushStatus::Accepted, None, true),
                // A wrong tap declines: trying the other options one by one would defeat
                // number matching (privacyIDEA leaves the challenge open).
                (Some(_), _) => {
                    (PushStatus::Declined, Some("the wrong option was tapped (number matching)".into()), false)
                }
                (None, Some(_)) => {
                    self.refused(&r.caller, ACTION, &t, "an option was sent for a challenge without number matching");
                    return Ok(false);
                }
            }
        };
        let answer = PushAnswer { status, reason: reason.clone(), signature: r.signature.clone(), at_ms: now };
        let detail = match &reason {
            Some(why) => format!("challenge {} declined: {why}", c.transaction_id),
            None => format!("challenge {} accepted on the phone", c.transaction_id),
        };
        let audit =
            self.audit(&r.caller, ACTION, if status == PushStatus::Accepted { "ok" } else { "declined" }, &t, detail);
        if !self.store.answer_push_challenge(c, &answer, &audit)? {
            self.refused(&r.caller, ACTION, &t, "the challenge was answered, used or expired meanwhile");
            return Ok(false);
        }
        Ok(result)
    }

    /// The phone's new Firebase token.
    pub async fn update_fbtoken(&self, r: FbTokenUpdate) -> Result<(), PushError> {
        let svc = self.clone();
        off_runtime(move || svc.update_fbtoken_blocking(r), task_failed).await
    }

    fn update_fbtoken_blocking(&self, r: FbTokenUpdate) -> Result<(), PushError> {
        const ACTION: &str = "push/fbtoken";
        // As privacyIDEA: the timestamp first, then one answer for every other failure.
        self.timestamp(&r.timestamp, FBTOKEN_WINDOW_MS)?;
        let message = format!("{}|{}|{}", r.new_fb_token, r.serial, r.timestamp);
        let t = self.signed_request(r.flavour, &r.serial, &message, &r.signature, &r.caller, ACTION)?;
        let audit = self.audit(&r.caller, ACTION, "ok", &t, "the phone's Firebase token changed".into());
        let new_fb_token = r.new_fb_token;
        self.store.change_token(&t.serial, &audit, move |row| {
            let mut params = row.params.clone();
            if let Some(o) = params.as_object_mut() {
                o.insert(param::FBTOKEN.into(), new_fb_token.into());
            }
            Ok(vec![TokenChange::SetParams(params)])
        })?;
        Ok(())
    }

    /// How the push challenges of a transaction stand (`/validate/polltransaction`).
    pub async fn transaction_state(&self, transaction_id: String) -> Result<TransactionState, TokenError> {
        let svc = self.clone();
        blocking(move || Ok(svc.store.push_transaction_state(&transaction_id, svc.clock.now_ms())?)).await
    }

    /// Waits up to `wait` for a phone to answer a push challenge of `transaction_id`: woken by
    /// an answer on this appliance, and looking at the database every
    /// [`WAIT_RECHECK`] for answers that reached another one.
    pub async fn wait_for_answer(&self, transaction_id: &str, wait: Duration) -> TransactionState {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let woken = self.answered.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.transaction_state(transaction_id.to_owned()).await {
                Ok(TransactionState::Pending) => {}
                Ok(done) => return done,
                // The finalising check that follows reports the failure.
                Err(_) => return TransactionState::Pending,
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return TransactionState::Pending;
            }
            let nap = WAIT_RECHECK.min(deadline - now);
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// The authentication policies for a challenge, poll or check of `t`.
    pub(crate) fn auth_policies(&self, t: &TokenRecord, caller: &Caller) -> Result<PushAuthPolicies, TokenError> {
        let ctx = crate::policy::token_context(t, caller, self.clock.now_ms() / 1000);
        PushAuthPolicies::read(&self.policies.current(), &ctx, flavour_of(t))
            .map_err(|e| TokenError::Refused(Refusal::Invalid(format!("policy conflict, refused: {e}"))))
    }

    /// The enrollment policies for a push token of `login` in `realm`.
    pub(crate) fn enrol_policies(
        &self,
        caller: &Caller,
        login: &str,
        realm: Option<&str>,
        flavour: PushFlavour,
    ) -> Result<PushEnrolPolicies, TokenError> {
        let ctx = crate::policy::request_context(Some(login), realm, None, caller, self.clock.now_ms() / 1000);
        PushEnrolPolicies::read(&self.policies.current(), &ctx, flavour)
            .map_err(|e| TokenError::Refused(Refusal::Invalid(format!("policy conflict, refused: {e}"))))
    }

    /// Makes a push challenge of token `t` in transaction `transaction_id`: a nonce from the
    /// HSM, what the phone is shown (signed by the token's server key in the HSM), number
    /// matching's options (shared through `presence` by the trigger's push tokens), stored
    /// sealed.
    pub(crate) fn challenge(
        &self,
        t: &TokenRecord,
        transaction_id: &str,
        now_ms: i64,
        expires_ms: i64,
        caller: &Caller,
        presence: &mut Presence,
    ) -> Result<PushMade, TokenError> {
        if t.rollout_state() != ENROLLED {
            return Err(TokenError::Refused(Refusal::Invalid(format!(
                "{} token {} has not been enrolled on a phone yet",
                t.token_type, t.serial
            ))));
        }
        let policies = self.auth_policies(t, caller)?;
        let nonce = base32(&self.secrets.random(NONCE_BYTES)?);
        let url = match t.login.as_deref() {
            Some(login) => self.enrol_policies(caller, login, t.realm.as_deref(), flavour_of(t))?.registration_url,
            None => None,
        }
        .or_else(|| t.params.get(param::URL).and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
        let question = policies
            .mobile_text
            .replace("{serial}", &t.serial)
            .replace("{user}", t.login.as_deref().unwrap_or_default())
            .replace("{realm}", t.realm.as_deref().unwrap_or_default())
            .replace("{client_ip}", &caller.client().map(|ip| ip.to_string()).unwrap_or_default())
            .replace("{tokentype}", &t.token_type);
        let mut data = std::collections::BTreeMap::new();
        data.insert("nonce".to_owned(), nonce.clone());
        data.insert("question".to_owned(), question);
        data.insert("serial".to_owned(), t.serial.clone());
        data.insert("title".to_owned(), policies.mobile_title.clone());
        data.insert("sslverify".to_owned(), if policies.ssl_verify { "1" } else { "0" }.to_owned());
        data.insert("url".to_owned(), url);
        let answer = if policies.require_presence {
            let (options, right) = match &presence.0 {
                Some(p) => p.clone(),
                None => {
                    let chosen = self.choose_options(&policies)?;
                    presence.0 = Some(chosen.clone());
                    chosen
                }
            };
            data.insert("require_presence".to_owned(), options.join(","));
            data.insert("version".to_owned(), "2".to_owned());
            Some(right)
        } else {
            None
        };
        let key_hex = t.params.get(param::SERVER_KEY).and_then(Value::as_str).unwrap_or_default();
        let key = KeyId::from_hex(key_hex)
            .map_err(|e| TokenError::Internal(format!("push token {} names no usable server key: {e}", t.serial)))?;
        let signature = self.hsm.sign(
            &key,
            SERVER_KEY_ALG,
            SignScheme::RsaPkcs1v15,
            HashAlg::Sha256,
            SignInput::Message(smartphone_message(&data).as_bytes()),
        )?;
        data.insert("signature".to_owned(), base32(&signature));
        let payload = serde_json::to_string(&data).map_err(|e| TokenError::Internal(e.to_string()))?;
        let challenge_id = self.store.create_push_challenge(&NewPushChallenge {
            token_id: t.id,
            transaction_id,
            nonce: &nonce,
            now_ms,
            expires_ms,
            payload: &payload,
            presence_answer: answer.as_deref(),
        })?;
        Ok(PushMade { challenge_id, message: policies.challenge_text, presence_answer: answer, smartphone: data })
    }

    /// Where a push challenge of `t` is also sent: the phone's Firebase token, when the token
    /// was enrolled with an FCM gateway (`push_firebase_configuration`) and the phone gave one.
    pub(crate) fn firebase_recipient(t: &TokenRecord) -> Option<String> {
        let delivery = t.params.get(param::DELIVERY).and_then(Value::as_str).unwrap_or_default();
        let fbtoken = t.params.get(param::FBTOKEN).and_then(Value::as_str).unwrap_or_default();
        (countersign_core::policy::push::PushDelivery::parse(delivery)
            != countersign_core::policy::push::PushDelivery::PollOnly
            && !fbtoken.is_empty())
        .then(|| fbtoken.to_owned())
    }

    /// Number matching: `presence_count` different options drawn with the HSM's randomness,
    /// and one of them the right one.
    fn choose_options(&self, p: &PushAuthPolicies) -> Result<(Vec<String>, String), TokenError> {
        let mut pool = p.presence_options.all();
        let mut chosen = Vec::with_capacity(p.presence_count);
        let random = self.secrets.random(2 * (p.presence_count + 1))?;
        let mut draws = random.chunks_exact(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])));
        while chosen.len() < p.presence_count && !pool.is_empty() {
            let i = draws.next().unwrap_or(0) % pool.len();
            chosen.push(pool.swap_remove(i));
        }
        let right = chosen.get(draws.next().unwrap_or(0) % chosen.len().max(1)).cloned().unwrap_or_default();
        Ok((chosen, right))
    }
}

/// Where the phone of push token `t` stands at `now_ms`, for the help desk: waiting (until
/// when), the enrolment expired, or enrolled (when, how challenges reach it, when it last
/// polled and answered).
/// `seen` is when the phone last polled and answered ([`Store::push_last_seen`]).
pub fn state_of(t: &TokenRecord, seen: crate::store::LastSeen, now_ms: i64) -> countersign_api::PushState {
    let (last_poll_ms, last_answer_ms) = seen;
    let expires = t.params.get(param::ENROLMENT_EXPIRES).and_then(Value::as_i64);
    let state = match (t.rollout_state(), expires) {
        (ENROLLED, _) => "enrolled",
        (_, Some(e)) if now_ms >= e => "enrolment expired",
        _ => "waiting for the phone",
    };
    countersign_api::PushState {
        state: state.to_owned(),
        enrolment_expires_ms: expires.filter(|_| state != "enrolled"),
        enrolled_ms: t.params.get(param::ENROLLED_MS).and_then(Value::as_i64),
        delivery: t
            .params
            .get(param::DELIVERY)
            .and_then(Value::as_str)
            .unwrap_or(countersign_core::policy::push::POLL_ONLY)
            .to_owned(),
        last_poll_ms,
        last_answer_ms,
        polling_allowed: polling_allowed(&t.params),
    }
}

/// A phone request's blocking task that failed (it panicked or was cancelled).
fn task_failed(e: String) -> PushError {
    PushError::Service(TokenError::Internal(format!("a push request's task failed: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn polling_allowed_reads_as_privacyidea_and_is_set_and_removed() {
        use serde_json::json;
        assert!(super::polling_allowed(&json!({})));
        for yes in [json!(true), json!(1), json!("1"), json!("True"), json!("true"), json!("TRUE")] {
            assert!(super::polling_allowed(&json!({ "polling_allowed": yes })), "{yes}");
        }
        for no in [json!(false), json!(0), json!("False"), json!("no"), json!("yes"), json!([])] {
            assert!(!super::polling_allowed(&json!({ "polling_allowed": no })), "{no}");
        }
        let p = json!({"pubkey": "k"});
        let off = super::with_polling_allowed(&p, Some(false));
        assert_eq!(off, json!({"pubkey": "k", "polling_allowed": false}));
        assert!(!super::polling_allowed(&off));
        let back = super::with_polling_allowed(&off, None);
        assert_eq!(back, p);
        assert!(super::polling_allowed(&back));
    }

    #[test]
    fn the_signed_texts_are_privacyideas() {
        assert_eq!(answer_message("N", "PIPU1", false, None), "N|PIPU1");
        assert_eq!(answer_message("N", "PIPU1", true, None), "N|PIPU1|decline");
        assert_eq!(answer_message("N", "PIPU1", false, Some("B")), "N|PIPU1|B");
        let mut d = std::collections::BTreeMap::new();
        for (k, v) in [
            ("nonce", "N"),
            ("url", "https://x/ttype/push"),
            ("serial", "S"),
            ("question", "Q?"),
            ("title", "T"),
            ("sslverify", "1"),
        ] {
            d.insert(k.to_owned(), v.to_owned());
        }
        assert_eq!(smartphone_message(&d), "N|https://x/ttype/push|S|Q?|T|1");
        d.insert("require_presence".into(), "A,B,C".into());
        assert_eq!(smartphone_message(&d), "N|https://x/ttype/push|S|Q?|T|1|A,B,C");
    }

    #[test]
    fn keys_and_signatures_read_as_phones_write_them() {
        assert_eq!(from_base32("mzxw6==="), Some(b"foo".to_vec()));
        assert_eq!(from_base32("MZXW6"), Some(b"foo".to_vec()));
        assert_eq!(from_base32("not base32!"), None);
        // URL-safe Base64 without padding, and PEM with its lines.
        assert_eq!(phone_key_der("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(
            phone_key_der("-----BEGIN PUBLIC KEY-----\n+/8=\n-----END PUBLIC KEY-----\n"),
            Some(vec![0xfb, 0xff])
        );
    }
}
