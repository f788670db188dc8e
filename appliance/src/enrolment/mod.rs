//! Enrolling cards an admin puts into a reader at the appliance: PIV (key generated on the
//! card, attestation verified, certificate issued by the HSM-held CA and written back, a
//! certificate token registered) and OATH (a credential whose seed the HSM generated written to
//! a YubiKey's OATH applet, and the matching HOTP/TOTP token registered).
//!
//! Each enrolment reports its steps as they happen ([`Progress`]). It registers nothing until
//! every card operation succeeded, and the token, the card's row and the audit row land in one
//! transaction. When it fails after it changed the card, the error says what the card now holds
//! ([`EnrolError::card_state`]), so the admin knows whether to retry or reset.
//!
//! Seeds, PINs, PUKs and management keys never appear in progress, errors or logs; a random PIN
//! or PUK is returned once when the admin chose to see it.

mod oath;
mod piv;

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use oath::OathEnrolRequest;
pub use piv::PivEnrolRequest;

use crate::ca::CaService;
use crate::clock::Clock;
use crate::devices::{CardSelector, DeviceError, Devices};
use crate::store::Store;
use crate::token_secrets::TokenSecrets;
use crate::tokens::{TokenError, TokenService};
use countersign_api::Token;

/// Enrolling cards in readers at the appliance: resolved values, read from the configuration
/// by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentSettings {
    /// PEM files of the roots a card's PIV attestation must chain to (Yubico's in production);
    /// empty: attestation is not verified against roots.
    pub attestation_roots: Vec<PathBuf>,
    /// PEM files of intermediates between those roots and a card's f9 certificate (YubiKey
    /// firmware 5.7.4 on chains through intermediates the card does not hold).
    pub attestation_intermediates: Vec<PathBuf>,
    /// Refuse cards that cannot prove their key was generated on them.
    pub require_attestation: bool,
    /// The key generated on the card unless the request names one: ec-p256, ec-p384 or
    /// rsa-2048.
    pub piv_algorithm: countersign_hsm::KeyAlgorithm,
    /// The slot used unless the request names one.
    pub piv_slot: crate::devices::piv::Slot,
    /// When the card asks for the PIN.
    pub pin_policy: crate::devices::piv::PinPolicy,
    /// When the card asks for a touch.
    pub touch_policy: crate::devices::piv::TouchPolicy,
    /// What becomes of the card's new PUK.
    pub puk: PukMode,
    /// Issuer shown for OATH accounts written to a YubiKey.
    pub oath_issuer: String,
}

/// What becomes of a card's new PUK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PukMode {
    /// Random, kept sealed by the appliance for unblocking the card.
    Sealed,
    /// Random, shown once to the admin, not kept.
    Show,
}

/// One step of an enrolment, as it happens.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The step's name: `check`, `card`, `unlock`, `authenticate`, `generate`, `attest`,
    /// `issue`, `write`, `management-key`, `pin` or `register`.
    pub step: &'static str,
    /// What happened, for the admin; never a seed, PIN, PUK or key.
    pub detail: String,
}

/// What a successful enrolment returns.
#[derive(Debug, Serialize)]
pub struct EnrolOutcome {
    /// The token registered.
    pub token: Token,
    /// The reader the card was in.
    pub reader: String,
    /// The card's serial number.
    pub card_serial: String,
    /// The card's firmware version, when it reports one.
    pub firmware: Option<String>,
    /// PEM of the issued certificate (PIV).
    pub certificate_pem: Option<String>,
    /// Shown once: the card's new PIN when the appliance chose it.
    #[serde(serialize_with = "expose_opt")]
    pub new_pin: Option<secrecy::SecretString>,
    /// Shown once: the card's new PUK when `enrolment.puk = "show"`.
    #[serde(serialize_with = "expose_opt")]
    pub new_puk: Option<secrecy::SecretString>,
    /// The OATH account name on the card (OATH).
    pub oath_account: Option<String>,
}

fn expose_opt<S: serde::Serializer>(v: &Option<secrecy::SecretString>, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match v {
        Some(v) => s.serialize_str(v.expose_secret()),
        None => s.serialize_none(),
    }
}

/// Why an enrolment stopped, and what it left on the card.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EnrolError {
    /// `card_missing`, `card_locked`, `wrong_card`, `not_found`, `invalid`, `duplicate`,
    /// `revoked`, `unavailable`, `attestation`, `card` or `internal`.
    pub code: &'static str,
    /// What went wrong, for the admin; never a seed, PIN, PUK or key.
    pub message: String,
    /// What the card holds now: "unchanged", or the changes made before the failure.
    pub card_state: String,
}

impl EnrolError {
    fn new(code: &'static str, message: impl Into<String>) -> EnrolError {
        EnrolError { code, message: message.into(), card_state: "unchanged".into() }
    }
}

impl From<DeviceError> for EnrolError {
    fn from(e: DeviceError) -> EnrolError {
        let code = match &e {
            DeviceError::NoReaders | DeviceError::NoCard(_) | DeviceError::Removed(_) => "card_missing",
            DeviceError::NotFound(_) => "not_found",
            DeviceError::Locked(_) | DeviceError::WrongManagementKey => "card_locked",
            DeviceError::WrongKind(_) | DeviceError::Ambiguous(_) => "wrong_card",
            DeviceError::Invalid(_) => "invalid",
            DeviceError::NoService(_) | DeviceError::InUse(_) => "unavailable",
            DeviceError::Card(_) | DeviceError::Protocol(_) | DeviceError::Pcsc(_) => "card",
        };
        EnrolError::new(code, e.to_string())
    }
}

impl From<TokenError> for EnrolError {
    fn from(e: TokenError) -> EnrolError {
        let code = match &e {
            TokenError::Refused(Refusal::Invalid(_)) | TokenError::OutOfSync(_) => "invalid",
            TokenError::Refused(Refusal::NotFound(_)) => "not_found",
            TokenError::Refused(Refusal::Duplicate(_)) => "duplicate",
            TokenError::Revoked(_) => "revoked",
            _ => "internal",
        };
        EnrolError::new(code, e.to_string())
    }
}

impl From<crate::ca::CaError> for EnrolError {
    fn from(e: crate::ca::CaError) -> EnrolError {
        TokenError::from(e).into()
    }
}

impl From<countersign_pki::PkiError> for EnrolError {
    fn from(e: countersign_pki::PkiError) -> EnrolError {
        EnrolError::new("internal", format!("certificate: {e}"))
    }
}

impl From<countersign_hsm::HsmError> for EnrolError {
    fn from(e: countersign_hsm::HsmError) -> EnrolError {
        EnrolError::new("internal", format!("HSM: {e}"))
    }
}

impl From<crate::store::StoreError> for EnrolError {
    fn from(e: crate::store::StoreError) -> EnrolError {
        TokenError::from(e).into()
    }
}

/// The changes made to a card so far, for the error that may follow.
#[derive(Debug, Default)]
struct CardChanges(Vec<String>);

impl CardChanges {
    fn done(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    /// Marks `e` with what the card holds now.
    fn explain(&self, mut e: EnrolError) -> EnrolError {
        if !self.0.is_empty() {
            e.card_state = format!("changed: {}; nothing was registered", self.0.join("; "));
        } else {
            e.card_state = "unchanged; nothing was registered".into();
        }
        e
    }
}

fn selector(reader: &Option<String>, serial: &Option<String>) -> Result<CardSelector, EnrolError> {
    match (reader, serial) {
        (Some(_), Some(_)) => Err(EnrolError::new("invalid", "name the card by reader or by serial, not both")),
        (Some(r), None) => Ok(CardSelector::Reader(r.clone())),
        (None, Some(s)) => Ok(CardSelector::Serial(s.clone())),
        (None, None) => Ok(CardSelector::Only),
    }
}

/// Enrolment of cards in readers at the appliance (PIV and OATH). Calls block on the card:
/// run them off the async runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EnrolmentService {
    store: Arc<Store>,
    secrets: TokenSecrets,
    tokens: TokenService,
    ca: CaService,
    devices: Devices,
    cfg: EnrolmentSettings,
    clock: Clock,
}

impl EnrolmentService {
    /// The service; `cfg` gives the attestation roots, the key and slot, the
    /// PIN and touch policies and what becomes of the PUK.
    pub fn new(
        store: Arc<Store>,
        secrets: TokenSecrets,
        tokens: TokenService,
        ca: CaService,
        cfg: EnrolmentSettings,
        clock: Clock,
    ) -> EnrolmentService {
        EnrolmentService { store, secrets, tokens, ca, devices: Devices, cfg, clock }
    }

    /// The card readers, to list them and the cards in them.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Enrolled cards, from the store.
    pub fn enrolled(&self) -> Result<Vec<crate::store::DeviceView>, EnrolError> {
        Ok(self.store.devices()?)
    }

    /// The readers with the cards in them, and the enrolled cards, read off the async runtime.
    /// The readers' part keeps its own error when PC/SC does not answer (the caller answers it
    /// as the readers being unavailable); `Err`: the enrolled cards could not be read.
    #[allow(clippy::type_complexity, reason = "two answers, each with its own error, as the caller shows them")]
    pub async fn devices_report(
        &self,
    ) -> Result<(Result<Vec<crate::devices::ReaderInfo>, DeviceError>, Vec<crate::store::DeviceView>), EnrolError> {
        let this = self.clone();
        let (readers, enrolled) = tokio::task::spawn_blocking(move || (this.devices().list(), this.enrolled()))
            .await
            .map_err(|e| EnrolError::new("internal", e.to_string()))?;
        Ok((readers, enrolled?))
    }

    /// Records a failed enrolment in the audit (a successful one is audited with its token).
    fn audit_failure(&self, caller: &Caller, action: &str, user: &str, realm: Option<&str>, e: &EnrolError) {
        let mut row = crate::store::AuthAuditRow::new(caller, action, "error");
        row.login = Some(user.to_owned());
        row.realm = realm.map(str::to_owned);
        row.detail = Some(format!("{} ({}); the card: {}", e.message, e.code, e.card_state));
        if let Err(err) = self.store.audit_auth(&row) {
            tracing::error!(error = %err, action, "a failed enrolment could not be audited");
        }
    }

    /// Runs an enrolment and audits it when it fails.
    fn audited(
        &self,
        caller: &Caller,
        action: &str,
        user: &str,
        realm: Option<&str>,
        run: impl FnOnce() -> Result<EnrolOutcome, EnrolError>,
    ) -> Result<EnrolOutcome, EnrolError> {
        let result = run();
        if let Err(e) = &result {
            self.audit_failure(caller, action, user, realm, e);
        }
        result
    }
}
