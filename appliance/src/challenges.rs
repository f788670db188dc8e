//! Challenge-response for tokens whose codes the appliance sends (sms, email): creating
//! challenges, and delivering their messages durably through the gateways of the token
//! type's failover route. Certificate tokens (PIV cards) get a challenge too: a random nonce
//! their card signs, with nothing to deliver.
//!
//! A trigger reserves each token's next HOTP counter (a challenge of its own), asks the token's
//! plugin for the code and message, seals the message into the delivery queue, and waits up to
//! `challenge.delivery_wait_ms` for the first delivery round. A round tries the route's
//! gateways in order until one delivers; when all fail, the delivery stays queued and a
//! background sender retries it with backoff until the challenge expires. Failures are recorded
//! per attempt, never silent, and never an accept.
//!
//! It never logs a code or a message text; queued texts are sealed by the HSM.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use countersign_plugin_abi::protocol::{OutgoingMessage, PluginRequest, PluginResponse};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::gateways::GatewayService;
use crate::plugins::PluginHost;
use crate::service_error::{blocking, TokenError};
use crate::store::{AttemptRow, AuthAuditRow, RoundOutcome, Store, TokenRecord};
use crate::token_host::{call_for_token, secret_ref};
use crate::token_secrets::TokenSecrets;

/// Variables a challenge's message template may use: what this service fills in (the
/// configuration checks templates against them).
pub const TEMPLATE_VARIABLES: &[&str] = &["otp", "serial", "user", "realm", "transaction_id"];

/// Challenge codes sent by SMS or e-mail and their delivery: resolved values, read from the
/// configuration by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeSettings {
    /// How long a challenge's code is valid.
    pub validity: Duration,
    /// How long a request waits for the first delivery round before it answers (the delivery
    /// goes on in the background either way).
    pub delivery_wait: Duration,
    /// The SMS text template (an `smstext` policy may replace it for a user), using only
    /// [`TEMPLATE_VARIABLES`].
    pub sms_text: String,
    /// The e-mail subject template, with the same variables.
    pub email_subject: String,
    /// The e-mail text template (an `emailtext` policy may replace it for a user), with the
    /// same variables.
    pub email_text: String,
    /// How long finished deliveries stay listed.
    pub keep_deliveries: Duration,
    /// Time between runs of the job that removes expired challenges and old deliveries; a
    /// second at least is used.
    pub cleanup_interval: Duration,
}

pub use countersign_core::token_kind::{is_challenge_type, is_otp_type};

use crate::simple_tokens::DEFAULT_POSITIONS;

/// The most usernameless sign-ins open at a time: each is a row that a request without any
/// credential makes, kept until it expires.
pub const MAX_OPEN_SIGN_INS: i64 = 100_000;

/// Bytes of a certificate token's nonce (as many as a WebAuthn challenge's).
const NONCE_LEN: usize = 32;

/// Waits between delivery rounds: 5 s, 15 s, 30 s, then every 60 s until the challenge expires.
fn retry_after(attempt_rounds: u32) -> Duration {
    Duration::from_secs(match attempt_rounds {
        0 | 1 => 5,
        2 => 15,
        3 => 30,
        _ => 60,
    })
}

/// What a caller learns about one challenge.
#[derive(Debug, Clone, Serialize)]
pub struct ChallengeView {
    /// The token challenged.
    pub serial: String,
    /// Its type (`sms`, `email`, `certificate`, `indexedsecret`, `hotp`, ...).
    #[serde(rename = "type")]
    pub token_type: String,
    /// The transaction id the answer must come with, shared by the challenges of one
    /// trigger: 20 digits from the HSM.
    pub transaction_id: String,
    /// What to show the user.
    pub message: String,
    /// How a client answers: `interactive` (type a code) or `piv` (sign the nonce with a card).
    pub client_mode: &'static str,
    /// `delivered`, `queued` (retrying, or still being sent), `failed` (the token is locked,
    /// has no recipient, or every round failed), `expired` (the challenge expired before a
    /// round) or `none` (nothing to send: OTP, certificate and indexedsecret tokens).
    pub delivery: String,
    /// Why a delivery is not `delivered` yet, or through which gateway it was; never the code.
    pub delivery_detail: Option<String>,
    /// Certificate tokens: the nonce (hex) to sign with the card's key, SHA-256 then ECDSA or
    /// RSA PKCS#1 v1.5; the answer is the signature (hex or base64) as `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Until when the challenge may be answered (Unix ms): challenge-response tokens (sms,
    /// email, certificate, indexedsecret, webauthn); `None` for OTP tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
    /// webauthn tokens: what `navigator.credentials.get` needs (privacyIDEA's
    /// `webAuthnSignRequest`); the answer is the assertion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<crate::webauthn::SignRequest>,
    /// passkeys (`passkey_trigger_by_pin`): the challenge string whose UTF-8 bytes the passkey
    /// signs, with the RP id and user verification; the answer is the assertion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passkey: Option<crate::webauthn::PasskeyChallenge>,
    /// push tokens with number matching (`push_require_presence`): the option the login
    /// screen shows, which the user taps on the phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_answer: Option<String>,
}

/// Per-user texts from policies; `None`: the configured default.
struct ChallengeTexts {
    sms: Option<String>,
    email: Option<String>,
    message: Option<String>,
    /// indexedsecret: its own text (`{0!s}`: the positions) and how many positions it asks.
    indexed_message: Option<String>,
    indexed_count: Option<i64>,
}

/// A challenge just created, and its queued delivery (none when it has no recipient).
type Created = (ChallengeView, Option<i64>);

/// The sealed part of a delivery. It carries the code, so it has no Debug.
#[derive(Serialize, Deserialize)]
struct SealedMessage {
    subject: String,
    text: String,
    variables: BTreeMap<String, String>,
}

/// Challenges and the delivery of their messages: triggering, the delivery rounds and the
/// background sender, listing and cleaning up. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChallengeService {
    store: Arc<Store>,
    policies: Arc<crate::policy::PolicyHandle>,
    plugins: Arc<PluginHost>,
    secrets: TokenSecrets,
    gateways: GatewayService,
    clock: Clock,
    cfg: ChallengeSettings,
    /// Push challenges ([`ChallengeService::with_push`]); none: push tokens get no challenge.
    push: Option<crate::push::PushService>,
}

/// A 20-digit transaction id from the HSM's random generator.
fn transaction_id(secrets: &TokenSecrets) -> Result<String, TokenError> {
    Ok(secrets.random_digits(20)?.to_string())
}

/// A recipient as a challenge's message and the console's delivery history show it: an
/// e-mail address's first letter and domain (`a***@example.org`), a phone number's last four
/// digits (`***4567`). Recipients are personal data; the whole one stays on admin.sock.
pub fn mask(recipient: &str) -> String {
    let chars: Vec<char> = recipient.chars().collect();
    if let Some(at) = recipient.find('@') {
        let first = recipient.chars().next().unwrap_or('*');
        return format!("{first}***{}", &recipient[at..]);
    }
    let keep = chars.len().min(4);
    format!("***{}", chars[chars.len() - keep..].iter().collect::<String>())
}

/// How long a delivery's claim holds without renewal before another sender may take it over:
/// one attempt's longest transport timeout (60 s) and a margin for clocks that differ between
/// appliances.
pub const DELIVERY_LEASE_MS: i64 = 90_000;

impl ChallengeService {
    /// The service; `cfg` gives the validity, the wait for the first round and the default
    /// texts.
    pub fn new(
        store: Arc<Store>,
        policies: Arc<crate::policy::PolicyHandle>,
        plugins: Arc<PluginHost>,
        secrets: TokenSecrets,
        gateways: GatewayService,
        clock: Clock,
        cfg: ChallengeSettings,
    ) -> ChallengeService {
        ChallengeService { store, policies, plugins, secrets, gateways, clock, cfg, push: None }
    }

    /// This service, making push challenges with `push`.
    pub fn with_push(mut self, push: crate::push::PushService) -> ChallengeService {
        self.push = Some(push);
        self
    }

    /// The push service, when push challenges are made.
    pub fn push(&self) -> Option<&crate::push::PushService> {
        self.push.as_ref()
    }

    /// The text policies (`smstext`, `emailtext`, `challenge_text`) for `t`'s owner.
    fn texts(&self, t: &TokenRecord, caller: &Caller) -> Result<ChallengeTexts, TokenError> {
        use crate::policy::Scope;
        let ctx = crate::policy::token_context(t, caller, self.clock.now_ms() / 1000);
        let p = self.policies.current();
        let value = |action: &str| -> Result<Option<crate::policy::ActionValue>, TokenError> {
            Ok(p.value(Scope::Authentication, action, &ctx)
                .map_err(|e| TokenError::Refused(Refusal::Invalid(format!("policy conflict, refused: {e}"))))?
                .map(|(v, _)| v))
        };
        let text = |action: &str| Ok::<_, TokenError>(value(action)?.and_then(|v| v.as_text().map(str::to_owned)));
        Ok(ChallengeTexts {
            sms: text("smstext")?,
            email: text("emailtext")?,
            message: text("challenge_text")?,
            indexed_message: text("indexedsecret_challenge_text")?,
            indexed_count: value("indexedsecret_count")?.and_then(|v| v.as_int()),
        })
    }

    /// A sign-in challenge bound to no token, for a usernameless passkey sign-in (privacyIDEA's
    /// `/validate/initialize type=passkey`): 32 HSM bytes whose base64url string the
    /// authenticator signs over (as privacyIDEA's passkey clients do), the RP id of the
    /// enrollment policy, user verification, text and timeout of the authentication policies.
    /// Anyone may ask (no credential), so at most [`MAX_OPEN_SIGN_INS`] are open at a time.
    pub async fn sign_in(&self, caller: Caller) -> Result<crate::webauthn::SignIn, TokenError> {
        let svc = self.clone();
        blocking(move || {
            let now = svc.clock.now_ms();
            let ctx = crate::policy::request_context(None, None, None, &caller, now / 1000);
            let snapshot = svc.policies.current();
            let conflict = |e: crate::policy::PolicyConflict| {
                TokenError::Refused(Refusal::Invalid(format!("policy conflict, refused: {e}")))
            };
            let enrol = countersign_core::policy::WebauthnEnrolPolicies::read(&snapshot, &ctx).map_err(conflict)?;
            let auth = countersign_core::policy::WebauthnAuthPolicies::read(&snapshot, &ctx).map_err(conflict)?;
            let rp_id = enrol.rp_id.ok_or_else(|| {
                TokenError::Refused(Refusal::Invalid(
                    "Missing policy for webauthn_relying_party_id, unable to create challenge! An admin sets it \
                     (scope enrollment)"
                        .into(),
                ))
            })?;
            let (nonce, challenge) =
                crate::webauthn::challenge(true, &svc.secrets.random(crate::webauthn::CHALLENGE_LEN)?);
            let transaction_id = transaction_id(&svc.secrets)?;
            let timeout_ms = u64::from(auth.timeout_s).saturating_mul(1000);
            let valid_until_ms = now.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
            let uv = auth.user_verification.as_str();
            svc.store.create_sign_in(&transaction_id, &nonce, uv, now, valid_until_ms, MAX_OPEN_SIGN_INS)?;
            Ok(crate::webauthn::SignIn {
                transaction_id,
                challenge,
                rp_id,
                user_verification: uv,
                message: auth.passkey_challenge_text,
                timeout_ms,
                valid_until_ms,
            })
        })
        .await
    }

    /// Creates a challenge for each challenge-response token in `tokens` (one transaction id
    /// for all), queues their messages and waits for the first delivery round up to the
    /// configured time.
    pub async fn trigger(
        &self,
        caller: Caller,
        tokens: Vec<TokenRecord>,
    ) -> Result<(String, Vec<ChallengeView>), TokenError> {
        let svc = self.clone();
        let (tx_id, created) = blocking(move || svc.create(&caller, &tokens)).await?;
        let mut views = Vec::new();
        for (mut view, delivery_id) in created {
            let Some(id) = delivery_id else {
                views.push(view);
                continue;
            };
            let svc = self.clone();
            let round = tokio::task::spawn_blocking(move || svc.round(id));
            match tokio::time::timeout(self.cfg.delivery_wait, round).await {
                Ok(Ok(Ok(Some((status, detail))))) => {
                    view.delivery = status;
                    view.delivery_detail = detail;
                }
                // Claimed by the background sender, or still running: it goes on without us.
                Ok(Ok(Ok(None))) | Err(_) => {
                    view.delivery = "queued".into();
                    view.delivery_detail = Some("delivery is still being attempted".into());
                }
                Ok(Ok(Err(e))) => {
                    view.delivery = "queued".into();
                    view.delivery_detail = Some(format!("delivery round failed: {e}"));
                }
                Ok(Err(e)) => {
                    view.delivery = "queued".into();
                    view.delivery_detail = Some(format!("delivery round stopped: {e}"));
                }
            }
            if view.delivery != "delivered" && crate::push::is_push_type(&view.token_type) {
                // privacyIDEA's words when Firebase did not take it: the app can still poll.
                view.message = format!(
                    "{} Use the polling feature of your privacyIDEA Authenticator App to check for a new Login \
                     request.",
                    view.message
                );
            } else if view.delivery != "delivered" {
                view.message = match view.delivery.as_str() {
                    "queued" => format!(
                        "{}: delivery failed so far and is being retried; the code may arrive late",
                        view.message
                    ),
                    _ => format!("{}: delivery failed", view.message),
                };
            }
            views.push(view);
        }
        Ok((tx_id, views))
    }

    fn create(&self, caller: &Caller, tokens: &[TokenRecord]) -> Result<(String, Vec<Created>), TokenError> {
        let tx_id = transaction_id(&self.secrets)?;
        let now = self.clock.now_ms();
        let expires = now.saturating_add(i64::try_from(self.cfg.validity.as_millis()).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        // Number matching's options, shared by the trigger's push tokens.
        let mut presence = crate::push::Presence::default();
        // The callers chose the tokens: challenge-response types, and OTP tokens a
        // challenge_response policy names.
        for t in tokens.iter().filter(|t| t.usable(now)) {
            let recipient = t.recipient.clone().or_else(|| match t.token_type.as_str() {
                "sms" => t.user_phone.clone(),
                _ => t.user_email.clone(),
            });
            let mut view = ChallengeView {
                serial: t.serial.clone(),
                token_type: t.token_type.clone(),
                transaction_id: tx_id.clone(),
                message: String::new(),
                client_mode: "interactive",
                delivery: "failed".into(),
                delivery_detail: None,
                nonce: None,
                valid_until_ms: is_challenge_type(&t.token_type).then_some(expires),
                webauthn: None,
                passkey: None,
                presence_answer: None,
            };
            if t.locked(now) {
                // No messages for a locked token: an attacker with the PIN could otherwise make
                // the appliance send codes at will.
                view.message = "the token is locked after too many failed attempts".into();
                view.delivery_detail = Some("not sent: the token is locked".into());
                out.push((view, None));
                continue;
            }
            if matches!(t.token_type.as_str(), "webauthn" | "passkey") {
                // The authenticator signs over the challenge ([`crate::webauthn::challenge`]); the
                // counter is its sign count, so the challenge reserves none. A passkey has one
                // only by passkey_trigger_by_pin.
                let credential = self.store.webauthn_credential(t.id)?.ok_or_else(|| {
                    TokenError::Refused(Refusal::NotFound(format!("the WebAuthn credential of token {}", t.serial)))
                })?;
                let policies = crate::webauthn::auth_policies(&self.policies, t, caller, now / 1000)
                    .map_err(|m| TokenError::Refused(Refusal::Invalid(m)))?;
                let passkey = t.token_type == "passkey";
                let (nonce, challenge) =
                    crate::webauthn::challenge(passkey, &self.secrets.random(crate::webauthn::CHALLENGE_LEN)?);
                self.store.create_unreserved_challenge(t.id, &tx_id, now, expires, Some(&nonce))?;
                view.client_mode = "webauthn";
                view.delivery = "none".into();
                view.valid_until_ms = Some(expires);
                if passkey {
                    view.message = policies.passkey_challenge_text.clone();
                    view.passkey = Some(crate::webauthn::PasskeyChallenge {
                        challenge,
                        rp_id: credential.rp_id,
                        user_verification: policies.user_verification.as_str(),
                    });
                } else {
                    view.message = policies.challenge_text.replace("{0!s}", &t.description);
                    view.webauthn = Some(crate::webauthn::sign_request(&credential, challenge, &policies));
                }
                out.push((view, None));
                continue;
            }
            if crate::push::is_push_type(&t.token_type) {
                // The phone polls for it (and, later, FCM sends it); the login client polls
                // /validate/polltransaction and finalises.
                let Some(push) = &self.push else {
                    view.message = "push challenges are not served by this appliance".into();
                    out.push((view, None));
                    continue;
                };
                let made = push.challenge(t, &tx_id, now, expires, caller, &mut presence)?;
                view.client_mode = "poll";
                view.delivery = "none".into();
                view.message = match &made.presence_answer {
                    // privacyIDEA's words, which its login clients show as they are.
                    Some(a) => format!("{} Please press: {a}", made.message),
                    None => made.message.clone(),
                };
                view.presence_answer = made.presence_answer.clone();
                // With an FCM gateway the challenge is also pushed to the phone, through the
                // durable queue and the `push` route; the phone can poll for it either way.
                let Some(fbtoken) = crate::push::PushService::firebase_recipient(t) else {
                    out.push((view, None));
                    continue;
                };
                let mut variables = made.smartphone.clone();
                variables.insert("transaction_id".into(), tx_id.clone());
                variables.insert("user".into(), t.login.clone().unwrap_or_default());
                variables.insert("realm".into(), t.realm.clone().unwrap_or_default());
                let message = SealedMessage {
                    subject: made.smartphone.get("title").cloned().unwrap_or_default(),
                    text: made.smartphone.get("question").cloned().unwrap_or_default(),
                    variables,
                };
                let plain =
                    Zeroizing::new(serde_json::to_vec(&message).map_err(|e| TokenError::Internal(e.to_string()))?);
                let sealed = self.secrets.seal_message(&tx_id, &t.serial, &plain)?;
                let id = self.store.queue_delivery(
                    made.challenge_id,
                    &t.token_type,
                    &t.serial,
                    &fbtoken,
                    &sealed,
                    now,
                    expires,
                )?;
                out.push((view, Some(id)));
                continue;
            }
            if !is_challenge_type(&t.token_type) {
                // An OTP token: the user reads the code from the token; nothing is sent.
                let texts = self.texts(t, caller)?;
                self.store.create_unreserved_challenge(t.id, &tx_id, now, expires, None)?;
                // privacyIDEA's default text, which clients may show or match as it is.
                view.message = texts.message.unwrap_or_else(|| "please enter otp: ".into());
                view.delivery = "none".into();
                out.push((view, None));
                continue;
            }
            if t.token_type == "certificate" {
                let nonce = self.secrets.random(NONCE_LEN)?;
                self.store.create_challenge(t.id, &tx_id, now, expires, Some(&nonce))?;
                let slot = t.params.get("slot").and_then(serde_json::Value::as_str).unwrap_or("9a");
                view.message = format!("Sign the nonce with the key in slot {slot} of your card");
                view.client_mode = "piv";
                view.delivery = "none".into();
                view.nonce = Some(hex::encode(nonce));
                out.push((view, None));
                continue;
            }
            if t.token_type == "indexedsecret" {
                // Characters of the secret at random positions: nothing is sent; the positions
                // are kept with the challenge (its nonce), so only they answer it.
                let texts = self.texts(t, caller)?;
                let count = texts.indexed_count.and_then(|n| usize::try_from(n).ok()).unwrap_or(DEFAULT_POSITIONS);
                let positions = crate::simple_tokens::positions(&self.secrets, t, count)?;
                let asked = positions.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
                self.store.create_challenge(t.id, &tx_id, now, expires, Some(asked.as_bytes()))?;
                // Its own policy's text, else the general one, else privacyIDEA's default; `\,`
                // is how privacyIDEA's policy values carry a comma.
                view.message = texts
                    .indexed_message
                    .or(texts.message)
                    .map(|m| m.replace("\\,", ",").replace("{0!s}", &asked))
                    .unwrap_or_else(|| format!("Please enter the positions {asked} from your secret."));
                view.delivery = "none".into();
                out.push((view, None));
                continue;
            }
            let Some(recipient) = recipient else {
                view.message = "no phone number or address for this token".into();
                view.delivery_detail = Some("the token and its user have no recipient".into());
                out.push((view, None));
                continue;
            };
            let texts = self.texts(t, caller)?;
            view.message = match (texts.message.clone(), t.token_type.as_str()) {
                (Some(m), _) => m,
                (None, "sms") => format!("Enter the code sent by SMS to {}", mask(&recipient)),
                (None, _) => format!("Enter the code sent by e-mail to {}", mask(&recipient)),
            };
            let (challenge_id, counter) = self.store.create_challenge(t.id, &tx_id, now, expires, None)?;
            let variables: BTreeMap<String, String> = [
                ("serial", t.serial.clone()),
                ("user", t.login.clone().unwrap_or_default()),
                ("realm", t.realm.clone().unwrap_or_default()),
                ("transaction_id", tx_id.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let template = match t.token_type.as_str() {
                "sms" => texts.sms.as_ref().unwrap_or(&self.cfg.sms_text),
                _ => texts.email.as_ref().unwrap_or(&self.cfg.email_text),
            };
            let req = PluginRequest::CreateChallenge {
                secret: secret_ref(t),
                counter,
                params: crate::token_host::plugin_params(t),
                template: template.clone(),
                variables: variables.clone(),
            };
            let (otp, text) = match call_for_token(&self.plugins, &self.secrets, &self.clock, t, &req) {
                Ok(PluginResponse::Challenge { otp, text }) => (Zeroizing::new(otp), Zeroizing::new(text)),
                Ok(other) => return Err(TokenError::Plugin(format!("plugin {} answered {}", t.plugin, other.name()))),
                Err(e) => return Err(TokenError::Plugin(e.to_string())),
            };
            let mut vars = variables;
            vars.insert("otp".into(), otp.to_string());
            let subject = if t.token_type == "email" {
                countersign_template::render(&self.cfg.email_subject, &vars, countersign_template::Escape::None)
                    .map_err(|e| TokenError::Refused(Refusal::Invalid(e.to_string())))?
            } else {
                String::new()
            };
            let plain = Zeroizing::new(
                serde_json::to_vec(&SealedMessage { subject, text: text.to_string(), variables: vars })
                    .map_err(|e| TokenError::Internal(e.to_string()))?,
            );
            let sealed = self.secrets.seal_message(&tx_id, &t.serial, &plain)?;
            let id =
                self.store.queue_delivery(challenge_id, &t.token_type, &t.serial, &recipient, &sealed, now, expires)?;
            out.push((view, Some(id)));
        }
        let serials: Vec<&str> = out.iter().map(|(v, _)| v.serial.as_str()).collect();
        let row = AuthAuditRow {
            at_ms: now,
            serial: serials.first().map(|s| (*s).to_owned()),
            login: tokens.first().and_then(|t| t.login.clone()),
            realm: tokens.first().and_then(|t| t.realm.clone()),
            detail: Some(format!("transaction {tx_id}: challenges for {}", serials.join(", "))),
            ..AuthAuditRow::new(caller, "validate/triggerchallenge", if out.is_empty() { "error" } else { "ok" })
        };
        self.store.audit_auth(&row)?;
        Ok((tx_id, out))
    }

    /// One delivery round for delivery `id`: every gateway of its route in order until one
    /// delivers. Returns the delivery's status and detail, or `None` if another sender holds it.
    pub fn round(&self, id: i64) -> Result<Option<(String, Option<String>)>, TokenError> {
        let now = self.clock.now_ms();
        let Some(d) = self.store.claim_delivery(id, now)? else {
            return Ok(None);
        };
        // The claim: renewing it and recording the round both need it still this sender's.
        let mut held = d.updated_ms;
        if now >= d.expires_ms {
            let outcome = RoundOutcome::Failed { error: "the challenge expired before delivery".into(), expired: true };
            self.store.finish_round(id, held, &[], &outcome, now)?;
            return Ok(Some(("expired".into(), Some("the challenge expired before delivery".into()))));
        }
        let message = self
            .secrets
            .open_message(d.transaction_id.as_deref().unwrap_or_default(), &d.serial, &d.sealed_message)
            .map_err(TokenError::from)
            .and_then(|plain| {
                serde_json::from_slice::<SealedMessage>(&plain).map_err(|e| TokenError::Internal(e.to_string()))
            });
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                let outcome =
                    RoundOutcome::Failed { error: format!("the queued message does not open: {e}"), expired: false };
                self.store.finish_round(id, held, &[], &outcome, now)?;
                return Ok(Some(("failed".into(), Some(e.to_string()))));
            }
        };
        let route = self.store.route(&d.token_type)?;
        let outgoing = OutgoingMessage {
            to: d.recipient.clone(),
            subject: message.subject,
            text: message.text,
            variables: message.variables,
        };
        let mut attempts = Vec::new();
        let mut via = None;
        let mut give_up = false;
        for (n, gw) in route.iter().enumerate() {
            // The claim is renewed before every attempt after the first, so it ages only when
            // this sender stopped; one whose claim was taken over sends nothing more.
            if n > 0 {
                let renewed_at = self.clock.now_ms();
                if !self.store.renew_delivery_claim(id, held, renewed_at)? {
                    tracing::warn!(
                        delivery = id,
                        "the delivery's claim was lost (taken over after the lease); not sending"
                    );
                    return Ok(None);
                }
                held = renewed_at;
            }
            let (attempt, retry) = self.gateways.attempt_judged(gw, &outgoing);
            let delivered = attempt.delivered;
            give_up = !delivered && !retry;
            tracing::info!(delivery = id, gateway = %attempt.gateway, delivered, detail = %attempt.detail, "delivery attempt");
            let at = self.clock.now_ms();
            let row = AuthAuditRow {
                at_ms: at,
                serial: Some(d.serial.clone()),
                detail: Some(format!("delivery {id} through {}: {}", attempt.gateway, attempt.detail)),
                ..AuthAuditRow::new(
                    &Caller::appliance("daemon"),
                    "delivery/attempt",
                    if delivered { "ok" } else { "error" },
                )
            };
            if let Err(e) = self.store.audit_auth(&row) {
                tracing::error!(delivery = id, error = %e, "cannot audit a delivery attempt");
            }
            attempts.push(AttemptRow {
                at_ms: at,
                gateway: attempt.gateway.clone(),
                delivered,
                detail: attempt.detail,
            });
            if delivered {
                via = Some(attempt.gateway);
                break;
            }
            if give_up {
                // The provider says no attempt can deliver this message (the recipient is
                // gone): neither the next gateway nor a later round is tried.
                break;
            }
        }
        let now = self.clock.now_ms();
        let (outcome, status) = match via {
            Some(via) => (RoundOutcome::Delivered { via }, "delivered"),
            None => {
                let error = if route.is_empty() {
                    format!("no gateway route for {} tokens; set one with `countersign gateway route`", d.token_type)
                } else {
                    attempts.last().map(|a| format!("{}: {}", a.gateway, a.detail)).unwrap_or_default()
                };
                let next = now
                    + i64::try_from(
                        retry_after(d.attempts / u32::try_from(route.len().max(1)).unwrap_or(1) + 1).as_millis(),
                    )
                    .unwrap_or(60_000);
                if give_up {
                    (RoundOutcome::Failed { error, expired: false }, "failed")
                } else if next >= d.expires_ms {
                    (RoundOutcome::Failed { error, expired: true }, "failed")
                } else {
                    (RoundOutcome::Retry { next_ms: next, error }, "queued")
                }
            }
        };
        let detail = match &outcome {
            RoundOutcome::Delivered { via } => Some(format!("delivered through {via}")),
            RoundOutcome::Retry { error, .. } | RoundOutcome::Failed { error, .. } => Some(error.clone()),
        };
        if !self.store.finish_round(id, held, &attempts, &outcome, now)? {
            // Taken over while this sender's last attempt ran: the attempts are kept as
            // history, the delivery is the other sender's to decide.
            tracing::warn!(
                delivery = id,
                "the delivery's claim was lost during its round; its outcome is the new sender's"
            );
            return Ok(None);
        }
        Ok(Some((status.into(), detail)))
    }

    /// Starts the background sender thread: due deliveries are sent (looked for every 500 ms),
    /// each claimed by one sender of all the appliances on the database; deliveries whose
    /// sender stopped are queued again after [`DELIVERY_LEASE_MS`]. Expired challenges and
    /// old deliveries are removed by [`ChallengeService::clean_up`], a periodic job.
    pub fn start_sender(&self) -> std::io::Result<()> {
        let svc = self.clone();
        let mut rounds = 0u32;
        std::thread::Builder::new().name("delivery-sender".into()).spawn(move || loop {
            let now = svc.clock.now_ms();
            // At start and every ~10 s: deliveries whose sender stopped (this node before a
            // crash, or another node that died) are queued again once their claim aged.
            if rounds % 20 == 0 {
                match svc.store.requeue_interrupted(now, DELIVERY_LEASE_MS) {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(deliveries = n, "deliveries whose sender stopped are queued again"),
                    Err(e) => tracing::error!(error = %e, "cannot requeue interrupted deliveries"),
                }
            }
            rounds = rounds.wrapping_add(1);
            match svc.store.due_deliveries(now, 32) {
                Ok(ids) => {
                    for id in ids {
                        if let Err(e) = svc.round(id) {
                            tracing::error!(delivery = id, error = %e, "delivery round failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the delivery queue"),
            }
            std::thread::sleep(Duration::from_millis(500));
        })?;
        Ok(())
    }

    /// Challenges not answered yet, for admins (privacyIDEA's `GET /token/challenges/`), and
    /// how many match in all.
    pub async fn list(
        &self,
        q: crate::store::ChallengeQuery,
    ) -> Result<(Vec<crate::store::ChallengeRow>, u64), TokenError> {
        let store = self.store.clone();
        crate::service_error::blocking(move || Ok(store.challenge_list(&q)?)).await
    }

    /// How often [`ChallengeService::clean_up`] should run.
    pub fn cleanup_interval(&self) -> Duration {
        self.cfg.cleanup_interval.max(Duration::from_secs(1))
    }

    /// Removes challenges expired an hour ago and finished deliveries older than
    /// `keep_deliveries` (a periodic job). Returns (challenges, deliveries).
    pub async fn clean_up(&self) -> Result<(usize, usize), TokenError> {
        let svc = self.clone();
        crate::service_error::blocking(move || {
            let now = svc.clock.now_ms();
            let keep = i64::try_from(svc.cfg.keep_deliveries.as_millis()).unwrap_or(i64::MAX / 2);
            Ok(svc.store.clean_up_challenges(now - 3_600_000, now - keep)?)
        })
        .await
    }

    /// How many deliveries queued at or after `since_ms` were given up (failed or expired).
    pub async fn deliveries_given_up_since(&self, since_ms: i64) -> Result<u64, TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(store.deliveries_given_up_since(since_ms)?)).await
    }

    /// Deliveries, newest first, with their attempts: those in `status` (all when `None`), at
    /// most `limit`.
    pub async fn deliveries(
        &self,
        status: Option<String>,
        limit: u32,
    ) -> Result<Vec<countersign_api::gateway::Delivery>, TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(store.deliveries(status.as_deref(), limit)?.into_iter().map(delivery).collect())).await
    }
}

/// A delivery as the native API shows it.
fn delivery(d: crate::store::DeliveryView) -> countersign_api::gateway::Delivery {
    use countersign_api::gateway::{Delivery, DeliveryAttempt};
    Delivery {
        id: d.id,
        serial: d.serial,
        token_type: d.token_type,
        transaction_id: d.transaction_id,
        recipient: d.recipient,
        status: d.status,
        attempts: d.attempts,
        delivered_via: d.delivered_via,
        last_error: d.last_error,
        created_ms: d.created_ms,
        expires_ms: d.expires_ms,
        log: d
            .log
            .into_iter()
            .map(|a| DeliveryAttempt { at_ms: a.at_ms, gateway: a.gateway, delivered: a.delivered, detail: a.detail })
            .collect(),
    }
}
