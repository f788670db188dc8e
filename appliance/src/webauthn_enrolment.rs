//! The two steps of a webauthn token's enrolment, as the token service runs them (privacyIDEA's
//! two calls of `/token/init`): the first stores the token waiting for its registration
//! (`rollout_state` `clientwait`, which takes part in no check) and a challenge from the HSM;
//! the second has the token's plugin verify the authenticator's attestation, judges it against
//! the enrolment policies, and stores the credential in the transaction that spends the
//! challenge. Owns nothing else of a token's lifecycle (the token service does).

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_core::policy::webauthn::WebauthnEnrolPolicies;

use crate::store::{
    AuthAuditRow, Registration as CredentialRegistration, StoreError, TokenRecord, CLIENTWAIT, ENROLLED, ROLLOUT_STATE,
};
use crate::token_host::call_for_token;
use crate::tokens::{api_token, still_expected, Enrolled, InitRequest, TokenError, TokenService};
use crate::webauthn::{
    b64url, judge_registration, register_request, Enrolment, RegisterRequest, Registration, CHALLENGE_LEN,
};

/// What the first step decided before the token is stored.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) rp_id: String,
    rp_name: String,
    login: String,
    realm: String,
    policies: WebauthnEnrolPolicies,
}

fn invalid(m: String) -> TokenError {
    TokenError::Refused(Refusal::Invalid(m))
}

impl TokenService {
    /// The enrolment policies of a webauthn token for `login` in `realm`.
    fn webauthn_policies(
        &self,
        caller: &Caller,
        login: &str,
        realm: Option<&str>,
    ) -> Result<WebauthnEnrolPolicies, TokenError> {
        let ctx = crate::policy::request_context(Some(login), realm, None, caller, self.clock.now_ms() / 1000);
        WebauthnEnrolPolicies::read(&self.policies.current(), &ctx)
            .map_err(|e| invalid(format!("policy conflict, refused: {e}")))
    }

    /// The first step's checks, before the token is stored: a user, the relying party's
    /// policies, the per-user limits of webauthn tokens; and the params the token starts with.
    pub(crate) fn start_webauthn(
        &self,
        caller: &Caller,
        r: &mut InitRequest,
        realm: Option<&str>,
    ) -> Result<Started, TokenError> {
        let Some(login) = r.user.clone() else {
            return Err(invalid(format!("a {} token is registered for a user: give user (and realm)", r.token_type)));
        };
        if r.seed.is_some() || r.params.is_some() || r.password.is_some() {
            return Err(invalid(
                "a webauthn token takes no otpkey, password or params: its key is made by the authenticator".into(),
            ));
        }
        let policies = self.webauthn_policies(caller, &login, realm)?;
        let missing = |action: &str| {
            invalid(format!(
                "Missing enrollment policy for WebauthnToken: {action}; an admin sets it (scope enrollment) to the \
                 domain users sign in at"
            ))
        };
        let rp_id = policies.rp_id.clone().ok_or_else(|| missing("webauthn_relying_party_id"))?;
        let rp_name = policies.rp_name.clone().ok_or_else(|| missing("webauthn_relying_party_name"))?;
        let realm = realm.unwrap_or_default().to_owned();
        if policies.max_tokens.is_some() || policies.max_active_tokens.is_some() {
            let theirs = self.store.tokens(Some((&login, Some(&realm))), Some("webauthn"))?;
            let active = theirs.iter().filter(|t| t.active).count();
            let over =
                |limit: Option<i64>, have: usize| limit.is_some_and(|l| i64::try_from(have).unwrap_or(i64::MAX) >= l);
            if over(policies.max_tokens, theirs.len()) {
                return Err(invalid(format!(
                    "{login} has {} webauthn tokens, the most the policy webauthn_max_token_per_user allows",
                    theirs.len()
                )));
            }
            if over(policies.max_active_tokens, active) {
                return Err(invalid(format!(
                    "{login} has {active} active webauthn tokens, the most the policy \
                     webauthn_max_active_token_per_user allows"
                )));
            }
        }
        let mut params = serde_json::json!({ ROLLOUT_STATE: CLIENTWAIT, "rp_id": rp_id });
        if r.token_type == "passkey" {
            // The user handle a discoverable credential returns at sign-in: random, as
            // privacyIDEA's (64 bytes).
            params["user_handle"] = b64url(&self.secrets.random(64)?).into();
        }
        r.params = Some(params);
        Ok(Started { rp_id, rp_name, login, realm, policies })
    }

    /// The first step's challenge for the stored token `rec`, and what the client needs.
    pub(crate) fn webauthn_challenge(&self, rec: &TokenRecord, s: Started) -> Result<Enrolment, TokenError> {
        let passkey = rec.token_type == "passkey";
        let (nonce, challenge) = crate::webauthn::challenge(passkey, &self.secrets.random(CHALLENGE_LEN)?);
        let transaction_id = self.secrets.random_digits(20)?.to_string();
        let now = self.clock.now_ms();
        let valid_until_ms = now.saturating_add(i64::from(s.policies.timeout_s).saturating_mul(1000));
        self.store.create_unreserved_challenge(rec.id, &transaction_id, now, valid_until_ms, Some(&nonce))?;
        let mut exclude_credentials = Vec::new();
        // A passkey never registers twice on one authenticator (privacyIDEA always excludes
        // the user's passkeys); a webauthn token when the policy says so.
        if passkey || s.policies.avoid_double_registration {
            for t in self.store.tokens(Some((&s.login, Some(&s.realm))), Some(&rec.token_type))? {
                if let Some(c) = self.store.webauthn_credential(t.id)? {
                    exclude_credentials.push(b64url(&c.credential_id));
                }
            }
        }
        let user_id = match rec.params.get("user_handle").and_then(serde_json::Value::as_str) {
            Some(handle) => handle.to_owned(),
            None => b64url(rec.serial.as_bytes()),
        };
        Ok(Enrolment::Register(Box::new(RegisterRequest {
            passkey,
            user_id,
            transaction_id,
            nonce: challenge,
            rp_id: s.rp_id,
            rp_name: s.rp_name,
            serial: rec.serial.clone(),
            // privacyIDEA shows a passkey's user by login.
            display_name: if passkey { s.login.clone() } else { format!("{}@{}", s.login, s.realm) },
            name: s.login,
            algorithms: s.policies.algorithms.clone(),
            user_verification: s.policies.user_verification.as_str(),
            attachment: s.policies.attachment.webauthn_word(),
            timeout_ms: u64::from(s.policies.timeout_s).saturating_mul(1000),
            attestation: if passkey {
                s.policies.passkey_attestation.as_str()
            } else {
                s.policies.attestation_form.as_str()
            },
            exclude_credentials,
            aaguids: s.policies.aaguids.iter().map(countersign_core::policy::webauthn::aaguid_hex).collect(),
            message: s.policies.challenge_text.clone(),
            valid_until_ms,
        })))
    }

    /// The second step: the registration of token `r.serial` verified by its plugin, judged on
    /// the enrolment policies of its owner, and stored with the challenge spent, in one
    /// transaction. A refused registration is audited with its reason and leaves the token
    /// waiting (the client may try again until the challenge expires).
    pub(crate) fn finish_webauthn(
        &self,
        caller: &Caller,
        r: &InitRequest,
        reg: &Registration,
    ) -> Result<Enrolled, TokenError> {
        let serial = r
            .serial
            .clone()
            .ok_or_else(|| invalid("the registration names its token: give the serial of the first step".into()))?;
        let token = self.store.token(&serial)?;
        let waiting = |t: &TokenRecord| {
            matches!(t.token_type.as_str(), "webauthn" | "passkey") && t.rollout_state() == CLIENTWAIT
        };
        if !waiting(&token) {
            return Err(invalid(format!(
                "regdata and clientdata given, but token {serial} is not a webauthn or passkey token waiting for its \
                 registration"
            )));
        }
        still_expected(self.expect.as_deref(), &token)?;
        let now = self.clock.now_ms();
        let challenge = self.store.open_challenge(&reg.transaction_id, token.id, now)?.ok_or_else(|| {
            invalid(format!(
                "The enrollment challenge does not exist or has timed out for {serial}; start the enrolment again"
            ))
        })?;
        let nonce = challenge.nonce.clone().unwrap_or_default();
        let login = token.login.clone().unwrap_or_default();
        let mut policies = self.webauthn_policies(caller, &login, token.realm.as_deref())?;
        let passkey = token.token_type == "passkey";
        if passkey {
            // privacyIDEA checks no attestation level for passkeys (most synced passkeys
            // attest nothing); the AAGUID allow-list still applies.
            policies.attestation_level = countersign_core::policy::AttestationLevel::None;
        }
        let rp_id = token.params.get("rp_id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        let (roots, unreadable) = self.webauthn.roots();
        if !unreadable.is_empty() {
            if policies.attestation_level == countersign_core::policy::AttestationLevel::Trusted {
                return Err(TokenError::Internal(format!(
                    "{}; the policy requires a trusted attestation, so no registration is accepted until \
                     [webauthn] attestation_roots names readable PEM files",
                    unreadable.join("; ")
                )));
            }
            tracing::warn!(problems = %unreadable.join("; "), "WebAuthn attestation roots missing; attestations are reported untrusted");
        }
        let mut audit = AuthAuditRow {
            serial: Some(serial.clone()),
            login: token.login.clone(),
            realm: token.realm.clone(),
            ..AuthAuditRow::new(caller, "token/init", "ok")
        };
        let refused = |audit: &mut AuthAuditRow, why: String| {
            audit.result = "reject".into();
            audit.detail = Some(format!("webauthn registration refused: {why}"));
            // The refusal stands whether or not its audit row could be written.
            if let Err(e) = self.store.audit_auth(audit) {
                tracing::error!(serial = %serial, error = %e, "the audit row of a refused registration was not written");
            }
            invalid(format!("the WebAuthn registration of token {serial} was refused: {why}"))
        };
        let request = match register_request(&policies, &rp_id, &nonce, roots, now, reg) {
            Ok(req) => req,
            Err(why) => return Err(refused(&mut audit, why)),
        };
        let answer = call_for_token(&self.plugins, &self.secrets, &self.clock, &token, &request)
            .map_err(|e| TokenError::Plugin(e.to_string()))?;
        let user_handle = match token.params.get("user_handle").and_then(serde_json::Value::as_str) {
            Some(h) => crate::webauthn::decode_b64("the user handle", h).map_err(TokenError::Internal)?,
            None => serial.as_bytes().to_vec(),
        };
        let credential = match judge_registration(answer, &policies, &rp_id, Some(user_handle)) {
            Ok(c) => c,
            Err(why) => return Err(refused(&mut audit, why)),
        };
        audit.detail = Some(format!(
            "webauthn registration: attestation {}, AAGUID {}, flags {}, algorithm {}",
            credential.attestation,
            credential.aaguid,
            crate::webauthn::flags_text(credential.flags),
            credential.alg
        ));
        let mut params = token.params.clone();
        if let Some(o) = params.as_object_mut() {
            o.insert(ROLLOUT_STATE.into(), ENROLLED.into());
        }
        let expect = self.expect.clone();
        // privacyIDEA names a token registered without a description (its messages show it).
        let generic = if passkey { "Passkey" } else { "Generic WebAuthn Token" };
        // A description given at the first step stays (as privacyIDEA keeps it).
        let description = match (token.description.is_empty(), r.description.is_empty()) {
            (false, _) => None,
            (true, false) => Some(r.description.as_str()),
            (true, true) => Some(generic),
        };
        let stored = CredentialRegistration {
            challenge_id: challenge.id,
            now_ms: now,
            params: &params,
            description,
            credential: &credential,
        };
        let rec = self.store.register_webauthn(&serial, &stored, &audit, |t| {
            still_expected(expect.as_deref(), t)?;
            if waiting(t) {
                Ok(())
            } else {
                Err(StoreError::Refused(Refusal::Invalid(format!("token {serial} was registered meanwhile"))))
            }
        })?;
        let subject = Some(rec.description.clone()).filter(|d| !d.is_empty()).unwrap_or_else(|| generic.into());
        Ok(Enrolled {
            token: api_token(&rec),
            otpauth_uri: None,
            qr_png: None,
            pin: None,
            shown: None,
            webauthn: Some(Enrolment::Registered {
                subject,
                attestation: credential.attestation,
                aaguid: credential.aaguid,
            }),
            push: None,
        })
    }
}
