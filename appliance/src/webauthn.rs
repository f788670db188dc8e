//! The host side of the `webauthn` token type (and, to come, `passkey`): what the appliance owns
//! of a WebAuthn ceremony, while the token's plugin (`token-webauthn`, in its sandbox) parses and
//! verifies the ceremony's bytes.
//!
//! The host owns:
//! - the challenge: 32 bytes from the HSM, kept in a challenge row (its `nonce`), bound to the
//!   token and its transaction, spent once by compare-and-set (a registration's in
//!   `Store::register_webauthn`, an assertion's in the check's commit);
//! - what the relying party expects: RP id, allowed origins and user verification from the
//!   policies ([`countersign_core::policy::webauthn`]), the attestation roots from the
//!   configuration ([`WebauthnSettings`]);
//! - which attestation and which authenticator model it accepts (attestation level, AAGUID
//!   allow-list), judged on what the plugin reports;
//! - the credential row (`store/src/webauthn.rs`, sealed) and the sign counter, which is the
//!   token's `counter`: compared here with the stored one ([`judge_sign_count`]), moved by the
//!   accept's compare-and-set.
//!
//! It must never accept a ceremony the plugin did not verify, nor let a plugin's report move a
//! counter backwards or pick the credential a check uses.

use std::path::PathBuf;

use base64::Engine as _;
use countersign_core::policy::webauthn::{
    aaguid_hex, AttestationLevel, SignCount, UserVerification, WebauthnAuthPolicies, WebauthnEnrolPolicies,
};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, WebauthnExpected};

use crate::store::{TokenRecord, WebauthnCredential};

/// authenticatorData's backup eligibility flag (BE).
pub const FLAG_BE: u8 = 0x08;

/// The bytes of a WebAuthn challenge (registration or sign-in).
pub const CHALLENGE_LEN: usize = 32;

/// The transports a challenge names when no policy narrows them (privacyIDEA's default).
pub const DEFAULT_TRANSPORTS: [&str; 4] = ["usb", "ble", "nfc", "internal"];

/// What the configuration says about WebAuthn: resolved values, no serde.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebauthnSettings {
    /// PEM files of the attestation roots an `x5c` attestation may chain to (the Yubico FIDO
    /// root ships); read at each registration.
    pub attestation_roots: Vec<PathBuf>,
    /// Realms whose users' passkeys sign in the API admin of the same name.
    pub admin_realms: Vec<String>,
}

impl WebauthnSettings {
    /// The roots as DER certificates, and the files that could not be read (each named with
    /// why). A registration whose policy requires a trusted attestation is refused while any
    /// root is unreadable; others go on with the roots that were read (they only decide
    /// whether an attestation is reported trusted).
    pub fn roots(&self) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for path in &self.attestation_roots {
            match read_pem_certificates(path) {
                Ok(mut ders) => out.append(&mut ders),
                Err(e) => problems.push(e),
            }
        }
        (out, problems)
    }
}

/// The certificates of a PEM file, as DER.
fn read_pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("the WebAuthn attestation root {} cannot be read: {e}", path.display()))?;
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block.split("-----END CERTIFICATE-----").next().unwrap_or_default();
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| {
            format!("the WebAuthn attestation root {} holds a certificate that is not base64: {e}", path.display())
        })?;
        out.push(der);
    }
    if out.is_empty() {
        return Err(format!("the WebAuthn attestation root {} holds no PEM certificate", path.display()));
    }
    Ok(out)
}

/// base64url without padding, as WebAuthn's JSON carries bytes.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Bytes a client sent as base64url or base64, with or without padding (privacyIDEA's clients
/// send either: its own test vectors are standard base64 with `=`).
pub fn decode_b64(field: &str, value: &str) -> Result<Vec<u8>, String> {
    let v = value.trim().trim_end_matches('=');
    let engine = if v.contains(['+', '/']) {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    } else {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    };
    engine.decode(v).map_err(|_| format!("{field} is not base64url"))
}

/// What a registration's first step gives the client for `navigator.credentials.create`,
/// privacyIDEA's `webAuthnRegisterRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// A passkey (a discoverable credential for usernameless sign-in) rather than a second
    /// factor: the client signs over the challenge string's UTF-8 bytes, and the credential is
    /// resident.
    pub passkey: bool,
    /// `user.id`, base64url: a passkey's random user handle, a webauthn token's serial bytes.
    pub user_id: String,
    /// The transaction the second step names.
    pub transaction_id: String,
    /// The challenge, base64url: a webauthn client decodes it to bytes; a passkey client signs
    /// over the UTF-8 bytes of this string as it is (privacyIDEA's clients do).
    pub nonce: String,
    /// The RP id.
    pub rp_id: String,
    /// The RP's name.
    pub rp_name: String,
    /// The token's serial: the client uses its characters as `user.id`.
    pub serial: String,
    /// The user's login (`user.name`).
    pub name: String,
    /// `user.displayName`.
    pub display_name: String,
    /// The COSE algorithms offered, in order of preference.
    pub algorithms: Vec<i64>,
    /// `required`, `preferred` or `discouraged`.
    pub user_verification: &'static str,
    /// `platform` or `cross-platform`; `None`: either.
    pub attachment: Option<&'static str>,
    /// How long the client may take, in milliseconds.
    pub timeout_ms: u64,
    /// The attestation conveyance asked for: `none`, `indirect` or `direct`.
    pub attestation: &'static str,
    /// The credential ids (base64url) of the user's other webauthn tokens, when a policy
    /// avoids double registration.
    pub exclude_credentials: Vec<String>,
    /// The AAGUIDs (hex) a policy allows, for the client's `authnSel` extension.
    pub aaguids: Vec<String>,
    /// What to tell the user.
    pub message: String,
    /// Until when the registration may be finished (Unix ms).
    pub valid_until_ms: i64,
}

/// What a webauthn enrolment answers, besides the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolment {
    /// The first step: what the client's authenticator needs.
    Register(Box<RegisterRequest>),
    /// The second step: the credential registered.
    Registered {
        /// privacyIDEA's `webAuthnRegisterResponse.subject`: the token's description, or
        /// `Generic WebAuthn Token`.
        subject: String,
        /// What the attestation proved (`packed/basic-trusted`, ...).
        attestation: String,
        /// The authenticator model, hex.
        aaguid: String,
    },
}

impl RegisterRequest {
    /// The request as WebAuthn's `PublicKeyCredentialCreationOptionsJSON` (the native API's
    /// shape): `user.id` is the serial's bytes, as privacyIDEA's clients make it.
    pub fn creation_options(&self) -> serde_json::Value {
        let mut selection = serde_json::json!({ "userVerification": self.user_verification });
        if let Some(a) = self.attachment {
            selection["authenticatorAttachment"] = a.into();
        }
        if self.passkey {
            selection["residentKey"] = "required".into();
            selection["requireResidentKey"] = true.into();
        }
        serde_json::json!({
            "rp": { "id": self.rp_id, "name": self.rp_name },
            "user": { "id": self.user_id, "name": self.name, "displayName": self.display_name },
            // The creation options' challenge is the bytes to sign over, base64url: for a
            // passkey, those of the challenge string.
            "challenge": if self.passkey { b64url(self.nonce.as_bytes()) } else { self.nonce.clone() },
            "pubKeyCredParams": self.algorithms.iter().map(|a| serde_json::json!({ "type": "public-key", "alg": a })).collect::<Vec<_>>(),
            "timeout": self.timeout_ms,
            "excludeCredentials": self.exclude_credentials.iter().map(|id| serde_json::json!({ "type": "public-key", "id": id })).collect::<Vec<_>>(),
            "authenticatorSelection": selection,
            "attestation": self.attestation,
        })
    }
}

impl Enrolment {
    /// The native API's shape of this answer.
    pub fn to_api(&self) -> countersign_api::WebauthnEnrolment {
        match self {
            Enrolment::Register(r) => countersign_api::WebauthnEnrolment::Register {
                transaction_id: r.transaction_id.clone(),
                public_key: r.creation_options(),
                valid_until_ms: r.valid_until_ms,
            },
            Enrolment::Registered { attestation, aaguid, .. } => countersign_api::WebauthnEnrolment::Registered {
                attestation: attestation.clone(),
                aaguid: aaguid.clone(),
            },
        }
    }
}

/// The second step of a registration, as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The transaction of the first step.
    pub transaction_id: String,
    /// The attestationObject, base64url (or base64).
    pub attestation_object: String,
    /// The clientDataJSON, base64url (or base64).
    pub client_data_json: String,
}

/// An assertion as the client sends it (privacyIDEA's `credentialid`, `clientdata`,
/// `signaturedata`, `authenticatordata`, `userhandle`), decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assertion {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// authenticatorData.
    pub authenticator_data: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// The user handle, when the authenticator returned one: its bytes as the client encoded
    /// them (base64url), and the text as sent (privacyIDEA's webauthn clients have sent a
    /// serial's characters as they are).
    pub user_handle: Option<(Vec<u8>, String)>,
}

impl Assertion {
    /// Whether the user handle sent is `stored` (WebAuthn §7.2: a handle, when present, is the
    /// credential owner's); `None` when none was sent.
    pub fn user_handle_matches(&self, stored: Option<&[u8]>) -> Option<bool> {
        let (bytes, text) = self.user_handle.as_ref()?;
        Some(stored.is_some_and(|s| s == bytes.as_slice() || s == text.as_bytes()))
    }
}

/// A usernameless sign-in's challenge (privacyIDEA's `detail.passkey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The transaction the answer names.
    pub transaction_id: String,
    /// The challenge string; the authenticator signs over its UTF-8 bytes.
    pub challenge: String,
    /// The RP id.
    pub rp_id: String,
    /// `required`, `preferred` or `discouraged`.
    pub user_verification: &'static str,
    /// What to tell the user (`passkey_challenge_text`).
    pub message: String,
    /// Milliseconds.
    pub timeout_ms: u64,
    /// Until when it may be answered (Unix ms).
    pub valid_until_ms: i64,
}

/// A passkey's challenge triggered by its PIN (privacyIDEA's `passkey_trigger_by_pin`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PasskeyChallenge {
    /// The challenge string; the passkey signs over its UTF-8 bytes.
    pub challenge: String,
    /// The RP id the passkey was registered for.
    #[serde(rename = "rpId")]
    pub rp_id: String,
    /// `required`, `preferred` or `discouraged`.
    #[serde(rename = "userVerification")]
    pub user_verification: &'static str,
}

/// A challenge's sign request, privacyIDEA's `attributes.webAuthnSignRequest`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignRequest {
    /// The challenge, base64url.
    pub challenge: String,
    /// The token's credential (base64url id), with the transports allowed.
    #[serde(rename = "allowCredentials")]
    pub allow_credentials: Vec<AllowCredential>,
    /// The RP id the credential was registered for.
    #[serde(rename = "rpId")]
    pub rp_id: String,
    /// `required`, `preferred` or `discouraged`.
    #[serde(rename = "userVerification")]
    pub user_verification: &'static str,
    /// Milliseconds.
    pub timeout: u64,
}

/// One entry of [`SignRequest::allow_credentials`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AllowCredential {
    /// The credential id, base64url.
    pub id: String,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `usb`, `ble`, `nfc`, `internal`, ...
    pub transports: Vec<String>,
}

/// The authentication policies that apply to a sign-in with `t` (its owner, realm and
/// resolver, the caller's address), or the conflict that refuses it.
pub fn auth_policies(
    handle: &crate::policy::PolicyHandle,
    t: &TokenRecord,
    caller: &countersign_core::caller::Caller,
    now_s: i64,
) -> Result<WebauthnAuthPolicies, String> {
    let ctx = crate::policy::token_context(t, caller, now_s);
    WebauthnAuthPolicies::read(&handle.current(), &ctx).map_err(|e| format!("policy conflict, refused: {e}"))
}

/// What a challenge asks the authenticator to sign over, made of HSM `random` bytes, and the
/// string the client is sent: a webauthn token's client decodes that base64url, so the bytes
/// are `random` itself; privacyIDEA's passkey clients sign the string as sent, so a passkey's
/// bytes are its UTF-8. The one place the two encodings are decided (enrolment, challenges,
/// usernameless sign-ins).
pub fn challenge(passkey: bool, random: &[u8]) -> (Vec<u8>, String) {
    let text = b64url(random);
    let bytes = if passkey { text.clone().into_bytes() } else { random.to_vec() };
    (bytes, text)
}

/// The sign request of a challenge for `credential`, `challenge` as the client is sent it.
pub fn sign_request(
    credential: &WebauthnCredential,
    challenge: String,
    policies: &WebauthnAuthPolicies,
) -> SignRequest {
    let transports = if policies.transports.is_empty() {
        DEFAULT_TRANSPORTS.iter().map(|t| (*t).to_owned()).collect()
    } else {
        policies.transports.iter().map(|t| t.as_str().to_owned()).collect()
    };
    SignRequest {
        challenge,
        allow_credentials: vec![AllowCredential {
            id: b64url(&credential.credential_id),
            kind: "public-key",
            transports,
        }],
        rp_id: credential.rp_id.clone(),
        user_verification: policies.user_verification.as_str(),
        timeout: u64::from(policies.timeout_s).saturating_mul(1000),
    }
}

/// The plugin request that verifies a registration of `token` against the challenge `nonce`.
pub fn register_request(
    policies: &WebauthnEnrolPolicies,
    rp_id: &str,
    nonce: &[u8],
    roots: Vec<Vec<u8>>,
    now_ms: i64,
    reg: &Registration,
) -> Result<PluginRequest, String> {
    Ok(PluginRequest::WebauthnRegister {
        expected: WebauthnExpected {
            rp_id: rp_id.to_owned(),
            origins: policies.origins.for_rp_id(rp_id),
            allow_cross_origin: false,
            challenge: nonce.to_vec(),
            require_user_verification: policies.user_verification == UserVerification::Required,
        },
        trust_anchors: roots,
        now_unix: u64::try_from(now_ms / 1000).unwrap_or(0),
        attestation_object: decode_b64("the attestationObject (regdata)", &reg.attestation_object)?,
        client_data_json: decode_b64("the clientDataJSON (clientdata)", &reg.client_data_json)?,
    })
}

/// Judges a plugin's answer to a registration against the enrolment policies: the attestation
/// level and the AAGUID allow-list. The credential to store, or why it is refused (for the
/// admin: what to change).
pub fn judge_registration(
    answer: PluginResponse,
    policies: &WebauthnEnrolPolicies,
    rp_id: &str,
    user_handle: Option<Vec<u8>>,
) -> Result<WebauthnCredential, String> {
    let (credential_id, cose_key, alg, aaguid, flags, format, attestation) = match answer {
        PluginResponse::WebauthnRegistered {
            credential_id,
            cose_key,
            alg,
            aaguid,
            sign_count: _,
            flags,
            format,
            attestation,
        } => (credential_id, cose_key, alg, aaguid, flags, format, attestation),
        PluginResponse::Refused { reason } => return Err(format!("the registration does not verify: {reason}")),
        other => return Err(format!("the webauthn plugin answered a registration with {}", other.name())),
    };
    let aaguid: [u8; 16] =
        aaguid.try_into().map_err(|_| "the webauthn plugin reported an AAGUID that is not 16 bytes".to_owned())?;
    if credential_id.is_empty() || credential_id.len() > 1023 {
        return Err("the webauthn plugin reported a credential id of an impossible length".into());
    }
    // A format's name goes into the audit: a registry identifier, nothing else. Which formats
    // the plugin verifies is its business; what they prove is judged below.
    if format.is_empty()
        || format.len() > 32
        || !format.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "the webauthn plugin reported an unknown attestation format {:?}",
            countersign_plugin_ipc::plugin_text(&format)
        ));
    }
    let proven = match attestation.as_str() {
        "none" | "unverified" => AttestationLevel::None,
        "self" | "basic" => AttestationLevel::Untrusted,
        "basic-trusted" => AttestationLevel::Trusted,
        other => {
            return Err(format!(
                "the webauthn plugin reported an unknown attestation type {:?}",
                countersign_plugin_ipc::plugin_text(other)
            ))
        }
    };
    let rank = |l: AttestationLevel| match l {
        AttestationLevel::None => 0,
        AttestationLevel::Untrusted => 1,
        AttestationLevel::Trusted => 2,
    };
    if rank(proven) < rank(policies.attestation_level) {
        return Err(format!(
            "the authenticator's attestation ({format}, {attestation}) is below what the policy \
             webauthn_authenticator_attestation_level requires ({}); use an authenticator whose attestation chains to \
             a configured root, or change the policy",
            policies.attestation_level.as_str()
        ));
    }
    if !policies.aaguids.is_empty() && !policies.aaguids.contains(&aaguid) {
        return Err(format!(
            "the authenticator model (AAGUID {}) is not in the policy webauthn_authenticator_selection_list",
            aaguid_hex(&aaguid)
        ));
    }
    // The key must be of an algorithm the registration offered (WebAuthn §7.1).
    if !policies.algorithms.contains(&alg) {
        return Err(format!(
            "the credential's algorithm ({alg}) is not one the policy webauthn_public_key_credential_algorithms offers"
        ));
    }
    Ok(WebauthnCredential {
        credential_id,
        public_key: cose_key,
        alg,
        aaguid: aaguid_hex(&aaguid),
        rp_id: rp_id.to_owned(),
        user_handle,
        attestation: format!("{format}/{attestation}"),
        flags,
    })
}

/// The plugin request that verifies `assertion` for `credential` against the challenge `nonce`.
pub fn assert_request(
    credential: &WebauthnCredential,
    nonce: &[u8],
    policies: &WebauthnAuthPolicies,
    assertion: &Assertion,
) -> PluginRequest {
    PluginRequest::WebauthnAssert {
        expected: WebauthnExpected {
            rp_id: credential.rp_id.clone(),
            origins: policies.origins.for_rp_id(&credential.rp_id),
            allow_cross_origin: false,
            challenge: nonce.to_vec(),
            require_user_verification: policies.user_verification == UserVerification::Required,
        },
        cose_key: credential.public_key.clone(),
        authenticator_data: assertion.authenticator_data.clone(),
        client_data_json: assertion.client_data_json.clone(),
        signature: assertion.signature.clone(),
    }
}

/// What an assertion the plugin verified does to the token's counter (the stored sign count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignCountVerdict {
    /// Accept; the counter becomes `next` (the authenticator's count, or the stored one when it
    /// keeps none).
    Accept {
        /// The counter to store.
        next: u64,
        /// The count did not advance and the policy only warns: say so in the audit.
        regressed: bool,
    },
    /// The count did not advance and the policy refuses: a cloned authenticator, or a replayed
    /// assertion.
    Regressed,
}

/// The WebAuthn sign counter rule (§6.1.1), judged by the host on the row it read: both 0 means
/// the authenticator keeps no counter; otherwise it must advance, or the policy decides.
pub fn judge_sign_count(stored: u64, received: u32, policy: SignCount) -> SignCountVerdict {
    let received = u64::from(received);
    if (stored == 0 && received == 0) || received > stored {
        return SignCountVerdict::Accept { next: received, regressed: false };
    }
    match policy {
        SignCount::Reject => SignCountVerdict::Regressed,
        // Never backwards: an older count stored again would let the clone's next one pass.
        SignCount::Warn => SignCountVerdict::Accept { next: stored, regressed: true },
    }
}

/// The flags byte in words, for the audit: `UP UV BE BS`.
pub fn flags_text(flags: u8) -> String {
    [(0x01, "UP"), (0x04, "UV"), (0x08, "BE"), (0x10, "BS")]
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a token takes part as a WebAuthn credential.
pub fn is_webauthn_type(token: &TokenRecord) -> bool {
    token.token_type == "webauthn"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_sign_count_must_advance_unless_the_authenticator_keeps_none() {
        use SignCountVerdict::*;
        let cases = [
            (0, 0, SignCount::Reject, Accept { next: 0, regressed: false }),
            (0, 1, SignCount::Reject, Accept { next: 1, regressed: false }),
            (5, 6, SignCount::Reject, Accept { next: 6, regressed: false }),
            (5, 5, SignCount::Reject, Regressed),
            (5, 4, SignCount::Reject, Regressed),
            (5, 0, SignCount::Reject, Regressed),
            (5, 4, SignCount::Warn, Accept { next: 5, regressed: true }),
            (5, 0, SignCount::Warn, Accept { next: 5, regressed: true }),
        ];
        for (stored, received, policy, want) in cases {
            assert_eq!(judge_sign_count(stored, received, policy), want, "{stored} {received} {policy:?}");
        }
    }

    fn registered(attestation: &str, aaguid: [u8; 16]) -> PluginResponse {
        PluginResponse::WebauthnRegistered {
            credential_id: vec![1, 2, 3],
            cose_key: vec![0xa5],
            alg: -7,
            aaguid: aaguid.to_vec(),
            sign_count: 0,
            flags: 0x45,
            format: "packed".into(),
            attestation: attestation.into(),
        }
    }

    #[test]
    fn a_registration_is_judged_on_attestation_level_and_aaguid() {
        let mut p = WebauthnEnrolPolicies { attestation_level: AttestationLevel::Trusted, ..Default::default() };
        assert!(judge_registration(registered("basic", [0; 16]), &p, "example.com", None).is_err());
        assert!(judge_registration(registered("self", [0; 16]), &p, "example.com", None).is_err());
        let ok = judge_registration(registered("basic-trusted", [7; 16]), &p, "example.com", None).unwrap();
        assert_eq!(ok.attestation, "packed/basic-trusted");
        assert_eq!(ok.aaguid, "07".repeat(16));
        p.attestation_level = AttestationLevel::None;
        assert!(judge_registration(registered("none", [0; 16]), &p, "example.com", None).is_ok());
        // A format the plugin does not verify proves nothing: only level none takes it.
        let mut unverified = registered("unverified", [0; 16]);
        if let PluginResponse::WebauthnRegistered { format, .. } = &mut unverified {
            *format = "tpm".into();
        }
        assert_eq!(
            judge_registration(unverified.clone(), &p, "example.com", None).unwrap().attestation,
            "tpm/unverified"
        );
        let strict = WebauthnEnrolPolicies { attestation_level: AttestationLevel::Untrusted, ..Default::default() };
        assert!(judge_registration(unverified, &strict, "example.com", None).unwrap_err().contains("tpm, unverified"));
        p.aaguids = vec![[9; 16]];
        let e = judge_registration(registered("none", [0; 16]), &p, "example.com", None).unwrap_err();
        assert!(e.contains("webauthn_authenticator_selection_list"), "{e}");
        assert!(judge_registration(registered("none", [9; 16]), &p, "example.com", None).is_ok());
        let rs256_only = WebauthnEnrolPolicies {
            attestation_level: AttestationLevel::None,
            algorithms: vec![-257],
            ..Default::default()
        };
        let e = judge_registration(registered("none", [9; 16]), &rs256_only, "example.com", None).unwrap_err();
        assert!(e.contains("webauthn_public_key_credential_algorithms"), "{e}");
        let refused = PluginResponse::Refused { reason: "origin".into() };
        assert!(judge_registration(refused, &p, "example.com", None).unwrap_err().contains("origin"));
        assert!(judge_registration(registered("invented", [9; 16]), &p, "example.com", None).is_err());
        let mut odd = registered("none", [9; 16]);
        if let PluginResponse::WebauthnRegistered { format, .. } = &mut odd {
            *format = "packed\nresult=ok".into();
        }
        assert!(judge_registration(odd, &p, "example.com", None).unwrap_err().contains("format"));
    }

    #[test]
    fn bytes_come_as_base64url_or_base64_with_or_without_padding() {
        assert_eq!(decode_b64("x", "-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_b64("x", "+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_b64("x", "!!").is_err());
        assert_eq!(flags_text(0x1d), "UP UV BE BS");
    }
}
