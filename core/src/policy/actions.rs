//! The action catalogue: every action a policy may set, with privacyIDEA's name, its scope, the
//! type of its value and what it means; the check of a value when a policy is saved; and the
//! typed readings of values (`otppin`, token type lists, "N/period" limits).
//!
//! This module only describes and checks values. It never decides what an action does to a
//! request: the services that honour an action read its value from the snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fido;

/// The area a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Checks of users' tokens (`/validate/check`): PINs, challenges, texts.
    Authentication,
    /// What an authenticated user may do: rate limits, answer details.
    Authorization,
    /// Token enrolment: limits, generated PINs, labels, lost tokens.
    Enrollment,
    /// What each administrator may do, and on which realms.
    Admin,
}

impl Scope {
    /// Every scope, in privacyIDEA's order.
    pub const ALL: [Scope; 4] = [Scope::Authentication, Scope::Authorization, Scope::Enrollment, Scope::Admin];

    /// privacyIDEA's name of the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Authentication => "authentication",
            Scope::Authorization => "authorization",
            Scope::Enrollment => "enrollment",
            Scope::Admin => "admin",
        }
    }

    /// The scope privacyIDEA's name names, or why the name is none.
    pub fn parse(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| format!("unknown scope '{s}'; accepted: authentication, authorization, enrollment, admin"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value an action has in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActionValue {
    /// Set or explicitly unset.
    Bool(bool),
    /// A number (a limit, a length, days).
    Int(i64),
    /// A word, a template or a list.
    Text(String),
}

impl ActionValue {
    /// The value, when it is a flag.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ActionValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value, when it is a number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ActionValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value, when it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ActionValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A token type list (`challenge_response`): the words of the text.
    pub fn as_list(&self) -> Vec<&str> {
        self.as_text().map(|s| s.split([' ', ',']).filter(|w| !w.is_empty()).collect()).unwrap_or_default()
    }

    /// An "N/period" limit (`auth_max_fail`, `auth_max_success`).
    pub fn as_rate(&self) -> Option<RateLimit> {
        self.as_text().and_then(|s| RateLimit::parse(s).ok())
    }

    /// `otppin`'s value.
    pub fn as_otppin(&self) -> Option<OtpPin> {
        self.as_text().and_then(OtpPin::parse)
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            ActionValue::Bool(b) => (*b).into(),
            ActionValue::Int(i) => (*i).into(),
            ActionValue::Text(s) => s.as_str().into(),
        }
    }
}

impl fmt::Display for ActionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionValue::Bool(b) => write!(f, "{b}"),
            ActionValue::Int(i) => write!(f, "{i}"),
            ActionValue::Text(s) => f.write_str(s),
        }
    }
}

/// What `otppin` says is checked before the OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtpPin {
    /// The token's own PIN (the default without a policy).
    #[default]
    TokenPin,
    /// The user's password in the user store.
    UserStore,
    /// No PIN: the OTP alone.
    None,
}

impl OtpPin {
    /// The mode privacyIDEA's value names (`tokenpin`, `userstore`, `none`).
    pub fn parse(s: &str) -> Option<OtpPin> {
        match s {
            "tokenpin" => Some(OtpPin::TokenPin),
            "userstore" => Some(OtpPin::UserStore),
            "none" => Some(OtpPin::None),
            _ => None,
        }
    }
}

/// "N per period", privacyIDEA's syntax `N/<number><s|m|h|d>`, e.g. `3/5m`, `10/24h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many in one period.
    pub count: u32,
    /// The period, in seconds.
    pub period_s: u64,
}

impl RateLimit {
    /// Reads `N/period`, or says what the syntax is.
    pub fn parse(s: &str) -> Result<RateLimit, String> {
        let bad = || format!("'{s}' is not N/period: a count, '/', then a period like 30s, 5m, 24h or 7d (e.g. 3/5m)");
        let (count, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let unit_at = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = period.split_at(unit_at);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let unit_s = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 || n == 0 {
            return Err(format!("'{s}': the count and the period must be at least 1"));
        }
        let period_s = n
            .checked_mul(unit_s)
            .filter(|p| *p <= 366 * 86_400)
            .ok_or_else(|| format!("'{s}': the period may be at most 366 days"))?;
        Ok(RateLimit { count, period_s })
    }
}

/// The type of an action's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Set (`true`) or explicitly unset (`false`, which overrides lower-priority policies).
    Bool,
    /// An integer in the range.
    Int {
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text (a message or a label template).
    Text,
    /// A word of these letters only (privacyIDEA's password contents, `cCns8`).
    Letters(&'static str),
    /// Token types separated by spaces or commas.
    TokenTypes,
    /// `N/period`.
    Rate,
    /// Words of this set separated by spaces or commas (WebAuthn transports); stored once each,
    /// in the order given.
    Words(&'static [&'static str]),
    /// privacyIDEA's words for WebAuthn signature algorithms (and Countersign's `eddsa`), at least
    /// one of which Countersign verifies; stored in the order of preference.
    Algorithms,
    /// AAGUIDs (authenticator models) separated by spaces or commas; stored as 32 lower-case
    /// hexadecimal digits each.
    Aaguids,
    /// Web origins (`https://host[:port]`) separated by spaces or commas; stored as browsers
    /// report them.
    Origins,
    /// A domain name (a WebAuthn relying party ID); stored in lower case.
    Domain,
}

impl Kind {
    /// The accepted values, for messages and the catalogue listing.
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "true or false (also 1 or 0; no value: true)".into(),
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::Choice(c) => format!("one of {}", c.join(", ")),
            Kind::Text => "text".into(),
            Kind::Letters(l) => format!("a word of the letters {l}"),
            Kind::TokenTypes => "token types separated by spaces, e.g. 'hotp totp'".into(),
            Kind::Rate => "N/period, e.g. 3/5m (periods: s, m, h, d)".into(),
            Kind::Words(w) => format!("words of {} separated by spaces", w.join(", ")),
            Kind::Algorithms => format!(
                "words of {} separated by spaces, at least one other than rsassa-pss",
                fido::ALGORITHM_WORDS.join(", ")
            ),
            Kind::Aaguids => "AAGUIDs (32 hexadecimal digits, with or without dashes) separated by spaces".into(),
            Kind::Origins => "origins like https://login.example.com or https://host:8443, separated by spaces".into(),
            Kind::Domain => "a domain name, e.g. example.com".into(),
        }
    }
}

/// One action of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    /// privacyIDEA's name of the action.
    pub name: &'static str,
    /// The scope it belongs to.
    pub scope: Scope,
    /// The type of its value.
    pub kind: Kind,
    /// What it does, for the catalogue listing and explanations.
    pub meaning: &'static str,
}

const fn spec(name: &'static str, scope: Scope, kind: Kind, meaning: &'static str) -> ActionSpec {
    ActionSpec { name, scope, kind, meaning }
}

const fn admin(name: &'static str, meaning: &'static str) -> ActionSpec {
    spec(name, Scope::Admin, Kind::Bool, meaning)
}

use Scope::{Authentication as AUTHN, Authorization as AUTHZ, Enrollment as ENROL};

/// Every action, by scope. Names are privacyIDEA's and unique within a scope; as in privacyIDEA,
/// a few WebAuthn actions and `push_ssl_verify` (`edupush_ssl_verify`) have the same name in two scopes (`webauthn_timeout`,
/// `webauthn_user_verification_requirement` and `webauthn_challenge_text` in authentication and
/// enrollment, `webauthn_authenticator_selection_list` in authorization and enrollment), each with
/// its own meaning: look them up with [`lookup_in`].
pub const CATALOGUE: &[ActionSpec] = &[
    spec(
        "otppin",
        AUTHN,
        Kind::Choice(&["tokenpin", "userstore", "none"]),
        "what is checked before the OTP: the token's PIN, the user's password in the user store, or nothing",
    ),
    spec("passthru", AUTHN, Kind::Bool, "a user without tokens authenticates with the user store password alone"),
    spec("passOnNoToken", AUTHN, Kind::Bool, "a known user without tokens is accepted without any check"),
    spec("passOnNoUser", AUTHN, Kind::Bool, "a user the realm does not know is accepted without any check"),
    spec("challenge_response", AUTHN, Kind::TokenTypes, "token types whose PIN alone triggers a challenge"),
    spec("challenge_text", AUTHN, Kind::Text, "the message returned with a triggered challenge"),
    spec(
        "indexedsecret_challenge_text",
        AUTHN,
        Kind::Text,
        "the message of an indexedsecret challenge; {0!s} is replaced by the positions asked",
    ),
    spec(
        "indexedsecret_count",
        AUTHN,
        Kind::Int { min: 1, max: 32 },
        "how many positions of the secret an indexedsecret challenge asks for (2 by default)",
    ),
    spec("smstext", AUTHN, Kind::Text, "the text of the SMS carrying the code"),
    spec("emailtext", AUTHN, Kind::Text, "the body of the e-mail carrying the code"),
    spec(
        "hide_specific_error_message",
        AUTHN,
        Kind::Bool,
        "a rejected check says only that it failed, never why (no user, no token, locked, ...)",
    ),
    spec(
        "webauthn_allowed_transports",
        AUTHN,
        Kind::Words(fido::TRANSPORT_WORDS),
        "the transports a WebAuthn challenge names for reaching the authenticator, a hint to the browser that is \
         not checked (usb ble nfc internal by default)",
    ),
    spec(
        "webauthn_timeout",
        AUTHN,
        Kind::Int { min: 1, max: 600 },
        "seconds the browser waits for the user to confirm a WebAuthn sign-in (60 by default); a hint to the \
         client, apart from how long the challenge stays valid",
    ),
    spec(
        "webauthn_user_verification_requirement",
        AUTHN,
        Kind::Choice(&["required", "preferred", "discouraged"]),
        "whether a WebAuthn or passkey sign-in asks the authenticator to verify the user (PIN, biometrics); \
         required refuses a sign-in without it (preferred by default)",
    ),
    spec(
        "webauthn_challenge_text",
        AUTHN,
        Kind::Text,
        "the message of a WebAuthn challenge; {0!s} is replaced by the token's description (by default: Please \
         confirm with your WebAuthn token ({0!s}))",
    ),
    spec(
        "webauthn_sign_count",
        AUTHN,
        Kind::Choice(&["reject", "warn"]),
        "Countersign's, not in privacyIDEA: what a WebAuthn or passkey signature counter that did not advance \
         leads to: reject refuses the sign-in (the authenticator may have been cloned; the default), warn accepts \
         it and the audit says so",
    ),
    spec(
        "passkey_challenge_text",
        AUTHN,
        Kind::Text,
        "the message of a passkey challenge (by default: Please authenticate with your passkey!)",
    ),
    spec(
        "passkey_trigger_by_pin",
        AUTHN,
        Kind::Bool,
        "a passkey's PIN (or /validate/triggerchallenge) triggers a passkey challenge as for other challenge \
         tokens; without it passkeys answer only challenges from /validate/initialize",
    ),
    spec(
        "push_text_on_mobile",
        AUTHN,
        Kind::Text,
        "the question the phone shows with a push challenge; {serial}, {user}, {realm} and {client_ip} are filled \
         in (by default: Do you want to confirm the login?)",
    ),
    spec(
        "push_title_on_mobile",
        AUTHN,
        Kind::Text,
        "the title of a push challenge on the phone (by default: Countersign)",
    ),
    spec(
        "push_ssl_verify",
        AUTHN,
        Kind::Choice(&["0", "1"]),
        "whether the app verifies the server's TLS certificate when it answers a push challenge (1 by default)",
    ),
    spec(
        "push_wait",
        AUTHN,
        Kind::Int { min: 1, max: 300 },
        "a check with the PIN of a push token waits up to this many seconds for the tap on the phone and answers \
         accept or reject itself, instead of answering with a challenge",
    ),
    spec(
        "push_allow_polling",
        AUTHN,
        Kind::Choice(&["allow", "deny", "token"]),
        "whether phones may poll for push challenges: allow (the default), deny, or token (unless the token's \
         polling_allowed info says false)",
    ),
    spec(
        "push_require_presence",
        AUTHN,
        Kind::Bool,
        "number matching: the login screen shows one of several options and the user taps the same one on the \
         phone; a wrong tap declines the challenge",
    ),
    spec(
        "push_presence_options",
        AUTHN,
        Kind::Choice(&["ALPHABETIC", "NUMERIC", "CUSTOM"]),
        "the options of number matching: ALPHABETIC (A-Z, the default), NUMERIC (00-99) or CUSTOM \
         (push_presence_custom_options)",
    ),
    spec(
        "push_presence_custom_options",
        AUTHN,
        Kind::Text,
        "number matching's options for push_presence_options CUSTOM, separated by colons (at least 2, each \
         once), e.g. 01:02:03:1A:1B",
    ),
    spec(
        "push_presence_num_options",
        AUTHN,
        Kind::Int { min: 2, max: 10 },
        "how many options the phone shows for number matching (3 by default)",
    ),
    spec("edupush_text_on_mobile", AUTHN, Kind::Text, "eduMFA's push_text_on_mobile, for edupush tokens"),
    spec("edupush_title_on_mobile", AUTHN, Kind::Text, "eduMFA's push_title_on_mobile, for edupush tokens"),
    spec("edupush_ssl_verify", AUTHN, Kind::Choice(&["0", "1"]), "eduMFA's push_ssl_verify, for edupush tokens"),
    spec("edupush_wait", AUTHN, Kind::Int { min: 1, max: 300 }, "eduMFA's push_wait, for edupush tokens"),
    spec(
        "edupush_allow_polling",
        AUTHN,
        Kind::Choice(&["allow", "deny", "token"]),
        "eduMFA's push_allow_polling, for edupush tokens",
    ),
    spec("auth_max_fail", AUTHZ, Kind::Rate, "at most N failed authentications of the user within the period"),
    spec("auth_max_success", AUTHZ, Kind::Rate, "at most N successful authentications of the user within the period"),
    spec("no_detail_on_fail", AUTHZ, Kind::Bool, "a failed check's answer carries no detail (token, type, message)"),
    spec("no_detail_on_success", AUTHZ, Kind::Bool, "a successful check's answer carries no detail"),
    spec(
        "webauthn_authenticator_selection_list",
        AUTHZ,
        Kind::Aaguids,
        "only WebAuthn authenticators of these models (AAGUIDs) may sign in; unset: any model",
    ),
    spec("max_token_per_user", ENROL, Kind::Int { min: 1, max: 1000 }, "a user may own at most this many tokens"),
    spec("otp_pin_random", ENROL, Kind::Int { min: 1, max: 64 }, "enrolment sets a random PIN of this many characters"),
    spec("tokenlabel", ENROL, Kind::Text, "the account label in the enrolment URI, e.g. {user}@{realm}"),
    spec("tokenissuer", ENROL, Kind::Text, "the issuer in the enrolment URI"),
    spec(
        "papertoken_count",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a paper token lists this many codes, whatever the request asks (100 by default)",
    ),
    spec(
        "tantoken_count",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a tan token holds this many TANs, whatever the request asks (100 by default)",
    ),
    spec(
        "losttoken_valid",
        ENROL,
        Kind::Int { min: 1, max: 365 },
        "a lost token's temporary replacement works for this many days (10 by default)",
    ),
    spec(
        "losttoken_PW_length",
        ENROL,
        Kind::Int { min: 1, max: 256 },
        "a lost token's temporary password has this many characters (16 by default)",
    ),
    spec(
        "losttoken_PW_contents",
        ENROL,
        Kind::Letters("cCns8"),
        "the characters of a lost token's temporary password: c lower case, C upper case, n digits, s special \
         characters, 8 Base58 (8 by default)",
    ),
    spec(
        "webauthn_relying_party_id",
        ENROL,
        Kind::Domain,
        "the relying party ID new WebAuthn and passkey tokens are bound to: a domain name equal to, or a \
         registrable suffix of, the host of every site they sign in to; needed to enrol them, and the relying \
         party of passkey sign-ins that name no user",
    ),
    spec(
        "webauthn_relying_party_name",
        ENROL,
        Kind::Text,
        "the name of the relying party authenticators show when registering; needed to enrol WebAuthn and passkey \
         tokens",
    ),
    spec(
        "webauthn_timeout",
        ENROL,
        Kind::Int { min: 1, max: 600 },
        "seconds the browser waits for the user to confirm a WebAuthn registration (60 by default)",
    ),
    spec(
        "webauthn_authenticator_attachment",
        ENROL,
        Kind::Choice(&["platform", "cross-platform", "either"]),
        "which authenticators may register a WebAuthn token: built into the device (platform), removable \
         (cross-platform) or either (the default)",
    ),
    spec(
        "webauthn_authenticator_selection_list",
        ENROL,
        Kind::Aaguids,
        "only authenticators of these models (AAGUIDs) may register a WebAuthn token; unset: any model",
    ),
    spec(
        "webauthn_user_verification_requirement",
        ENROL,
        Kind::Choice(&["required", "preferred", "discouraged"]),
        "whether registering a WebAuthn or passkey token asks the authenticator to verify the user (PIN, \
         biometrics); required refuses a registration without it (preferred by default)",
    ),
    spec(
        "webauthn_public_key_credential_algorithms",
        ENROL,
        Kind::Algorithms,
        "the signature algorithms a new WebAuthn or passkey credential may use, in privacyIDEA's words: ecdsa \
         (ES256), rsassa-pkcs1v1_5 (RS256), and rsassa-pss, which is accepted but never offered as Countersign does \
         not verify it; eddsa (Ed25519) is Countersign's, not in privacyIDEA (by default: ecdsa, eddsa, \
         rsassa-pkcs1v1_5)",
    ),
    spec(
        "webauthn_authenticator_attestation_form",
        ENROL,
        Kind::Choice(&["none", "indirect", "direct"]),
        "the attestation a WebAuthn registration asks for: none, indirect (the browser may anonymise it) or direct \
         (the default)",
    ),
    spec(
        "webauthn_authenticator_attestation_level",
        ENROL,
        Kind::Choice(&["none", "untrusted", "trusted"]),
        "how strictly a WebAuthn registration's attestation is checked: none accepts any registration, untrusted \
         needs an attestation but it may be self-signed or of an unknown maker (the default), trusted needs one \
         that chains to a configured attestation root",
    ),
    spec(
        "webauthn_avoid_double_registration",
        ENROL,
        Kind::Bool,
        "an authenticator the user already has as a WebAuthn token cannot be registered for them again",
    ),
    spec(
        "webauthn_challenge_text",
        ENROL,
        Kind::Text,
        "the message asking the user to confirm a WebAuthn registration (by default: Please confirm with your \
         WebAuthn token)",
    ),
    spec(
        "webauthn_max_token_per_user",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a user may own at most this many WebAuthn tokens",
    ),
    spec(
        "webauthn_max_active_token_per_user",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a user may own at most this many active WebAuthn tokens",
    ),
    spec(
        "webauthn_allowed_origins",
        ENROL,
        Kind::Origins,
        "Countersign's, not in privacyIDEA: the web origins WebAuthn and passkey registrations and sign-ins may \
         come from, compared exactly with what the browser reports; read for sign-ins too, like the relying party \
         ID (by default: https://<relying party ID>)",
    ),
    spec(
        "passkey_attestation_conveyance_preference",
        ENROL,
        Kind::Choice(&["none", "indirect", "direct", "enterprise"]),
        "the attestation a passkey registration asks for (none by default); the WebAuthn attestation actions do \
         not apply to passkeys",
    ),
    spec(
        "push_registration_url",
        ENROL,
        Kind::Text,
        "the URL of /ttype/push the privacyIDEA Authenticator app posts its second enrolment step to and polls for \
         challenges (http or https); needed to enrol push tokens",
    ),
    spec(
        "push_ttl",
        ENROL,
        Kind::Int { min: 1, max: 1440 },
        "minutes within which the phone must finish a push token's enrolment (10 by default); Countersign enforces \
         it, privacyIDEA does not",
    ),
    spec(
        "push_firebase_configuration",
        ENROL,
        Kind::Text,
        "how push challenges reach the phone: poll only (the app polls; the default), or the name of an FCM \
         gateway that also sends each challenge through Firebase",
    ),
    spec(
        "push_ssl_verify",
        ENROL,
        Kind::Choice(&["0", "1"]),
        "whether the app verifies the server's TLS certificate during the enrolment (1 by default)",
    ),
    spec(
        "push_force_app_pin",
        ENROL,
        Kind::Bool,
        "the app asks for its PIN or biometrics before it accepts a push challenge of the new token",
    ),
    spec(
        "push_max_token_per_user",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a user may own at most this many push tokens",
    ),
    spec(
        "edupush_registration_url",
        ENROL,
        Kind::Text,
        "eduMFA's push_registration_url, for edupush tokens (the URL of /ttype/edupush)",
    ),
    spec("edupush_ttl", ENROL, Kind::Int { min: 1, max: 1440 }, "eduMFA's push_ttl, for edupush tokens"),
    spec(
        "edupush_firebase_configuration",
        ENROL,
        Kind::Text,
        "eduMFA's push_firebase_configuration, for edupush tokens",
    ),
    spec("edupush_ssl_verify", ENROL, Kind::Choice(&["0", "1"]), "eduMFA's push_ssl_verify, for edupush tokens"),
    spec(
        "edupush_max_token_per_user",
        ENROL,
        Kind::Int { min: 1, max: 1000 },
        "a user may own at most this many edupush tokens",
    ),
    admin("enrollHOTP", "enrol HOTP tokens"),
    admin("enrollTOTP", "enrol TOTP tokens"),
    admin("enrollSMS", "enrol SMS tokens"),
    admin("enrollEMAIL", "enrol e-mail tokens"),
    admin("enrollCERTIFICATE", "enrol PIV cards (certificate tokens)"),
    admin("enrollSPASS", "enrol simple-pass tokens (PIN only)"),
    admin("enrollPW", "enrol password tokens"),
    admin("enrollREGISTRATION", "enrol registration-code tokens"),
    admin("enrollPAPER", "enrol paper lists of codes"),
    admin("enrollTAN", "enrol TAN lists"),
    admin("enrollINDEXEDSECRET", "enrol indexed-secret tokens"),
    admin("enrollWEBAUTHN", "enrol WebAuthn tokens (security keys)"),
    admin("enrollPASSKEY", "enrol passkeys"),
    admin("enrollYUBIKEY", "enrol Yubico OTP tokens"),
    admin("enrollPUSH", "enrol push tokens (approval on the privacyIDEA Authenticator app)"),
    admin("enrollEDUPUSH", "enrol edupush tokens (approval on the eduMFA Authenticator app)"),
    admin("enrollpin", "set a token PIN during enrolment"),
    admin("assign", "assign tokens to users"),
    admin("unassign", "take tokens from users"),
    admin("enable", "enable tokens"),
    admin("disable", "disable tokens"),
    admin("delete", "delete tokens"),
    admin("revoke", "revoke tokens"),
    admin("losttoken", "replace a lost token by a temporary password token with its PIN, and disable it"),
    admin("reset", "reset tokens' fail counters"),
    admin("resync", "resynchronise tokens"),
    admin("setpin", "set tokens' PINs"),
    admin("set", "change token settings (description, max fail, ...)"),
    admin("settokeninfo", "set or remove the token infos an admin may set (polling_allowed of push tokens)"),
    admin("tokenlist", "list and show tokens"),
    admin("getchallenges", "list the challenges not answered yet, of every realm"),
    admin(
        "triggerchallenge",
        "make a user's or a token's challenges (texts, e-mails, push prompts) with /validate/triggerchallenge",
    ),
    admin("getrandom", "get random bytes from the HSM (GET /system/random)"),
    admin(
        "configwrite",
        "add Yubico validation clients or replace their keys (POST /system/setConfig, yubikey.apiid.<id>)",
    ),
    admin("configdelete", "remove Yubico validation clients (DELETE /system/yubikey.apiid.<id>)"),
    admin("adduser", "add users to the internal user store"),
    admin("deleteuser", "delete users from the internal user store"),
    admin("userlist", "list users"),
    admin("auditlog", "read the audit"),
    admin("resolverread", "list and show resolvers"),
    admin("resolverwrite", "define and change resolvers and realms, and choose the default realm"),
    admin("resolverdelete", "delete resolvers and realms"),
    admin("policyread", "list, show and check policies"),
    admin("policywrite", "create and change policies"),
    admin("policydelete", "delete policies"),
    admin("smsgateway_read", "list and show message gateways and deliveries"),
    admin("smsgateway_write", "define, route, test and remove message gateways"),
    admin("caconnectorread", "show the appliance CA"),
    admin("caconnectorwrite", "create the appliance CA and import its certificate"),
];

/// The first catalogue entry of `name`, if any scope has it. A name may belong to several
/// scopes ([`scopes_of`]); [`lookup_in`] finds the entry of one scope.
pub fn lookup(name: &str) -> Option<&'static ActionSpec> {
    CATALOGUE.iter().find(|a| a.name == name)
}

/// The catalogue entry of `name` in `scope`, if that scope has it.
pub fn lookup_in(scope: Scope, name: &str) -> Option<&'static ActionSpec> {
    CATALOGUE.iter().find(|a| a.scope == scope && a.name == name)
}

/// The scopes that have an action `name`, in the catalogue's order.
pub fn scopes_of(name: &str) -> Vec<Scope> {
    CATALOGUE.iter().filter(|a| a.name == name).map(|a| a.scope).collect()
}

/// The actions of one scope.
pub fn in_scope(scope: Scope) -> impl Iterator<Item = &'static ActionSpec> {
    CATALOGUE.iter().filter(move |a| a.scope == scope)
}

/// Checks one action of a policy in `scope` and returns its value in the stored form (strings
/// "3" or "true" from a command line become 3 and true).
pub fn check(scope: Scope, name: &str, value: &serde_json::Value) -> Result<ActionValue, String> {
    let spec = match (lookup_in(scope, name), scopes_of(name).as_slice()) {
        (Some(s), _) => s,
        (None, [one]) => return Err(format!("action {name} belongs to scope {one}, not {scope}")),
        (None, [_, ..]) => {
            let all: Vec<&str> = scopes_of(name).into_iter().map(Scope::as_str).collect();
            return Err(format!("action {name} belongs to scopes {}, not {scope}", all.join(", ")));
        }
        (None, []) => {
            let names: Vec<&str> = in_scope(scope).map(|a| a.name).collect();
            let hint = CATALOGUE
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
                .map(|a| format!(" (did you mean {}?)", a.name))
                .unwrap_or_default();
            return Err(format!("unknown action '{name}' in scope {scope}{hint}; accepted: {}", names.join(", ")));
        }
    };
    let wrong = || format!("action {name} takes {}, not {value}", spec.kind.describe());
    let text = value.as_str().map(str::trim);
    match spec.kind {
        // privacyIDEA's `is_true` words (its admins write `1` too), and their opposites.
        Kind::Bool => match text {
            Some(t) => crate::truth::truth_word(t),
            None => crate::truth::truth(value),
        }
        .map(ActionValue::Bool)
        .ok_or_else(wrong),
        Kind::Int { min, max } => {
            let i = match (value.as_i64(), text) {
                (Some(i), _) => i,
                (None, Some(t)) => t.parse().map_err(|_| wrong())?,
                _ => return Err(wrong()),
            };
            if (min..=max).contains(&i) {
                Ok(ActionValue::Int(i))
            } else {
                Err(wrong())
            }
        }
        Kind::Choice(choices) => match text {
            Some(t) if choices.contains(&t) => Ok(ActionValue::Text(t.to_owned())),
            _ => Err(wrong()),
        },
        Kind::Text => match text {
            Some(t) if !t.is_empty() && t.len() <= 1000 => Ok(ActionValue::Text(t.to_owned())),
            _ => Err(format!("action {name} takes text of 1 to 1000 characters, not {value}")),
        },
        Kind::Letters(letters) => match text {
            Some(t) if !t.is_empty() && t.len() <= 64 && t.chars().all(|c| letters.contains(c)) => {
                Ok(ActionValue::Text(t.to_owned()))
            }
            _ => Err(wrong()),
        },
        Kind::TokenTypes => {
            let words: Vec<&str> = text.ok_or_else(wrong)?.split([' ', ',']).filter(|w| !w.is_empty()).collect();
            let ok = |w: &&str| w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if words.is_empty() || !words.iter().all(ok) {
                return Err(wrong());
            }
            Ok(ActionValue::Text(words.join(" ")))
        }
        Kind::Rate => {
            let t = text.ok_or_else(wrong)?;
            RateLimit::parse(t).map_err(|e| format!("action {name}: {e}"))?;
            // Stored without spaces ("3 / 5m" -> "3/5m"); the reading is the same.
            Ok(ActionValue::Text(t.split_whitespace().collect()))
        }
        Kind::Words(choices) => {
            let words = list(name, text.ok_or_else(wrong)?, Ok)?;
            if let Some(w) = words.iter().find(|w| !choices.contains(w)) {
                return Err(format!("action {name}: unknown word '{w}'; accepted: {}", choices.join(", ")));
            }
            Ok(ActionValue::Text(words.join(" ")))
        }
        Kind::Algorithms => {
            let accepted = fido::ALGORITHM_WORDS;
            let words = list(name, text.ok_or_else(wrong)?, Ok)?;
            if let Some(w) = words.iter().find(|w| !accepted.contains(w)) {
                return Err(format!("action {name}: unknown algorithm '{w}'; accepted: {}", accepted.join(", ")));
            }
            let words: Vec<&str> = accepted.iter().copied().filter(|a| words.contains(a)).collect();
            if words.iter().all(|w| fido::algorithm_cose(w).is_none()) {
                return Err(format!(
                    "action {name}: Countersign does not verify RSASSA-PSS (COSE -37) and never offers it; \
                     name ecdsa, eddsa or rsassa-pkcs1v1_5 as well"
                ));
            }
            Ok(ActionValue::Text(words.join(" ")))
        }
        Kind::Aaguids => {
            let aaguids = list(name, text.ok_or_else(wrong)?, |w| fido::parse_aaguid(w).map(|a| fido::aaguid_hex(&a)))?;
            Ok(ActionValue::Text(aaguids.join(" ")))
        }
        Kind::Origins => Ok(ActionValue::Text(list(name, text.ok_or_else(wrong)?, fido::parse_origin)?.join(" "))),
        Kind::Domain => {
            let d = fido::parse_domain(text.ok_or_else(wrong)?).map_err(|e| format!("action {name}: {e}"))?;
            Ok(ActionValue::Text(d))
        }
    }
}

/// The items of a list value (separated by spaces or commas), each read by `item`, in the
/// order given and once each; at least one.
fn list<'t, T: PartialEq>(
    name: &str,
    text: &'t str,
    item: impl Fn(&'t str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if text.len() > 1000 {
        return Err(format!("action {name} takes at most 1000 characters"));
    }
    let mut out = Vec::new();
    for w in fido::words(text) {
        let v = item(w).map_err(|e| format!("action {name}: {e}"))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(format!("action {name} takes at least one item, separated by spaces"));
    }
    Ok(out)
}

/// The stored JSON of a value.
pub fn to_json(v: &ActionValue) -> serde_json::Value {
    v.to_json()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    #[test]
    fn rate_syntax() {
        assert_eq!(RateLimit::parse("3/5m").unwrap(), RateLimit { count: 3, period_s: 300 });
        assert_eq!(RateLimit::parse("10/24h").unwrap(), RateLimit { count: 10, period_s: 86_400 });
        assert_eq!(RateLimit::parse(" 1 / 30s ").unwrap(), RateLimit { count: 1, period_s: 30 });
        assert_eq!(RateLimit::parse("2/7d").unwrap(), RateLimit { count: 2, period_s: 604_800 });
        for bad in ["3", "3/", "/5m", "3/5", "3/m", "3/5w", "0/5m", "3/0m", "x/5m", "-1/5m", "3/400d"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(check(Scope::Authorization, "auth_max_fail", &json!("3 / 5m")).unwrap().as_rate().unwrap().count, 3);
        let e = check(Scope::Authorization, "auth_max_fail", &json!("3 per 5m")).unwrap_err();
        assert!(e.contains("auth_max_fail") && e.contains("N/period"), "{e}");
    }

    #[test]
    fn values_are_checked_and_normalised() {
        assert_eq!(
            check(Scope::Authentication, "otppin", &json!("userstore")).unwrap().as_otppin(),
            Some(OtpPin::UserStore)
        );
        let e = check(Scope::Authentication, "otppin", &json!("ldap")).unwrap_err();
        assert!(e.contains("tokenpin, userstore, none"), "{e}");
        assert_eq!(check(Scope::Authentication, "passthru", &json!("true")).unwrap(), ActionValue::Bool(true));
        assert_eq!(check(Scope::Authentication, "passthru", &json!(false)).unwrap(), ActionValue::Bool(false));
        // privacyIDEA's admins write 1 (its `is_true`), and 0 for false.
        assert_eq!(check(Scope::Authentication, "passthru", &json!(1)).unwrap(), ActionValue::Bool(true));
        assert_eq!(check(Scope::Authentication, "passthru", &json!("1")).unwrap(), ActionValue::Bool(true));
        assert_eq!(check(Scope::Authentication, "passthru", &json!("0")).unwrap(), ActionValue::Bool(false));
        assert!(check(Scope::Authentication, "passthru", &json!(2)).is_err());
        assert!(check(Scope::Authentication, "passthru", &json!("yes")).is_err());
        assert_eq!(check(Scope::Enrollment, "max_token_per_user", &json!("3")).unwrap(), ActionValue::Int(3));
        assert!(check(Scope::Enrollment, "max_token_per_user", &json!(0)).is_err());
        assert!(check(Scope::Enrollment, "otp_pin_random", &json!("six")).is_err());
        let types = check(Scope::Authentication, "challenge_response", &json!("hotp, totp")).unwrap();
        assert_eq!(types.as_list(), ["hotp", "totp"]);
        assert!(check(Scope::Authentication, "challenge_response", &json!("HOTP")).is_err());
        assert!(check(Scope::Authentication, "smstext", &json!("")).is_err());
    }

    #[test]
    fn unknown_and_misplaced_actions_are_named() {
        let e = check(Scope::Authentication, "otp_pin", &json!(true)).unwrap_err();
        assert!(e.contains("unknown action 'otp_pin'") && e.contains("otppin, passthru"), "{e}");
        let e = check(Scope::Authentication, "passonnotoken", &json!(true)).unwrap_err();
        assert!(e.contains("did you mean passOnNoToken"), "{e}");
        let e = check(Scope::Authentication, "tokenlabel", &json!("x")).unwrap_err();
        assert!(e.contains("belongs to scope enrollment"), "{e}");
    }

    #[test]
    fn every_token_type_the_appliance_enrols_has_its_admin_action() {
        // Without one, no admin policy could allow the type, and once any admin policy exists
        // nobody could enrol it (the privacyIDEA API and the console ask `enroll<TYPE>`).
        for t in [
            "hotp",
            "totp",
            "sms",
            "email",
            "certificate",
            "spass",
            "pw",
            "registration",
            "paper",
            "tan",
            "indexedsecret",
            "webauthn",
            "passkey",
            "yubikey",
            "push",
            "edupush",
        ] {
            let action = format!("enroll{}", t.to_ascii_uppercase());
            assert!(lookup_in(Scope::Admin, &action).is_some(), "{action} missing");
        }
    }

    #[test]
    fn names_are_unique_within_a_scope() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            let again = CATALOGUE[i + 1..].iter().any(|b| b.name == a.name && b.scope == a.scope);
            assert!(!again, "{} twice in {}", a.name, a.scope);
        }
        // Only privacyIDEA's WebAuthn actions and (edu)push_ssl_verify share a name across scopes.
        let mut names: Vec<&str> = Vec::new();
        for a in CATALOGUE.iter().filter(|a| scopes_of(a.name).len() > 1) {
            if !names.contains(&a.name) {
                names.push(a.name);
            }
        }
        assert_eq!(
            names,
            [
                "webauthn_timeout",
                "webauthn_user_verification_requirement",
                "webauthn_challenge_text",
                "push_ssl_verify",
                "edupush_ssl_verify",
                "webauthn_authenticator_selection_list"
            ]
        );
        assert_eq!(
            lookup_in(Scope::Authorization, "webauthn_authenticator_selection_list").unwrap().scope,
            Scope::Authorization
        );
        assert!(lookup_in(Scope::Authorization, "webauthn_timeout").is_none());
    }
}
