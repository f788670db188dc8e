//! `/validate/check`: decides whether `pass` (PIN followed by OTP) authenticates a user or a
//! token, and records the decision.
//!
//! The decision runs on an executor worker: read the token rows, verify the PIN against its
//! HSM verifier, respect the fail counter, ask the token's plugin for the counter at which the
//! OTP is valid (the plugin gets MACs, never the seed), and hand the executor a record whose
//! commit advances the counter by compare-and-set in the same transaction as the audit row. An
//! OTP is therefore accepted at most once, however many requests carry it.
//!
//! Answers to the caller say accept or reject; unless `validate.detailed_errors` is on, every
//! reject reads the same, so they never reveal whether a user exists. The audit row always
//! records the real reason. This module never logs or stores a PIN or an OTP.

#![allow(
    clippy::result_large_err,
    reason = "a Reject is made at most once per check and moved up one or two calls; boxing it would allocate on every reject"
)]

use countersign_core::caller::Caller;
use countersign_core::check::RejectKind;
use countersign_core::error::Refusal;
use std::sync::Arc;

use countersign_core::policy::check::{without_token, AnswerPolicies, CheckPolicies, NoToken};
use countersign_core::rules::{judge_match, otp_digits, split_pass, MatchVerdict};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::executor::{Executor, ExecutorError, WorkerCtx};
use crate::plugins::PluginHost;
use crate::store::{
    recorded_owner_key, unknown_owner_key, AuthAuditRow, CheckRecord, CheckTarget, FailedToken, ThrottleEffect,
    TokenEffect, TokenRecord, Unusable,
};
use crate::token_host::{call_for_token_seen, plugin_params, secret_ref, HostSaw};
use crate::token_secrets::TokenSecrets;
use countersign_core::rules::{answer_by, judge_answer, AnswerBy, AnswerVerdict};
use countersign_core::token_kind::{is_challenge_type, is_otp_type};

/// The answer every reject gets unless detailed errors are configured.
pub const GENERIC_REJECT: &str = "wrong PIN or OTP";

/// What a check answers while the HSM cannot open seeds or verify PINs: an error, never a
/// reject the user would count as a wrong code, and never an accept.
pub const HSM_UNAVAILABLE: &str = "the HSM is not available; try again";
/// The answer (and error) of a check whose reads the database could not serve.
pub const STORE_UNAVAILABLE: &str = "the database is not available; try again";

/// A check that could not be made (as opposed to a wrong PIN): why, and whether the HSM was
/// the reason.
struct NotChecked {
    audit: String,
    hsm: bool,
}

/// The reject of a check the HSM could not make. `record` turns it into an error answer.
fn hsm_reject(audit: String, serial: Option<String>) -> Reject {
    Reject { audit, answer: HSM_UNAVAILABLE, effect: TokenEffect::None, serial, kind: RejectKind::Other }
}

/// The reject of a check a read of the store failed: when the database or the HSM (a row's
/// seal) did not answer, an error answer, not a reject (a client then tries another
/// appliance, and "wrong code" is never said of a code nobody checked); otherwise a reject.
fn store_failed(e: crate::store::StoreError) -> Reject {
    use countersign_core::error::{Dependency, ErrorKind, Kinded};
    let answer = match e.kind() {
        ErrorKind::Unavailable(Dependency::Store) => STORE_UNAVAILABLE,
        ErrorKind::Unavailable(Dependency::Hsm) => HSM_UNAVAILABLE,
        _ => "the check failed; try again",
    };
    Reject::other(format!("store: {e}"), answer)
}

/// The error a reject's answer stands for when it is not a reject at all: the HSM or the
/// database could not serve the check ([`hsm_reject`], [`store_failed`]). The one place the
/// answer texts are told apart.
fn unavailable(answer: &str) -> Option<ValidateError> {
    match answer {
        HSM_UNAVAILABLE => Some(ValidateError::HsmUnavailable),
        STORE_UNAVAILABLE => Some(ValidateError::StoreUnavailable),
        _ => None,
    }
}

/// The reject of a failed plugin call: the HSM's unavailability, or a plugin error.
fn plugin_failed(e: crate::plugins::PluginCallError, serial: Option<String>) -> Reject {
    match e {
        crate::plugins::PluginCallError::HsmUnavailable(why) => hsm_reject(format!("HSM unavailable: {why}"), serial),
        e => Reject {
            audit: format!("plugin error: {e}"),
            answer: "the token could not be checked; try again",
            effect: TokenEffect::None,
            serial,
            kind: RejectKind::Other,
        },
    }
}

/// One check: who or what is checked, and what the user typed.
#[derive(Debug)]
pub struct CheckRequest {
    /// A token by serial, a user by login (and realm), or a Yubico OTP's public id.
    pub target: CheckTarget,
    /// The PIN followed by the OTP, or the answer to a challenge; never logged or stored.
    pub pass: SecretString,
    /// The answer to a challenge: the transaction id it came with (`pass` is then the code).
    pub transaction_id: Option<String>,
    /// Who asks: `uid:N` or `ip:ADDR`.
    pub caller: Caller,
    /// The answer to a webauthn token's challenge: the authenticator's assertion (`pass` is
    /// then not read).
    pub webauthn: Option<crate::webauthn::Assertion>,
    /// The assertion must carry user verification whatever the policies say (an API admin's
    /// passkey login).
    pub require_user_verification: bool,
}

/// What a check answers. A reject names no token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    /// Whether the check accepted, as committed (an accept that lost the race for its OTP is
    /// a reject).
    pub accepted: bool,
    /// The token that accepted (never set on a reject, so a reject names no token).
    pub serial: Option<String>,
    /// Its type, likewise on accept only.
    pub token_type: Option<String>,
    /// Its code length, likewise on accept only (privacyIDEA's `otplen`).
    pub otp_len: Option<usize>,
    /// The accept answered a challenge.
    pub answered_challenge: bool,
    /// A policy (no_detail_on_success / no_detail_on_fail) says the answer carries no detail:
    /// `serial` and `token_type` are already cleared; privacyIDEA-style answers drop `detail`.
    pub hide_detail: bool,
    /// What to tell the caller: `matching token found`, [`GENERIC_REJECT`], the reason of the
    /// reject (with detailed errors), or, when challenges were created, what to enter next.
    pub message: String,
    /// The id of the check's audit row, committed before this answer.
    pub audit_id: i64,
    /// Challenges this request created (a PIN-only check of challenge-response tokens).
    pub transaction_id: Option<String>,
    /// The challenges created, one per token; empty when none was.
    pub challenges: Vec<crate::challenges::ChallengeView>,
    /// The login of the user the accepted token belongs to (privacyIDEA's `detail.username`
    /// when a credential, not a user, named the token); on accept only (answers that
    /// `hide_detail` leave it out).
    pub user: Option<String>,
    /// That user's realm, likewise.
    pub realm: Option<String>,
}

/// Why a check got no answer. Nothing was accepted.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The check's record could not be committed (or the request was lost).
    #[error("the check could not be recorded, so it was not accepted: {0}")]
    Audit(#[from] ExecutorError),
    /// The challenges of a PIN-only check or a trigger could not be created.
    #[error("the challenge could not be created: {0}")]
    Challenge(#[from] crate::service_error::TokenError),
    /// The HSM did not answer; nothing was accepted and no counter moved. The audit row
    /// (result `error`) records the detail.
    #[error("{HSM_UNAVAILABLE}")]
    HsmUnavailable,
    /// The database could not serve the check's reads; nothing was accepted and no counter
    /// moved. The audit row (result `error`), when it could be written, records the detail.
    #[error("{STORE_UNAVAILABLE}")]
    StoreUnavailable,
}

/// The checks of `/validate/check` (and of the Yubico protocol) and challenge triggers, made
/// on the executor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ValidateService {
    executor: Executor,
    realms: crate::resolvers::Realms,
    policies: Arc<crate::policy::PolicyHandle>,
    plugins: Arc<PluginHost>,
    secrets: TokenSecrets,
    clock: Clock,
    detailed: bool,
    throttle: Throttle,
    /// Rejects are answered no sooner than this after the request arrived.
    reject_floor: std::time::Duration,
    /// `push_wait` is cut to this (see [`ValidateSettings::longest_push_wait`]).
    longest_push_wait: std::time::Duration,
    challenges: crate::challenges::ChallengeService,
    /// The stand-in token of the equal-work floor ([`work`]), made on first use.
    stand_in: Arc<std::sync::Mutex<Option<Arc<work::StandIn>>>>,
}

/// The back-off of failed checks (`validate.throttle_*`): after `source_free` failures of a
/// user from one source, or `user_free` from all sources, since the user's last success, the
/// next attempt must wait `base_ms`, doubled with every further failure up to `max_ms`.
/// Attempts inside the delay are refused unchecked: no PIN, no plugin, no fail counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Failures of a user from one source allowed without delay.
    pub source_free: u32,
    /// Failures of a user from all sources allowed without delay.
    pub user_free: u32,
    /// The first delay, in milliseconds; 0 turns the throttle off.
    pub base_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

/// How checks decide and answer: resolved values, read from the configuration by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateSettings {
    /// Say in a reject why (unknown user, locked token, ...). Off: every reject reads the same,
    /// so the answer does not reveal whether a user exists. The audit always records why.
    pub detailed_errors: bool,
    /// The back-off of failed checks per user and source.
    pub throttle: Throttle,
    /// A check that does not accept is answered no sooner than this after it arrived, so the
    /// time of a reject does not tell an unknown user, a wrong PIN and a wrong OTP apart.
    pub reject_floor: std::time::Duration,
    /// The longest a check waits for a phone's tap (`push_wait` is cut to this): the request's
    /// own time limit less what the finalising check needs, so a long `push_wait` ends in a
    /// reject the client can read, not in the listener's 503.
    pub longest_push_wait: std::time::Duration,
}

impl Throttle {
    /// The delay after `failures` failures of which `free` pass without one.
    pub fn delay_ms(&self, failures: u32, free: u32) -> u64 {
        if self.base_ms == 0 || failures < free {
            return 0;
        }
        let doublings = (failures - free).min(40);
        self.base_ms.saturating_mul(1u64 << doublings).min(self.max_ms.max(self.base_ms))
    }

    /// How long an attempt at `now_ms` must still wait (`None`: it may go ahead), and why.
    fn wait(&self, s: &crate::store::ThrottleState, now_ms: i64) -> Option<(u64, &'static str, u32)> {
        let left = |(failures, last_ms): (u32, i64), free: u32| {
            let until = last_ms.saturating_add(i64::try_from(self.delay_ms(failures, free)).unwrap_or(i64::MAX));
            u64::try_from(until.saturating_sub(now_ms)).ok().filter(|ms| *ms > 0)
        };
        match (left(s.source, self.source_free), left(s.user, self.user_free)) {
            (Some(a), Some(b)) if a >= b => Some((a, "from this source", s.source.0)),
            (_, Some(b)) => Some((b, "from all sources", s.user.0)),
            (Some(a), None) => Some((a, "from this source", s.source.0)),
            (None, None) => None,
        }
    }
}

/// Why a check rejected: what the audit says, what a detailed answer says, what the attempt
/// does to the token, and whether it was a guess.
struct Reject {
    audit: String,
    answer: &'static str,
    effect: TokenEffect,
    serial: Option<String>,
    kind: RejectKind,
}

impl Reject {
    /// A reject that touches no token and counts nowhere (an error, or a check not made).
    fn other(audit: String, answer: &'static str) -> Reject {
        Reject { audit, answer, effect: TokenEffect::None, serial: None, kind: RejectKind::Other }
    }
}

impl ValidateService {
    /// The service; `cfg` gives the detail of answers, the throttle and the reject floor.
    #[allow(clippy::too_many_arguments, reason = "the service's collaborators, wired once in daemon.rs")]
    pub fn new(
        executor: Executor,
        realms: crate::resolvers::Realms,
        policies: Arc<crate::policy::PolicyHandle>,
        plugins: Arc<PluginHost>,
        secrets: TokenSecrets,
        clock: Clock,
        cfg: ValidateSettings,
        challenges: crate::challenges::ChallengeService,
    ) -> ValidateService {
        let (detailed, throttle) = (cfg.detailed_errors, cfg.throttle);
        ValidateService {
            executor,
            realms,
            policies,
            plugins,
            secrets,
            clock,
            detailed,
            throttle,
            reject_floor: cfg.reject_floor,
            longest_push_wait: cfg.longest_push_wait,
            challenges,
            stand_in: Arc::default(),
        }
    }

    /// Checks `req` and records the decision. Anything but an accept is answered no sooner
    /// than `validate.reject_floor_ms` after the request arrived.
    pub async fn check(&self, req: CheckRequest) -> Result<CheckOutcome, ValidateError> {
        let arrived = tokio::time::Instant::now();
        let outcome = self.check_now(req).await;
        // The floor: whatever failed, a reject leaves no sooner (real time, not the OTP clock).
        if !matches!(&outcome, Ok(o) if o.accepted) {
            tokio::time::sleep_until(arrived + self.reject_floor).await;
        }
        outcome
    }

    async fn check_now(&self, req: CheckRequest) -> Result<CheckOutcome, ValidateError> {
        let (serial, login, realm) = match &req.target {
            CheckTarget::Serial(s) => (Some(s.clone()), None, None),
            CheckTarget::User { login, realm, serial } => (serial.clone(), Some(login.clone()), realm.clone()),
            CheckTarget::PublicId(_) | CheckTarget::Credential(_) => (None, None, None),
        };
        let audit = AuthAuditRow {
            at_ms: self.clock.now_ms(),
            serial,
            login,
            realm,
            ..AuthAuditRow::new(&req.caller, "validate/check", "reject")
        };
        let svc = self.clone();
        let caller = req.caller.clone();
        let target = req.target.clone();
        let ((answer, answers, user), committed) = self
            .executor
            .check(audit, move |ctx, audit| {
                let (decision, trace) = svc.decide_all(ctx, &req);
                // Decided on the user as resolved (the login typed only when resolving failed).
                let typed = match &req.target {
                    CheckTarget::User { login, realm, .. } => (Some(login.as_str()), realm.as_deref()),
                    CheckTarget::Serial(_) | CheckTarget::PublicId(_) | CheckTarget::Credential(_) => (None, None),
                };
                let answers = svc.answer_policies(
                    trace.login.as_deref().or(typed.0),
                    trace.realm.as_deref().or(typed.1),
                    trace.resolver.as_deref(),
                    &req.caller,
                );
                let user = (trace.login.clone(), trace.realm.clone());
                let (rec, answer) = svc.record(decision, trace, audit);
                (rec, (answer, answers, user))
            })
            .await?;
        if let Answer::Unavailable(e) = answer {
            return Err(e);
        }
        if let Answer::Trigger(tokens) = answer {
            let wait = self.push_wait(&tokens, &caller);
            let (tx, challenges) = self.challenges.trigger(caller.clone(), tokens).await?;
            if let (Some(wait), Some(push)) = (wait, self.challenges.push()) {
                // push_wait: the check waits for the tap and then finalises the transaction
                // itself, as the client would with an empty pass.
                push.wait_for_answer(&tx, wait).await;
                let finish = CheckRequest {
                    target,
                    pass: SecretString::from(""),
                    transaction_id: Some(tx),
                    caller,
                    webauthn: None,
                    require_user_verification: false,
                };
                return Box::pin(self.check_now(finish)).await;
            }
            return Ok(CheckOutcome {
                accepted: false,
                serial: None,
                token_type: None,
                otp_len: None,
                answered_challenge: false,
                hide_detail: false,
                message: "enter the code that was sent to you, with this transaction_id".into(),
                audit_id: committed.audit_id,
                transaction_id: Some(tx),
                challenges,
                user: None,
                realm: None,
            });
        }
        // hide_specific_error_message overrides validate.detailed_errors for whom it applies.
        let detailed = self.detailed && !answers.hide_specific;
        let message = match (committed.accepted, &answer) {
            (true, _) => "matching token found",
            // The compare-and-set lost: another request accepted this OTP first.
            (false, Answer::Accept { .. }) if detailed => "the OTP was already used",
            (false, Answer::Reject(m)) if detailed => m,
            (false, _) => GENERIC_REJECT,
        };
        let (serial, token_type, otp_len, answered_challenge) = match answer {
            // An empty serial: accepted by a policy without a token.
            Answer::Accept { serial, token_type, otp_len, answered_challenge } if committed.accepted => (
                Some(serial).filter(|s| !s.is_empty()),
                Some(token_type).filter(|t| !t.is_empty()),
                otp_len,
                answered_challenge,
            ),
            _ => (None, None, None, false),
        };
        let hide_detail = if committed.accepted { answers.no_detail_on_success } else { answers.no_detail_on_fail };
        let (serial, token_type, otp_len) =
            if hide_detail { (None, None, None) } else { (serial, token_type, otp_len) };
        let (user, realm) = if committed.accepted { user } else { (None, None) };
        Ok(CheckOutcome {
            accepted: committed.accepted,
            serial,
            token_type,
            otp_len,
            answered_challenge,
            hide_detail,
            message: message.to_owned(),
            audit_id: committed.audit_id,
            transaction_id: None,
            challenges: Vec::new(),
            user,
            realm,
        })
    }

    /// How long a check that triggered `tokens`' challenges waits for a phone's tap
    /// (`push_wait` of the first push token's owner); `None`: it answers with the challenge.
    fn push_wait(&self, tokens: &[TokenRecord], caller: &Caller) -> Option<std::time::Duration> {
        let push = self.challenges.push()?;
        let t = tokens.iter().find(|t| crate::push::is_push_type(&t.token_type))?;
        let wait_s = push.auth_policies(t, caller).ok()?.wait_s?;
        Some(capped_wait(std::time::Duration::from_secs(u64::from(wait_s)), self.longest_push_wait))
    }

    /// Creates challenges for the target's challenge-response tokens (no PIN: the caller was
    /// authorised instead). No token: an empty list and no transaction id.
    pub async fn trigger(
        &self,
        caller: Caller,
        target: CheckTarget,
    ) -> Result<(Option<String>, Vec<crate::challenges::ChallengeView>), ValidateError> {
        let svc = self.clone();
        let tokens = self
            .executor
            .read(move |ctx| {
                // The tokens of the user the login resolves to; an unknown user (or a directory
                // that cannot answer) gets no challenge. A database or HSM that could not serve
                // the reads is an error, as for a check (see `store_failed`).
                svc.subject(ctx, &target)
                    .map(|s| s.tokens)
                    .or_else(|r| unavailable(r.answer).map_or(Ok(Vec::new()), Err))
            })
            .await??;
        // As privacyIDEA triggers them: challenge-response tokens, and OTP tokens too (their
        // challenge is answered by the next code).
        let now = self.clock.now_ms();
        let tokens: Vec<TokenRecord> = tokens
            .into_iter()
            .filter(|t| {
                let passkey_by_pin = t.token_type == "passkey"
                    && crate::webauthn::auth_policies(&self.policies, t, &caller, now / 1000)
                        .is_ok_and(|p| p.passkey_trigger_by_pin);
                (is_challenge_type(&t.token_type) || is_otp_type(&t.token_type) || passkey_by_pin) && t.usable(now)
            })
            .collect();
        if tokens.is_empty() {
            return Ok((None, Vec::new()));
        }
        let (tx, views) = self.challenges.trigger(caller, tokens).await?;
        Ok((Some(tx), views))
    }

    /// Resolves who the check is about, applies the throttle and the policies, then answers
    /// a challenge, triggers challenges, or checks PIN + OTP.
    fn decide_all(&self, ctx: &WorkerCtx<'_>, req: &CheckRequest) -> (Decision, Trace) {
        work::reset();
        let (decision, trace) = self.decide_unpadded(ctx, req);
        // A failed guess costs the same work whatever failed (unknown user, no token, wrong
        // PIN, wrong OTP): at least one HSM PIN verification, one plugin check, and one row
        // seal (a failure counted on a token seals its row again when it commits).
        if let Decision::Reject(r) = &decision {
            if r.kind == RejectKind::Guess {
                self.pad_work(ctx, req, matches!(&r.effect, TokenEffect::Fail(t) if !t.is_empty()));
            }
        }
        (decision, trace)
    }

    /// Tops the work of a failed guess up to the floor with a stand-in token: a PIN
    /// verification against its verifier, a plugin check of the code typed (opening its
    /// sealed seed and MACing the window as a real check does), and, when no token row will be
    /// sealed again for a counted failure, one seal MAC. Whatever happens here decides nothing.
    fn pad_work(&self, ctx: &WorkerCtx<'_>, req: &CheckRequest, seals_a_row: bool) {
        if !seals_a_row {
            ctx.reader.equal_work();
        }
        let done = work::get();
        let Some(stand_in) = self.stand_in() else { return };
        let pass = req.pass.expose_secret().as_bytes();
        let (pin, otp) = split_pass(pass, 6).unwrap_or((pass, b"000000"));
        if done.pin_checks == 0 {
            work::note(|w| w.pin_checks += 1);
            let _ = self.secrets.pin_matches(work::STAND_IN_SERIAL, pin, Some(&stand_in.verifier));
        }
        if done.plugin_calls == 0 {
            let request = PluginRequest::CheckOtp {
                secret: secret_ref(&stand_in.token),
                otp: String::from_utf8_lossy(otp).into_owned(),
                first: 0,
                window: stand_in.token.otp_window,
                params: stand_in.token.params.clone(),
            };
            let _ = self.plugin_check(&stand_in.token, &request);
        }
    }

    /// The stand-in token (made once: an HSM-generated seed sealed under its own serial, a
    /// random PIN's verifier, checked by `token-hotp`); `None` while the HSM cannot make it or
    /// no HOTP plugin is loaded.
    fn stand_in(&self) -> Option<Arc<work::StandIn>> {
        let mut slot = self.stand_in.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = work::StandIn::make(&self.plugins, &self.secrets).map(Arc::new);
        }
        slot.clone()
    }

    /// A plugin check of token `t`, counted for the equal-work floor.
    fn plugin_check(
        &self,
        t: &TokenRecord,
        request: &PluginRequest,
    ) -> Result<PluginResponse, crate::plugins::PluginCallError> {
        self.plugin_check_seen(t, request).map(|(answer, _)| answer)
    }

    /// [`Self::plugin_check`], and which stored value the host verified meanwhile.
    fn plugin_check_seen(
        &self,
        t: &TokenRecord,
        request: &PluginRequest,
    ) -> Result<(PluginResponse, HostSaw), crate::plugins::PluginCallError> {
        work::note(|w| w.plugin_calls += 1);
        call_for_token_seen(&self.plugins, &self.secrets, &self.clock, t, request)
    }

    fn decide_unpadded(&self, ctx: &WorkerCtx<'_>, req: &CheckRequest) -> (Decision, Trace) {
        let subject = match self.subject(ctx, &req.target) {
            Ok(s) => s,
            Err(r) => return (Decision::Reject(r), Trace::default()),
        };
        let mut trace = Trace {
            resolver: subject.resolver.clone(),
            policies: Vec::new(),
            owner: Some(subject.key.clone()),
            login: subject.login.clone(),
            realm: subject.realm.clone(),
        };
        if let Err(r) = self.throttled(ctx, &subject, &req.caller) {
            return (Decision::Reject(r), trace);
        }
        let rules = match self.rules(ctx, &subject, req) {
            Ok(r) => r,
            Err(r) => return (Decision::Reject(r), trace),
        };
        trace.policies = rules.policies.matched.clone();
        let tokens = &subject.tokens;
        if let (CheckTarget::User { login, serial: Some(serial), .. }, true) = (&req.target, tokens.is_empty()) {
            // A user and a serial that is not theirs (or a user no resolver knows): a guess like
            // any other (padded, counted for the back-off), never the path of a user without a
            // token or of an unknown user, where pass policies would let them in.
            return (
                Decision::Reject(Reject {
                    audit: format!("token {serial} is not a token of user {login}"),
                    answer: "the serial given is not a token of the user given",
                    effect: TokenEffect::None,
                    serial: Some(serial.clone()),
                    kind: RejectKind::Guess,
                }),
                trace,
            );
        }
        if let Some(tx) = &req.transaction_id {
            return (self.answer(ctx, tokens, req, tx).into(), trace);
        }
        if let Some(hits) = self.trigger_candidates(tokens, req, &rules) {
            return (Decision::Trigger(hits), trace);
        }
        (self.decide(&subject, req, &rules).into(), trace)
    }

    /// Who a check is about. A login is resolved through the realm's resolvers first (each
    /// matching logins its own way) and the tokens read are those of the user it resolves
    /// to, however it was spelt and through whichever realm; a serial names its token, whose
    /// owner is the user. A directory that cannot answer fails the check closed.
    fn subject(&self, ctx: &WorkerCtx<'_>, target: &CheckTarget) -> Result<Subject, Reject> {
        let reject = Reject::other;
        match target {
            CheckTarget::User { login, realm, serial: Some(serial) } => {
                let user = CheckTarget::User { login: login.clone(), realm: realm.clone(), serial: None };
                // Only that token of the user's; none when it is not theirs (see
                // `decide_unpadded`, which refuses that after the throttle).
                let mut subject = self.subject(ctx, &user)?;
                subject.tokens.retain(|t| t.serial == *serial);
                Ok(subject)
            }
            CheckTarget::User { login, realm, serial: None } => match self.realms.resolve(realm.as_deref(), login) {
                Ok(Some(u)) => {
                    let owner = u.owner().map_err(|e| reject(e.to_string(), "the check failed; try again"))?;
                    Ok(Subject {
                        tokens: ctx.reader.tokens_of_owner(&owner).map_err(store_failed)?,
                        key: owner.key(),
                        resolver: u.resolver().map(str::to_owned),
                        login: Some(u.user.login),
                        realm: Some(u.realm),
                        known: true,
                    })
                }
                Ok(None) | Err(crate::resolvers::ResolverError::Refused(Refusal::NotFound(_))) => {
                    let realm_name =
                        self.realms.realm_name(realm.as_deref()).unwrap_or_else(|_| realm.clone().unwrap_or_default());
                    Ok(Subject {
                        tokens: Vec::new(),
                        key: unknown_owner_key(&realm_name, login),
                        resolver: None,
                        login: Some(login.clone()),
                        realm: Some(realm_name),
                        known: false,
                    })
                }
                Err(e) => Err(reject(
                    format!("the user store could not be asked about {login}: {e}"),
                    "the user store could not be reached; try again",
                )),
            },
            CheckTarget::PublicId(id) => {
                // Only a public id that names exactly one token names a subject: with two, an
                // OTP would be tried against keys it was not made for.
                let tokens = ctx.reader.tokens_by_public_id(id).map_err(store_failed)?;
                match tokens.len() {
                    1 => self.subject_of_token(tokens),
                    _ => Ok(Subject::nobody(format!("yubikey:{id}"))),
                }
            }
            CheckTarget::Credential(id) => {
                // Through the credential's unique index: one token or none, never a scan.
                match ctx.reader.token_of_credential(id).map_err(store_failed)? {
                    Some((t, _)) => self.subject_of_token(vec![t]),
                    None => Ok(Subject::nobody(format!("credential:{}", crate::webauthn::b64url(id)))),
                }
            }
            CheckTarget::Serial(serial) => {
                let tokens = ctx.reader.token_for_check(serial).map_err(store_failed)?;
                match tokens.is_empty() {
                    true => Ok(Subject::nobody(format!("token:{serial}"))),
                    false => self.subject_of_token(tokens),
                }
            }
        }
    }

    /// The key per-user limits and the throttle count a token's checks under: its owner's
    /// (asking the owner's resolver for a directory owner recorded before stable ids were
    /// kept), or the token's own when it has no owner.
    /// The subject of a check that names a token (by serial or public id): the token's owner,
    /// or the token itself when it has none.
    fn subject_of_token(&self, tokens: Vec<TokenRecord>) -> Result<Subject, Reject> {
        let Some(t) = tokens.first() else {
            return Err(Reject::other("no token for the subject".into(), "the check failed; try again"));
        };
        Ok(Subject {
            key: self.owner_key(t)?,
            resolver: t.owner_resolver.clone(),
            login: t.login.clone(),
            realm: t.realm.clone(),
            known: true,
            tokens,
        })
    }

    fn owner_key(&self, t: &TokenRecord) -> Result<String, Reject> {
        if let Some(key) = recorded_owner_key(t) {
            return Ok(key);
        }
        let (Some(id), Some(resolver), Some(login)) = (t.owner_id, t.owner_resolver.as_deref(), t.login.as_deref())
        else {
            return Ok(format!("token:{}", t.serial));
        };
        let found = self.realms.resolver(resolver).and_then(|r| r.user(login));
        match found {
            Ok(Some(u)) => Ok(format!("{resolver}:{}", u.uid)),
            // The directory forgot the owner: the row is the only identity left.
            Ok(None) => Ok(format!("gone#{id}")),
            Err(e) => Err(Reject {
                audit: format!("the user store could not be asked about {login}: {e}"),
                answer: "the user store could not be reached; try again",
                effect: TokenEffect::None,
                serial: Some(t.serial.clone()),
                kind: RejectKind::Other,
            }),
        }
    }

    /// Refuses, unchecked, an attempt inside its user's back-off delay ([`Throttle`]).
    fn throttled(&self, ctx: &WorkerCtx<'_>, subject: &Subject, caller: &Caller) -> Result<(), Reject> {
        if self.throttle.base_ms == 0 {
            return Ok(());
        }
        let state = ctx.reader.throttle_state(&subject.key, &caller.to_string()).map_err(store_failed)?;
        match self.throttle.wait(&state, self.clock.now_ms()) {
            None => Ok(()),
            Some((wait_ms, scope, failures)) => Err(Reject {
                audit: format!(
                    "throttled: {failures} failed attempts {scope} since the last success; the next is allowed in {} s; not checked",
                    wait_ms.div_ceil(1000)
                ),
                answer: "too many failed attempts; wait before trying again",
                effect: TokenEffect::None,
                serial: None,
                kind: RejectKind::Refused,
            }),
        }
    }

    /// The policies that apply to this check: the per-user rate limits (`auth_max_fail`,
    /// `auth_max_success`, enforced here, counted per resolved user whatever named them: a
    /// login in any spelling or realm, or a serial) and how the PIN is checked (`otppin`).
    /// Conditions match the user as resolved. A conflict between policies refuses the check.
    fn rules(&self, ctx: &WorkerCtx<'_>, subject: &Subject, req: &CheckRequest) -> Result<Rules, Reject> {
        use crate::policy::Scope;
        let reject = Reject::other;
        let (login, realm) = (subject.login.as_deref(), subject.realm.as_deref());
        let policies = self.policies.current();
        if !policies.has_active(Scope::Authentication) && !policies.has_active(Scope::Authorization) {
            // The common case: no policy, nothing to read or count.
            return Ok(Rules::defaults(login, realm));
        }
        let realm_name = realm.map(str::to_owned).or_else(|| self.realms.realm_name(None).ok());
        let now_ms = self.clock.now_ms();
        let now_s = now_ms / 1000;
        let pctx = crate::policy::request_context(
            login,
            realm_name.as_deref(),
            subject.resolver.as_deref(),
            &req.caller,
            now_s,
        );
        let conflict = |e: crate::policy::PolicyConflict| {
            reject(format!("policy conflict, refused: {e}"), "the check failed; ask an administrator")
        };
        let read = CheckPolicies::read(&policies, &pctx).map_err(conflict)?;
        for (action, limit, result, answer) in [
            ("auth_max_fail", &read.max_fail, "reject", "too many failed authentications; try again later"),
            ("auth_max_success", &read.max_success, "accept", "too many authentications; try again later"),
        ] {
            let Some((limit, names)) = limit else { continue };
            let since = now_ms.saturating_sub(i64::try_from(limit.period_s).unwrap_or(i64::MAX / 2000) * 1000);
            let seen = ctx.reader.recent_owner_checks(&subject.key, result, since).map_err(store_failed)?;
            if seen >= u64::from(limit.count) {
                return Err(Reject {
                    audit: format!(
                        "{action} {}/{}s reached for {} ({seen} in the window; policy {}); not checked",
                        limit.count,
                        limit.period_s,
                        login.unwrap_or(&subject.key),
                        names.join(", ")
                    ),
                    answer,
                    effect: TokenEffect::None,
                    serial: None,
                    kind: RejectKind::Refused,
                });
            }
        }
        Ok(Rules { policies: read, login: login.map(str::to_owned), realm: realm.map(str::to_owned) })
    }

    /// Whether `pin` is right for token `t` under `otppin`: the token's PIN, the owner's
    /// password in the realm's user store, or no PIN at all.
    fn pin_ok(&self, t: &TokenRecord, pin: &[u8], rules: &Rules) -> Result<bool, NotChecked> {
        use crate::policy::OtpPin;
        match rules.policies.otppin {
            OtpPin::TokenPin => {
                if t.pin_verifier.is_some() {
                    work::note(|w| w.pin_checks += 1);
                }
                self.secrets.pin_matches(&t.serial, pin, t.pin_verifier.as_deref()).map_err(|e| NotChecked {
                    hsm: matches!(e, countersign_hsm::HsmError::Unavailable { .. }),
                    audit: format!("HSM while checking the PIN of {}: {e}", t.serial),
                })
            }
            OtpPin::None => Ok(true),
            OtpPin::UserStore => {
                let (Some(login), realm) =
                    (t.login.as_deref().or(rules.login.as_deref()), t.realm.as_deref().or(rules.realm.as_deref()))
                else {
                    return Ok(false);
                };
                let password = SecretString::from(String::from_utf8_lossy(pin).into_owned());
                self.realms.check_password(realm, login, &password).map_err(|e| NotChecked {
                    hsm: false,
                    audit: format!("the user store could not check the password of {login}: {e}"),
                })
            }
        }
    }

    /// The answer-shaping policies for this caller (authentication and authorization scopes).
    /// A conflict between them hides as much as either would: the answer says less, never more.
    fn answer_policies(
        &self,
        login: Option<&str>,
        realm: Option<&str>,
        resolver: Option<&str>,
        caller: &Caller,
    ) -> AnswerPolicies {
        use crate::policy::Scope;
        let p = self.policies.current();
        if !p.has_active(Scope::Authentication) && !p.has_active(Scope::Authorization) {
            // The common case: no policy, no context to build.
            return AnswerPolicies::default();
        }
        let realm = realm.map(str::to_owned).or_else(|| self.realms.realm_name(None).ok());
        let ctx = crate::policy::request_context(login, realm.as_deref(), resolver, caller, self.clock.now_ms() / 1000);
        AnswerPolicies::read(&p, &ctx)
    }

    /// Challenge-response tokens of the target whose PIN is the whole `pass`.
    fn trigger_candidates(
        &self,
        tokens: &[TokenRecord],
        req: &CheckRequest,
        rules: &Rules,
    ) -> Option<Vec<TokenRecord>> {
        let pass = req.pass.expose_secret().as_bytes();
        let now = self.clock.now_ms();
        let hits: Vec<TokenRecord> = tokens
            .iter()
            .filter(|t| {
                // challenge_response names OTP types; the simple types keep their own checks
                // (a TAN or registration code answering a challenge would not be spent), and
                // so does yubikey (its accept needs the host's judgement of the block).
                (is_challenge_type(&t.token_type)
                    || (t.token_type == "passkey" && rules.policies.passkey_by_pin)
                    || (rules.policies.challenge_types.contains(&t.token_type)
                        && !crate::simple_tokens::is_simple_type(&t.token_type)
                        && t.token_type != "yubikey"))
                    && t.usable(now)
            })
            // Without a PIN (otppin=none) an empty pass asks for the challenge.
            .filter(|t| {
                if rules.policies.otppin == crate::policy::OtpPin::None {
                    pass.is_empty()
                } else {
                    self.pin_ok(t, pass, rules).unwrap_or(false)
                }
            })
            .cloned()
            .collect();
        (!hits.is_empty()).then_some(hits)
    }

    /// The answer to a challenge: `pass` is the code, checked at the challenge's counter.
    fn answer(
        &self,
        ctx: &WorkerCtx<'_>,
        tokens: &[TokenRecord],
        req: &CheckRequest,
        tx: &str,
    ) -> Result<Accept, Reject> {
        let reject = Reject::other;
        let now = self.clock.now_ms();
        let open = ctx.reader.open_challenges(tx, now).map_err(store_failed)?;
        let candidates: Vec<(&TokenRecord, &crate::store::OpenChallenge)> = tokens
            .iter()
            .filter(|t| t.usable(now))
            .filter_map(|t| open.iter().find(|c| c.token_id == t.id).map(|c| (t, c)))
            .collect();
        if candidates.is_empty() {
            // A usernameless passkey sign-in: a challenge bound to no token, answered by the
            // passkey whose credential named the target.
            if let Some(assertion) = &req.webauthn {
                if let Some(sign_in) = ctx.reader.open_sign_in(tx, now).map_err(store_failed)? {
                    return self.sign_in(ctx, tokens, &assertion.credential_id, &sign_in, req, now);
                }
            }
            return Err(reject(
                format!("no open challenge {tx} for this target (unknown, answered or expired)"),
                "no open challenge with this transaction_id; request a new code",
            ));
        }
        let code = req.pass.expose_secret().to_owned();
        let mut why = None;
        for (t, c) in &candidates {
            if t.locked(now) {
                return Err(locked(t));
            }
            let by = answer_by(&t.token_type, t.counter, t.otp_window, c.counter, c.nonce.as_deref());
            let answered = |detail: String| {
                Accept::by(t, detail, TokenEffect::AnswerChallenge { challenge_id: c.id, token_id: t.id })
            };
            let (first, window) = match &by {
                // No challenge is made for them (see trigger_candidates); none answers one.
                AnswerBy::Nothing => continue,
                AnswerBy::SignedNonce => {
                    match self.signed_nonce(ctx, t, c, &code, now) {
                        Ok(()) => return Ok(answered("challenge answered: the card signed the nonce".into())),
                        Err(Unanswered::Wrong(e)) => why = Some(e),
                        Err(Unanswered::Failed(r)) => return Err(r),
                    }
                    continue;
                }
                AnswerBy::Assertion => {
                    let nonce = c.nonce.as_deref().unwrap_or_default();
                    // The request's demand for user verification holds here too: an admin's
                    // passkey login at /auth may answer a passkey_trigger_by_pin challenge.
                    let uv = req.require_user_verification;
                    let checked = credential_of(ctx, t)
                        .and_then(|cred| self.assertion(t, &cred, nonce, Spend::Challenge(c.id), uv, req, now));
                    match checked {
                        Ok(done) => return Ok(done),
                        Err(Unanswered::Wrong(e)) => why = Some(e),
                        Err(Unanswered::Failed(r)) => return Err(r),
                    }
                    continue;
                }
                AnswerBy::PhoneAnswer => {
                    match self.phone_answer(ctx, t, c) {
                        Ok(()) => return Ok(answered("challenge answered: accepted on the phone".into())),
                        Err(Unanswered::Wrong(e)) => why = Some(e),
                        Err(Unanswered::Failed(r)) => return Err(r),
                    }
                    continue;
                }
                AnswerBy::Positions(asked) => {
                    // The characters at the positions this challenge asked (kept as its nonce);
                    // the host compares them with the sealed secret, the plugin only relays.
                    let mut params = plugin_params(t);
                    if let Some(o) = params.as_object_mut() {
                        o.insert("positions".into(), serde_json::json!(asked));
                    }
                    let request = PluginRequest::CheckOtp {
                        secret: secret_ref(t),
                        otp: code.clone(),
                        first: c.counter,
                        window: 0,
                        params,
                    };
                    let matched = match self.plugin_check_seen(t, &request) {
                        Ok((PluginResponse::Matched { counter }, saw)) if saw.verified.is_some() => Some(counter),
                        Ok(_) => None,
                        Err(e) => return Err(plugin_failed(e, None)),
                    };
                    if judge_answer(&by, matched) == AnswerVerdict::Answered {
                        return Ok(answered("challenge answered: the characters at the positions asked".into()));
                    }
                    continue;
                }
                AnswerBy::NextCode { first, window } => (*first, *window),
                AnswerBy::ChallengeCode { counter } => (*counter, 0),
            };
            let request = PluginRequest::CheckOtp {
                secret: secret_ref(t),
                otp: code.clone(),
                first,
                window,
                params: plugin_params(t),
            };
            let matched = match self.plugin_check(t, &request) {
                Ok(PluginResponse::Matched { counter }) => Some(counter),
                Ok(_) => None,
                Err(e) => return Err(plugin_failed(e, None)),
            };
            match judge_answer(&by, matched) {
                AnswerVerdict::Answered => return Ok(answered("challenge answered".into())),
                AnswerVerdict::AcceptedNext { counter } => {
                    return Ok(Accept::by(
                        t,
                        format!("challenge answered with counter {counter}"),
                        TokenEffect::AcceptChallenge {
                            challenge_id: c.id,
                            token_id: t.id,
                            seen_counter: t.counter,
                            new_counter: counter.saturating_add(1),
                            drift: drift(t, counter, now),
                        },
                    ))
                }
                AnswerVerdict::Wrong => {}
            }
        }
        let (t, _) = candidates[0];
        Err(Reject {
            audit: match why {
                Some(why) => format!("wrong answer to challenge {tx}: {why}"),
                None => format!("wrong answer to challenge {tx}"),
            },
            answer: "wrong PIN or OTP",
            effect: TokenEffect::Fail(vec![failed(t, now)]),
            serial: Some(t.serial.clone()),
            kind: RejectKind::Guess,
        })
    }

    /// The answer to a sign-in challenge bound to no token: the passkey among `tokens` (the
    /// target the credential named) whose credential it is, its owner still known to its
    /// resolver, verified as [`Self::assertion`] verifies; the user verification the challenge
    /// asked for is required when it said `required`.
    fn sign_in(
        &self,
        ctx: &WorkerCtx<'_>,
        tokens: &[TokenRecord],
        credential_id: &[u8],
        sign_in: &crate::store::OpenSignIn,
        req: &CheckRequest,
        now: i64,
    ) -> Result<Accept, Reject> {
        let refuse = |t: &TokenRecord, why: String| Reject {
            audit: format!("passkey sign-in refused: {why}"),
            answer: "wrong PIN or OTP",
            effect: TokenEffect::Fail(vec![failed(t, now)]),
            serial: Some(t.serial.clone()),
            kind: RejectKind::Guess,
        };
        // The target's passkey whose credential this is (a user named in the request may have
        // several).
        let mut found = None;
        for t in tokens.iter().filter(|t| t.token_type == "passkey") {
            let c = ctx.reader.webauthn_credential(t.id).map_err(store_failed)?;
            if let Some(c) = c.filter(|c| c.credential_id == credential_id) {
                found = Some((t, c));
                break;
            }
        }
        let Some((t, credential)) = found else {
            return Err(Reject {
                audit: "passkey sign-in refused: no passkey has this credential".into(),
                answer: "wrong PIN or OTP",
                effect: TokenEffect::None,
                serial: None,
                kind: RejectKind::Guess,
            });
        };
        if let Some(u) = t.unusable(now) {
            return Err(Reject::other(format!("passkey sign-in refused: {}", u.reason()), u.reason()));
        }
        if t.locked(now) {
            return Err(locked(t));
        }
        // The passkey's owner must still exist: a user removed from the directory (or whose
        // row was removed) signs in no more, whatever their authenticator holds.
        let (Some(login), Some(realm)) = (t.login.as_deref(), t.realm.as_deref()) else {
            return Err(refuse(t, "the passkey belongs to no user".into()));
        };
        match self.realms.resolve(Some(realm), login) {
            Ok(Some(u)) if u.owner().ok().map(|o| o.key()) == self.owner_key(t).ok() => {}
            Ok(_) | Err(crate::resolvers::ResolverError::Refused(Refusal::NotFound(_))) => {
                return Err(refuse(t, format!("its user {login} in realm {realm} no longer exists")))
            }
            Err(e) => {
                return Err(Reject::other(
                    format!("the user store could not be asked about {login}: {e}"),
                    "the user store could not be reached; try again",
                ))
            }
        }
        let required = sign_in.user_verification == "required" || req.require_user_verification;
        self.assertion(t, &credential, &sign_in.nonce, Spend::SignIn(sign_in.id), required, req, now).map_err(|u| {
            match u {
                Unanswered::Wrong(why) => refuse(t, why),
                Unanswered::Failed(r) => r,
            }
        })
    }

    /// Checks a webauthn or passkey token's answer: the assertion for this token's `credential`
    /// (as read for this check), verified by its plugin against the challenge's `nonce` and the
    /// policies' origins and user verification (required whatever they say with
    /// `uv_required`, when the challenge itself asked for it); the sign count judged here
    /// against the row as read. The accept spends the challenge and moves the counter to the
    /// new sign count, by compare-and-set.
    #[allow(clippy::too_many_arguments, reason = "one check's parts, as answer and sign_in hold them")]
    fn assertion(
        &self,
        t: &TokenRecord,
        credential: &crate::store::WebauthnCredential,
        nonce: &[u8],
        spend: Spend,
        uv_required: bool,
        req: &CheckRequest,
        now_ms: i64,
    ) -> Result<Accept, Unanswered> {
        use crate::webauthn::{judge_sign_count, SignCountVerdict};
        let assertion = req.webauthn.as_ref().ok_or("the answer holds no WebAuthn assertion")?;
        if nonce.is_empty() {
            return Err(Unanswered::Wrong("the challenge has no nonce".into()));
        }
        // Constant time is not needed: the credential id is no secret.
        if assertion.credential_id != credential.credential_id {
            return Err(Unanswered::Wrong("the assertion is for another credential than this token's".into()));
        }
        // The user handle, when sent, is the owner's (§7.2); a usernameless sign-in, which
        // identified nobody before, must send it.
        match (assertion.user_handle_matches(credential.user_handle.as_deref()), spend) {
            (Some(false), _) => {
                return Err(Unanswered::Wrong("the assertion's user handle is not the credential owner's".into()))
            }
            (None, Spend::SignIn(_)) => {
                return Err(Unanswered::Wrong("a passkey sign-in's assertion carries no user handle".into()))
            }
            _ => {}
        }
        let mut policies = crate::webauthn::auth_policies(&self.policies, t, &req.caller, now_ms / 1000)
            .map_err(|m| Unanswered::Failed(Reject::other(m, "the check failed; try again")))?;
        if uv_required {
            policies.user_verification = countersign_core::policy::UserVerification::Required;
        }
        let request = crate::webauthn::assert_request(credential, nonce, &policies, assertion);
        let (sign_count, flags) = match self.plugin_check(t, &request) {
            Ok(PluginResponse::WebauthnAsserted { sign_count, flags }) => (sign_count, flags),
            Ok(PluginResponse::Refused { reason }) => return Err(reason.into()),
            Ok(other) => {
                return Err(Unanswered::Failed(Reject::other(
                    format!("plugin {} answered an assertion with {}", t.plugin, other.name()),
                    "the token could not be checked; try again",
                )))
            }
            Err(e) => return Err(Unanswered::Failed(plugin_failed(e, Some(t.serial.clone())))),
        };
        // Backup eligibility is a property of the credential (WebAuthn L3 §7.2): it may not
        // change after the registration.
        if (flags ^ credential.flags) & crate::webauthn::FLAG_BE != 0 {
            return Err(Unanswered::Wrong(
                "the backup eligibility (BE) flag is not the one the credential was registered with".into(),
            ));
        }
        if !policies.aaguids.is_empty()
            && !policies.aaguids.iter().any(|a| countersign_core::policy::webauthn::aaguid_hex(a) == credential.aaguid)
        {
            return Err(Unanswered::Wrong(format!(
                "the authenticator model (AAGUID {}) is not in the policy webauthn_authenticator_selection_list",
                credential.aaguid
            )));
        }
        let (next, regressed) = match judge_sign_count(t.counter, sign_count, policies.sign_count) {
            SignCountVerdict::Accept { next, regressed } => (next, regressed),
            SignCountVerdict::Regressed => {
                return Err(Unanswered::Wrong(format!(
                    "the sign count did not advance ({sign_count} after {}): a cloned authenticator or a replayed \
                     assertion",
                    t.counter
                )))
            }
        };
        let detail = format!(
            "{}: WebAuthn assertion, AAGUID {}, flags {}, sign count {sign_count}{}",
            match spend {
                Spend::Challenge(_) => "challenge answered",
                Spend::SignIn(_) => "passkey sign-in",
            },
            credential.aaguid,
            crate::webauthn::flags_text(flags),
            if regressed { " (did not advance; accepted by policy webauthn_sign_count warn)" } else { "" }
        );
        let effect = match spend {
            Spend::Challenge(challenge_id) => TokenEffect::AcceptChallenge {
                challenge_id,
                token_id: t.id,
                seen_counter: t.counter,
                new_counter: next,
                drift: None,
            },
            Spend::SignIn(sign_in_id) => {
                TokenEffect::AcceptSignIn { sign_in_id, token_id: t.id, seen_counter: t.counter, new_counter: next }
            }
        };
        Ok(Accept::by(t, detail, effect))
    }

    /// Checks a certificate token's answer: `pass` is the card's signature (hex or base64)
    /// over the challenge's nonce, verified against the enrolled certificate and its validity.
    fn signed_nonce(
        &self,
        ctx: &WorkerCtx<'_>,
        t: &TokenRecord,
        c: &crate::store::OpenChallenge,
        pass: &str,
        now_ms: i64,
    ) -> Result<(), Unanswered> {
        let nonce = c.nonce.as_deref().ok_or("the challenge has no nonce")?;
        let cert = ctx
            .reader
            .token_certificate(t.id)
            .map_err(|e| Unanswered::Failed(store_failed(e)))?
            .ok_or("the token has no certificate")?;
        let pass = pass.trim();
        let signature = hex::decode(pass)
            .or_else(|_| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, pass))
            .map_err(|_| "the answer is not a hex or base64 signature")?;
        countersign_pki::verify_signature(&cert.certificate, nonce, &signature, now_ms / 1000)
            .map_err(|e| Unanswered::Wrong(e.to_string()))
    }

    /// A push challenge's answer, as the phone gave it (`crate::push`): accepted, with the
    /// phone's signature over the challenge verifying again with the token's phone key (a
    /// status written into the database without one is not an accept); declined; or not yet.
    fn phone_answer(
        &self,
        ctx: &WorkerCtx<'_>,
        t: &TokenRecord,
        c: &crate::store::OpenChallenge,
    ) -> Result<(), Unanswered> {
        let pc = ctx
            .reader
            .push_challenge(c.id)
            .map_err(|e| Unanswered::Failed(store_failed(e)))?
            .ok_or("the challenge is not a push challenge")?;
        match pc.status {
            crate::store::PushStatus::Accepted if crate::push::answer_verifies(t, &pc) => Ok(()),
            crate::store::PushStatus::Accepted => Err(Unanswered::Wrong(
                "the phone's recorded answer does not verify with its key (changed outside Countersign?)".into(),
            )),
            crate::store::PushStatus::Declined => {
                Err(Unanswered::Wrong(format!("declined: {}", pc.reason.as_deref().unwrap_or("on the phone"))))
            }
            crate::store::PushStatus::Open => Err(Unanswered::Wrong("not confirmed on the phone (yet)".into())),
        }
    }

    /// A user with no token: refused, unless a policy lets them through (privacyIDEA's
    /// passOnNoUser, passOnNoToken, or passthru with the user store's password). Whether the
    /// user exists is what the realm's resolvers said of the login ([`Self::subject`]), and the
    /// password goes to the resolver that found them, under the login it spells.
    fn without_token(&self, subject: &Subject, req: &CheckRequest, rules: &Rules) -> Result<Accept, Reject> {
        let reject = |audit: String, answer: &'static str, kind: RejectKind| Reject {
            audit,
            answer,
            effect: TokenEffect::None,
            serial: None,
            kind,
        };
        let pass = |detail: &str| Accept {
            serial: String::new(),
            token_type: String::new(),
            otp_len: None,
            detail: detail.to_owned(),
            effect: TokenEffect::Pass,
        };
        let login = subject.login.as_deref().unwrap_or_default();
        match without_token(subject.known, &rules.policies) {
            NoToken::Pass(why) => Ok(pass(why)),
            NoToken::Reject(why) => Err(reject(why.into(), "no such user or no token", RejectKind::Guess)),
            NoToken::CheckPassword => {
                let password = SecretString::from(req.pass.expose_secret().to_owned());
                match self.realms.check_password(subject.realm.as_deref(), login, &password) {
                    Ok(true) => Ok(pass("the user has no token; user store password accepted by policy passthru")),
                    Ok(false) => {
                        Err(reject("passthru: wrong user store password".into(), "wrong PIN or OTP", RejectKind::Guess))
                    }
                    Err(e) => Err(reject(
                        format!("passthru: the user store could not check the password of {login}: {e}"),
                        "the user store could not be reached; try again",
                        RejectKind::Other,
                    )),
                }
            }
        }
    }

    /// Reads the tokens and decides, without writing anything.
    fn decide(&self, subject: &Subject, req: &CheckRequest, rules: &Rules) -> Result<Accept, Reject> {
        let reject = |audit: &str, answer: &'static str, kind: RejectKind| Reject {
            audit: audit.to_owned(),
            answer,
            effect: TokenEffect::None,
            serial: None,
            kind,
        };
        let tokens = &subject.tokens;
        if tokens.is_empty() {
            return match &req.target {
                CheckTarget::Serial(_) | CheckTarget::PublicId(_) | CheckTarget::Credential(_) => {
                    Err(reject("no such token", "no such token", RejectKind::Guess))
                }
                CheckTarget::User { .. } => self.without_token(subject, req, rules),
            };
        }
        let now = self.clock.now_ms();
        let active: Vec<&TokenRecord> = tokens.iter().filter(|t| t.usable(now)).collect();
        if active.is_empty() {
            // One token: its reason; several: each token's, in the audit only.
            let why: Vec<(&str, Unusable)> =
                tokens.iter().filter_map(|t| t.unusable(now).map(|u| (t.serial.as_str(), u))).collect();
            let audit = why.iter().map(|(serial, u)| format!("{serial}: {}", u.reason())).collect::<Vec<_>>();
            return Err(reject(
                &format!("no token of the target takes part in checks ({})", audit.join("; ")),
                match why.as_slice() {
                    [(_, one)] => one.reason(),
                    _ => "the token is disabled",
                },
                // Padded like a guess: no PIN was verified, which timing would otherwise tell
                // from a user with a token in use.
                RejectKind::Guess,
            ));
        }
        // Codes of challenge-response tokens are answers to challenges, never checked without
        // one. Their PINs were tried already (a PIN alone asks for a challenge).
        // Nor are passkeys: they answer sign-in challenges only (a usernameless sign-in).
        let usable: Vec<&TokenRecord> =
            active.iter().copied().filter(|t| !is_challenge_type(&t.token_type) && t.token_type != "passkey").collect();
        // A wrong PIN counts against every active token of the target: each was tried, so
        // guessing the PIN of a user with several tokens costs as much as with one.
        let wrong_pin = |audit: &str, answer: &'static str| Reject {
            audit: audit.to_owned(),
            answer,
            effect: TokenEffect::Fail(active.iter().map(|t| failed(t, now)).collect()),
            serial: (active.len() == 1).then(|| active[0].serial.clone()),
            kind: RejectKind::Guess,
        };
        if usable.is_empty() {
            return Err(wrong_pin(
                "the PIN matched no token, and the target's tokens answer challenges only: send the PIN to get a \
                 code, then the code with its transaction_id",
                "send the PIN to get a code, then the code with its transaction_id",
            ));
        }
        let pass = req.pass.expose_secret().as_bytes();
        let mut pin_matched = None;
        for t in &usable {
            let Some((pin, otp)) = split_pass(pass, otp_digits(&t.params)) else { continue };
            match self.pin_ok(t, pin, rules) {
                Ok(true) => {
                    pin_matched = Some((*t, otp));
                    break;
                }
                Ok(false) => {}
                Err(e) if e.hsm => return Err(hsm_reject(e.audit, Some(t.serial.clone()))),
                Err(e) => return Err(reject(&e.audit, "the check failed; try again", RejectKind::Other)),
            }
        }
        let Some((token, otp)) = pin_matched else {
            return Err(wrong_pin("wrong PIN", "wrong PIN or OTP"));
        };
        if token.locked(now) {
            return Err(locked(token));
        }
        let otp = String::from_utf8_lossy(otp).into_owned();
        let learn_public_id = crate::yubikey::public_id_to_learn(token, &otp);
        // The last accepted code is looked for too (OATH tokens, whose plugins count from
        // `first`), so a replay of it is recognised and not counted as a guess.
        let replay_seen = recognises_replay(token);
        let request = PluginRequest::CheckOtp {
            secret: secret_ref(token),
            otp,
            first: countersign_core::rules::search_start(token.counter, replay_seen),
            window: if replay_seen && matches!(token.token_type.as_str(), "hotp" | "paper") {
                token.otp_window.saturating_add(1)
            } else {
                token.otp_window
            },
            params: plugin_params(token),
        };
        let on_fail = |audit: String, answer: &'static str| Reject {
            audit,
            answer,
            effect: TokenEffect::Fail(vec![failed(token, now)]),
            serial: Some(token.serial.clone()),
            kind: RejectKind::Guess,
        };
        let (answer, saw) = match self.plugin_check_seen(token, &request) {
            Ok((answer, saw)) => (Ok(answer), saw),
            Err(e) => (Err(e), HostSaw::default()),
        };
        // A type whose values the host verifies is accepted on what the host saw match, never
        // on the plugin's word alone.
        let unverified = crate::simple_tokens::verifies(&token.token_type) && saw.verified.is_none();
        // A yubikey match stands only if the block the host decrypted says the same: its CRC,
        // this token's private id, and the very counter the plugin named.
        let mut then = crate::simple_tokens::after_accept(token, saw.verified);
        if token.token_type == "yubikey" {
            if let Ok(PluginResponse::Matched { counter }) = &answer {
                match crate::yubikey::confirm(saw.yubikey.as_ref(), *counter, learn_public_id.clone()) {
                    Ok(after) => then = after,
                    Err(true) => {
                        return Err(on_fail(
                            "wrong OTP: a valid Yubico OTP of another private id".into(),
                            "wrong PIN or OTP",
                        ))
                    }
                    Err(false) => {
                        return Err(Reject {
                            audit: format!(
                                "plugin {} answered counter {counter}, which the block the host decrypted does not \
                                 show; refused",
                                token.plugin
                            ),
                            answer: "the check failed; try again",
                            effect: TokenEffect::None,
                            serial: Some(token.serial.clone()),
                            kind: RejectKind::Other,
                        })
                    }
                }
            }
        }
        match answer {
            Ok(PluginResponse::Matched { .. }) if unverified => Err(Reject {
                audit: format!("plugin {} answered a match the host did not verify; refused", token.plugin),
                answer: "the check failed; try again",
                effect: TokenEffect::None,
                serial: Some(token.serial.clone()),
                kind: RejectKind::Other,
            }),
            Ok(PluginResponse::Matched { counter }) => match judge_match(counter, token.counter, replay_seen) {
                MatchVerdict::Accept { next } => Ok(Accept::by(
                    token,
                    match saw.verified {
                        Some(_) if token.token_type == "registration" => {
                            "registration code accepted; the token is deleted with this accept".to_owned()
                        }
                        Some(i) if token.token_type == "tan" => format!(
                            "TAN {} accepted ({} left)",
                            i + 1,
                            crate::simple_tokens::unspent(&token.sealed_seed).saturating_sub(1)
                        ),
                        _ => format!("counter {counter} accepted"),
                    },
                    TokenEffect::Accept {
                        token_id: token.id,
                        seen_counter: token.counter,
                        new_counter: next,
                        drift: drift(token, counter, now),
                        then,
                    },
                )),
                MatchVerdict::Replay => Err(Reject {
                    audit: format!(
                        "replay: the code of counter {counter} was accepted already; not counted as a failure"
                    ),
                    answer: "the OTP was already used",
                    effect: TokenEffect::None,
                    serial: Some(token.serial.clone()),
                    kind: RejectKind::Other,
                }),
                MatchVerdict::Below => Err(Reject {
                    audit: format!(
                        "plugin {} proposed counter {counter}, below the next allowed {}; refused",
                        token.plugin, token.counter
                    ),
                    answer: "the check failed; try again",
                    effect: TokenEffect::None,
                    serial: Some(token.serial.clone()),
                    kind: RejectKind::Other,
                }),
            },
            Ok(PluginResponse::NoMatch) => {
                Err(on_fail("wrong OTP (not valid in the window, or already used)".into(), "wrong PIN or OTP"))
            }
            Ok(other) => Err(Reject {
                audit: format!("plugin error: {} answered a check with {}", token.plugin, other.name()),
                answer: "the token could not be checked; try again",
                effect: TokenEffect::None,
                serial: Some(token.serial.clone()),
                kind: RejectKind::Other,
            }),
            Err(e) => Err(plugin_failed(e, Some(token.serial.clone()))),
        }
    }

    fn record(&self, decision: Decision, trace: Trace, mut audit: AuthAuditRow) -> (CheckRecord, Answer) {
        audit.resolver = trace.resolver;
        audit.policies = (!trace.policies.is_empty()).then(|| trace.policies.join(", "));
        audit.duration_ms = Some(self.clock.now_ms().saturating_sub(audit.at_ms));
        audit.owner = trace.owner.clone();
        // The user as resolved; the spelling typed stays in the detail.
        let typed = match (&audit.login, &trace.login) {
            (Some(typed), Some(resolved)) if typed != resolved => {
                let note = format!(" (login given as '{}')", typed.escape_debug());
                audit.login = Some(resolved.clone());
                note
            }
            _ => String::new(),
        };
        let owner = trace.owner.unwrap_or_default();
        let (rec, answer) = match decision {
            Decision::Trigger(tokens) => {
                audit.result = "challenge".into();
                let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
                audit.detail = Some(format!("PIN matched; challenge for {}", serials.join(", ")));
                let rec =
                    CheckRecord { effect: TokenEffect::None, audit, throttle: ThrottleEffect::None, foreseen: None };
                (rec, Answer::Trigger(tokens))
            }
            Decision::Accept(a) => {
                let answered_challenge = a.answered_challenge();
                audit.result = "accept".into();
                audit.serial = Some(a.serial.clone()).filter(|s| !s.is_empty());
                audit.detail = Some(a.detail);
                let throttle = if owner.is_empty() { ThrottleEffect::None } else { ThrottleEffect::Success { owner } };
                let rec = CheckRecord { effect: a.effect, audit, throttle, foreseen: None };
                (
                    rec,
                    Answer::Accept {
                        serial: a.serial,
                        token_type: a.token_type,
                        otp_len: a.otp_len,
                        answered_challenge,
                    },
                )
            }
            Decision::Reject(r) => {
                audit.detail = Some(r.audit);
                if audit.serial.is_none() {
                    audit.serial = r.serial;
                }
                match unavailable(r.answer) {
                    // Not a reject: the check could not be made.
                    Some(error) => {
                        audit.result = "error".into();
                        let rec = CheckRecord {
                            effect: TokenEffect::None,
                            audit,
                            throttle: ThrottleEffect::None,
                            foreseen: None,
                        };
                        (rec, Answer::Unavailable(error))
                    }
                    None => {
                        audit.result = if r.kind == RejectKind::Refused { "refused" } else { "reject" }.into();
                        let throttle = match r.kind {
                            RejectKind::Guess if !owner.is_empty() => {
                                ThrottleEffect::Failure { owner, source: audit.caller.clone() }
                            }
                            _ => ThrottleEffect::None,
                        };
                        (CheckRecord { effect: r.effect, audit, throttle, foreseen: None }, Answer::Reject(r.answer))
                    }
                }
            }
        };
        let mut rec = rec;
        if let Some(d) = rec.audit.detail.as_mut() {
            d.push_str(&typed);
        }
        (rec, answer)
    }
}

impl Rules {
    /// No policy applies: the token PIN, no pass-through, no OTP challenges.
    fn defaults(login: Option<&str>, realm: Option<&str>) -> Rules {
        Rules { login: login.map(str::to_owned), realm: realm.map(str::to_owned), ..Rules::default() }
    }
}

/// What the policies say about one check, and whom it is about (for `otppin=userstore`).
#[derive(Default)]
struct Rules {
    policies: CheckPolicies,
    /// The user the check names (or the token's owner).
    login: Option<String>,
    realm: Option<String>,
}

/// What the audit row records of how a check was decided, besides the decision.
#[derive(Debug, Default)]
struct Trace {
    /// The resolver the token's owner came from.
    resolver: Option<String>,
    policies: Vec<String>,
    /// The key of the user the check was about (per-user limits, throttle).
    owner: Option<String>,
    /// The login as the user's resolver spells it, and the realm that resolved it.
    login: Option<String>,
    realm: Option<String>,
}

/// Who a check is about ([`ValidateService::subject`]).
struct Subject {
    /// The user's tokens (or the one token a serial names).
    tokens: Vec<TokenRecord>,
    /// The resolved user's key ([`crate::store::Owner::key`]); for a login no resolver knows,
    /// [`unknown_owner_key`]; for a token without owner (or no such token), `token:<serial>`.
    key: String,
    /// The login as the user's resolver spells it (as typed for an unknown user), the realm
    /// that resolved it, and the resolver (none for internal users).
    login: Option<String>,
    realm: Option<String>,
    resolver: Option<String>,
    /// The realm's resolvers know the user (a check by user), or the token exists (by serial).
    known: bool,
}

impl Subject {
    /// No token and no user: what a serial or public id that names nothing is checked as.
    fn nobody(key: String) -> Subject {
        Subject { tokens: Vec::new(), key, resolver: None, login: None, realm: None, known: false }
    }
}

/// What the worker decided.
enum Decision {
    Accept(Accept),
    Reject(Reject),
    /// The PIN alone matched challenge-response tokens: create challenges for them.
    Trigger(Vec<TokenRecord>),
}

impl From<Result<Accept, Reject>> for Decision {
    fn from(r: Result<Accept, Reject>) -> Decision {
        match r {
            Ok(a) => Decision::Accept(a),
            Err(r) => Decision::Reject(r),
        }
    }
}

/// What an accepted check will write: its effect (a counter or a challenge compare-and-set)
/// and the audit's detail. A policy pass without a token has an empty serial and type.
struct Accept {
    serial: String,
    token_type: String,
    /// The token's code length (privacyIDEA's `otplen`); none without a token.
    otp_len: Option<usize>,
    detail: String,
    effect: TokenEffect,
}

impl Accept {
    /// An accept by token `t`.
    fn by(t: &TokenRecord, detail: String, effect: TokenEffect) -> Accept {
        Accept {
            serial: t.serial.clone(),
            token_type: t.token_type.clone(),
            otp_len: Some(crate::simple_tokens::reported_otp_len(&t.token_type, otp_digits(&t.params))),
            detail,
            effect,
        }
    }

    /// Whether the accept answered a challenge (privacyIDEA words that differently).
    fn answered_challenge(&self) -> bool {
        matches!(
            self.effect,
            TokenEffect::AnswerChallenge { .. }
                | TokenEffect::AcceptChallenge { .. }
                | TokenEffect::AcceptSignIn { .. }
        )
    }
}

/// Why a challenge's answer was not accepted: it was wrong (the reason, for the audit; a
/// failure counts on the token), or it could not be checked (the database, the HSM or the
/// plugin failed, or a policy conflict): that reject as it is, an error answer where it is one,
/// counting nothing against the user.
enum Unanswered {
    Wrong(String),
    Failed(Reject),
}

impl From<&str> for Unanswered {
    fn from(why: &str) -> Unanswered {
        Unanswered::Wrong(why.to_owned())
    }
}

impl From<String> for Unanswered {
    fn from(why: String) -> Unanswered {
        Unanswered::Wrong(why)
    }
}

/// The credential of webauthn or passkey token `t`, read (and its seal checked) for this check.
fn credential_of(ctx: &WorkerCtx<'_>, t: &TokenRecord) -> Result<crate::store::WebauthnCredential, Unanswered> {
    ctx.reader
        .webauthn_credential(t.id)
        .map_err(|e| Unanswered::Failed(store_failed(e)))?
        .ok_or_else(|| "the token has no registered credential".into())
}

/// Which challenge an assertion's accept spends.
#[derive(Debug, Clone, Copy)]
enum Spend {
    /// A challenge of the token (`challenge` row).
    Challenge(i64),
    /// A sign-in challenge bound to no token (`sign_in_challenge` row).
    SignIn(i64),
}

/// What the worker hands back to the request.
enum Answer {
    Accept {
        serial: String,
        token_type: String,
        otp_len: Option<usize>,
        answered_challenge: bool,
    },
    Reject(&'static str),
    Trigger(Vec<TokenRecord>),
    /// The HSM or the database did not answer: an error, not a reject.
    Unavailable(ValidateError),
}

/// The reject of a token its fail counter locks.
fn locked(t: &TokenRecord) -> Reject {
    Reject {
        audit: format!(
            "token locked: {} failed attempts reached max fail {}; reset it or wait for the clear timeout",
            t.fails.count, t.fails.max
        ),
        answer: "the token is locked after too many failed attempts",
        effect: TokenEffect::None,
        serial: Some(t.serial.clone()),
        // A guess: padded to a wrong PIN's work (a right PIN on a locked token must not be
        // told by its timing) and counted for the back-off.
        kind: RejectKind::Guess,
    }
}

/// A failure on token `t`: counted on, or restarting at one once the clear timeout of a
/// locked token has passed.
fn failed(t: &TokenRecord, now_ms: i64) -> FailedToken {
    FailedToken { token_id: t.id, restart: t.fail_counter().failure_restarts(now_ms) }
}

/// Whether the check also looks for the token's last accepted code, to tell a replay from a
/// guess: OATH tokens (whose plugins search from `first`) that accepted a code before.
fn recognises_replay(t: &TokenRecord) -> bool {
    (is_otp_type(&t.token_type) || matches!(t.token_type.as_str(), "paper" | "yubikey"))
        && t.counter > 0
        && t.last_auth_ms.is_some()
}

/// For TOTP: the drift (in steps) between the accepted step and the appliance's clock.
fn drift(t: &TokenRecord, step: u64, now_ms: i64) -> Option<i64> {
    if t.token_type != "totp" {
        return None;
    }
    let period = t.params.get("step").and_then(serde_json::Value::as_u64).unwrap_or(30);
    let t0 = t.params.get("t0").and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some(countersign_core::rules::totp_drift(step, now_ms, t0, period))
}

/// A `push_wait` as it is waited: the policy's seconds, but never past `longest` (the request
/// limit less the finalising check's share), so the client hears a reject, not a timeout.
fn capped_wait(wanted: std::time::Duration, longest: std::time::Duration) -> std::time::Duration {
    if wanted > longest {
        tracing::debug!(
            wanted_s = wanted.as_secs(),
            longest_ms = longest.as_millis(),
            "push_wait is longer than a request may take; waiting only as long as the request limit allows"
        );
    }
    wanted.min(longest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_wait_is_cut_to_what_the_request_limit_leaves() {
        use std::time::Duration;
        let longest = Duration::from_millis(8000);
        assert_eq!(super::capped_wait(Duration::from_secs(5), longest), Duration::from_secs(5));
        assert_eq!(super::capped_wait(Duration::from_secs(30), longest), longest);
        assert_eq!(super::capped_wait(Duration::from_secs(8), longest), longest);
    }

    use super::*;
    use crate::store::ThrottleState;

    const T: Throttle = Throttle { source_free: 3, user_free: 5, base_ms: 1000, max_ms: 8000 };

    /// A read the database or the HSM could not serve makes the check an error answer (a
    /// client tries another appliance), never a reject ("wrong code" of a code nobody
    /// checked); other store failures stay rejects.
    #[test]
    fn a_read_the_database_or_hsm_could_not_serve_is_an_error_not_a_reject() {
        use crate::store::{db::DbCode, DbError, StoreError};
        let answer = |e: StoreError| store_failed(e).answer;
        assert_eq!(answer(StoreError::Sql(DbError::new(DbCode::Unavailable, "connection lost"))), STORE_UNAVAILABLE);
        assert_eq!(answer(StoreError::Sql(DbError::new(DbCode::Conflict, "lock timeout"))), STORE_UNAVAILABLE);
        assert_eq!(answer(StoreError::SealUnavailable("no session".into())), HSM_UNAVAILABLE);
        assert_eq!(answer(StoreError::Tampered("token T1".into())), "the check failed; try again");
        assert_eq!(answer(StoreError::Sql(DbError::new(DbCode::Other, "bad value"))), "the check failed; try again");
        // Each such answer is the error the caller gets; any other answer is a reject.
        assert!(matches!(unavailable(STORE_UNAVAILABLE), Some(ValidateError::StoreUnavailable)));
        assert!(matches!(unavailable(HSM_UNAVAILABLE), Some(ValidateError::HsmUnavailable)));
        assert!(unavailable("the check failed; try again").is_none());
        assert!(unavailable(GENERIC_REJECT).is_none());
    }

    #[test]
    fn back_off_doubles_after_the_free_failures_up_to_the_cap() {
        let delays: Vec<u64> = (0..9).map(|n| T.delay_ms(n, 3)).collect();
        assert_eq!(delays, [0, 0, 0, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(Throttle { base_ms: 0, ..T }.delay_ms(50, 3), 0, "base 0 turns throttling off");
        assert_eq!(T.delay_ms(u32::MAX, 0), 8000);
    }

    #[test]
    fn the_longer_of_the_source_and_the_user_wait_applies() {
        // 3 failures from this source, the last at 10 000: wait until 11 000.
        let s = ThrottleState { user: (3, 10_000), source: (3, 10_000) };
        assert_eq!(T.wait(&s, 10_400).map(|w| (w.0, w.1)), Some((600, "from this source")));
        assert_eq!(T.wait(&s, 11_000), None);
        // Other sources failed too: the user's 6 failures (wait 2 s) outlast this source's 1.
        let s = ThrottleState { user: (6, 10_000), source: (1, 9_000) };
        assert_eq!(T.wait(&s, 10_500).map(|w| (w.0, w.1)), Some((1500, "from all sources")));
        assert_eq!(T.wait(&ThrottleState::default(), 0), None);
    }
}

/// The equal-work floor of failed guesses (issue 13, finding 8): an unknown user, a user
/// without a token, a wrong PIN and a wrong OTP must cost the same work, or the time of the
/// answer tells which it was. Each check counts its HSM PIN verifications and plugin checks
/// on its executor thread (one check runs at a time per thread); a failed guess that did
/// fewer than one of each does the rest on a stand-in token. The floor never decides anything.
pub(crate) mod work {
    use std::cell::Cell;

    use crate::plugins::PluginHost;
    use crate::store::TokenRecord;
    use crate::token_secrets::TokenSecrets;

    /// The stand-in token's serial (never a real one: serials have no spaces).
    pub(crate) const STAND_IN_SERIAL: &str = "(equal work)";

    /// What one check did.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub(crate) struct Work {
        pub pin_checks: u32,
        pub plugin_calls: u32,
    }

    thread_local! {
        static WORK: Cell<Work> = const { Cell::new(Work { pin_checks: 0, plugin_calls: 0 }) };
    }

    /// Starts counting the current thread's check from nothing.
    pub(crate) fn reset() {
        WORK.with(|w| w.set(Work::default()));
    }

    /// Counts work of the current thread's check.
    pub(crate) fn note(f: impl FnOnce(&mut Work)) {
        WORK.with(|w| {
            let mut v = w.get();
            f(&mut v);
            w.set(v);
        });
    }

    /// What the current thread's check did so far.
    pub(crate) fn get() -> Work {
        WORK.with(Cell::get)
    }

    /// A token that exists only in memory: its seed sealed by the HSM, a verifier of a
    /// random PIN, HOTP parameters and the default window.
    #[derive(Debug)]
    pub(crate) struct StandIn {
        pub token: TokenRecord,
        pub verifier: Vec<u8>,
    }

    impl StandIn {
        /// Makes the stand-in; `None` while the HSM cannot or no `token-hotp` plugin is loaded.
        pub(crate) fn make(plugins: &PluginHost, secrets: &TokenSecrets) -> Option<StandIn> {
            if !plugins.has("token-hotp", "token") {
                return None;
            }
            let seed = zeroize::Zeroizing::new(secrets.random(20).ok()?);
            let pin = zeroize::Zeroizing::new(secrets.random(16).ok()?);
            Some(StandIn {
                token: TokenRecord::unsaved(&crate::store::NewToken {
                    serial: STAND_IN_SERIAL.into(),
                    token_type: "hotp".into(),
                    plugin: "token-hotp".into(),
                    params: serde_json::json!({ "digits": 6, "hash": "sha1" }),
                    otp_window: 10,
                    sealed_seed: secrets.seal_seed(STAND_IN_SERIAL, &seed).ok()?,
                    counter: 0,
                    pin_verifier: None,
                    max_fail: 1,
                    fail_clear_s: 0,
                    user: None,
                    description: String::new(),
                    recipient: None,
                    owner_limit: None,
                }),
                verifier: secrets.pin_verifier(STAND_IN_SERIAL, &pin).ok()?,
            })
        }
    }
}
