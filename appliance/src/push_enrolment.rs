//! The first step of a push token's enrolment, as the token service runs it (privacyIDEA's
//! `/token/init type=push genkey=1`, eduMFA's `type=edupush`): the token is stored waiting for its phone
//! (`rollout_state` `clientwait`, which takes part in no check) with an HSM verifier of a
//! one-time enrolment credential and the time `push_ttl` leaves for the second step; the answer
//! carries the `otpauth://pipush/...` URI the app scans, with the credential in it, shown this
//! once. The second step is the phone's (`crate::push`). Owns nothing else of a token's
//! lifecycle.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use countersign_core::policy::push::{PushDelivery, PushEnrolPolicies, PushFlavour};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::push::{param, PushEnrolment};
use crate::store::{TokenRecord, CLIENTWAIT, ROLLOUT_STATE};
use crate::tokens::{InitRequest, TokenError, TokenService};

/// Bytes of the enrolment credential: privacyIDEA's 20, sent as 40 hex digits.
const CREDENTIAL_BYTES: usize = 20;

/// What the first step decided before the token is stored, and the credential it made.
#[derive(Debug)]
pub(crate) struct Started {
    flavour: PushFlavour,
    policies: PushEnrolPolicies,
    url: String,
    credential: SecretString,
}

fn invalid(m: String) -> TokenError {
    TokenError::Refused(Refusal::Invalid(m))
}

/// privacyIDEA's URL quoting (Python's `quote`: letters, digits, `_.-~` and `/` as they are).
fn quote(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl TokenService {
    /// The first step's checks, before the token is stored: an owner, the registration URL,
    /// the per-user limit of push tokens, the FCM gateway if one is configured; and the params
    /// the token starts with (the serial is made here, as the credential's verifier names it).
    pub(crate) fn start_push(
        &self,
        caller: &Caller,
        r: &mut InitRequest,
        realm: Option<&str>,
    ) -> Result<Started, TokenError> {
        let flavour = PushFlavour::of_type(&r.token_type).unwrap_or(PushFlavour::Push);
        let kind = flavour.token_type();
        let Some(login) = r.user.clone() else {
            return Err(invalid(format!("a {kind} token is enrolled for a user: give user (and realm)")));
        };
        if r.seed.is_some() || r.params.is_some() || r.password.is_some() {
            return Err(invalid(format!(
                "a {kind} token takes no otpkey, password or params: its key is made by the phone"
            )));
        }
        let ctx = crate::policy::request_context(Some(&login), realm, None, caller, self.clock.now_ms() / 1000);
        let policies = PushEnrolPolicies::read(&self.policies.current(), &ctx, flavour)
            .map_err(|e| invalid(format!("policy conflict, refused: {e}")))?;
        let url_action = flavour.action("registration_url");
        let url = policies.registration_url.clone().ok_or_else(|| {
            invalid(format!(
                "Missing enrollment policy for {kind} token: {url_action}; an admin sets it (scope enrollment) to \
                 the address of {} that phones reach",
                flavour.endpoint()
            ))
        })?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid(format!("{url_action} {url} is not an http or https URL")));
        }
        if let Some(limit) = policies.max_tokens {
            let theirs = self.store.tokens(Some((&login, Some(realm.unwrap_or_default()))), Some(kind))?;
            if i64::try_from(theirs.len()).unwrap_or(i64::MAX) >= limit {
                return Err(invalid(format!(
                    "{login} has {} {kind} tokens, the most the policy {} allows",
                    theirs.len(),
                    flavour.action("max_token_per_user")
                )));
            }
        }
        if let PushDelivery::Firebase(gateway) = &policies.delivery {
            if !self.store.gateways()?.iter().any(|g| &g.name == gateway) {
                return Err(invalid(format!(
                    "{} names gateway {gateway}, which does not exist; create it (an FCM gateway) or set the policy \
                     to 'poll only'",
                    flavour.action("firebase_configuration")
                )));
            }
        }
        let serial = match &r.serial {
            Some(s) => s.clone(),
            None => self.new_serial(kind)?,
        };
        r.serial = Some(serial.clone());
        let credential = SecretString::from(hex::encode(Zeroizing::new(self.secrets.random(CREDENTIAL_BYTES)?)));
        let verifier = self.secrets.value_verifier("push-enrolment", &serial, credential.expose_secret().as_bytes())?;
        let expires = self.clock.now_ms().saturating_add(i64::from(policies.ttl_min).saturating_mul(60_000));
        r.params = Some(serde_json::json!({
            ROLLOUT_STATE: CLIENTWAIT,
            param::ENROLMENT_VERIFIER: hex::encode(verifier),
            param::ENROLMENT_EXPIRES: expires,
            param::DELIVERY: policies.delivery.as_str(),
            param::URL: url,
        }));
        Ok(Started { flavour, policies, url, credential })
    }

    /// The first step's answer for the stored token `rec`: privacyIDEA's URI, in its order of
    /// parameters; `label` is the account label (the serial unless `tokenlabel` says).
    pub(crate) fn push_uri(&self, rec: &TokenRecord, s: Started, label: &str, issuer: &str) -> PushEnrolment {
        let p = &s.policies;
        let mut uri = format!(
            "{}/{}?url={}&ttl={}&issuer={}&enrollment_credential={}&v=1&serial={}&sslverify={}",
            s.flavour.uri_prefix(),
            quote(label),
            quote(&s.url),
            p.ttl_min,
            quote(issuer),
            s.credential.expose_secret(),
            quote(&rec.serial),
            if p.ssl_verify { "1" } else { "0" },
        );
        // eduMFA's URI has no poll_only (its app polls in any case).
        if s.flavour == PushFlavour::Push {
            uri.push_str(if p.delivery == PushDelivery::PollOnly { "&poll_only=True" } else { "&poll_only=False" });
        }
        if p.force_app_pin {
            uri.push_str("&pin=True");
        }
        PushEnrolment {
            description: s.flavour.uri_description(),
            uri: SecretString::from(uri),
            credential: s.credential,
            ttl_min: p.ttl_min,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_as_python_quotes_them() {
        assert_eq!(quote("http://127.0.0.1:5000/ttype/push"), "http%3A//127.0.0.1%3A5000/ttype/push");
        assert_eq!(quote("Jörg Corp"), "J%C3%B6rg%20Corp");
    }
}
