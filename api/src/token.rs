//! Tokens as the native API shows them (`/v1/admin/tokens`).

use countersign_core::rules::FailCounter;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::secret::{expose, expose_list, expose_opt};

/// What list/show report of a token: everything but its secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    /// The token's serial.
    pub serial: String,
    /// The token type (`hotp`, `totp`, ...); `type` in JSON.
    #[serde(rename = "type")]
    pub token_type: String,
    /// The token plugin that checks the token.
    pub plugin: String,
    /// The plugin's options as JSON (digits, hash, step, validity period, ...).
    pub params: serde_json::Value,
    /// How far a check searches: HOTP counters ahead, TOTP time steps on either side of now.
    pub otp_window: u32,
    /// HOTP: the next counter a code may have; TOTP: the first time step that may be accepted.
    pub counter: u64,
    /// TOTP: the clock drift learned, in time steps; 0 otherwise.
    pub drift: i64,
    /// Whether the token has a PIN (its verifier, never shown, is stored).
    pub pin_set: bool,
    /// The fail counter, flattened into the token's fields: `fail_count` (failed checks since
    /// the last accept or reset), `max_fail` (the count that locks the token), `fail_clear_s`
    /// (seconds after the last failure at which a locked token opens again; 0: only an admin
    /// reset opens it) and `last_fail_ms` (the last failure, Unix ms; `null`: none since the last
    /// admin reset or resync).
    #[serde(flatten)]
    pub fails: FailCounter,
    /// When the token last accepted a check, in milliseconds since the Unix epoch; `None`: never.
    pub last_auth_ms: Option<i64>,
    /// Whether the token is enabled.
    pub active: bool,
    /// Whether the token was revoked (for good).
    pub revoked: bool,
    /// The owner's login; `None`: assigned to no one.
    pub user: Option<String>,
    /// The owner's realm; `None`: assigned to no one.
    pub realm: Option<String>,
    /// The admin's description; empty when none was given.
    pub description: String,
    /// When the token was stored, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Challenge-response tokens: the phone number or address codes go to; `None`: the owner's.
    pub recipient: Option<String>,
    /// The card the token lives on (`yubikey 12345678`, `piv 1234`), for hardware-enrolled tokens.
    pub device: Option<String>,
    /// Where the owner lives: a resolver's name, or `None` for the internal user store.
    pub resolver: Option<String>,
    /// The owner's id in their resolver (a directory's stable id, an internal user's row id);
    /// `None` without an owner, or for a directory owner not bound to a stable id yet.
    pub user_id: Option<String>,
    /// push tokens: where the phone stands, for the help desk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushState>,
}

/// Where a push token's phone stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// `waiting for the phone` (the second enrolment step is due), `enrolment expired`
    /// (`push_ttl` ran out: enrol again), or `enrolled`.
    pub state: String,
    /// Until when the phone may finish the enrolment, Unix ms (while waiting).
    pub enrolment_expires_ms: Option<i64>,
    /// When the phone finished the enrolment, Unix ms.
    pub enrolled_ms: Option<i64>,
    /// `poll only`, or the FCM gateway that also sends its challenges.
    pub delivery: String,
    /// When the phone last polled, Unix ms.
    pub last_poll_ms: Option<i64>,
    /// When the phone last answered a challenge, Unix ms.
    pub last_answer_ms: Option<i64>,
    /// Whether the phone may poll where `push_allow_polling` is `token` (the token's
    /// `polling_allowed`; true when it is not set).
    pub polling_allowed: bool,
}

/// `GET /v1/admin/tokens`: the tokens selected, in the store's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList {
    /// The tokens, never with a seed.
    pub tokens: Vec<Token>,
}

/// `POST /v1/admin/tokens`: what enrolment returns, once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Enrolled {
    /// The token as stored (no seed).
    pub token: Token,
    /// Carries the seed: shown at enrolment only, never again. `null` for tokens whose codes
    /// the appliance sends (sms, email): nobody needs their seed. A push token: the
    /// `otpauth://pipush/...` URI its phone scans, with the one-time enrolment credential.
    #[serde(serialize_with = "expose_opt")]
    pub otpauth_uri: Option<SecretString>,
    /// The URI as a QR code, a base64 PNG, when the request asked for one; it carries the seed
    /// too.
    pub qr_png: Option<String>,
    /// The PIN the appliance chose (policy otp_pin_random), shown this once; absent otherwise.
    #[serde(default, serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub pin: Option<SecretString>,
    /// A pw token's password, shown this once; absent for other types.
    #[serde(default, serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    /// A registration token's code, shown this once (it works once); absent for other types.
    #[serde(default, serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub registration_code: Option<SecretString>,
    /// An indexedsecret token's secret when the HSM made it, shown this once; absent otherwise.
    #[serde(default, serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretString>,
    /// A paper token's next codes or a tan token's TANs, in order, shown this once; absent for
    /// other types.
    #[serde(default, serialize_with = "expose_list", skip_serializing_if = "Option::is_none")]
    pub otps: Option<Vec<SecretString>>,
    /// A webauthn token: what the client's authenticator needs (the first step), or what it
    /// registered (the second); absent for other types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebauthnEnrolment>,
}

/// The webauthn part of an enrolment answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum WebauthnEnrolment {
    /// The first step: send `public_key` to `navigator.credentials.create({ publicKey })` (it is
    /// WebAuthn's `PublicKeyCredentialCreationOptionsJSON`: binary fields base64url, as
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` takes them), then the answer with
    /// `transaction_id` before `valid_until_ms`.
    Register {
        /// The transaction the second step names.
        transaction_id: String,
        /// The creation options.
        public_key: serde_json::Value,
        /// Until when the registration may be finished (Unix ms).
        valid_until_ms: i64,
    },
    /// The second step: the credential registered.
    Registered {
        /// What the attestation proved: `format/type` (`packed/basic-trusted`, `none/none`, ...).
        attestation: String,
        /// The authenticator model's AAGUID, hex.
        aaguid: String,
    },
}

/// `POST /v1/admin/tokens/{serial}/lost`: a lost token's replacement, shown once: the new pw
/// token, its password and until when it works, and the lost token as it now is (disabled).
#[derive(Debug, Serialize, Deserialize)]
pub struct Replacement {
    /// The lost token, now disabled.
    pub lost: Token,
    /// The replacement, a pw token `lost<serial>`.
    pub token: Token,
    /// The replacement's password, shown this once; it is kept only as its HSM verifier.
    #[serde(serialize_with = "expose")]
    pub password: SecretString,
    /// Until when the replacement works, Unix ms.
    pub valid_until_ms: i64,
    /// Whether the lost token had a PIN, which the replacement now asks for too.
    pub pin_copied: bool,
}

/// `POST /v1/admin/tokens/{serial}/assign`: the token's new owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The owner's login.
    pub user: String,
    /// The owner's realm; `None`: the default realm.
    pub realm: Option<String>,
}

/// `POST /v1/admin/tokens/{serial}/pin`: the token's new PIN.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The PIN; absent or empty: remove the PIN.
    #[serde(default, serialize_with = "expose_opt")]
    pub pin: Option<SecretString>,
}

/// `POST /v1/admin/tokens/{serial}/resync`: two consecutive codes the token showed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    /// The first code.
    #[serde(serialize_with = "expose")]
    pub otp1: SecretString,
    /// The code after it.
    #[serde(serialize_with = "expose")]
    pub otp2: SecretString,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use secrecy::ExposeSecret;

    fn token() -> Token {
        Token {
            serial: "OATH0001".into(),
            token_type: "hotp".into(),
            plugin: "hotp".into(),
            params: serde_json::json!({ "digits": 6 }),
            otp_window: 10,
            counter: 3,
            drift: 0,
            pin_set: true,
            fails: FailCounter { count: 1, max: 10, clear_s: 0, last_fail_ms: None },
            last_auth_ms: Some(5),
            active: true,
            revoked: false,
            user: Some("alice".into()),
            realm: Some("corp".into()),
            description: String::new(),
            created_at: 7,
            recipient: None,
            device: None,
            push: None,
            resolver: None,
            user_id: Some("1".into()),
        }
    }

    fn keys(v: &serde_json::Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// The token answer's keys are docs/api.md's, the fail counter flattened into them.
    #[test]
    fn a_token_has_the_documented_keys() {
        let v = serde_json::to_value(token()).unwrap();
        assert_eq!(
            keys(&v),
            [
                "active",
                "counter",
                "created_at",
                "description",
                "device",
                "drift",
                "fail_clear_s",
                "fail_count",
                "last_auth_ms",
                "last_fail_ms",
                "max_fail",
                "otp_window",
                "params",
                "pin_set",
                "plugin",
                "realm",
                "recipient",
                "resolver",
                "revoked",
                "serial",
                "type",
                "user",
                "user_id",
            ]
        );
        assert_eq!(v["last_fail_ms"], serde_json::Value::Null);
        let back: Token = serde_json::from_value(v).unwrap();
        assert_eq!(back.fails, token().fails);
    }

    /// What enrolment shows once is a key of its own, present only for the types that have it;
    /// the URI and the PNG are always there (null when none).
    #[test]
    fn enrolment_shows_only_what_the_type_has() {
        let plain = Enrolled {
            token: token(),
            otpauth_uri: None,
            qr_png: None,
            pin: None,
            password: None,
            registration_code: None,
            secret: None,
            otps: None,
            webauthn: None,
        };
        let v = serde_json::to_value(&plain).unwrap();
        assert_eq!(keys(&v), ["otpauth_uri", "qr_png", "token"]);
        let tan = Enrolled { otps: Some(vec![SecretString::from("1234"), SecretString::from("5678")]), ..plain };
        let v = serde_json::to_value(&tan).unwrap();
        assert_eq!(v["otps"], serde_json::json!(["1234", "5678"]));
        let back: Enrolled = serde_json::from_value(v).unwrap();
        let otps: Vec<&str> = back.otps.iter().flatten().map(ExposeSecret::expose_secret).collect();
        assert_eq!(otps, ["1234", "5678"]);
        assert!(back.password.is_none());
    }
}
