//! The Yubico validation protocol 2.0 as privacyIDEA serves it at `/ttype/yubikey`, and its
//! clients.
//!
//! A client is an id and an API key (privacyIDEA's system config `yubikey.apiid.<id>`, the
//! Base64 key in the clear). Here the key is sealed under `token-seal` bound to the client id,
//! opened for one request at a time into a zeroizing buffer, and never shown again after it was
//! made (HSM randomness, shown once) or given. The table of clients is sealed as a whole.
//!
//! A request (`id`, `otp`, `nonce`, `h`) is answered as privacyIDEA answers it: the lines
//! `nonce`, `otp`, `status`, `timestamp` and `h`, the HMAC-SHA-1 of the other four under the
//! client's key; `NO_SUCH_CLIENT` (unsigned) for an id without a key, `BAD_SIGNATURE` for a
//! request whose `h` is not the client's HMAC of its parameters, then the check, `OK` or
//! `BAD_OTP` (a replay too: privacyIDEA never says `REPLAYED_OTP`, and a reject never tells a
//! guesser that a code was valid once). The OTP goes through the one check path
//! ([`crate::validate::ValidateService::check`], by public id): the same compare-and-set, fail
//! counters, throttle and audit row as `/validate/check`. Nothing about tokens is looked at
//! before the client and its signature are known, so neither an unknown client nor a forged
//! request learns whether a token exists.
//!
//! Where Countersign differs on purpose: a request without `h` is refused
//! (`MISSING_PARAMETER`) where privacyIDEA checks it unsigned, so the client's key is the
//! endpoint's credential; a known client's request without `otp` or `nonce` is answered
//! `MISSING_PARAMETER` (privacyIDEA fails with an internal error); an `otp` or `nonce` with a
//! character outside printable ASCII is taken as missing (echoed, it could add lines to the
//! answer); an HSM that cannot open the key or run the check answers `BACKEND_ERROR`.
//!
//! Must never: log, store or return a client key in the clear (but the generated one, once);
//! check an OTP for a request it has not authenticated.

use countersign_core::caller::{Caller, Principal};
use countersign_core::error::Refusal;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::service_error::blocking;
use crate::store::{AuthAuditRow, CheckTarget, Store, Stored, YubikeyClientView};
use crate::token_secrets::TokenSecrets;
use crate::tokens::TokenError;
use crate::validate::{CheckRequest, ValidateError, ValidateService};

/// The audit action of requests refused before a check.
pub const AUDIT_ACTION: &str = "ttype/yubikey";
/// Bytes of a generated client key (what privacyIDEA's web UI asks `/system/random` for).
pub const GENERATED_KEY_LEN: usize = 20;
/// The shortest and longest key an admin may give, in bytes: short keys are guessable, and
/// HMAC-SHA-1 hashes keys longer than its 64-byte block anyway.
pub const KEY_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// What a request's answer says (the Yubico protocol's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The OTP was accepted (`OK`).
    Ok,
    /// The OTP was not accepted, a replay included (`BAD_OTP`).
    BadOtp,
    /// `h` is not the client's signature of the request (`BAD_SIGNATURE`).
    BadSignature,
    /// `h`, `otp` or `nonce` is missing, or `otp` or `nonce` is not printable ASCII
    /// (`MISSING_PARAMETER`).
    MissingParameter,
    /// No id, or no client with that id (`NO_SUCH_CLIENT`); answered unsigned.
    NoSuchClient,
    /// The appliance could not answer: the HSM, the store or the check failed
    /// (`BACKEND_ERROR`).
    BackendError,
}

impl Status {
    /// The protocol's word for it (`OK`, `BAD_OTP`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadOtp => "BAD_OTP",
            Status::BadSignature => "BAD_SIGNATURE",
            Status::MissingParameter => "MISSING_PARAMETER",
            Status::NoSuchClient => "NO_SUCH_CLIENT",
            Status::BackendError => "BACKEND_ERROR",
        }
    }
}

/// A request as the protocol reads it. `params` are all of the request's parameters (what the
/// client signed), `h` among them.
#[derive(Debug)]
pub struct ProtocolRequest {
    /// Every parameter as sent, name and value, in order.
    pub params: Vec<(String, String)>,
    /// How the audit names the caller (`ip:ADDR`, ...).
    pub caller: Caller,
}

impl ProtocolRequest {
    /// A parameter as privacyIDEA's `getParam` gives it: absent and empty are alike.
    fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// `otp` and `nonce`: echoed into the answer's lines, so only printable ASCII counts.
    fn echoed(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
    }
}

/// The answer: its status, the lines privacyIDEA writes, and whether it is the appliance's
/// failure (`BACKEND_ERROR`: `unavailable` when the HSM did not answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolAnswer {
    /// The answer's status.
    pub status: Status,
    /// The answer's lines (`nonce`, `otp`, `status`, `timestamp`, `h`), each ending in `\n`.
    pub text: String,
    /// With [`Status::BackendError`]: the HSM did not answer (a front-end's 503 rather than
    /// 500).
    pub unavailable: bool,
}

/// The text a Yubico signature is computed over: the `key=value` pairs sorted by key, joined
/// by `&`, without `h` (and without privacyIDEA's own `ttype`, which its route adds).
pub fn signing_text<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().filter(|(k, _)| *k != "h" && *k != "ttype").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// HMAC-SHA-1 of `text` under `key`, in standard Base64 (the protocol's `h`).
pub fn sign(key: &[u8], text: &str) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else { return String::new() };
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `h` is the signature of `text` under `key` (constant time, on the Base64 text, as
/// privacyIDEA compares it).
pub fn verifies(key: &[u8], text: &str, h: &str) -> bool {
    bool::from(sign(key, text).as_bytes().ct_eq(h.as_bytes()))
}

/// privacyIDEA's `timestamp` line: `%Y-%m-%dT%H:%M:%SZ%f` (microseconds after the `Z`), here
/// in UTC from the appliance's clock.
pub fn timestamp(now_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z{:06}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// A client id: 1 to 64 characters from `A-Z a-z 0-9 . _ -` (Yubico's are numbers).
pub fn valid_client_id(id: &str) -> Result<(), TokenError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(TokenError::Refused(Refusal::Invalid(format!(
            "a Yubico client id has 1 to 64 characters from A-Z a-z 0-9 . _ -, not {:?}",
            id.chars().take(70).collect::<String>()
        ))));
    }
    Ok(())
}

/// A key given in Base64 (privacyIDEA's form), decoded: 16 to 64 bytes.
pub fn decode_key(b64: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    let key = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| {
        TokenError::Refused(Refusal::Invalid("a Yubico client key is standard Base64 (with padding)".into()))
    })?);
    if !KEY_LEN.contains(&key.len()) {
        return Err(TokenError::Refused(Refusal::Invalid(format!(
            "a Yubico client key has {} to {} bytes, not {}",
            KEY_LEN.start(),
            KEY_LEN.end(),
            key.len()
        ))));
    }
    Ok(key)
}

/// A new client: the key as stored and, when the appliance made it, the key to show once.
#[derive(Debug, Serialize)]
pub struct AddedClient {
    /// The client as listed (id and creation time; never the key).
    pub client: YubikeyClientView,
    /// `true`: the client existed and its key was replaced.
    pub replaced: bool,
    /// The key the HSM made, in Base64, to show once; `None` when the admin gave the key. Never
    /// serialised with the rest.
    #[serde(skip)]
    pub generated_key: Option<SecretString>,
}

/// The Yubico validation clients and the validation protocol at `/ttype/yubikey`. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct YubicoClients {
    store: Arc<Store>,
    secrets: TokenSecrets,
    clock: Clock,
    validate: ValidateService,
}

/// Why a client's key could not be used.
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("the HSM could not open the client's key: {0}")]
    Hsm(#[from] countersign_hsm::HsmError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl YubicoClients {
    /// The clients over the store and the HSM keys; OTPs are checked by `validate`.
    pub fn new(store: Arc<Store>, secrets: TokenSecrets, clock: Clock, validate: ValidateService) -> YubicoClients {
        YubicoClients { store, secrets, clock, validate }
    }

    /// Adds client `client_id` with the Base64 key given, or with [`GENERATED_KEY_LEN`] bytes
    /// from the HSM (returned to be shown once). `replace`: an existing client gets the new
    /// key (privacyIDEA's setConfig); otherwise it is a conflict.
    pub async fn add(
        &self,
        caller: Caller,
        client_id: String,
        key_b64: Option<SecretString>,
        replace: bool,
    ) -> Result<AddedClient, TokenError> {
        let this = self.clone();
        blocking(move || this.add_blocking(&caller, &client_id, key_b64.as_ref(), replace)).await
    }

    /// Removes client `client_id` and its sealed key.
    pub async fn remove(&self, caller: Caller, client_id: String) -> Result<(), TokenError> {
        let this = self.clone();
        blocking(move || this.remove_blocking(&caller, &client_id)).await
    }

    /// Every client (ids and creation times; never a key).
    pub async fn list(&self) -> Result<Vec<YubikeyClientView>, TokenError> {
        let store = self.store.clone();
        blocking(move || Ok(store.yubikey_clients()?)).await
    }

    /// [`Self::add`] on the calling thread.
    fn add_blocking(
        &self,
        caller: &Caller,
        client_id: &str,
        key_b64: Option<&SecretString>,
        replace: bool,
    ) -> Result<AddedClient, TokenError> {
        valid_client_id(client_id)?;
        let (key, generated) = match key_b64 {
            Some(k) => (decode_key(k.expose_secret())?, None),
            None => {
                let key = Zeroizing::new(self.secrets.random(GENERATED_KEY_LEN)?);
                let shown = SecretString::from(STANDARD.encode(key.as_slice()));
                (key, Some(shown))
            }
        };
        let sealed = self.secrets.seal_yubico_client_key(client_id, &key)?;
        let created_at = self.clock.now_ms() / 1000;
        let mut audit = AuthAuditRow::new(caller, "yubico-client/add", "ok");
        audit.at_ms = self.clock.now_ms();
        audit.detail = Some(format!(
            "client {client_id}, key {}",
            if generated.is_some() { "generated by the HSM" } else { "given" }
        ));
        let stored = self.store.put_yubikey_client(client_id, &sealed, created_at, replace, &audit)?;
        Ok(AddedClient {
            client: YubikeyClientView { client_id: client_id.to_owned(), created_at },
            replaced: stored == Stored::Replaced,
            generated_key: generated,
        })
    }

    /// [`Self::remove`] on the calling thread.
    fn remove_blocking(&self, caller: &Caller, client_id: &str) -> Result<(), TokenError> {
        let mut audit = AuthAuditRow::new(caller, "yubico-client/remove", "ok");
        audit.at_ms = self.clock.now_ms();
        audit.detail = Some(format!("client {client_id}"));
        Ok(self.store.remove_yubikey_client(client_id, &audit)?)
    }

    /// The opened key of `client_id`; `None` for an unknown client.
    fn key(&self, client_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        match self.store.yubikey_client_key(client_id)? {
            Some(sealed) => Ok(Some(self.secrets.open_yubico_client_key(client_id, &sealed)?)),
            None => Ok(None),
        }
    }

    /// Answers one request of the validation protocol (see the module comment).
    pub async fn validate(&self, req: ProtocolRequest) -> ProtocolAnswer {
        let now = timestamp(self.clock.now_ms());
        let echo = |name: &str| req.echoed(name).unwrap_or("None").to_owned();
        let (otp_line, nonce_line) = (echo("otp"), echo("nonce"));
        let lines = |status: Status, h: &str| {
            format!("nonce={nonce_line}\notp={otp_line}\nstatus={}\ntimestamp={}\nh={h}\n", status.as_str(), now)
        };
        let unsigned =
            |status: Status, unavailable: bool| ProtocolAnswer { status, text: lines(status, ""), unavailable };
        let id = req.get("id").map(str::to_owned);
        let this = self.clone();
        let lookup = id.clone();
        let key = tokio::task::spawn_blocking(move || match lookup {
            Some(id) => this.key(&id),
            None => Ok(None),
        })
        .await
        .unwrap_or_else(|e| Err(KeyError::Store(crate::store::StoreError::Refused(Refusal::Invalid(e.to_string())))));
        let client = id.as_deref().unwrap_or_default();
        let key = match key {
            Ok(Some(key)) => key,
            Ok(None) => {
                self.refused(&req, client, Status::NoSuchClient, "no such client").await;
                return unsigned(Status::NoSuchClient, false);
            }
            Err(e) => {
                let hsm = matches!(e, KeyError::Hsm(_));
                self.refused(&req, client, Status::BackendError, &e.to_string()).await;
                return unsigned(Status::BackendError, hsm);
            }
        };
        // Signed with the client's key from here on: the answer's four other lines, as they are.
        let signed = |status: Status, unavailable: bool| {
            let text = signing_text([
                ("nonce", nonce_line.as_str()),
                ("otp", otp_line.as_str()),
                ("status", status.as_str()),
                ("timestamp", now.as_str()),
            ]);
            ProtocolAnswer { status, text: lines(status, &sign(&key, &text)), unavailable }
        };
        let (Some(otp), Some(_nonce)) = (req.echoed("otp"), req.echoed("nonce")) else {
            self.refused(&req, client, Status::MissingParameter, "otp or nonce missing or not printable").await;
            return signed(Status::MissingParameter, false);
        };
        let Some(h) = req.get("h") else {
            self.refused(&req, client, Status::MissingParameter, "unsigned request (no h)").await;
            return signed(Status::MissingParameter, false);
        };
        if !verifies(&key, &signing_text(req.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))), h) {
            self.refused(&req, client, Status::BadSignature, "h is not the client's signature of the request").await;
            return signed(Status::BadSignature, false);
        }
        // Authenticated: the OTP goes through the one check path, its token found by public id
        // (an OTP without one names no token and is a reject like any wrong OTP).
        let target = crate::yubikey::public_id_target(otp).unwrap_or_else(|| CheckTarget::PublicId(String::new()));
        let check = CheckRequest {
            target,
            pass: SecretString::from(otp.to_owned()),
            transaction_id: None,
            caller: req.caller.clone().as_principal(Principal::YubicoClient(client.to_string())),
            webauthn: None,
            require_user_verification: false,
        };
        match self.validate.check(check).await {
            Ok(o) if o.accepted => signed(Status::Ok, false),
            Ok(_) => signed(Status::BadOtp, false),
            Err(ValidateError::HsmUnavailable | ValidateError::StoreUnavailable) => signed(Status::BackendError, true),
            Err(e) => {
                tracing::error!(error = %e, "a Yubico validation request could not be checked");
                signed(Status::BackendError, false)
            }
        }
    }

    /// The audit row of a request refused before any check (the check writes its own).
    async fn refused(&self, req: &ProtocolRequest, client: &str, status: Status, why: &str) {
        let mut row = AuthAuditRow::new(&req.caller, AUDIT_ACTION, "refused");
        row.at_ms = self.clock.now_ms();
        let client: String = client.chars().take(64).collect();
        row.detail = Some(format!("{}: client {client:?}: {why}", status.as_str()));
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.audit_auth(&row)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot audit a refused Yubico validation request"),
            Err(e) => tracing::error!(error = %e, "cannot audit a refused Yubico validation request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_yubicos_published_test_vector() {
        // developers.yubico.com/OTP/Specifications/Test_vectors.html ("Validation protocol"):
        // client 1, key mG5be6ZJU1qBGz24yPh/ESM3UdU=, the request's parameters in any order.
        let key = decode_key("mG5be6ZJU1qBGz24yPh/ESM3UdU=").unwrap();
        let text = signing_text([
            ("otp", "vvungrrdhvtklknvrtvuvbbkeidikkvgglrvdgrfcdft"),
            ("nonce", "jrFwbaYFhn0HoxZIsd9LQ6w2ceU"),
            ("id", "1"),
        ]);
        assert_eq!(text, "id=1&nonce=jrFwbaYFhn0HoxZIsd9LQ6w2ceU&otp=vvungrrdhvtklknvrtvuvbbkeidikkvgglrvdgrfcdft");
        assert_eq!(sign(&key, &text), "+ja8S3IjbX593/LAgTBixwPNGX4=");
        assert!(verifies(&key, &text, "+ja8S3IjbX593/LAgTBixwPNGX4="));
        assert!(!verifies(&key, &text, "+ja8S3IjbX593/LAgTBixwPNGX5="));
        assert!(!verifies(&key, &text, ""));
        // h itself and privacyIDEA's route parameter are not signed.
        let with_h = signing_text([
            ("h", "+ja8S3IjbX593/LAgTBixwPNGX4="),
            ("id", "1"),
            ("ttype", "yubikey"),
            ("otp", "vvungrrdhvtklknvrtvuvbbkeidikkvgglrvdgrfcdft"),
            ("nonce", "jrFwbaYFhn0HoxZIsd9LQ6w2ceU"),
        ]);
        assert_eq!(with_h, text);
        // A Yubico engineer's worked example (forum.yubico.com, "Validation Protocol Version 2.0
        // - HMAC-SHA1 signature"): client 15618.
        let key = decode_key("Eibja2kRFXXoW6hjZaiyBtWnCBA=").unwrap();
        let text = signing_text([
            ("id", "15618"),
            ("otp", "ccccccbteuddjivcnlfefefrccdcjrfjfvgjnfkcklge"),
            ("nonce", "0102030405060708090a0b0c0d0e0f"),
        ]);
        assert_eq!(sign(&key, &text), "Jt19GpDOAraTYRFBHSofYZFEwjE=");
    }

    #[test]
    fn timestamps_are_written_as_privacyidea_writes_them() {
        // 2026-12-06T14:33:35.034 UTC.
        assert_eq!(timestamp(1_796_567_615_034), "2026-12-06T14:33:35Z034000");
    }

    #[test]
    fn client_ids_and_keys_are_checked() {
        assert!(valid_client_id("15618").is_ok());
        assert!(valid_client_id("pam-host_1.a").is_ok());
        for bad in ["", "a b", "x\ny", "ip:1.2.3.4", &"1".repeat(65)] {
            assert!(valid_client_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode_key("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=").unwrap().len(), 20);
        assert!(decode_key("c2hvcnQ=").is_err(), "5 bytes");
        assert!(decode_key("not base64!").is_err());
    }

    #[test]
    fn echoed_values_are_printable_ascii_only() {
        let req = ProtocolRequest {
            params: vec![
                ("otp".into(), "abc\nstatus=OK".into()),
                ("nonce".into(), "".into()),
                ("id".into(), "1".into()),
            ],
            caller: Caller::address([127, 0, 0, 1].into()),
        };
        assert_eq!(req.echoed("otp"), None);
        assert_eq!(req.get("nonce"), None, "empty is absent");
        assert_eq!(req.get("id"), Some("1"));
    }
}
