//! What the WebAuthn and passkey policies say about one registration
//! ([`WebauthnEnrolPolicies::read`]) and about one sign-in ([`WebauthnAuthPolicies::read`]),
//! typed, with privacyIDEA's defaults filled in. The words and values these actions take are
//! [`super::fido`]'s, re-exported here.
//!
//! privacyIDEA's `passkey` token shares the `webauthn_*` actions for the relying party, user
//! verification and algorithms; the timeout, attachment, transports and attestation actions
//! apply to `webauthn` tokens only, and a passkey's attestation has its own action.
//!
//! One difference from privacyIDEA holds for every list here (algorithms, transports, AAGUIDs,
//! origins): privacyIDEA joins the lists of all matching policies, Countersign takes the value
//! of the winning priority and refuses policies that disagree at that priority, as for every
//! other action ([`PolicySnapshot::value`]).
//!
//! Nothing here verifies a ceremony: the webauthn crate does, with what these readings say.

use super::actions::{ActionValue, Scope};
use super::snapshot::{PolicyConflict, PolicyContext, PolicySnapshot};

pub use super::fido::{
    aaguid_hex, algorithm_cose, parse_aaguid, parse_domain, parse_origin, Attachment, AttestationForm,
    AttestationLevel, SignCount, Transport, UserVerification, ALGORITHM_WORDS, COSE_EDDSA, COSE_ES256, COSE_RS256,
    DEFAULT_TRANSPORTS, TRANSPORT_WORDS,
};

/// The algorithms offered when no policy sets `webauthn_public_key_credential_algorithms`:
/// ES256, EdDSA, RS256. privacyIDEA's default is ecdsa, rsassa-pss and rsassa-pkcs1v1_5 (its
/// passkeys: ES256 and RS256); Countersign leaves out RSASSA-PSS, which it does not verify, and
/// adds EdDSA, which it verifies and which some authenticators prefer.
pub const DEFAULT_ALGORITHMS: [i64; 3] = [COSE_ES256, COSE_EDDSA, COSE_RS256];

/// privacyIDEA's timeout of a WebAuthn registration or sign-in, in seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 60;

/// privacyIDEA's message asking to confirm a WebAuthn registration (`webauthn_challenge_text`,
/// enrollment).
pub const DEFAULT_ENROL_CHALLENGE_TEXT: &str = "Please confirm with your WebAuthn token";

/// privacyIDEA's message of a WebAuthn challenge (`webauthn_challenge_text`, authentication);
/// `{0!s}` is replaced by the token's description.
pub const DEFAULT_AUTH_CHALLENGE_TEXT: &str = "Please confirm with your WebAuthn token ({0!s})";

/// privacyIDEA's message of a passkey challenge (`passkey_challenge_text`).
pub const DEFAULT_PASSKEY_CHALLENGE_TEXT: &str = "Please authenticate with your passkey!";

/// The web origins a registration's or a sign-in's client data may name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// No `webauthn_allowed_origins`: only `https://<RP ID>` of the credential.
    #[default]
    RpId,
    /// `webauthn_allowed_origins`: exactly these (normalised by [`parse_origin`]).
    Listed(Vec<String>),
}

impl AllowedOrigins {
    /// The origins to accept for a credential of relying party `rp_id`.
    pub fn for_rp_id(&self, rp_id: &str) -> Vec<String> {
        match self {
            AllowedOrigins::RpId => vec![format!("https://{rp_id}")],
            AllowedOrigins::Listed(origins) => origins.clone(),
        }
    }
}

/// The enrollment policies' say on one new `webauthn` or `passkey` token (privacyIDEA's action
/// names in brackets, all of scope enrollment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnEnrolPolicies {
    /// The relying party ID the credential is bound to (`webauthn_relying_party_id`; no
    /// default: privacyIDEA refuses to enrol either type without it, and so must the caller).
    pub rp_id: Option<String>,
    /// The relying party's name the authenticator shows (`webauthn_relying_party_name`; no
    /// default: required as the RP ID is).
    pub rp_name: Option<String>,
    /// Seconds the browser waits for the user (`webauthn_timeout`; 60). Not for passkeys,
    /// whose registration timeout privacyIDEA fixes.
    pub timeout_s: u32,
    /// How strictly the attestation is checked (`webauthn_authenticator_attestation_level`;
    /// untrusted). Not for passkeys.
    pub attestation_level: AttestationLevel,
    /// The attestation asked for (`webauthn_authenticator_attestation_form`; direct; never
    /// enterprise). Not for passkeys. With `none`, only the attestation level `none` lets a
    /// registration through, as in privacyIDEA (the two actions may come from different
    /// policies, so their combination is not refused when saved).
    pub attestation_form: AttestationForm,
    /// The attestation a passkey registration asks for
    /// (`passkey_attestation_conveyance_preference`; none).
    pub passkey_attestation: AttestationForm,
    /// Whether the authenticator must verify the user
    /// (`webauthn_user_verification_requirement`; preferred). For both types.
    pub user_verification: UserVerification,
    /// The COSE algorithms offered, by preference
    /// (`webauthn_public_key_credential_algorithms`; [`DEFAULT_ALGORITHMS`]). For both types.
    /// Never empty: a value naming only `rsassa-pss` is refused when the policy is saved.
    pub algorithms: Vec<i64>,
    /// Which authenticators may register (`webauthn_authenticator_attachment`; either). Not
    /// for passkeys.
    pub attachment: Attachment,
    /// The authenticator models that may register, by AAGUID
    /// (`webauthn_authenticator_selection_list`; empty: any model).
    pub aaguids: Vec<[u8; 16]>,
    /// An authenticator the user already has as a WebAuthn token cannot register again
    /// (`webauthn_avoid_double_registration`; off). privacyIDEA always excludes a passkey
    /// user's existing credentials, whatever this says.
    pub avoid_double_registration: bool,
    /// The message asking to confirm the registration (`webauthn_challenge_text`;
    /// [`DEFAULT_ENROL_CHALLENGE_TEXT`]).
    pub challenge_text: String,
    /// The owner may then own at most this many WebAuthn tokens
    /// (`webauthn_max_token_per_user`; no limit).
    pub max_tokens: Option<i64>,
    /// ... and at most this many active ones (`webauthn_max_active_token_per_user`; no limit).
    pub max_active_tokens: Option<i64>,
    /// The origins the registration may come from (`webauthn_allowed_origins`, Countersign's;
    /// `https://<RP ID>`).
    pub origins: AllowedOrigins,
}

impl Default for WebauthnEnrolPolicies {
    /// No policy: privacyIDEA's defaults, and no relying party (enrolment impossible).
    fn default() -> Self {
        WebauthnEnrolPolicies {
            rp_id: None,
            rp_name: None,
            timeout_s: DEFAULT_TIMEOUT_S,
            attestation_level: AttestationLevel::Untrusted,
            attestation_form: AttestationForm::Direct,
            passkey_attestation: AttestationForm::None,
            user_verification: UserVerification::Preferred,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            attachment: Attachment::Either,
            aaguids: Vec::new(),
            avoid_double_registration: false,
            challenge_text: DEFAULT_ENROL_CHALLENGE_TEXT.to_owned(),
            max_tokens: None,
            max_active_tokens: None,
            origins: AllowedOrigins::RpId,
        }
    }
}

/// Reads the values of one scope's actions for one request.
struct Reader<'a> {
    p: &'a PolicySnapshot,
    ctx: &'a PolicyContext<'a>,
    scope: Scope,
}

impl Reader<'_> {
    fn value(&self, action: &str) -> Result<Option<ActionValue>, PolicyConflict> {
        Ok(self.p.value(self.scope, action, self.ctx)?.map(|(v, _)| v))
    }

    fn text(&self, action: &str) -> Result<Option<String>, PolicyConflict> {
        Ok(self.value(action)?.and_then(|v| v.as_text().map(str::to_owned)))
    }

    fn int(&self, action: &str) -> Result<Option<i64>, PolicyConflict> {
        Ok(self.value(action)?.and_then(|v| v.as_int()))
    }

    fn flag(&self, action: &str) -> Result<bool, PolicyConflict> {
        self.p.flag(self.scope, action, self.ctx)
    }

    /// A word's reading; values were checked against the catalogue when the policy was saved.
    fn word<T>(&self, action: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, PolicyConflict> {
        Ok(self.text(action)?.as_deref().and_then(parse))
    }

    fn timeout(&self) -> Result<u32, PolicyConflict> {
        Ok(self.int("webauthn_timeout")?.and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_TIMEOUT_S))
    }

    fn aaguids(&self) -> Result<Vec<[u8; 16]>, PolicyConflict> {
        Ok(self
            .value("webauthn_authenticator_selection_list")?
            .map(|v| v.as_list().into_iter().filter_map(|w| parse_aaguid(w).ok()).collect())
            .unwrap_or_default())
    }

    fn origins(&self) -> Result<AllowedOrigins, PolicyConflict> {
        Ok(match self.value("webauthn_allowed_origins")? {
            Some(v) => AllowedOrigins::Listed(v.as_list().into_iter().map(str::to_owned).collect()),
            None => AllowedOrigins::RpId,
        })
    }
}

impl WebauthnEnrolPolicies {
    /// The enrollment policies for the request `ctx` describes (the new token's owner).
    pub fn read(p: &PolicySnapshot, ctx: &PolicyContext<'_>) -> Result<WebauthnEnrolPolicies, PolicyConflict> {
        let r = Reader { p, ctx, scope: Scope::Enrollment };
        let d = WebauthnEnrolPolicies::default();
        let algorithms = match r.value("webauthn_public_key_credential_algorithms")? {
            Some(v) => v.as_list().into_iter().filter_map(algorithm_cose).collect(),
            None => d.algorithms,
        };
        Ok(WebauthnEnrolPolicies {
            rp_id: r.text("webauthn_relying_party_id")?,
            rp_name: r.text("webauthn_relying_party_name")?,
            timeout_s: r.timeout()?,
            attestation_level: r
                .word("webauthn_authenticator_attestation_level", AttestationLevel::parse)?
                .unwrap_or(d.attestation_level),
            attestation_form: r
                .word("webauthn_authenticator_attestation_form", AttestationForm::parse)?
                .unwrap_or(d.attestation_form),
            passkey_attestation: r
                .word("passkey_attestation_conveyance_preference", AttestationForm::parse)?
                .unwrap_or(d.passkey_attestation),
            user_verification: r
                .word("webauthn_user_verification_requirement", UserVerification::parse)?
                .unwrap_or(d.user_verification),
            algorithms,
            attachment: r.word("webauthn_authenticator_attachment", Attachment::parse)?.unwrap_or(d.attachment),
            aaguids: r.aaguids()?,
            avoid_double_registration: r.flag("webauthn_avoid_double_registration")?,
            challenge_text: r.text("webauthn_challenge_text")?.unwrap_or(d.challenge_text),
            max_tokens: r.int("webauthn_max_token_per_user")?,
            max_active_tokens: r.int("webauthn_max_active_token_per_user")?,
            origins: r.origins()?,
        })
    }

    /// The origins the registration may come from: `webauthn_allowed_origins`, else
    /// `https://<RP ID>`; none without a relying party.
    pub fn expected_origins(&self) -> Vec<String> {
        self.rp_id.as_deref().map(|rp| self.origins.for_rp_id(rp)).unwrap_or_default()
    }
}

/// The policies' say on one sign-in with a `webauthn` or `passkey` token (privacyIDEA's action
/// names in brackets, with their scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnAuthPolicies {
    /// Whether the authenticator must verify the user (`webauthn_user_verification_requirement`,
    /// authentication; preferred). For both types.
    pub user_verification: UserVerification,
    /// Seconds the browser waits for the user (`webauthn_timeout`, authentication; 60).
    pub timeout_s: u32,
    /// The transports a challenge names, a hint to the browser (`webauthn_allowed_transports`,
    /// authentication; usb ble nfc internal).
    pub transports: Vec<Transport>,
    /// The authenticator models that may sign in, by AAGUID
    /// (`webauthn_authenticator_selection_list`, authorization; empty: any model). A token
    /// enrolled without an AAGUID cannot pass a non-empty list.
    pub aaguids: Vec<[u8; 16]>,
    /// The message of a WebAuthn challenge; `{0!s}` is replaced by the token's description
    /// (`webauthn_challenge_text`, authentication; [`DEFAULT_AUTH_CHALLENGE_TEXT`]).
    pub challenge_text: String,
    /// The message of a passkey challenge (`passkey_challenge_text`, authentication;
    /// [`DEFAULT_PASSKEY_CHALLENGE_TEXT`]).
    pub passkey_challenge_text: String,
    /// A passkey's PIN (or `/validate/triggerchallenge`) triggers a challenge
    /// (`passkey_trigger_by_pin`, authentication; off: passkeys answer only challenges from
    /// `/validate/initialize`).
    pub passkey_trigger_by_pin: bool,
    /// What a signature counter that did not advance leads to (`webauthn_sign_count`,
    /// authentication, Countersign's; reject).
    pub sign_count: SignCount,
    /// The origins a sign-in may come from (`webauthn_allowed_origins`, read from the
    /// enrollment scope like the RP ID; `https://<RP ID>` of the credential).
    pub origins: AllowedOrigins,
    /// The relying party of passkey challenges that name no user (`/validate/initialize`) and
    /// of passkeys triggered by PIN (`webauthn_relying_party_id`, read from the enrollment scope
    /// as privacyIDEA does; none). A credential's own RP ID, stored when it was registered,
    /// decides for every other sign-in.
    pub rp_id: Option<String>,
}

impl Default for WebauthnAuthPolicies {
    /// No policy: privacyIDEA's defaults.
    fn default() -> Self {
        WebauthnAuthPolicies {
            user_verification: UserVerification::Preferred,
            timeout_s: DEFAULT_TIMEOUT_S,
            transports: DEFAULT_TRANSPORTS.to_vec(),
            aaguids: Vec::new(),
            challenge_text: DEFAULT_AUTH_CHALLENGE_TEXT.to_owned(),
            passkey_challenge_text: DEFAULT_PASSKEY_CHALLENGE_TEXT.to_owned(),
            passkey_trigger_by_pin: false,
            sign_count: SignCount::Reject,
            origins: AllowedOrigins::RpId,
            rp_id: None,
        }
    }
}

impl WebauthnAuthPolicies {
    /// The policies for the sign-in `ctx` describes (the user signing in).
    pub fn read(p: &PolicySnapshot, ctx: &PolicyContext<'_>) -> Result<WebauthnAuthPolicies, PolicyConflict> {
        let authn = Reader { p, ctx, scope: Scope::Authentication };
        let authz = Reader { p, ctx, scope: Scope::Authorization };
        let enrol = Reader { p, ctx, scope: Scope::Enrollment };
        let d = WebauthnAuthPolicies::default();
        let transports = match authn.value("webauthn_allowed_transports")? {
            Some(v) => v.as_list().into_iter().filter_map(Transport::parse).collect(),
            None => d.transports,
        };
        Ok(WebauthnAuthPolicies {
            user_verification: authn
                .word("webauthn_user_verification_requirement", UserVerification::parse)?
                .unwrap_or(d.user_verification),
            timeout_s: authn.timeout()?,
            transports,
            aaguids: authz.aaguids()?,
            challenge_text: authn.text("webauthn_challenge_text")?.unwrap_or(d.challenge_text),
            passkey_challenge_text: authn.text("passkey_challenge_text")?.unwrap_or(d.passkey_challenge_text),
            passkey_trigger_by_pin: authn.flag("passkey_trigger_by_pin")?,
            sign_count: authn.word("webauthn_sign_count", SignCount::parse)?.unwrap_or(d.sign_count),
            origins: enrol.origins()?,
            rp_id: enrol.text("webauthn_relying_party_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::actions;
    use super::super::record::PolicyRecord;
    use super::*;
    use serde_json::json;

    const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    const YUBIKEY_BYTES: [u8; 16] =
        [0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8];

    fn policy(scope: &str, actions: serde_json::Value, realms: &[&str]) -> PolicyRecord {
        PolicyRecord {
            realms: realms.iter().map(|r| (*r).to_owned()).collect(),
            ..PolicyRecord::new("p", scope, actions.as_object().unwrap().clone())
        }
    }

    fn ctx(realm: &str) -> PolicyContext<'_> {
        PolicyContext::for_request(Some("alice"), Some(realm), None, &crate::caller::Caller::uid(0), 0, 0)
    }

    /// Each enrollment action, set alone, fills its own field (as the catalogue stored it), and
    /// only for owners in the policy's realm; unset, privacyIDEA's defaults hold.
    #[test]
    fn each_webauthn_enrolment_action_fills_its_own_field() {
        let d = WebauthnEnrolPolicies::default();
        let e = |f: fn(&mut WebauthnEnrolPolicies)| {
            let mut p = d.clone();
            f(&mut p);
            p
        };
        let cases = [
            (json!({ "webauthn_relying_party_id": "Example.COM" }), e(|p| p.rp_id = Some("example.com".into()))),
            (json!({ "webauthn_relying_party_name": "ACME" }), e(|p| p.rp_name = Some("ACME".into()))),
            (json!({ "webauthn_timeout": "120" }), e(|p| p.timeout_s = 120)),
            (
                json!({ "webauthn_authenticator_attestation_level": "trusted" }),
                e(|p| p.attestation_level = AttestationLevel::Trusted),
            ),
            (
                json!({ "webauthn_authenticator_attestation_level": "none" }),
                e(|p| p.attestation_level = AttestationLevel::None),
            ),
            (
                json!({ "webauthn_authenticator_attestation_form": "indirect" }),
                e(|p| p.attestation_form = AttestationForm::Indirect),
            ),
            (
                json!({ "passkey_attestation_conveyance_preference": "enterprise" }),
                e(|p| p.passkey_attestation = AttestationForm::Enterprise),
            ),
            (
                json!({ "webauthn_user_verification_requirement": "required" }),
                e(|p| p.user_verification = UserVerification::Required),
            ),
            (
                json!({ "webauthn_user_verification_requirement": "discouraged" }),
                e(|p| p.user_verification = UserVerification::Discouraged),
            ),
            // Stored in the order of preference; rsassa-pss is accepted and never offered.
            (
                json!({ "webauthn_public_key_credential_algorithms": "rsassa-pkcs1v1_5 rsassa-pss ecdsa" }),
                e(|p| p.algorithms = vec![COSE_ES256, COSE_RS256]),
            ),
            (json!({ "webauthn_public_key_credential_algorithms": "eddsa" }), e(|p| p.algorithms = vec![COSE_EDDSA])),
            (
                json!({ "webauthn_authenticator_attachment": "cross-platform" }),
                e(|p| p.attachment = Attachment::CrossPlatform),
            ),
            (json!({ "webauthn_authenticator_attachment": "platform" }), e(|p| p.attachment = Attachment::Platform)),
            (
                json!({ "webauthn_authenticator_selection_list": format!("{} 00000000000000000000000000000001", YUBIKEY.to_uppercase()) }),
                e(|p| {
                    let mut one = [0u8; 16];
                    one[15] = 1;
                    p.aaguids = vec![YUBIKEY_BYTES, one];
                }),
            ),
            (json!({ "webauthn_avoid_double_registration": true }), e(|p| p.avoid_double_registration = true)),
            (json!({ "webauthn_challenge_text": "Touch your key" }), e(|p| p.challenge_text = "Touch your key".into())),
            (json!({ "webauthn_max_token_per_user": 2 }), e(|p| p.max_tokens = Some(2))),
            (json!({ "webauthn_max_active_token_per_user": 1 }), e(|p| p.max_active_tokens = Some(1))),
            (
                json!({ "webauthn_allowed_origins": "https://Login.Example.com:443, https://vpn.example.com:8443" }),
                e(|p| {
                    p.origins = AllowedOrigins::Listed(vec![
                        "https://login.example.com".into(),
                        "https://vpn.example.com:8443".into(),
                    ])
                }),
            ),
        ];
        for (actions, want) in cases {
            let snapshot = PolicySnapshot::build(&[policy("enrollment", actions.clone(), &["corp"])]).unwrap();
            assert_eq!(WebauthnEnrolPolicies::read(&snapshot, &ctx("corp")).unwrap(), want, "{actions}");
            assert_eq!(WebauthnEnrolPolicies::read(&snapshot, &ctx("other")).unwrap(), d, "{actions} in another realm");
        }
    }

    /// Each authentication and authorization action (and the enrollment actions a sign-in reads)
    /// set alone fills its own field, only in the policy's realm.
    #[test]
    fn each_webauthn_sign_in_action_fills_its_own_field() {
        let d = WebauthnAuthPolicies::default();
        let e = |f: fn(&mut WebauthnAuthPolicies)| {
            let mut p = d.clone();
            f(&mut p);
            p
        };
        let cases = [
            (
                "authentication",
                json!({ "webauthn_user_verification_requirement": "required" }),
                e(|p| p.user_verification = UserVerification::Required),
            ),
            ("authentication", json!({ "webauthn_timeout": 30 }), e(|p| p.timeout_s = 30)),
            (
                "authentication",
                json!({ "webauthn_allowed_transports": "usb,nfc hybrid" }),
                e(|p| p.transports = vec![Transport::Usb, Transport::Nfc, Transport::Hybrid]),
            ),
            (
                "authorization",
                json!({ "webauthn_authenticator_selection_list": YUBIKEY }),
                e(|p| p.aaguids = vec![YUBIKEY_BYTES]),
            ),
            (
                "authentication",
                json!({ "webauthn_challenge_text": "Touch {0!s}" }),
                e(|p| p.challenge_text = "Touch {0!s}".into()),
            ),
            (
                "authentication",
                json!({ "passkey_challenge_text": "Use your passkey" }),
                e(|p| p.passkey_challenge_text = "Use your passkey".into()),
            ),
            ("authentication", json!({ "passkey_trigger_by_pin": true }), e(|p| p.passkey_trigger_by_pin = true)),
            ("authentication", json!({ "webauthn_sign_count": "warn" }), e(|p| p.sign_count = SignCount::Warn)),
            (
                "enrollment",
                json!({ "webauthn_allowed_origins": "http://localhost:8080" }),
                e(|p| p.origins = AllowedOrigins::Listed(vec!["http://localhost:8080".into()])),
            ),
            (
                "enrollment",
                json!({ "webauthn_relying_party_id": "example.com" }),
                e(|p| p.rp_id = Some("example.com".into())),
            ),
        ];
        for (scope, actions, want) in cases {
            let snapshot = PolicySnapshot::build(&[policy(scope, actions.clone(), &["corp"])]).unwrap();
            assert_eq!(WebauthnAuthPolicies::read(&snapshot, &ctx("corp")).unwrap(), want, "{scope} {actions}");
            assert_eq!(WebauthnAuthPolicies::read(&snapshot, &ctx("other")).unwrap(), d, "{actions} elsewhere");
        }
    }

    /// The same action name in another scope does not count: the enrollment timeout is not the
    /// sign-in's, the authorization AAGUID list is not the registration's.
    #[test]
    fn an_action_of_two_scopes_is_read_from_the_right_one() {
        let snapshot = PolicySnapshot::build(&[
            PolicyRecord {
                name: "e".into(),
                ..policy(
                    "enrollment",
                    json!({ "webauthn_timeout": 90, "webauthn_user_verification_requirement": "required" }),
                    &[],
                )
            },
            PolicyRecord {
                name: "z".into(),
                ..policy("authorization", json!({ "webauthn_authenticator_selection_list": YUBIKEY }), &[])
            },
        ])
        .unwrap();
        let enrol = WebauthnEnrolPolicies::read(&snapshot, &ctx("corp")).unwrap();
        let auth = WebauthnAuthPolicies::read(&snapshot, &ctx("corp")).unwrap();
        assert_eq!(
            (enrol.timeout_s, enrol.user_verification, enrol.aaguids.len()),
            (90, UserVerification::Required, 0)
        );
        assert_eq!((auth.timeout_s, auth.user_verification), (DEFAULT_TIMEOUT_S, UserVerification::Preferred));
        assert_eq!(auth.aaguids, vec![YUBIKEY_BYTES]);
    }

    #[test]
    fn defaults_are_privacyideas() {
        let e = WebauthnEnrolPolicies::default();
        assert_eq!((e.rp_id.as_deref(), e.rp_name.as_deref(), e.timeout_s), (None, None, 60));
        assert_eq!(
            (e.attestation_level, e.attestation_form, e.passkey_attestation),
            (AttestationLevel::Untrusted, AttestationForm::Direct, AttestationForm::None)
        );
        assert_eq!((e.user_verification, e.attachment), (UserVerification::Preferred, Attachment::Either));
        assert_eq!(e.algorithms, [-7, -8, -257]);
        assert!(e.aaguids.is_empty() && !e.avoid_double_registration && e.max_tokens.is_none());
        assert_eq!(e.challenge_text, "Please confirm with your WebAuthn token");
        assert!(e.expected_origins().is_empty(), "no relying party, no origin");
        let e = WebauthnEnrolPolicies { rp_id: Some("example.com".into()), ..e };
        assert_eq!(e.expected_origins(), ["https://example.com"]);

        let a = WebauthnAuthPolicies::default();
        assert_eq!(
            (a.user_verification, a.timeout_s, a.sign_count),
            (UserVerification::Preferred, 60, SignCount::Reject)
        );
        let words: Vec<&str> = a.transports.iter().map(|t| t.as_str()).collect();
        assert_eq!(words, ["usb", "ble", "nfc", "internal"]);
        assert_eq!(a.challenge_text, "Please confirm with your WebAuthn token ({0!s})");
        assert_eq!(a.passkey_challenge_text, "Please authenticate with your passkey!");
        assert!(a.aaguids.is_empty() && !a.passkey_trigger_by_pin && a.rp_id.is_none());
        assert_eq!(a.origins.for_rp_id("example.com"), ["https://example.com"]);
        let listed = AllowedOrigins::Listed(vec!["https://a.example.com".into()]);
        assert_eq!(listed.for_rp_id("example.com"), ["https://a.example.com"]);
        // An empty policy snapshot reads as the defaults.
        let empty = PolicySnapshot::build(&[]).unwrap();
        assert_eq!(WebauthnEnrolPolicies::read(&empty, &ctx("corp")).unwrap(), WebauthnEnrolPolicies::default());
        assert_eq!(WebauthnAuthPolicies::read(&empty, &ctx("corp")).unwrap(), a);
    }

    /// Values are checked when a policy is saved (the catalogue's check), naming what is wrong;
    /// what is accepted is stored normalised.
    #[test]
    fn webauthn_values_are_checked_and_normalised_when_saved() {
        use Scope::{Authentication as AUTHN, Authorization as AUTHZ, Enrollment as ENROL};
        let stored = |scope, action, v: serde_json::Value| actions::check(scope, action, &v).map(|v| v.to_string());
        // (scope, action, value) → stored value
        let accepted = [
            (ENROL, "webauthn_relying_party_id", json!(" Login.Example.COM "), "login.example.com"),
            (ENROL, "webauthn_relying_party_id", json!("localhost"), "localhost"),
            (ENROL, "webauthn_relying_party_id", json!("xn--bcher-kva.example"), "xn--bcher-kva.example"),
            (ENROL, "webauthn_timeout", json!("60"), "60"),
            (AUTHN, "webauthn_timeout", json!(600), "600"),
            (ENROL, "webauthn_public_key_credential_algorithms", json!("rsassa-pkcs1v1_5, ecdsa ecdsa"), "ecdsa rsassa-pkcs1v1_5"),
            (ENROL, "webauthn_public_key_credential_algorithms", json!("rsassa-pss ecdsa"), "ecdsa rsassa-pss"),
            (
                ENROL,
                "webauthn_authenticator_selection_list",
                json!(format!("{}\t{YUBIKEY}, CB69481E8FF7403993EC0A2729A154A8", YUBIKEY.to_uppercase())),
                "cb69481e8ff7403993ec0a2729a154a8",
            ),
            (AUTHZ, "webauthn_authenticator_selection_list", json!(YUBIKEY), "cb69481e8ff7403993ec0a2729a154a8"),
            (AUTHN, "webauthn_allowed_transports", json!("usb usb,internal"), "usb internal"),
            (
                ENROL,
                "webauthn_allowed_origins",
                json!("HTTPS://Login.Example.com:443 https://login.example.com http://app.localhost:80 https://x.example.com:8443"),
                "https://login.example.com http://app.localhost https://x.example.com:8443",
            ),
            (AUTHN, "webauthn_sign_count", json!("warn"), "warn"),
            (AUTHN, "passkey_trigger_by_pin", json!("true"), "true"),
            (ENROL, "passkey_attestation_conveyance_preference", json!("enterprise"), "enterprise"),
            (ENROL, "webauthn_authenticator_attachment", json!("either"), "either"),
        ];
        for (scope, action, value, want) in accepted {
            assert_eq!(stored(scope, action, value.clone()).unwrap(), want, "{scope} {action}={value}");
        }
        // (scope, action, value) → part of the refusal
        let refused = [
            (ENROL, "webauthn_relying_party_id", json!("https://example.com"), "not a domain name"),
            (ENROL, "webauthn_relying_party_id", json!("10.0.0.1"), "IP address"),
            (ENROL, "webauthn_relying_party_id", json!("-a.example.com"), "'-'"),
            (ENROL, "webauthn_relying_party_id", json!("bücher.example"), "xn--"),
            (ENROL, "webauthn_relying_party_id", json!("a..b"), "1 to 63"),
            (ENROL, "webauthn_timeout", json!(0), "from 1 to 600"),
            (AUTHN, "webauthn_timeout", json!("sixty"), "from 1 to 600"),
            (ENROL, "webauthn_authenticator_attestation_level", json!("strict"), "none, untrusted, trusted"),
            (ENROL, "webauthn_authenticator_attestation_form", json!("enterprise"), "none, indirect, direct"),
            (ENROL, "passkey_attestation_conveyance_preference", json!("full"), "none, indirect, direct, enterprise"),
            (ENROL, "webauthn_user_verification_requirement", json!("always"), "required, preferred, discouraged"),
            (AUTHN, "webauthn_user_verification_requirement", json!("Required"), "required, preferred, discouraged"),
            (ENROL, "webauthn_authenticator_attachment", json!("usb"), "platform, cross-platform, either"),
            (ENROL, "webauthn_public_key_credential_algorithms", json!("ecdsa ed25519"), "unknown algorithm 'ed25519'"),
            (ENROL, "webauthn_public_key_credential_algorithms", json!("rsassa-pss"), "does not verify RSASSA-PSS"),
            (ENROL, "webauthn_public_key_credential_algorithms", json!(""), "at least one"),
            (ENROL, "webauthn_authenticator_selection_list", json!("cb69481e-8ff7-4039-93ec"), "not an AAGUID"),
            (
                AUTHZ,
                "webauthn_authenticator_selection_list",
                json!("zz69481e8ff7403993ec0a2729a154a8"),
                "not an AAGUID",
            ),
            (AUTHZ, "webauthn_authenticator_selection_list", json!(" "), "at least one"),
            (AUTHN, "webauthn_allowed_transports", json!("usb wifi"), "unknown word 'wifi'"),
            (ENROL, "webauthn_allowed_origins", json!("https://login.example.com/"), "no path"),
            (ENROL, "webauthn_allowed_origins", json!("login.example.com"), "no scheme"),
            (ENROL, "webauthn_allowed_origins", json!("http://login.example.com"), "only for localhost"),
            (ENROL, "webauthn_allowed_origins", json!("ftp://login.example.com"), "the scheme is https"),
            (ENROL, "webauthn_allowed_origins", json!("https://login.example.com:0"), "1 to 65535"),
            (ENROL, "webauthn_allowed_origins", json!("https://user@login.example.com"), "no user"),
            (ENROL, "webauthn_allowed_origins", json!("https://[::1]"), "IP address"),
            (ENROL, "webauthn_allowed_origins", json!("https://10.0.0.1"), "IP address"),
            (AUTHN, "webauthn_sign_count", json!("ignore"), "reject, warn"),
            (AUTHN, "passkey_trigger_by_pin", json!("yes"), "true or false"),
            (ENROL, "webauthn_avoid_double_registration", json!(2), "true or false"),
            (ENROL, "webauthn_max_token_per_user", json!(0), "from 1 to 1000"),
            // Actions in a scope privacyIDEA does not put them in.
            (AUTHN, "webauthn_relying_party_id", json!("example.com"), "belongs to scope enrollment"),
            (AUTHZ, "webauthn_timeout", json!(60), "belongs to scopes authentication, enrollment"),
            (AUTHN, "webauthn_allowed_origins", json!("https://example.com"), "belongs to scope enrollment"),
            (ENROL, "webauthn_sign_count", json!("warn"), "belongs to scope authentication"),
            (ENROL, "passkey_trigger_by_pin", json!(true), "belongs to scope authentication"),
        ];
        for (scope, action, value, part) in refused {
            let e = stored(scope, action, value.clone()).unwrap_err();
            assert!(e.contains(part), "{scope} {action}={value}: {e}");
        }
        // Saving a policy runs the same check and names the policy.
        let bad = policy("enrollment", json!({ "webauthn_allowed_origins": "https://login.example.com/" }), &[]);
        let e = PolicySnapshot::build(&[bad]).unwrap_err().to_string();
        assert!(e.contains("policy p: action webauthn_allowed_origins") && e.contains("no path"), "{e}");
    }
}
