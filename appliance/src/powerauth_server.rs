//! The PowerAuth server side (issue 19, part 2): what the mobile API (`/pa/v3/...`) and the
//! bank's back-end (`/rest/v3/...` and `api.sock`) ask of activations, in domain terms.
//!
//! - Activations: made by the back-end with a code signed by the application's master key in
//!   the HSM; the device's key exchange through two ECIES layers; the status blob; commit,
//!   block, unblock, remove; the history.
//! - ECIES: requests opened with a 3.3 temporary key (sealed, minutes long) or, in activation
//!   scope, the activation's server key; each request's timestamp must lie within ±5 minutes of
//!   the appliance's clock, both ways, and each request is accepted once (`powerauth_replay`,
//!   shared by every node).
//! - Signatures: verified over the look-ahead window in constant time; the counter moves, and
//!   failures count and block, by compare-and-set in the transaction that writes the audit row,
//!   so a signature is accepted at most once however many copies arrive on however many nodes.
//!
//! Per-activation secrets (the server's private key and the master secret) exist in the clear
//! only inside one request, opened from the row's `sealed_secrets` by the HSM's token-seal key
//! with associated data naming the activation; every private key on the token is
//! non-extractable; APP_SECRET is opened from its seal per request.
//!
//! Owns: PowerAuth protocol decisions and their audit. Must never: answer whether an
//! activation code, activation or signature exists in words that differ between "unknown" and
//! "wrong" to the unauthenticated mobile side; accept a signature without its audit row;
//! keep a key beyond a request.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use countersign_core::caller::Caller;
use countersign_core::error::{ErrorKind, Kinded, Reason, Refusal};
use countersign_hsm::{HashAlg, Hsm, HsmError, KeyAlgorithm, SignInput, SignScheme};
use countersign_powerauth::activation_code::{ActivationCode, RANDOM_LEN};
use countersign_powerauth::ecies::{self, Context, EnvelopeKey};
use countersign_powerauth::keys::{self, DerivedKeys, PrivateKey, PublicKey, SecretKey};
use countersign_powerauth::signature::{self, CtrData, SignatureFormat, SignatureType};
use countersign_powerauth::status::{self, StatusBlob};
pub use countersign_powerauth::wire;
use countersign_powerauth::{fingerprint, jwt, ProtocolVersion};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::service_error::OffRuntime;
use crate::store::{
    ActivationChange, ActivationState, ActivationUpdate, AuthAuditRow, KeyExchange, NewActivation, OtpValidation,
    PowerAuthActivation, PowerAuthAppKey, Store, StoreError, TemporaryKey,
};
use crate::token_secrets::TokenSecrets;

/// How far an ECIES request's timestamp may lie from the appliance's clock, either way.
pub const ECIES_WINDOW_MS: i64 = 5 * 60 * 1000;
/// How long a request of protocol 3.0 or 3.1 (which carries no timestamp) is remembered as seen.
pub const LEGACY_REPLAY_MEMORY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a 3.3 temporary key is accepted.
pub const TEMPORARY_KEY_TTL_MS: i64 = 5 * 60 * 1000;
/// The signature counter's look-ahead window (the reference server's default).
pub const LOOK_AHEAD: u32 = 20;
/// Failed signatures that block an activation unless the back-end says otherwise.
pub const DEFAULT_MAX_FAILURES: i64 = 5;
/// How long an activation may wait for its key exchange and commit unless the back-end says.
pub const DEFAULT_ACTIVATION_TTL_MS: i64 = 5 * 60 * 1000;
/// Compare-and-set attempts before a signature verification gives up as busy.
const CAS_ATTEMPTS: usize = 4;
/// Bytes of the server private key and of the master secret in `sealed_secrets`.
const PRIVATE_LEN: usize = 32;
const MASTER_LEN: usize = 16;

/// What went wrong, in words the mobile API and the back-end map to their answers.
#[derive(Debug, thiserror::Error)]
pub enum PowerAuthError {
    /// The request is not acceptable (malformed, unknown APP_KEY, expired, wrong state): 400
    /// with PowerAuth's `code`.
    #[error("{message}")]
    Refused {
        /// PowerAuth's error code (`ERR_ACTIVATION`, `ERR_ENCRYPTION`, `ERR_SECURE_VAULT`, ...).
        code: &'static str,
        /// What the caller is told.
        message: String,
    },
    /// Authentication failed (a signature that does not verify, a blocked activation): 401.
    #[error("{0}")]
    Unauthorized(String),
    /// The back-end named something that does not exist or exists already.
    #[error(transparent)]
    NotFound(Refusal),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// An internal step failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for PowerAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => PowerAuthError::NotFound(r),
            other => PowerAuthError::Store(other),
        }
    }
}

impl Kinded for PowerAuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            PowerAuthError::Refused { .. } => ErrorKind::Invalid,
            PowerAuthError::Unauthorized(_) => ErrorKind::Forbidden,
            PowerAuthError::NotFound(r) => r.kind(),
            PowerAuthError::Hsm(h) => h.kind(),
            PowerAuthError::Store(s) => s.kind(),
            PowerAuthError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> Option<Reason> {
        match self {
            PowerAuthError::Hsm(h) => h.reason(),
            PowerAuthError::Store(s) => s.reason(),
            _ => None,
        }
    }
}

/// The one answer the unauthenticated side gets for any failed activation: the same words for
/// an unknown code, an expired activation, a wrong OTP and a used code.
fn activation_failed() -> PowerAuthError {
    refused("ERR_ACTIVATION", "the activation failed; ask for a new activation code")
}

fn encryption_failed(why: &str) -> PowerAuthError {
    refused("ERR_ENCRYPTION", format!("the request could not be decrypted: {why}"))
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, PowerAuthError> {
    STANDARD.decode(text.trim()).map_err(|_| refused("ERR_REQUEST", format!("{what} is not Base64")))
}

/// An ECIES-encrypted request body as the SDK sends it (3.0–3.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EciesRequest {
    /// 3.3: the temporary key it was encrypted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_key_id: Option<String>,
    /// The client's ephemeral public key, Base64 (SEC1, usually compressed).
    pub ephemeral_public_key: String,
    /// The ciphertext, Base64.
    pub encrypted_data: String,
    /// The MAC, Base64.
    pub mac: String,
    /// 3.1+: the nonce, Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// 3.2+: Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

/// An ECIES-encrypted response body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EciesResponse {
    /// The ciphertext, Base64.
    pub encrypted_data: String,
    /// The MAC, Base64.
    pub mac: String,
    /// 3.2+: the response's own nonce, Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// 3.2+: the server's real time, Unix milliseconds (the SDK sets its clock from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

/// What `X-PowerAuth-Encryption` says of a request.
#[derive(Debug, Clone)]
pub struct EncryptionHeader {
    /// `application_key`.
    pub app_key: String,
    /// `activation_id` (activation scope).
    pub activation_id: Option<String>,
    /// `version`.
    pub version: ProtocolVersion,
}

impl EncryptionHeader {
    /// Reads the header's value.
    pub fn parse(value: &str) -> Result<Self, PowerAuthError> {
        let fields = wire::HeaderFields::parse(value).map_err(|e| refused("ERR_REQUEST", e.to_string()))?;
        // The names restful-integration's PowerAuthEncryptionHttpHeader reads (without the `pa_`
        // prefix of the signature header).
        let version = fields.require("version").map_err(|e| refused("ERR_REQUEST", e.to_string()))?;
        Ok(EncryptionHeader {
            app_key: fields.require("application_key").map_err(|e| refused("ERR_REQUEST", e.to_string()))?.to_owned(),
            activation_id: fields.get("activation_id").filter(|v| !v.is_empty()).map(str::to_owned),
            version: version
                .parse()
                .map_err(|_| refused("ERR_REQUEST", format!("unsupported protocol version {version}")))?,
        })
    }
}

/// What `X-PowerAuth-Authorization` says of a signed request.
#[derive(Debug, Clone)]
pub struct SignatureHeader {
    /// `pa_activation_id`.
    pub activation_id: String,
    /// `pa_application_key`.
    pub app_key: String,
    /// `pa_nonce`, Base64 as sent.
    pub nonce: String,
    /// `pa_signature_type`.
    pub signature_type: SignatureType,
    /// `pa_signature`.
    pub signature: String,
    /// `pa_version`.
    pub version: ProtocolVersion,
}

impl SignatureHeader {
    /// Reads the header's value.
    pub fn parse(value: &str) -> Result<Self, PowerAuthError> {
        let bad = |e: countersign_powerauth::Error| refused("ERR_AUTHENTICATION", e.to_string());
        let f = wire::HeaderFields::parse(value).map_err(bad)?;
        Ok(SignatureHeader {
            activation_id: f.require("pa_activation_id").map_err(bad)?.to_owned(),
            app_key: f.require("pa_application_key").map_err(bad)?.to_owned(),
            nonce: f.require("pa_nonce").map_err(bad)?.to_owned(),
            signature_type: f.require("pa_signature_type").map_err(bad)?.to_ascii_lowercase().parse().map_err(bad)?,
            signature: f.require("pa_signature").map_err(bad)?.to_owned(),
            version: f.require("pa_version").map_err(bad)?.parse().map_err(bad)?,
        })
    }
}

/// A new activation for the back-end: its id, the code and its signature (the QR data).
/// Its Debug shows the code as `***`: whoever has the code can activate the user's phone.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationInit {
    /// `ACTIVATION_ID`.
    pub activation_id: String,
    /// The activation code, `XXXXX-XXXXX-XXXXX-XXXXX`.
    pub activation_code: String,
    /// The master key's ECDSA signature over the code, DER, Base64.
    pub activation_signature: String,
    /// The user.
    pub user_id: String,
    /// The application.
    pub application_id: String,
    /// When it expires unless activated and committed, ms.
    pub expires_ms: i64,
}

impl std::fmt::Debug for ActivationInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationInit")
            .field("activation_id", &self.activation_id)
            .field("activation_code", &"***")
            .field("user_id", &self.user_id)
            .field("application_id", &self.application_id)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// What the back-end asks for a new activation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitActivation {
    /// The application's name.
    pub application_id: String,
    /// The back-end's user id.
    pub user_id: String,
    /// Failed signatures that block it.
    #[serde(default)]
    pub max_failure_count: Option<i64>,
    /// Absolute expiry, ms (default: five minutes from now).
    #[serde(default)]
    pub timestamp_activation_expire: Option<i64>,
    /// `NONE`, `ON_KEY_EXCHANGE`, `ON_COMMIT`.
    #[serde(default)]
    pub activation_otp_validation: Option<OtpValidation>,
    /// The OTP the user must type.
    #[serde(default)]
    pub activation_otp: Option<SecretString>,
}

/// An activation as the back-end sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationDetail {
    /// `ACTIVATION_ID`.
    pub activation_id: String,
    /// State.
    pub activation_status: ActivationState,
    /// Why blocked.
    pub blocked_reason: Option<String>,
    /// The device's name.
    pub activation_name: Option<String>,
    /// User.
    pub user_id: String,
    /// Application.
    pub application_id: String,
    /// Platform.
    pub platform: Option<String>,
    /// Device model.
    pub device_info: Option<String>,
    /// Extras.
    pub extras: Option<String>,
    /// Made, ms.
    pub timestamp_created: i64,
    /// Last change, ms.
    pub timestamp_last_change: i64,
    /// Last signature, ms.
    pub timestamp_last_used: Option<i64>,
    /// Expiry while CREATED or PENDING_COMMIT, ms.
    pub timestamp_activation_expire: Option<i64>,
    /// The fingerprint both screens show, once keys are exchanged.
    pub device_public_key_fingerprint: Option<String>,
    /// Failed signatures since the last good one.
    pub failed_attempts: i64,
    /// Failed signatures that block it.
    pub max_failed_attempts: i64,
    /// Protocol version of the key exchange.
    pub protocol_version: Option<String>,
    /// Major version (3).
    pub version: u8,
}

/// A signature the back-end asks about (`/rest/v3/signature/verify`, `api.sock`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySignature {
    /// The activation.
    pub activation_id: String,
    /// The request's APP_KEY.
    pub application_key: String,
    /// The normalized request data, as is (not Base64).
    pub data: String,
    /// The signature.
    pub signature: String,
    /// `POSSESSION_KNOWLEDGE` and the like (either case).
    pub signature_type: String,
    /// `3.1` and the like (`pa_version`).
    #[serde(default)]
    pub signature_version: Option<String>,
}

/// An offline signature the back-end asks about (`/rest/v3/signature/offline/verify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOffline {
    /// The activation.
    pub activation_id: String,
    /// The normalized data, as is.
    pub data: String,
    /// The decimal signature (`12345678-12345678`).
    pub signature: String,
    /// Whether possession_biometry is accepted besides possession_knowledge.
    #[serde(default)]
    pub allow_biometry: bool,
    /// Digits per factor (4 to 8; default 8).
    #[serde(default)]
    pub component_length: Option<i64>,
}

/// Whose key signs an offline payload.
#[derive(Debug, Clone)]
pub enum OfflineTarget {
    /// Personalized: the activation's server key.
    Activation(String),
    /// Non-personalized: the application's master key (in the HSM).
    Application(String),
}

/// The answer to a signature verification.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureVerdict {
    /// Whether it verified (and was accepted now, for the first time).
    pub signature_valid: bool,
    /// The activation's state after the verification.
    pub activation_status: Option<ActivationState>,
    /// Why blocked.
    pub blocked_reason: Option<String>,
    /// The activation.
    pub activation_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// Its application.
    pub application_id: Option<String>,
    /// The signature type asked about.
    pub signature_type: String,
    /// Failed attempts left before it blocks.
    pub remaining_attempts: i64,
    /// The application's roles, for the back-end to authorise by.
    pub application_roles: Vec<String>,
}

/// What a signature is checked as.
#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    /// A signed request: over the data and APP_SECRET of `app_key`'s version, in the format of
    /// `version`.
    Online { app_key: &'a str, version: ProtocolVersion },
    /// An offline (QR) signature: over the data and "offline", `digits` decimal digits per
    /// factor.
    Offline { digits: u8 },
}

/// One signature to check.
#[derive(Debug)]
struct Check<'a> {
    activation_id: &'a str,
    /// The normalized data, as the relying service built it.
    data: &'a str,
    signature: &'a str,
    /// The types it may be of (the first one is counted when none matches).
    types: &'a [SignatureType],
    mode: Mode<'a>,
}

/// The PowerAuth server: cheap to clone.
#[derive(Debug, Clone)]
pub struct PowerAuthServer {
    hsm: Hsm,
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
}

/// The key an ECIES request was encrypted to.
enum EciesKey {
    /// A temporary key or an activation's server key, opened from its seal for this request.
    Software(PrivateKey),
    /// The application's master key, which agrees keys inside the HSM.
    Master(countersign_hsm::KeyId),
}

/// An activation's keys, opened for one request, as [`PowerAuthServer::signed_encrypted`]
/// lends them to its handler (which cannot keep them: the borrow ends with the call).
pub struct ActivationKeys<'k>(&'k OpenKeys);

impl std::fmt::Debug for ActivationKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationKeys(***)")
    }
}

impl ActivationKeys<'_> {
    /// `KEY_TRANSPORT`.
    pub fn transport(&self) -> &SecretKey {
        &self.0.derived.transport
    }
}

/// An activation's keys, opened for one request.
struct OpenKeys {
    server_private: PrivateKey,
    derived: DerivedKeys,
}

/// Who an audit row is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) activation_id: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) application: &'a str,
}

impl<'a> From<&'a PowerAuthActivation> for Subject<'a> {
    fn from(a: &'a PowerAuthActivation) -> Self {
        Subject { activation_id: &a.activation_id, user_id: &a.user_id, application: &a.application }
    }
}

/// An audit row about a PowerAuth activation, in the form the signature path writes them.
pub(crate) fn audit_row(
    caller: &Caller,
    action: &str,
    result: &str,
    subject: Option<Subject<'_>>,
    detail: String,
) -> AuthAuditRow {
    AuthAuditRow {
        serial: subject.map(|s| s.activation_id.to_owned()),
        login: subject.map(|s| s.user_id.to_owned()),
        realm: subject.map(|s| format!("powerauth:{}", s.application)),
        detail: Some(detail),
        ..AuthAuditRow::new(caller, action, result)
    }
}

pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> PowerAuthError {
    PowerAuthError::Refused { code, message: message.into() }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> PowerAuthError {
    PowerAuthError::Internal(e.to_string())
}

/// A version-4 UUID from 16 random bytes.
pub(crate) fn uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A fresh UUID from the HSM's generator.
pub(crate) fn new_uuid(secrets: &TokenSecrets) -> Result<String, PowerAuthError> {
    let bytes = secrets.random(16)?;
    let array: [u8; 16] =
        bytes.as_slice().try_into().map_err(|_| internal("the token gave fewer random bytes than asked"))?;
    Ok(uuid(array))
}

/// The state the back-end sees: a CREATED or PENDING_COMMIT activation past its expiry reads as
/// REMOVED (as the activation service answers it).
pub(crate) fn effective_state(a: &PowerAuthActivation, now_ms: i64) -> ActivationState {
    match a.state {
        ActivationState::Created | ActivationState::PendingCommit if a.expires_ms.is_some_and(|e| e < now_ms) => {
            ActivationState::Removed
        }
        s => s,
    }
}

impl PowerAuthServer {
    /// The server over the appliance's HSM, store and sealing keys, judging time by `clock`.
    pub fn new(hsm: Hsm, store: Arc<Store>, secrets: TokenSecrets, clock: Clock) -> Self {
        PowerAuthServer { hsm, store, secrets, clock }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The appliance's time, Unix milliseconds: what `/pa/v3/status` answers, from which the
    /// SDK (1.8+) sets its clock for the timestamps it sends.
    pub fn server_time_ms(&self) -> i64 {
        self.now_ms()
    }

    fn random<const N: usize>(&self) -> Result<Zeroizing<[u8; N]>, PowerAuthError> {
        let bytes = Zeroizing::new(self.secrets.random(N)?);
        let mut out = Zeroizing::new([0u8; N]);
        if bytes.len() != N {
            return Err(internal("the token gave fewer random bytes than asked"));
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    /// A P-256 key pair from the HSM's generator (a scalar outside `1..n` is drawn again).
    fn new_private_key(&self) -> Result<PrivateKey, PowerAuthError> {
        for _ in 0..8 {
            let bytes = self.random::<32>()?;
            if let Ok(k) = PrivateKey::from_be_bytes(&*bytes) {
                return Ok(k);
            }
        }
        Err(internal("the token's generator gave no valid P-256 scalar in 8 draws"))
    }

    /// The version APP_KEY names, which must be supported.
    fn app_key(&self, app_key: &str) -> Result<PowerAuthAppKey, PowerAuthError> {
        match self.store.powerauth_app_key(app_key)? {
            Some(k) if k.supported => Ok(k),
            Some(k) => Err(refused(
                "ERR_APPLICATION",
                format!("version {} of {} is no longer supported; update the app", k.version, k.application),
            )),
            None => Err(refused("ERR_APPLICATION", "unknown application key")),
        }
    }

    /// APP_SECRET of `k`, opened from its seal (Base64 text).
    fn app_secret(&self, k: &PowerAuthAppKey, app_key: &str) -> Result<Zeroizing<String>, PowerAuthError> {
        let bytes = self.secrets.open_powerauth_app_secret(&k.application, &k.version, app_key, &k.sealed_secret)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| internal("a stored APP_SECRET is not text"))?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    /// An activation's keys, opened from its seal.
    fn open_keys(&self, a: &PowerAuthActivation) -> Result<OpenKeys, PowerAuthError> {
        let sealed =
            a.sealed_secrets.as_deref().ok_or_else(|| refused("ERR_ACTIVATION", "the activation has no keys yet"))?;
        let plain = self.secrets.open_powerauth_activation(&a.activation_id, sealed)?;
        if plain.len() != PRIVATE_LEN + MASTER_LEN {
            return Err(PowerAuthError::Store(StoreError::Tampered(format!(
                "activation {}'s sealed keys have the wrong length",
                a.activation_id
            ))));
        }
        let server_private = PrivateKey::from_be_bytes(&plain[..PRIVATE_LEN]).map_err(internal)?;
        let master = SecretKey::from_slice(&plain[PRIVATE_LEN..], "master secret").map_err(internal)?;
        Ok(OpenKeys { server_private, derived: DerivedKeys::derive(&master) })
    }

    fn audit(&self, row: &AuthAuditRow) -> Result<(), PowerAuthError> {
        self.store.audit_auth(row)?;
        Ok(())
    }

    // ---- ECIES ----

    /// Checks a request's timestamp against the clock (both directions) and that the request
    /// was not seen before; then records it. Run after its MAC verified, so only genuine
    /// requests enter the replay table.
    fn fresh_once(&self, scope: &[u8], req: &EciesRequest, version: ProtocolVersion) -> Result<(), PowerAuthError> {
        let now = self.now_ms();
        let timestamp = match (version >= ProtocolVersion::V3_2, req.timestamp) {
            (true, Some(t)) => Some(i64::try_from(t).map_err(|_| encryption_failed("the timestamp is out of range"))?),
            (true, None) => return Err(encryption_failed("protocol 3.2 and later require a timestamp")),
            // Before 3.2 requests carry no time: the ephemeral key (random per request) alone
            // identifies one.
            (false, _) => None,
        };
        if let Some(t) = timestamp {
            if t < now - ECIES_WINDOW_MS {
                return Err(encryption_failed("the request is too old (its timestamp is more than 5 minutes behind)"));
            }
            if t > now + ECIES_WINDOW_MS {
                return Err(encryption_failed(
                    "the request is from the future (its timestamp is more than 5 minutes ahead)",
                ));
            }
        }
        let mut h = Sha256::new();
        h.update(b"countersign/powerauth-ecies-replay/v1\0");
        h.update(scope);
        h.update(b"\0");
        h.update(req.ephemeral_public_key.as_bytes());
        h.update(b"\0");
        h.update(req.nonce.as_deref().unwrap_or("").as_bytes());
        h.update(b"\0");
        h.update(timestamp.unwrap_or(-1).to_be_bytes());
        // A request with a timestamp is kept past the window's far edge, after which the
        // timestamp check refuses it anyway; one without, for a day (what an old client's
        // replay can do after that is bounded by the signature counter and the single-use
        // activation code).
        let until = match timestamp {
            Some(t) => t + ECIES_WINDOW_MS + 60_000,
            None => now + LEGACY_REPLAY_MEMORY_MS,
        };
        if !self.store.claim_powerauth_replay(&h.finalize(), until)? {
            return Err(encryption_failed("the request was already received (replay)"));
        }
        Ok(())
    }

    /// The key a request was encrypted to: from 3.3 the temporary key it names (for this
    /// APP_KEY and activation, not expired); before, the activation's server key in activation
    /// scope and the application's master key (in the HSM, by ECDH there) in application scope.
    fn ecies_key(
        &self,
        req: &EciesRequest,
        header: &EncryptionHeader,
        activation_keys: Option<&OpenKeys>,
        master: Option<&countersign_hsm::KeyId>,
    ) -> Result<EciesKey, PowerAuthError> {
        if header.version >= ProtocolVersion::V3_3 {
            let id = req
                .temporary_key_id
                .as_deref()
                .ok_or_else(|| encryption_failed("protocol 3.3 requires temporaryKeyId"))?;
            let key = self
                .store
                .powerauth_temporary_key(id)?
                .ok_or_else(|| encryption_failed("unknown or expired temporary key"))?;
            if key.expires_ms < self.now_ms()
                || key.app_key != header.app_key
                || key.activation_id != header.activation_id
            {
                return Err(encryption_failed("unknown or expired temporary key"));
            }
            let plain = self.secrets.open_powerauth_temporary_key(
                &key.key_id,
                &key.app_key,
                key.activation_id.as_deref(),
                &key.sealed_private_key,
            )?;
            return Ok(EciesKey::Software(PrivateKey::from_be_bytes(&plain).map_err(internal)?));
        }
        match (activation_keys, master) {
            (Some(k), _) => Ok(EciesKey::Software(k.server_private.clone())),
            (None, Some(master)) => Ok(EciesKey::Master(master.clone())),
            (None, None) => Err(internal("an application-scope request without the application's master key")),
        }
    }

    /// Opens `req` in the scope `header` names: the plaintext and what answering needs.
    #[allow(clippy::too_many_arguments, reason = "the ECIES context's parts, each required")]
    fn open_ecies(
        &self,
        req: &EciesRequest,
        header: &EncryptionHeader,
        shared_info1: &[u8],
        shared_info2_base: &[u8; 32],
        activation_keys: Option<&OpenKeys>,
        master: Option<&countersign_hsm::KeyId>,
    ) -> Result<(Zeroizing<Vec<u8>>, EnvelopeKey), PowerAuthError> {
        let ephemeral = b64(&req.ephemeral_public_key, "ephemeralPublicKey")?;
        let key = match self.ecies_key(req, header, activation_keys, master)? {
            EciesKey::Software(private) => EnvelopeKey::derive(&private, &ephemeral, shared_info1, header.version),
            EciesKey::Master(id) => {
                // The token takes the peer's point uncompressed; the KDF hashes it as received.
                let point = PublicKey::from_sec1(&ephemeral).map_err(|e| encryption_failed(&e.to_string()))?.to_uncompressed();
                let shared = self.hsm.ecdh(&id, &point, 32).map_err(|e| match e {
                    HsmError::Unsupported(_) => encryption_failed(
                        "this application's master key was made without key agreement, so only protocol 3.3 (temporary keys) can encrypt to it; update the mobile SDK",
                    ),
                    e => PowerAuthError::Hsm(e),
                })?;
                let shared: &[u8; 32] = shared.as_slice().try_into().map_err(|_| internal("the token's shared secret is not 32 bytes"))?;
                EnvelopeKey::from_shared_secret(shared, &ephemeral, shared_info1, header.version)
            }
        }
        .map_err(|e| encryption_failed(&e.to_string()))?;
        let nonce = req.nonce.as_deref().map(|n| b64(n, "nonce")).transpose()?;
        let encrypted = b64(&req.encrypted_data, "encryptedData")?;
        let mac = b64(&req.mac, "mac")?;
        let context = Context {
            version: header.version,
            shared_info2_base,
            application_key: &header.app_key,
            activation_id: header.activation_id.as_deref(),
            temporary_key_id: req.temporary_key_id.as_deref(),
        };
        let request = ecies::Request {
            ephemeral_public_key: &ephemeral,
            encrypted_data: &encrypted,
            mac: &mac,
            nonce: nonce.as_deref(),
            timestamp: req.timestamp,
        };
        let plain = ecies::decrypt_request(&key, &context, &request).map_err(|e| encryption_failed(&e.to_string()))?;
        self.fresh_once(shared_info1, req, header.version)?;
        Ok((plain, key))
    }

    fn seal_ecies(
        &self,
        key: &EnvelopeKey,
        req: &EciesRequest,
        header: &EncryptionHeader,
        shared_info2_base: &[u8; 32],
        plaintext: &[u8],
    ) -> Result<EciesResponse, PowerAuthError> {
        let nonce = self.random::<{ ecies::NONCE_LEN }>()?;
        let request_nonce = req.nonce.as_deref().map(|n| b64(n, "nonce")).transpose()?;
        let context = Context {
            version: header.version,
            shared_info2_base,
            application_key: &header.app_key,
            activation_id: header.activation_id.as_deref(),
            temporary_key_id: req.temporary_key_id.as_deref(),
        };
        let now = u64::try_from(self.now_ms()).map_err(internal)?;
        let r = ecies::encrypt_response(key, &context, request_nonce.as_deref(), plaintext, *nonce, now)
            .map_err(internal)?;
        Ok(EciesResponse {
            encrypted_data: STANDARD.encode(&r.encrypted_data),
            mac: STANDARD.encode(r.mac),
            nonce: r.nonce.map(|n| STANDARD.encode(n)),
            timestamp: r.timestamp,
        })
    }

    // ---- temporary keys (3.3) ----

    /// `/pa/v3/keystore/create`: a temporary ECIES key for the APP_KEY (and activation) the
    /// request JWT names, answered as a JWT signed by the master key (application scope, in
    /// the HSM) or the activation's server key.
    pub async fn create_temporary_key(&self, request_jwt: String) -> Result<String, PowerAuthError> {
        self.blocking(move |me| me.create_temporary_key_now(&request_jwt)).await
    }

    fn create_temporary_key_now(&self, request_jwt: &str) -> Result<String, PowerAuthError> {
        let bad = |m: &str| refused("ERR_TEMPORARY_KEY", m.to_owned());
        // Which key verifies the JWT depends on what it names: read those two claims first,
        // and nothing else until the signature verified.
        let payload = request_jwt.split('.').nth(1).ok_or_else(|| bad("the request is not a JWT"))?;
        let unverified: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("the JWT payload is not JSON"))?;
        let app_key = unverified
            .get("applicationKey")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the JWT names no applicationKey"))?
            .to_owned();
        let activation_id = unverified.get("activationId").and_then(Value::as_str).map(str::to_owned);
        let k = self.app_key(&app_key)?;
        let secret_b64 = self.app_secret(&k, &app_key)?;
        let secret = Zeroizing::new(
            STANDARD.decode(secret_b64.as_bytes()).map_err(|_| internal("a stored APP_SECRET is not Base64"))?,
        );
        let activation = match &activation_id {
            Some(id) => {
                let a = self.store.powerauth_activation(id)?.ok_or_else(|| bad("unknown activation"))?;
                if a.state != ActivationState::Active || a.application_id != k.application_id {
                    return Err(bad("unknown activation"));
                }
                let keys = self.open_keys(&a)?;
                Some((a, keys))
            }
            None => None,
        };
        let mac_key: Zeroizing<Vec<u8>> = match &activation {
            None => Zeroizing::new(secret.to_vec()),
            Some((_, keys)) => Zeroizing::new(keys::kdf_internal(&keys.derived.transport, &secret).expose().to_vec()),
        };
        let claims = jwt::verify_hs256(request_jwt, &mac_key).map_err(|e| bad(&e.to_string()))?;
        let challenge = claims.get("challenge").cloned().unwrap_or(Value::Null);

        let private = self.new_private_key()?;
        let key_id = uuid(*self.random::<16>()?);
        let now = self.now_ms();
        let expires = now + TEMPORARY_KEY_TTL_MS;
        let public = private.public_key().to_uncompressed();
        let sealed = self.secrets.seal_powerauth_temporary_key(
            &key_id,
            &app_key,
            activation_id.as_deref(),
            &*private.to_be_bytes(),
        )?;
        self.store.insert_powerauth_temporary_key(&TemporaryKey {
            key_id: key_id.clone(),
            app_key: app_key.clone(),
            activation_id: activation_id.clone(),
            public_key: public.clone(),
            sealed_private_key: sealed,
            expires_ms: expires,
        })?;
        let mut out = jwt::Claims::new();
        out.insert("sub".into(), key_id.into());
        out.insert("applicationKey".into(), app_key.into());
        if let Some(id) = &activation_id {
            out.insert("activationId".into(), id.clone().into());
        }
        out.insert("challenge".into(), challenge);
        out.insert("publicKey".into(), STANDARD.encode(&public).into());
        out.insert("iat".into(), (now / 1000).into());
        out.insert("exp".into(), (expires / 1000).into());
        out.insert("iat_ms".into(), now.into());
        out.insert("exp_ms".into(), expires.into());
        let input = jwt::es256_signing_input(&out);
        let signature: [u8; 64] = match &activation {
            Some((_, keys)) => keys.server_private.sign_es256(input.as_bytes()),
            None => {
                let raw = self.hsm.sign(
                    &k.master.key_id,
                    KeyAlgorithm::EcP256,
                    SignScheme::Ecdsa,
                    HashAlg::Sha256,
                    SignInput::Message(input.as_bytes()),
                )?;
                raw.as_slice().try_into().map_err(|_| internal("the token's ECDSA signature is not 64 bytes"))?
            }
        };
        Ok(jwt::es256_assemble(&input, &signature))
    }

    // ---- activations ----

    /// The back-end's `initActivation`: a CREATED activation with its code, signed by the
    /// application's master key in the HSM. Audited before it is answered.
    pub async fn init_activation(&self, caller: Caller, req: InitActivation) -> Result<ActivationInit, PowerAuthError> {
        self.blocking(move |me| me.init_activation_now(&caller, req)).await
    }

    fn init_activation_now(&self, caller: &Caller, req: InitActivation) -> Result<ActivationInit, PowerAuthError> {
        if req.user_id.is_empty() || req.user_id.len() > 255 {
            return Err(refused("ERR_REQUEST", "userId must be 1 to 255 characters"));
        }
        let app = self.store.powerauth_application(&req.application_id)?.ok_or_else(|| {
            PowerAuthError::NotFound(Refusal::NotFound(format!("PowerAuth application '{}'", req.application_id)))
        })?;
        let max = req.max_failure_count.unwrap_or(DEFAULT_MAX_FAILURES);
        if !(1..=100).contains(&max) {
            return Err(refused("ERR_REQUEST", "maxFailureCount must be 1 to 100"));
        }
        let now = self.now_ms();
        let expires = req.timestamp_activation_expire.unwrap_or(now + DEFAULT_ACTIVATION_TTL_MS);
        if expires <= now {
            return Err(refused("ERR_REQUEST", "timestampActivationExpire lies in the past"));
        }
        let mode = req.activation_otp_validation.unwrap_or(if req.activation_otp.is_some() {
            OtpValidation::OnKeyExchange
        } else {
            OtpValidation::None
        });
        let activation_id = uuid(*self.random::<16>()?);
        let otp = match (mode, req.activation_otp.as_ref().map(ExposeSecret::expose_secret)) {
            (OtpValidation::None, None) => None,
            (OtpValidation::None, Some(_)) => {
                return Err(refused("ERR_REQUEST", "activationOtp given with activationOtpValidation NONE"))
            }
            (_, None) | (_, Some("")) => {
                return Err(refused("ERR_REQUEST", "activationOtp is required with this activationOtpValidation"))
            }
            (m, Some(otp)) => Some((m, self.secrets.powerauth_otp_verifier(&activation_id, otp.as_bytes())?)),
        };
        let random = self.random::<RANDOM_LEN>()?;
        let code = ActivationCode::from_random(*random);
        let raw = self.hsm.sign(
            &app.master.key_id,
            KeyAlgorithm::EcP256,
            SignScheme::Ecdsa,
            HashAlg::Sha256,
            SignInput::Message(code.signed_bytes()),
        )?;
        let der = countersign_pki::ecdsa_raw_to_der(&raw)
            .map_err(|e| internal(format!("the token's ECDSA signature: {e}")))?;
        let new = NewActivation {
            activation_id: activation_id.clone(),
            application: app.name.clone(),
            user_id: req.user_id.clone(),
            code_lookup: self.secrets.powerauth_code_lookup(&app.name, code.as_str())?,
            otp,
            max_failed_attempts: max,
            expires_ms: expires,
        };
        let row = AuthAuditRow {
            serial: Some(activation_id.clone()),
            login: Some(req.user_id.clone()),
            realm: Some(format!("powerauth:{}", app.name)),
            detail: Some(format!("activation created, OTP {}, expires {expires}", mode.as_str())),
            ..AuthAuditRow::new(caller, "powerauth/activation/init", "ok")
        };
        self.store.create_powerauth_activation(&new, &row)?;
        Ok(ActivationInit {
            activation_id,
            activation_code: code.as_str().to_owned(),
            activation_signature: STANDARD.encode(der),
            user_id: req.user_id,
            application_id: app.name,
            expires_ms: expires,
        })
    }

    /// `/pa/v3/activation/create`: the device's key exchange through two ECIES layers in
    /// application scope. Any failure after the outer layer opened reads the same.
    pub async fn create_activation(
        &self,
        caller: Caller,
        header: EncryptionHeader,
        req: EciesRequest,
    ) -> Result<EciesResponse, PowerAuthError> {
        self.blocking(move |me| {
            let out = me.create_activation_now(&caller, &header, &req);
            match &out {
                // A request for no known application is not recorded: anyone can send those, and
                // they would fill the audit trail; everything past the APP_KEY is.
                Err(PowerAuthError::Refused { code: "ERR_APPLICATION", .. }) | Ok(_) => {}
                Err(e) => {
                    let _ =
                        me.audit(&audit_row(&caller, "powerauth/activation/create", "refused", None, e.to_string()));
                }
            }
            out
        })
        .await
    }

    fn create_activation_now(
        &self,
        caller: &Caller,
        header: &EncryptionHeader,
        req: &EciesRequest,
    ) -> Result<EciesResponse, PowerAuthError> {
        if header.activation_id.is_some() {
            return Err(encryption_failed("activation/create is encrypted in application scope"));
        }
        let k = self.app_key(&header.app_key)?;
        let app_secret = self.app_secret(&k, &header.app_key)?;
        let sh2 = ecies::shared_info2_base_application(&app_secret);
        let (plain1, key1) =
            self.open_ecies(req, header, ecies::shared_info1::APPLICATION_GENERIC, &sh2, None, Some(&k.master.key_id))?;
        let layer1: Value = serde_json::from_slice(&plain1)
            .map_err(|_| refused("ERR_ACTIVATION", "the activation request is not JSON"))?;
        if layer1.get("type").and_then(Value::as_str) != Some("CODE") {
            return Err(refused("ERR_ACTIVATION", "only activation by code (type CODE) is offered"));
        }
        let code_text =
            layer1.pointer("/identityAttributes/code").and_then(Value::as_str).ok_or_else(activation_failed)?;
        let inner: EciesRequest = serde_json::from_value(layer1.get("activationData").cloned().unwrap_or(Value::Null))
            .map_err(|_| refused("ERR_ACTIVATION", "activationData is not an encrypted request"))?;
        let (plain2, key2) = self.open_ecies(
            &inner,
            header,
            ecies::shared_info1::ACTIVATION_LAYER_2,
            &sh2,
            None,
            Some(&k.master.key_id),
        )?;
        let layer2: Value = serde_json::from_slice(&plain2)
            .map_err(|_| refused("ERR_ACTIVATION", "the inner activation request is not JSON"))?;
        let text = |k: &str| layer2.get(k).and_then(Value::as_str).map(|s| s.chars().take(255).collect::<String>());
        let device_public = b64(&text("devicePublicKey").ok_or_else(activation_failed)?, "devicePublicKey")?;
        let device_key = PublicKey::from_sec1(&device_public)
            .map_err(|_| refused("ERR_ACTIVATION", "devicePublicKey is not a P-256 point"))?;

        // The code, read canonically, leads to the activation; every failure from here on
        // answers alike.
        let code: ActivationCode = code_text.parse().map_err(|_| activation_failed())?;
        let lookup = self.secrets.powerauth_code_lookup(&k.application, code.as_str())?;
        let activation = self.store.powerauth_activation_by_code(&lookup)?.ok_or_else(activation_failed)?;
        let now = self.now_ms();
        if activation.application_id != k.application_id
            || activation.state != ActivationState::Created
            || activation.expires_ms.is_some_and(|e| e < now)
        {
            return Err(activation_failed());
        }
        let otp_given = text("activationOtp");
        let otp_ok = match (activation.otp_validation, &activation.otp_verifier) {
            (OtpValidation::OnKeyExchange, Some(v)) => {
                let given = otp_given.as_deref().unwrap_or("");
                self.secrets.powerauth_otp_matches(&activation.activation_id, given.as_bytes(), v)?
            }
            _ => true,
        };
        if !otp_ok {
            self.wrong_otp(caller, &activation)?;
            return Err(activation_failed());
        }

        let server_private = self.new_private_key()?;
        let server_public = server_private.public_key().to_uncompressed();
        let master = keys::master_secret(&server_private, &device_key);
        let ctr_data = self.random::<16>()?;
        let mut secrets = Zeroizing::new(Vec::with_capacity(PRIVATE_LEN + MASTER_LEN));
        secrets.extend_from_slice(&*server_private.to_be_bytes());
        secrets.extend_from_slice(master.expose());
        let sealed = self.secrets.seal_powerauth_activation(&activation.activation_id, &secrets)?;
        let commit_now = activation.otp_validation == OtpValidation::OnKeyExchange;
        let next = if commit_now { ActivationState::Active } else { ActivationState::PendingCommit };
        let fingerprint =
            fingerprint::activation_fingerprint(&device_key, &server_private.public_key(), &activation.activation_id);
        let row = audit_row(
            caller,
            "powerauth/activation/create",
            "ok",
            Some(Subject::from(&activation)),
            format!("keys exchanged ({}), now {}, fingerprint {fingerprint}", header.version, next.as_str()),
        );
        let update = ActivationUpdate {
            state: Some(next),
            reason: Some("key exchange".into()),
            key_exchange: Some(KeyExchange {
                app_key: header.app_key.clone(),
                protocol_version: header.version.as_str().to_owned(),
                name: text("activationName"),
                platform: text("platform"),
                device_info: text("deviceInfo"),
                extras: text("extras"),
                device_public_key: device_public.clone(),
                server_public_key: server_public.clone(),
                sealed_secrets: sealed,
                ctr_data: ctr_data.to_vec(),
            }),
            expires_ms: commit_now.then_some(None),
            clear_otp: commit_now,
            ..ActivationUpdate::default()
        };
        match self.store.change_powerauth_activation(&activation.activation_id, &row, |a| {
            if a.state == ActivationState::Created && a.has_code {
                Ok(Some(update))
            } else {
                Err(StoreError::Refused(Refusal::Invalid("used".into())))
            }
        }) {
            Ok(ActivationChange::Done { .. }) => {}
            Ok(ActivationChange::Conflict) | Err(StoreError::Refused(_)) => return Err(activation_failed()),
            Err(e) => return Err(e.into()),
        }
        let layer2_out = json!({
            "activationId": activation.activation_id,
            "serverPublicKey": STANDARD.encode(&server_public),
            "ctrData": STANDARD.encode(*ctr_data),
            "activationRecovery": Value::Null,
        });
        let inner_out = self.seal_ecies(&key2, &inner, header, &sh2, layer2_out.to_string().as_bytes())?;
        let layer1_out = json!({
            "customAttributes": layer1.get("customAttributes").cloned().unwrap_or_else(|| json!({})),
            "activationData": inner_out,
        });
        self.seal_ecies(&key1, req, header, &sh2, layer1_out.to_string().as_bytes())
    }

    /// A wrong activation OTP: counted; at the limit the activation is removed (a guessed OTP
    /// must not be tried for ever).
    fn wrong_otp(&self, caller: &Caller, a: &PowerAuthActivation) -> Result<(), PowerAuthError> {
        let row = audit_row(
            caller,
            "powerauth/activation/otp",
            "reject",
            Some(Subject::from(a)),
            "wrong activation OTP".into(),
        );
        let _ = self.store.change_powerauth_activation(&a.activation_id, &row, |now| {
            let failed = now.failed_attempts + 1;
            let remove = failed >= now.max_failed_attempts;
            Ok(Some(ActivationUpdate {
                failed_attempts: Some(failed),
                state: remove.then_some(ActivationState::Removed),
                reason: remove.then(|| "too many wrong activation OTPs".to_owned()),
                ..ActivationUpdate::default()
            }))
        })?;
        Ok(())
    }

    /// `/pa/v3/activation/status`: the encrypted status blob for `challenge` (16 bytes,
    /// Base64). An unknown activation, or one without keys yet, gets random bytes (the SDK
    /// reads them as a failed blob); nothing says which.
    pub async fn activation_status(
        &self,
        activation_id: String,
        challenge: Option<String>,
    ) -> Result<Value, PowerAuthError> {
        self.blocking(move |me| me.activation_status_now(&activation_id, challenge.as_deref())).await
    }

    fn activation_status_now(&self, activation_id: &str, challenge: Option<&str>) -> Result<Value, PowerAuthError> {
        // Protocol 3.0 sends no challenge: its blob is encrypted with a zero IV.
        let challenge = challenge.map(|c| b64(c, "challenge")).transpose()?;
        let nonce = self.random::<16>()?;
        let activation = self.store.powerauth_activation(activation_id)?.filter(|a| a.sealed_secrets.is_some());
        let blob = match activation {
            Some(a) => {
                let keys = self.open_keys(&a)?;
                let ctr = CtrData::from_slice(a.ctr_data.as_deref().unwrap_or_default()).map_err(internal)?;
                let reserved = self.random::<5>()?;
                let state = match self.effective_state(&a) {
                    ActivationState::Created => status::ActivationState::Created,
                    ActivationState::PendingCommit => status::ActivationState::PendingCommit,
                    ActivationState::Active => status::ActivationState::Active,
                    ActivationState::Blocked => status::ActivationState::Blocked,
                    ActivationState::Removed => status::ActivationState::Removed,
                };
                let plain = StatusBlob {
                    status: state.code(),
                    current_version: 3,
                    upgrade_version: 3,
                    reserved: *reserved,
                    ctr_byte: (a.counter & 0xFF) as u8,
                    fail_count: u8::try_from(a.failed_attempts.clamp(0, 255)).unwrap_or(u8::MAX),
                    max_fail_count: u8::try_from(a.max_failed_attempts.clamp(0, 255)).unwrap_or(u8::MAX),
                    ctr_look_ahead: LOOK_AHEAD as u8,
                    ctr_data_hash: status::ctr_data_hash(&keys.derived.transport, &ctr),
                };
                let iv = match &challenge {
                    Some(c) => status::status_iv(&keys.derived.transport, c, &*nonce)
                        .map_err(|e| refused("ERR_REQUEST", e.to_string()))?,
                    None => [0u8; 16],
                };
                status::encrypt(&keys.derived.transport, &iv, &plain).to_vec()
            }
            None => self.random::<{ status::BLOB_LEN }>()?.to_vec(),
        };
        Ok(json!({
            "activationId": activation_id,
            "encryptedStatusBlob": STANDARD.encode(blob),
            "nonce": STANDARD.encode(*nonce),
            "customObject": {},
        }))
    }

    /// The state as it is now: a CREATED or PENDING_COMMIT activation past its expiry counts
    /// as REMOVED (the reference removes it lazily too).
    fn effective_state(&self, a: &PowerAuthActivation) -> ActivationState {
        effective_state(a, self.now_ms())
    }

    /// The back-end's view of activation `activation_id`.
    pub async fn activation_detail(&self, activation_id: String) -> Result<ActivationDetail, PowerAuthError> {
        self.blocking(move |me| {
            let a = me
                .store
                .powerauth_activation(&activation_id)?
                .ok_or_else(|| PowerAuthError::NotFound(Refusal::NotFound(format!("activation {activation_id}"))))?;
            Ok(me.detail(&a))
        })
        .await
    }

    fn detail(&self, a: &PowerAuthActivation) -> ActivationDetail {
        let fingerprint = match (
            a.device_public_key.as_deref().map(PublicKey::from_sec1),
            a.server_public_key.as_deref().map(PublicKey::from_sec1),
        ) {
            (Some(Ok(d)), Some(Ok(s))) => Some(fingerprint::activation_fingerprint(&d, &s, &a.activation_id)),
            _ => None,
        };
        ActivationDetail {
            activation_id: a.activation_id.clone(),
            activation_status: self.effective_state(a),
            blocked_reason: a.blocked_reason.clone(),
            activation_name: a.name.clone(),
            user_id: a.user_id.clone(),
            application_id: a.application.clone(),
            platform: a.platform.clone(),
            device_info: a.device_info.clone(),
            extras: a.extras.clone(),
            timestamp_created: a.created_ms,
            timestamp_last_change: a.changed_ms,
            timestamp_last_used: a.last_used_ms,
            timestamp_activation_expire: a.expires_ms,
            device_public_key_fingerprint: fingerprint,
            failed_attempts: a.failed_attempts,
            max_failed_attempts: a.max_failed_attempts,
            protocol_version: a.protocol_version.clone(),
            version: 3,
        }
    }

    /// The activations of `user_id` (in `application`, if named), newest first.
    pub async fn activations_of(
        &self,
        application: Option<String>,
        user_id: String,
    ) -> Result<Vec<ActivationDetail>, PowerAuthError> {
        self.blocking(move |me| {
            Ok(me
                .store
                .powerauth_activations_of(application.as_deref(), &user_id, 1000)?
                .iter()
                .map(|a| me.detail(a))
                .collect())
        })
        .await
    }

    /// Activation `activation_id`'s history.
    pub async fn history(&self, activation_id: String) -> Result<Vec<crate::store::ActivationHistory>, PowerAuthError> {
        self.blocking(move |me| Ok(me.store.powerauth_activation_history(&activation_id)?)).await
    }

    /// A back-end state change: `commit` (PENDING_COMMIT → ACTIVE, with the OTP when the
    /// activation wants it on commit), `block` (ACTIVE → BLOCKED), `unblock` (BLOCKED →
    /// ACTIVE, failures reset) or `remove` (any → REMOVED). Audited under `caller`.
    pub async fn change_state(
        &self,
        caller: Caller,
        activation_id: String,
        action: StateAction,
    ) -> Result<ActivationDetail, PowerAuthError> {
        self.blocking(move |me| me.change_state_now(&caller, &activation_id, action)).await
    }

    fn change_state_now(
        &self,
        caller: &Caller,
        activation_id: &str,
        action: StateAction,
    ) -> Result<ActivationDetail, PowerAuthError> {
        let now = self.now_ms();
        let a = self
            .store
            .powerauth_activation(activation_id)?
            .ok_or_else(|| PowerAuthError::NotFound(Refusal::NotFound(format!("activation {activation_id}"))))?;
        let otp_ok = match (&action, a.otp_validation, &a.otp_verifier) {
            (StateAction::Commit { otp }, OtpValidation::OnCommit, Some(v)) => self.secrets.powerauth_otp_matches(
                activation_id,
                otp.as_ref().map_or("", ExposeSecret::expose_secret).as_bytes(),
                v,
            )?,
            _ => true,
        };
        if !otp_ok {
            self.wrong_otp(caller, &a)?;
            return Err(refused("ERR_ACTIVATION", "the activation OTP is wrong"));
        }
        let name = action.name();
        let row =
            audit_row(caller, &format!("powerauth/activation/{name}"), "ok", Some(Subject::from(&a)), action.detail());
        // Decided on the row as the transaction reads it.
        let decided = self.store.change_powerauth_activation(activation_id, &row, |cur| {
            decide_state(cur, &action, activation_id, now).map(Some)
        });
        match decided {
            Ok(ActivationChange::Done { after, .. }) => Ok(self.detail(&after)),
            Ok(ActivationChange::Conflict) => {
                Err(refused("ERR_ACTIVATION", "the activation changed meanwhile; try again"))
            }
            Err(StoreError::Refused(Refusal::Invalid(m))) => {
                let _ = self.audit(&audit_row(
                    caller,
                    &format!("powerauth/activation/{name}"),
                    "refused",
                    Some(Subject::from(&a)),
                    m.clone(),
                ));
                Err(refused("ERR_ACTIVATION", m))
            }
            Err(e) => Err(e.into()),
        }
    }

    // ---- signatures ----

    /// The back-end's `verifySignature`: `data` is the normalized request data as the relying
    /// service built it (the appliance appends APP_SECRET). Accepted at most once: the counter
    /// moves by compare-and-set with the audit row.
    pub async fn verify_signature(
        &self,
        caller: Caller,
        req: VerifySignature,
    ) -> Result<SignatureVerdict, PowerAuthError> {
        self.blocking(move |me| me.verify_now(&caller, &req)).await
    }

    fn verify_now(&self, caller: &Caller, req: &VerifySignature) -> Result<SignatureVerdict, PowerAuthError> {
        let ty: SignatureType = req
            .signature_type
            .to_ascii_lowercase()
            .parse()
            .map_err(|e: countersign_powerauth::Error| refused("ERR_REQUEST", e.to_string()))?;
        let version: ProtocolVersion = match req.signature_version.as_deref() {
            Some(v) => v.parse().map_err(|e: countersign_powerauth::Error| refused("ERR_REQUEST", e.to_string()))?,
            None => ProtocolVersion::V3_1,
        };
        self.check_signature(
            caller,
            &Check {
                activation_id: &req.activation_id,
                data: &req.data,
                signature: &req.signature,
                types: &[ty],
                mode: Mode::Online { app_key: &req.application_key, version },
            },
        )
    }

    /// The one verification of a PowerAuth signature, online or offline: the activation as
    /// loaded must be ACTIVE (and, online, the APP_KEY a supported version of its
    /// application); every type in `check.types` is tried over the whole window in constant
    /// time; the outcome (counter moved, or a failure counted and perhaps a block) is written
    /// by compare-and-set with its audit row, and decided again if the row moved meanwhile.
    fn check_signature(&self, caller: &Caller, check: &Check<'_>) -> Result<SignatureVerdict, PowerAuthError> {
        let first = check.types.first().copied().ok_or_else(|| internal("no signature type to check"))?;
        let mut verdict = SignatureVerdict {
            signature_valid: false,
            activation_status: None,
            blocked_reason: None,
            activation_id: check.activation_id.to_owned(),
            user_id: None,
            application_id: None,
            signature_type: first.as_str().to_ascii_uppercase(),
            remaining_attempts: 0,
            application_roles: Vec::new(),
        };
        let (action, label) = match check.mode {
            Mode::Online { version, .. } => ("powerauth/signature/verify", version.as_str().to_owned()),
            Mode::Offline { digits } => ("powerauth/signature/offline-verify", format!("offline, {digits} digits")),
        };
        for _ in 0..CAS_ATTEMPTS {
            let Some(a) = self.store.powerauth_activation(check.activation_id)? else {
                // Unknown: the same answer as a removed activation, audited without a user.
                verdict.activation_status = Some(ActivationState::Removed);
                self.audit(&audit_row(
                    caller,
                    action,
                    "reject",
                    None,
                    format!("unknown activation {}", check.activation_id),
                ))?;
                return Ok(verdict);
            };
            verdict.user_id = Some(a.user_id.clone());
            verdict.application_id = Some(a.application.clone());
            verdict.application_roles = self.store.powerauth_roles(a.application_id)?;
            let state = self.effective_state(&a);
            verdict.activation_status = Some(state);
            verdict.blocked_reason = a.blocked_reason.clone();
            verdict.remaining_attempts = (a.max_failed_attempts - a.failed_attempts).max(0);
            if state != ActivationState::Active {
                self.audit(&audit_row(
                    caller,
                    action,
                    "reject",
                    Some(Subject::from(&a)),
                    format!("activation is {}", state.as_str()),
                ))?;
                return Ok(verdict);
            }
            let keys = self.open_keys(&a)?;
            let (data, format) = match check.mode {
                Mode::Online { app_key, version } => {
                    // The APP_KEY must be a supported version of the activation's application.
                    match self.store.powerauth_app_key(app_key)? {
                        Some(k) if k.supported && k.application_id == a.application_id => {
                            let secret = self.app_secret(&k, app_key)?;
                            (Some(wire::signed_bytes(check.data, &secret)), SignatureFormat::online(version))
                        }
                        _ => (None, SignatureFormat::online(version)),
                    }
                }
                // Offline signatures stand "offline" where online ones have APP_SECRET.
                Mode::Offline { digits } => (
                    Some(wire::signed_bytes(check.data, wire::OFFLINE_SECRET)),
                    SignatureFormat::offline(digits).map_err(|e| refused("ERR_REQUEST", e.to_string()))?,
                ),
            };
            let ctr = CtrData::from_slice(a.ctr_data.as_deref().unwrap_or_default()).map_err(internal)?;
            let mut matched = None;
            if let Some(data) = &data {
                for ty in check.types {
                    let m = signature::verify_in_window(
                        &keys.derived.factors,
                        *ty,
                        &ctr,
                        LOOK_AHEAD,
                        data,
                        format,
                        check.signature,
                    )
                    .map_err(|e| refused("ERR_REQUEST", e.to_string()))?;
                    if matched.is_none() {
                        matched = m.map(|m| (*ty, m));
                    }
                }
            }
            let now = self.now_ms();
            let (row, update) = match &matched {
                Some((ty, m)) => {
                    verdict.signature_type = ty.as_str().to_ascii_uppercase();
                    (
                        audit_row(
                            caller,
                            action,
                            "accept",
                            Some(Subject::from(&a)),
                            format!("{} signature ({label}) at counter step {}", ty.as_str(), m.steps),
                        ),
                        ActivationUpdate {
                            counter: Some((a.counter + i64::from(m.steps) + 1, m.next.as_bytes().to_vec())),
                            failed_attempts: ty.counts_attempts().then_some(0),
                            last_used_ms: Some(now),
                            ..ActivationUpdate::default()
                        },
                    )
                }
                None => {
                    let failed = a.failed_attempts + i64::from(first.counts_attempts());
                    let block = failed >= a.max_failed_attempts;
                    let why = if data.is_none() {
                        "the application key is not a supported version of the activation's application"
                    } else {
                        "the signature does not match"
                    };
                    (
                        audit_row(
                            caller,
                            action,
                            "reject",
                            Some(Subject::from(&a)),
                            format!(
                                "{} signature ({label}): {why}{}",
                                first.as_str(),
                                if block { "; activation blocked" } else { "" }
                            ),
                        ),
                        ActivationUpdate {
                            failed_attempts: Some(failed),
                            state: block.then_some(ActivationState::Blocked),
                            reason: block.then(|| "MAX_FAILED_ATTEMPTS".to_owned()),
                            blocked_reason: block.then(|| Some("MAX_FAILED_ATTEMPTS".to_owned())),
                            last_used_ms: Some(now),
                            ..ActivationUpdate::default()
                        },
                    )
                }
            };
            match self.store.change_powerauth_activation(&a.activation_id, &row, |cur| {
                // Decided on `a`, read before the transaction: written only if the row as the
                // transaction reads it is still `a` (another verification of the same counter
                // step, here or on another node, may have won meanwhile; then decide again).
                Ok(cur.unchanged_since(&a).then_some(update))
            })? {
                ActivationChange::Done { after, .. } => {
                    verdict.signature_valid = matched.is_some();
                    verdict.activation_status = Some(after.state);
                    verdict.blocked_reason = after.blocked_reason.clone();
                    verdict.remaining_attempts = (after.max_failed_attempts - after.failed_attempts).max(0);
                    return Ok(verdict);
                }
                ActivationChange::Conflict => continue,
            }
        }
        Err(PowerAuthError::Store(StoreError::Refused(Refusal::Invalid(
            "the activation is too busy; try again".into(),
        ))))
    }

    /// The back-end's `verifyOfflineSignature`: a decimal signature of `digits` per factor
    /// (default 8) over `data` (the normalized data the QR code's operation names), as
    /// possession_knowledge or, with `allow_biometry`, possession_biometry.
    pub async fn verify_offline(&self, caller: Caller, req: VerifyOffline) -> Result<SignatureVerdict, PowerAuthError> {
        self.blocking(move |me| {
            let types: &[SignatureType] = if req.allow_biometry {
                &[SignatureType::PossessionKnowledge, SignatureType::PossessionBiometry]
            } else {
                &[SignatureType::PossessionKnowledge]
            };
            let digits = u8::try_from(req.component_length.unwrap_or(8))
                .map_err(|_| refused("ERR_REQUEST", "componentLength is 4 to 8"))?;
            me.check_signature(
                &caller,
                &Check {
                    activation_id: &req.activation_id,
                    data: &req.data,
                    signature: &req.signature,
                    types,
                    mode: Mode::Offline { digits },
                },
            )
        })
        .await
    }

    /// The QR code's data for an offline signature: `{DATA}\n{NONCE}\n{KEY}{ECDSA}`, signed by the
    /// activation's server key (personalized, key indicator `1`) or by the application's master
    /// key in the HSM (non-personalized, `0`), the signature over `{DATA}\n{NONCE}\n{KEY}` (DER,
    /// Base64), the nonce 16 random bytes. Answers the data and the nonce.
    pub async fn offline_payload(
        &self,
        caller: Caller,
        target: OfflineTarget,
        data: String,
    ) -> Result<Value, PowerAuthError> {
        self.blocking(move |me| {
            if data.contains('\n') {
                return Err(refused("ERR_REQUEST", "the offline data may not contain a line break"));
            }
            let nonce = STANDARD.encode(*me.random::<16>()?);
            let (indicator, signer) = match &target {
                OfflineTarget::Activation(id) => ("1", id.clone()),
                OfflineTarget::Application(app) => ("0", app.clone()),
            };
            let base = format!("{data}\n{nonce}\n{indicator}");
            let der = match &target {
                OfflineTarget::Activation(id) => {
                    let a = me
                        .store
                        .powerauth_activation(id)?
                        .ok_or_else(|| PowerAuthError::NotFound(Refusal::NotFound(format!("activation {id}"))))?;
                    if me.effective_state(&a) != ActivationState::Active {
                        return Err(refused("ERR_ACTIVATION", format!("activation {id} is not ACTIVE")));
                    }
                    let keys = me.open_keys(&a)?;
                    let raw = keys.server_private.sign_es256(base.as_bytes());
                    countersign_pki::ecdsa_raw_to_der(&raw).map_err(internal)?
                }
                OfflineTarget::Application(app) => {
                    let pa = me.store.powerauth_application(app)?.ok_or_else(|| {
                        PowerAuthError::NotFound(Refusal::NotFound(format!("PowerAuth application '{app}'")))
                    })?;
                    let raw = me.hsm.sign(
                        &pa.master.key_id,
                        KeyAlgorithm::EcP256,
                        SignScheme::Ecdsa,
                        HashAlg::Sha256,
                        SignInput::Message(base.as_bytes()),
                    )?;
                    countersign_pki::ecdsa_raw_to_der(&raw).map_err(internal)?
                }
            };
            me.audit(&AuthAuditRow {
                serial: matches!(target, OfflineTarget::Activation(_)).then(|| signer.clone()),
                detail: Some(format!("offline signature payload for {signer} (key indicator {indicator})")),
                ..AuthAuditRow::new(&caller, "powerauth/offline/payload", "ok")
            })?;
            Ok(json!({"offlineData": format!("{base}{}", STANDARD.encode(der)), "nonce": nonce}))
        })
        .await
    }

    /// The back-end's `verifyECDSASignature`: whether `signature` (DER, Base64) is the device's
    /// ECDSA-SHA256 signature of `data` (Base64), by the device key of activation
    /// `activation_id`, which must be ACTIVE. Audited.
    pub async fn verify_device_ecdsa(
        &self,
        caller: Caller,
        activation_id: String,
        data: String,
        signature: String,
    ) -> Result<bool, PowerAuthError> {
        self.blocking(move |me| {
            let data = b64(&data, "data")?;
            let signature = b64(&signature, "signature")?;
            let a = me.store.powerauth_activation(&activation_id)?;
            let valid = match &a {
                Some(a) if me.effective_state(a) == ActivationState::Active => {
                    let key =
                        PublicKey::from_sec1(a.device_public_key.as_deref().unwrap_or_default()).map_err(internal)?;
                    keys::verify_ecdsa(&key, &data, &signature)
                }
                _ => false,
            };
            me.audit(&audit_row(
                &caller,
                "powerauth/signature/ecdsa-verify",
                if valid { "accept" } else { "reject" },
                a.as_ref().map(Subject::from),
                format!("device ECDSA signature over {} bytes", data.len()),
            ))?;
            Ok(valid)
        })
        .await
    }

    /// A request to the mobile API signed with `X-PowerAuth-Authorization`, verified for
    /// `uri_id` over `body` (the normalized data built here, from what the device sent).
    /// `min_factors` 2 demands knowledge or biometry besides possession. Returns the activation.
    pub async fn verify_signed_request(
        &self,
        caller: Caller,
        header: SignatureHeader,
        method: String,
        uri_id: String,
        body: Vec<u8>,
        min_factors: usize,
    ) -> Result<SignatureVerdict, PowerAuthError> {
        self.blocking(move |me| {
            if header.signature_type.factors().len() < min_factors {
                return Err(PowerAuthError::Unauthorized(format!(
                    "{uri_id} needs a signature of at least {min_factors} factors"
                )));
            }
            let data = wire::normalized_data(&method, &uri_id, &header.nonce, &body);
            let verdict = me.verify_now(
                &caller,
                &VerifySignature {
                    activation_id: header.activation_id.clone(),
                    application_key: header.app_key.clone(),
                    data,
                    signature: header.signature.clone(),
                    signature_type: header.signature_type.as_str().to_owned(),
                    signature_version: Some(header.version.as_str().to_owned()),
                },
            )?;
            if verdict.signature_valid {
                Ok(verdict)
            } else {
                Err(PowerAuthError::Unauthorized("the signature does not verify".into()))
            }
        })
        .await
    }

    /// A request signed with `X-PowerAuth-Authorization` whose body is an activation-scope
    /// ECIES request (`/pa/v3/vault/unlock`, `/pa/v3/token/create`): the signature is verified
    /// over the body as received (encrypt-then-sign), then the body is opened with
    /// `shared_info1`, and `handle` makes the plaintext answer from the activation, its keys
    /// and the request's plaintext; the answer goes back encrypted under the same envelope key.
    #[allow(clippy::too_many_arguments, reason = "the request's parts, each required")]
    pub async fn signed_encrypted(
        &self,
        caller: Caller,
        header: SignatureHeader,
        method: String,
        uri_id: String,
        body: Vec<u8>,
        min_factors: usize,
        shared_info1: &'static [u8],
        handle: impl FnOnce(
                &PowerAuthServer,
                &Caller,
                &PowerAuthActivation,
                &ActivationKeys,
                &[u8],
            ) -> Result<Vec<u8>, PowerAuthError>
            + Send
            + 'static,
    ) -> Result<EciesResponse, PowerAuthError> {
        let verdict = self
            .verify_signed_request(caller.clone(), header.clone(), method, uri_id, body.clone(), min_factors)
            .await?;
        self.blocking(move |me| {
            let a = me
                .store
                .powerauth_activation(&verdict.activation_id)?
                .ok_or_else(|| PowerAuthError::Unauthorized("the activation is gone".into()))?;
            let keys = me.open_keys(&a)?;
            let k = me.app_key(&header.app_key)?;
            let secret = me.app_secret(&k, &header.app_key)?;
            let sh2 = ecies::shared_info2_base_activation(&keys.derived.transport, &secret);
            let scope = EncryptionHeader {
                app_key: header.app_key.clone(),
                activation_id: Some(a.activation_id.clone()),
                version: header.version,
            };
            let req: EciesRequest =
                serde_json::from_slice(&body).map_err(|_| encryption_failed("the body is not an encrypted request"))?;
            let (plain, key) = me.open_ecies(&req, &scope, shared_info1, &sh2, Some(&keys), None)?;
            let answer = Zeroizing::new(handle(me, &caller, &a, &ActivationKeys(&keys), &plain)?);
            me.seal_ecies(&key, &req, &scope, &sh2, &answer)
        })
        .await
    }

    /// `/pa/v3/vault/unlock` (signed with 2 factors, encrypted in activation scope): the vault
    /// key encrypted under the transport key, once the audit row says who unlocked and why.
    pub async fn unlock_vault(
        &self,
        caller: Caller,
        header: SignatureHeader,
        body: Vec<u8>,
    ) -> Result<EciesResponse, PowerAuthError> {
        self.signed_encrypted(
            caller,
            header,
            "POST".into(),
            "/pa/vault/unlock".into(),
            body,
            2,
            ecies::shared_info1::VAULT_UNLOCK,
            |me, caller, a, keys, plain| {
                let reason = serde_json::from_slice::<Value>(plain)
                    .ok()
                    .and_then(|v| {
                        v.get("reason").and_then(Value::as_str).map(|r| r.chars().take(255).collect::<String>())
                    })
                    .unwrap_or_else(|| "NOT_SPECIFIED".into());
                me.audit(&audit_row(
                    caller,
                    "powerauth/vault/unlock",
                    "ok",
                    Some(Subject::from(a)),
                    format!("reason {reason}"),
                ))?;
                let encrypted = keys::encrypt_vault_key(&keys.0.derived.transport, &keys.0.derived.vault_encryption);
                Ok(json!({"activationId": a.activation_id, "encryptedVaultEncryptionKey": STANDARD.encode(encrypted)})
                    .to_string()
                    .into_bytes())
            },
        )
        .await
    }

    /// The device's own removal (`/pa/v3/activation/remove`, signed with 2 factors).
    pub async fn remove_by_device(&self, caller: Caller, activation_id: String) -> Result<(), PowerAuthError> {
        self.change_state(caller, activation_id, StateAction::Remove { by_device: true }).await.map(|_| ())
    }

    /// Removes expired temporary keys and replay entries (the periodic job).
    pub async fn purge_expired(&self) -> Result<usize, PowerAuthError> {
        self.blocking(|me| Ok(me.store.purge_powerauth_expired(me.now_ms())?)).await
    }
}

/// What a back-end state change makes of activation `cur` (read in the change's
/// transaction): the update, or why the state forbids it.
fn decide_state(
    cur: &PowerAuthActivation,
    action: &StateAction,
    activation_id: &str,
    now: i64,
) -> Result<ActivationUpdate, StoreError> {
    let invalid = |why: String| Err(StoreError::Refused(Refusal::Invalid(why)));
    let expired = cur.expires_ms.is_some_and(|e| e < now);
    match action {
        StateAction::Commit { .. } if cur.state == ActivationState::PendingCommit && !expired => Ok(ActivationUpdate {
            state: Some(ActivationState::Active),
            reason: Some("committed".into()),
            expires_ms: Some(None),
            clear_otp: true,
            ..ActivationUpdate::default()
        }),
        StateAction::Commit { .. } => invalid(format!(
            "activation {activation_id} is {}{}, not PENDING_COMMIT",
            cur.state.as_str(),
            if expired { " (expired)" } else { "" }
        )),
        StateAction::Block { reason } if cur.state == ActivationState::Active => Ok(ActivationUpdate {
            state: Some(ActivationState::Blocked),
            reason: Some(reason.clone().unwrap_or_else(|| "NOT_SPECIFIED".into())),
            blocked_reason: Some(Some(reason.clone().unwrap_or_else(|| "NOT_SPECIFIED".into()))),
            ..ActivationUpdate::default()
        }),
        StateAction::Block { .. } => {
            invalid(format!("activation {activation_id} is {}, not ACTIVE", cur.state.as_str()))
        }
        StateAction::Unblock if cur.state == ActivationState::Blocked => Ok(ActivationUpdate {
            state: Some(ActivationState::Active),
            reason: Some("unblocked".into()),
            blocked_reason: Some(None),
            failed_attempts: Some(0),
            ..ActivationUpdate::default()
        }),
        StateAction::Unblock => invalid(format!("activation {activation_id} is {}, not BLOCKED", cur.state.as_str())),
        StateAction::Remove { .. } if cur.state != ActivationState::Removed => Ok(ActivationUpdate {
            state: Some(ActivationState::Removed),
            reason: Some("removed".into()),
            ..ActivationUpdate::default()
        }),
        StateAction::Remove { .. } => invalid(format!("activation {activation_id} is removed already")),
    }
}

/// A back-end state change.
#[derive(Debug, Clone)]
pub enum StateAction {
    /// PENDING_COMMIT → ACTIVE.
    Commit {
        /// The activation OTP, when it is checked on commit.
        otp: Option<SecretString>,
    },
    /// ACTIVE → BLOCKED.
    Block {
        /// Why.
        reason: Option<String>,
    },
    /// BLOCKED → ACTIVE.
    Unblock,
    /// Any → REMOVED.
    Remove {
        /// Whether the device asked (signed) rather than the back-end.
        by_device: bool,
    },
}

impl StateAction {
    fn name(&self) -> &'static str {
        match self {
            StateAction::Commit { .. } => "commit",
            StateAction::Block { .. } => "block",
            StateAction::Unblock => "unblock",
            StateAction::Remove { .. } => "remove",
        }
    }

    fn detail(&self) -> String {
        match self {
            StateAction::Commit { otp } => format!("commit{}", if otp.is_some() { " with OTP" } else { "" }),
            StateAction::Block { reason } => format!("block: {}", reason.as_deref().unwrap_or("NOT_SPECIFIED")),
            StateAction::Unblock => "unblock".into(),
            StateAction::Remove { by_device } => {
                format!("remove{}", if *by_device { " by the device (signed)" } else { "" })
            }
        }
    }
}

impl OffRuntime for PowerAuthServer {
    type Error = PowerAuthError;

    fn internal(message: String) -> PowerAuthError {
        PowerAuthError::Internal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let u = uuid([0xFF; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn an_activation_codes_debug_hides_the_code() {
        let init = ActivationInit {
            activation_id: "a-1".into(),
            activation_code: "AAAAA-BBBBB-CCCCC-DDDDD".into(),
            activation_signature: "c2ln".into(),
            user_id: "alice".into(),
            application_id: "bank".into(),
            expires_ms: 1,
        };
        let shown = format!("{init:?}");
        assert!(!shown.contains("AAAAA") && shown.contains("***") && shown.contains("alice"), "{shown}");
    }

    #[test]
    fn headers_are_read_by_key() {
        let h = SignatureHeader::parse(
            r#"PowerAuth pa_version="3.1", pa_signature="abc", pa_signature_type="possession_knowledge", pa_nonce="bm9uY2U=", pa_application_key="k", pa_activation_id="a""#,
        )
        .unwrap();
        assert_eq!(h.activation_id, "a");
        assert_eq!(h.signature_type, SignatureType::PossessionKnowledge);
        let e = EncryptionHeader::parse(r#"PowerAuth version="3.3", application_key="k""#).unwrap();
        assert_eq!(e.version, ProtocolVersion::V3_3);
        assert!(e.activation_id.is_none());
        assert!(EncryptionHeader::parse(r#"PowerAuth application_key="k", version="2.1""#).is_err());
    }
}
