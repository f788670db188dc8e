//! A WebAuthn authenticator and browser for Countersign's tests, built on 1Password's passkey-rs:
//! `passkey-authenticator` is the authenticator (CTAP2 `makeCredential` / `getAssertion`, keys
//! from `passkey-crypto`'s RustCrypto backend) and `passkey-client` the browser (it checks the
//! origin against the RP id and serialises clientDataJSON). An implementation written apart from
//! Countersign's verifier and from the project's other test authenticators
//! (`tests/tools/soft_authenticator.py`, Chromium's virtual authenticator).
//!
//! It speaks the protocol of `soft_authenticator.py`: one JSON object on stdin, one on stdout,
//! binary values as base64url without padding; a refused request ends with exit status 2 and the
//! reason on stderr; unknown options are refused, so a typo fails loudly.
//!
//! - `create` (navigator.credentials.create): either `public_key`, the creation options as a
//!   relying party sends them (PublicKeyCredentialCreationOptionsJSON, e.g. the native API's
//!   `webauthn.public_key`), or the simple fields `rp_id`, `challenge` (base64url: the exact
//!   string clientDataJSON carries), `user_id` (base64url), `user_name`, `alg` (one COSE
//!   algorithm; default -7) and `user_verification` (`required`, `preferred` (default),
//!   `discouraged`). Always `origin` and `state`; and, for a new state file, the authenticator's
//!   `uv` (it can verify its user: default true), `counter` (it keeps a sign counter per
//!   credential: default false, as a synced passkey) and `aaguid` (32 hex digits; default
//!   zero). Answers `credential_id`, `client_data_json`, `attestation_object`,
//!   `authenticator_data` and `alg`.
//! - `get` (navigator.credentials.get): either `public_key` (PublicKeyCredentialRequestOptionsJSON,
//!   e.g. a challenge's `webauthn` sign request) or `rp_id`, `challenge`, optional
//!   `credential_id` (without it: a usernameless sign-in, the first credential of the RP id) and
//!   `user_verification`; always `state` and `origin`. Answers `credential_id`,
//!   `client_data_json`, `authenticator_data`, `signature` and `user_handle` (null if none).
//!
//! The state file is one authenticator: its settings and its credential store (every credential
//! is discoverable), JSON written atomically with mode 0600. A `create` on an existing state
//! file adds a credential to that authenticator; one the RP's `excludeCredentials` names makes
//! it refuse (`CredentialExcluded`), as a browser does.
//!
//! What it deliberately does not do:
//!
//! - It is not a safe authenticator: private keys lie unencrypted in the state file, for tests.
//! - Nothing a relying party must refuse can be asked of it (no tampering, no wrong flags, no
//!   chosen counter): passkey-client is an honest browser, and refuses an origin that is not
//!   `https` on the RP id or a subdomain. Tests of refusals use `soft_authenticator.py`; the one
//!   dishonest thing possible here is a clone (a copied state file), whose counter then lags.
//! - Only what passkey-rs makes: `none` attestation whatever is asked, ES256 and EdDSA keys (no
//!   RSA), the BE and BS flags always set, no extensions asked for, no PIN protocol, no
//!   transport (HID, NFC, BLE), no user interface (the user is always present, and verified
//!   when the authenticator can verify and the client asks it to).

use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use data_encoding::{BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
use passkey_authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck, UserValidationMethod,
};
use passkey_client::{Client, DefaultClientData, WebauthnError};
use passkey_crypto::coset::{CborSerializable, CoseKey};
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::ctap2::make_credential::{Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity};
use passkey_types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey_types::webauthn::{CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor};
use passkey_types::Passkey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const STATE_VERSION: u32 = 1;

/// A request the authenticator refuses: exit status 2, the reason on stderr.
type Refusal = String;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [c] if c == "create" || c == "get" => c.clone(),
        _ => {
            eprintln!("usage: passkey-rs-authenticator {{create|get}} < options.json > result.json");
            return ExitCode::from(2);
        }
    };
    let mut input = String::new();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("stdin cannot be read: {e}"))
        .and_then(|_| serde_json::from_str::<Value>(&input).map_err(|e| format!("stdin is not one JSON object: {e}")))
        .and_then(|options| if command == "create" { create(options) } else { get(options) });
    match result {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("passkey-rs-authenticator {command}: {reason}");
            ExitCode::from(2)
        }
    }
}

// --- options -------------------------------------------------------------------------------------

/// The options of one command: taken out one by one, then [`Opts::finish`] refuses the rest.
struct Opts {
    map: Map<String, Value>,
}

impl Opts {
    fn new(options: Value) -> Result<Opts, Refusal> {
        match options {
            Value::Object(map) => Ok(Opts { map }),
            _ => Err("the options must be a JSON object".to_owned()),
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, Refusal> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("option {name:?} must be a string, got {v}")),
        }
    }

    fn required(&mut self, name: &str) -> Result<String, Refusal> {
        self.string(name)?.ok_or_else(|| format!("option {name:?} is required"))
    }

    fn bool(&mut self, name: &str) -> Result<Option<bool>, Refusal> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(format!("option {name:?} must be true or false, got {v}")),
        }
    }

    fn finish(self) -> Result<(), Refusal> {
        if self.map.is_empty() {
            Ok(())
        } else {
            let unknown: Vec<&String> = self.map.keys().collect();
            Err(format!("unknown options {unknown:?}"))
        }
    }
}

fn b64(data: &[u8]) -> String {
    BASE64URL_NOPAD.encode(data)
}

fn b64_decode(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    BASE64URL_NOPAD.decode(text.trim_end_matches('=').as_bytes()).map_err(|e| format!("{what} is not base64url: {e}"))
}

// --- the authenticator's state -------------------------------------------------------------------

/// The state file: one authenticator's settings and credentials.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    version: u32,
    /// Whether it can verify its user (PIN, biometrics).
    uv: bool,
    /// Whether it makes credentials that keep a sign counter.
    counter: bool,
    /// Its AAGUID, hex.
    aaguid: String,
    credentials: Vec<StoredPasskey>,
}

/// One credential as stored: passkey-rs's [`Passkey`] but its extensions (none are made here).
#[derive(Debug, Serialize, Deserialize)]
struct StoredPasskey {
    credential_id: String,
    rp_id: String,
    user_handle: Option<String>,
    user_name: Option<String>,
    user_display_name: Option<String>,
    counter: Option<u32>,
    /// The private COSE_Key, CBOR, base64url.
    key: String,
}

impl StoredPasskey {
    fn from_passkey(p: &Passkey) -> Result<StoredPasskey, Refusal> {
        let key = p.key.clone().to_vec().map_err(|e| format!("the credential key does not encode: {e:?}"))?;
        Ok(StoredPasskey {
            credential_id: b64(&p.credential_id),
            rp_id: p.rp_id.clone(),
            user_handle: p.user_handle.as_ref().map(|h| b64(h)),
            user_name: p.username.clone(),
            user_display_name: p.user_display_name.clone(),
            counter: p.counter,
            key: b64(&key),
        })
    }

    fn to_passkey(&self) -> Result<Passkey, Refusal> {
        let key = CoseKey::from_slice(&b64_decode(&self.key, "a stored key")?)
            .map_err(|e| format!("a stored key is not a COSE_Key: {e:?}"))?;
        Ok(Passkey {
            key,
            credential_id: b64_decode(&self.credential_id, "a stored credential id")?.into(),
            rp_id: self.rp_id.clone(),
            user_handle: self
                .user_handle
                .as_deref()
                .map(|h| b64_decode(h, "a stored user handle"))
                .transpose()?
                .map(Into::into),
            username: self.user_name.clone(),
            user_display_name: self.user_display_name.clone(),
            counter: self.counter,
            extensions: Default::default(),
        })
    }
}

fn load_state(path: &str) -> Result<State, Refusal> {
    let text = fs::read_to_string(path).map_err(|e| format!("state {path:?} cannot be read: {e}"))?;
    let state: State = serde_json::from_str(&text).map_err(|e| format!("state {path:?} is not readable: {e}"))?;
    if state.version != STATE_VERSION {
        return Err(format!("state {path:?} is version {}, not {STATE_VERSION}", state.version));
    }
    Ok(state)
}

/// Writes `state` to `path` atomically (a new file, mode 0600, renamed over the old one).
fn save_state(path: &str, state: &State) -> Result<(), Refusal> {
    let tmp = format!("{path}.{}.tmp", std::process::id());
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(state).map_err(std::io::Error::other)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("state {path:?} cannot be written: {e}")
    })
}

/// The credential store passkey-rs's authenticator uses: every credential discoverable, found by
/// the allow list when there is one, else by RP id (the oldest first).
#[derive(Debug, Default)]
struct Store {
    passkeys: Vec<Passkey>,
}

#[async_trait::async_trait]
impl CredentialStore for Store {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let found: Vec<Passkey> = self
            .passkeys
            .iter()
            .filter(|p| p.rp_id == rp_id && ids.is_none_or(|ids| ids.iter().any(|d| d.id == p.credential_id)))
            .cloned()
            .collect();
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        self.passkeys.push(cred);
        Ok(())
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), StatusCode> {
        for p in self.passkeys.iter_mut().filter(|p| p.credential_id == cred.credential_id) {
            *p = cred.clone();
        }
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo { discoverability: DiscoverabilitySupport::ForcedDiscoverable }
    }
}

/// The person at the authenticator: always present, verified when the authenticator can verify
/// and is asked to. Told that the authenticator already holds a credential the RP excludes, it
/// stops the registration (passkey-rs leaves that refusal to the user interface).
#[derive(Debug)]
struct Person {
    can_verify: bool,
}

#[async_trait::async_trait]
impl UserValidationMethod for Person {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck { presence, verification: verification && self.can_verify })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(self.can_verify)
    }
}

/// The authenticator of `state`.
fn authenticator(state: &State) -> Result<Authenticator<Store, Person, RustCryptoBackend>, Refusal> {
    let aaguid: [u8; 16] = HEXLOWER_PERMISSIVE
        .decode(state.aaguid.as_bytes())
        .ok()
        .and_then(|a| a.try_into().ok())
        .ok_or_else(|| format!("aaguid {:?} is not 32 hex digits", state.aaguid))?;
    let passkeys = state.credentials.iter().map(StoredPasskey::to_passkey).collect::<Result<_, _>>()?;
    let mut authenticator = Authenticator::new(
        Aaguid::from(aaguid),
        Store { passkeys },
        Person { can_verify: state.uv },
        RustCryptoBackend,
    );
    authenticator.set_make_credentials_with_signature_counter(state.counter);
    Ok(authenticator)
}

/// Stores the credentials of `store` in `state`, and `state` in `path`.
fn keep(path: &str, mut state: State, store: &Store) -> Result<(), Refusal> {
    state.credentials = store.passkeys.iter().map(StoredPasskey::from_passkey).collect::<Result<_, _>>()?;
    save_state(path, &state)
}

/// Runs a future to completion on this thread (passkey-rs's API is async; nothing here waits).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// passkey-client's error, with an authenticator's CTAP2 status code named.
fn refusal(e: WebauthnError) -> String {
    match e {
        WebauthnError::AuthenticatorError(code) => format!("{:?} (CTAP2 status {code:#04x})", StatusCode::from(code)),
        other => format!("{other:?}"),
    }
}

fn origin(o: &mut Opts) -> Result<url::Url, Refusal> {
    let origin = o.required("origin")?;
    url::Url::parse(&origin).map_err(|e| format!("origin {origin:?} is not a URL: {e}"))
}

/// `public_key` as given, or else what `simple` builds from the simple fields.
fn public_key(o: &mut Opts, simple: impl FnOnce(&mut Opts) -> Result<Value, Refusal>) -> Result<Value, Refusal> {
    match o.take("public_key") {
        Some(v @ Value::Object(_)) => Ok(v),
        Some(v) => Err(format!("option \"public_key\" must be an object, got {v}")),
        None => simple(o),
    }
}

// --- the commands --------------------------------------------------------------------------------

fn create(options: Value) -> Result<Value, Refusal> {
    let mut o = Opts::new(options)?;
    let public_key = public_key(&mut o, |o| {
        let rp_id = o.required("rp_id")?;
        let alg = match o.take("alg") {
            None => -7,
            Some(v) => v.as_i64().ok_or_else(|| format!("option \"alg\" must be an integer, got {v}"))?,
        };
        let user_name = o.string("user_name")?.unwrap_or_default();
        Ok(json!({
            "rp": { "id": rp_id, "name": rp_id },
            "user": { "id": o.required("user_id")?, "name": user_name, "displayName": user_name },
            "challenge": o.required("challenge")?,
            "pubKeyCredParams": [{ "type": "public-key", "alg": alg }],
            "authenticatorSelection": {
                "residentKey": "required",
                "userVerification": o.string("user_verification")?.unwrap_or_else(|| "preferred".to_owned()),
            },
            "attestation": "none",
        }))
    })?;
    let origin = origin(&mut o)?;
    let path = o.required("state")?;
    let (uv, counter, aaguid) = (o.bool("uv")?, o.bool("counter")?, o.string("aaguid")?);
    o.finish()?;

    let state = if Path::new(&path).exists() {
        let state = load_state(&path)?;
        let given = |name: &str, value: Option<String>, stored: String| match value {
            Some(v) if v != stored => {
                Err(format!("{name} {v} differs from the authenticator's in {path:?} ({stored})"))
            }
            _ => Ok(()),
        };
        given("uv", uv.map(|b| b.to_string()), state.uv.to_string())?;
        given("counter", counter.map(|b| b.to_string()), state.counter.to_string())?;
        given("aaguid", aaguid.map(|a| a.to_lowercase()), state.aaguid.clone())?;
        state
    } else {
        State {
            version: STATE_VERSION,
            uv: uv.unwrap_or(true),
            counter: counter.unwrap_or(false),
            aaguid: aaguid.unwrap_or_else(|| "00".repeat(16)).to_lowercase(),
            credentials: Vec::new(),
        }
    };
    let request: CredentialCreationOptions = serde_json::from_value(json!({ "publicKey": public_key }))
        .map_err(|e| format!("passkey-rs does not read the creation options {public_key}: {e}"))?;
    // passkey-client is the browser in front of the authenticator.
    let mut client = Client::new(authenticator(&state)?);
    let made = block_on(client.register(origin, request, DefaultClientData))
        .map_err(|e| format!("passkey-rs refused to register: {}", refusal(e)))?;
    keep(&path, state, client.authenticator().store())?;
    let r = &made.response;
    Ok(json!({
        "credential_id": b64(&made.raw_id),
        "client_data_json": b64(&r.client_data_json),
        "attestation_object": b64(&r.attestation_object),
        "authenticator_data": b64(&r.authenticator_data),
        "alg": r.public_key_algorithm,
    }))
}

fn get(options: Value) -> Result<Value, Refusal> {
    let mut o = Opts::new(options)?;
    let public_key = public_key(&mut o, |o| {
        let allow: Vec<Value> =
            o.string("credential_id")?.into_iter().map(|id| json!({ "type": "public-key", "id": id })).collect();
        Ok(json!({
            "rpId": o.required("rp_id")?,
            "challenge": o.required("challenge")?,
            "allowCredentials": allow,
            "userVerification": o.string("user_verification")?.unwrap_or_else(|| "preferred".to_owned()),
        }))
    })?;
    let origin = origin(&mut o)?;
    let path = o.required("state")?;
    o.finish()?;

    let state = load_state(&path)?;
    let request: CredentialRequestOptions = serde_json::from_value(json!({ "publicKey": public_key }))
        .map_err(|e| format!("passkey-rs does not read the request options {public_key}: {e}"))?;
    // passkey-client is the browser in front of the authenticator.
    let mut client = Client::new(authenticator(&state)?);
    let got = block_on(client.authenticate(origin, request, DefaultClientData))
        .map_err(|e| format!("passkey-rs refused to assert: {}", refusal(e)))?;
    keep(&path, state, client.authenticator().store())?;
    let r = &got.response;
    Ok(json!({
        "credential_id": b64(&got.raw_id),
        "client_data_json": b64(&r.client_data_json),
        "authenticator_data": b64(&r.authenticator_data),
        "signature": b64(&r.signature),
        "user_handle": r.user_handle.as_ref().map(|h| b64(h)),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn run(command: &str, options: Value) -> Result<Value, Refusal> {
        if command == "create" {
            create(options)
        } else {
            get(options)
        }
    }

    #[test]
    fn a_credential_survives_in_its_state_file_and_signs_twice() {
        let dir = std::env::temp_dir().join(format!("passkey-rs-authenticator-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let state = dir.join("state.json");
        let _ = fs::remove_file(&state);
        let state = state.to_str().unwrap();
        let made = run(
            "create",
            json!({ "rp_id": "example.com", "origin": "https://example.com", "challenge": "Y2hhbGxlbmdl",
                    "user_id": "dXNlcg", "state": state, "counter": true }),
        )
        .unwrap();
        assert_eq!(made["alg"], -7);
        let mode = fs::metadata(state).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        for _ in 0..2 {
            let got = run(
                "get",
                json!({ "rp_id": "example.com", "origin": "https://example.com", "challenge": "YQ", "state": state }),
            )
            .unwrap();
            assert_eq!((&got["credential_id"], &got["user_handle"]), (&made["credential_id"], &json!("dXNlcg")));
        }
        let stored = load_state(state).unwrap();
        assert_eq!(stored.credentials[0].counter, Some(2));
        assert!(run(
            "get",
            json!({ "rp_id": "example.com", "origin": "https://example.com", "challenge": "YQ",
                                   "state": state, "typo": 1 })
        )
        .unwrap_err()
        .contains("typo"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
