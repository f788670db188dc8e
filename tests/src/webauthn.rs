//! What the WebAuthn tests share (the integration modules `webauthn`, `webauthn_browser`,
//! `webauthn_passkey_rs`, `webauthn_verifier` and `pi_webauthn`): the relying party they talk to
//! and the three independent authenticators they answer it with.
//!
//! - [`RelyingParty`]: a daemon with the `token-webauthn` plugin and an HTTP listener, an API
//!   admin, a realm `test` over a passwd resolver with alice and bob ([`PASSWD`]) and the relying
//!   party's enrollment policy ([`rp_policy`]); privacyIDEA's requests of the ceremonies (the two
//!   `/token/init` steps of a webauthn token and of a passkey, the PIN-only check's challenge and
//!   its answer, `/validate/initialize` and a passkey's answer), the native API's
//!   `/v1/admin/tokens`, and the audit rows the tests read.
//! - The software authenticator (`tests/tools/soft_authenticator.py`): [`soft`], [`try_soft`],
//!   [`python`], and [`SoftCredential`], one credential answering privacyIDEA's requests.
//! - passkey-rs (`tests/tools/passkey-rs-authenticator`, built by `make passkey-rs-authenticator`
//!   or named by `PASSKEY_RS_AUTHENTICATOR`; without it the tests fail naming that step):
//!   [`passkey_rs`] and [`PasskeyRs`], one authenticator behind passkey-rs's client.
//! - Headless Chromium's virtual authenticator, through `node tests/tools/webauthn_browser/driver.mjs`:
//!   [`Browser`]; `COUNTERSIGN_SKIP_BROWSER=1` skips the tests that use it, and a missing Node.js,
//!   Chromium or playwright-core fails them naming `scripts/install-deps.sh`.
//! - The options privacyIDEA's client (`pi-webauthn.js`) builds from `webAuthnRegisterRequest` and
//!   `webAuthnSignRequest`: [`pi_creation_options`], [`pi_request_options`].
//!
//! The authenticators' answers are JSON with binary values in base64url without padding
//! ([`b64url`], [`unb64url`], [`field`]).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::privacyidea::{send, Shape};
use crate::{http, request, Daemon, WEBAUTHN_PLUGIN};

/// The RP id of [`RelyingParty::start`].
pub const RP_ID: &str = "example.com";
/// The relying party's name in [`RelyingParty::start`].
pub const RP_NAME: &str = "Example Corp";
/// The origin of [`RP_ID`] (allowed by default) and of the authenticators' clients.
pub const ORIGIN: &str = "https://example.com";

/// The passwd file of the realm `test`: alice and bob.
pub const PASSWD: &str = "alice:x:1000:1000:alice,,,:/home/alice:/bin/sh\nbob:x:1001:1001:bob,,,:/home/bob:/bin/sh\n";

/// The AAGUID [`PasskeyRs`] gives its authenticators, hex.
pub const PASSKEY_RS_AAGUID: &str = "1d2a3b4c5d6e7f8091a2b3c4d5e6f708";

/// The variable that skips the tests needing Chromium (locally only).
pub const SKIP_BROWSER: &str = "COUNTERSIGN_SKIP_BROWSER";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate lies in the workspace").to_path_buf()
}

/// `bytes` in base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of a base64url string value.
pub fn unb64url(v: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))).unwrap()
}

/// The string member `name` of `v`.
pub fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("{name} is not a string in {v}"))
}

/// The base64url member `name` of an authenticator's answer, decoded.
pub fn field(answer: &Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text(answer, name)).unwrap_or_else(|e| panic!("{name} is not base64url: {e}"))
}

/// `base` with the members of `extra` added or replaced (both JSON objects).
pub fn with(mut base: Value, extra: Value) -> Value {
    let (Some(members), Value::Object(extra)) = (base.as_object_mut(), extra) else {
        panic!("options are JSON objects");
    };
    members.extend(extra);
    base
}

/// Whether privacyIDEA's answer `v` accepts.
pub fn accepted(v: &Value) -> bool {
    v["result"]["authentication"] == "ACCEPT" && v["result"]["value"] == true
}

/// The enrollment policy's action naming the relying party `rp_id` and `name`, and the allowed
/// origins when given (without them, `https://<rp_id>`).
pub fn rp_policy(rp_id: &str, name: &str, origins: Option<&str>) -> String {
    let mut action = format!("webauthn_relying_party_id={rp_id}, webauthn_relying_party_name={name}");
    if let Some(origins) = origins {
        action.push_str(&format!(", webauthn_allowed_origins={origins}"));
    }
    action
}

// ---- The relying party ----

/// A daemon with the webauthn plugin and an HTTP listener, an API admin ([`ADMIN`]) logged in, a
/// realm `test` over a passwd resolver with alice and bob, and the relying party's enrollment
/// policy `rp`.
#[derive(Debug)]
pub struct RelyingParty {
    pub d: Daemon,
    /// The HTTP listener's port on 127.0.0.1.
    pub port: u16,
    /// The API admin's session token.
    pub auth: String,
    /// The passwd file and the authenticators' state files ([`RelyingParty::state_file`]).
    pub dir: TempDir,
    /// The RP id of the policy.
    pub rp_id: String,
}

impl RelyingParty {
    /// The relying party [`RP_ID`] ([`RP_NAME`], its origin [`ORIGIN`] by default), with
    /// `config` (more TOML) for the daemon.
    pub fn start(config: &str) -> RelyingParty {
        RelyingParty::start_for(RP_ID, RP_NAME, None, config)
    }

    /// The relying party `rp_id` named `name`, allowing `origins` when given ([`rp_policy`]), with
    /// `config` for the daemon (the sign-in throttle is off).
    pub fn start_for(rp_id: &str, name: &str, origins: Option<&str>, config: &str) -> RelyingParty {
        let (d, port, auth) =
            crate::privacyidea::api_daemon(&[WEBAUTHN_PLUGIN], &format!("[validate]\nthrottle_base_ms = 0\n{config}"));
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, PASSWD).unwrap();
        let rp = RelyingParty { d, port, auth, dir, rp_id: rp_id.to_owned() };
        rp.admin("/resolver/files", &[("type", "passwdresolver"), ("fileName", passwd.to_str().unwrap())]);
        rp.admin("/realm/test", &[("resolvers", "files")]);
        rp.policy("rp", "enrollment", &rp_policy(rp_id, name, origins));
        rp
    }

    /// An authenticator's state file `<name>.json` in [`RelyingParty::dir`].
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.json"))
    }

    /// Makes `name` an API admin too (its password is never used).
    pub fn add_api_admin(&self, name: &str) {
        let out = self.d.cli_stdin(&["privacyidea", "admin-add", name], "a long admin password\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// An admin's form POST that must succeed (HTTP 200, `result.status` true): the answer.
    pub fn admin(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = self.admin_status(path, params);
        assert!(status == 200 && v["result"]["status"] == true, "POST {path} -> {status} {v}");
        v
    }

    /// An admin's form POST: status and answer.
    pub fn admin_status(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        send(self.port, Shape::Form, "POST", path, params, &[("Authorization", &self.auth)])
    }

    /// Sets the active policy `name` in `scope` to `action`.
    pub fn policy(&self, name: &str, scope: &str, action: &str) {
        self.admin(&format!("/policy/{name}"), &[("scope", scope), ("action", action), ("active", "true")]);
    }

    /// privacyIDEA's `/validate/check` (a form), which must answer HTTP 200: the answer.
    pub fn check(&self, params: &[(&str, &str)]) -> Value {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/check", params, &[]);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// `body` POSTed as JSON, as privacyIDEA's web UI (Angular's `HttpClient`) sends it, with
    /// the `Authorization` header when given: status and answer (which must be JSON).
    pub fn post_json(&self, path: &str, body: &Value, authorization: Option<&str>) -> (u16, Value) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        let (status, text) = http(self.port, "POST", path, &headers, &body.to_string());
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path} -> {status} {text:?}: {e}")))
    }

    /// `POST /v1/admin/tokens` on admin.sock: status and answer.
    pub fn native_admin(&self, body: Value) -> (u16, Value) {
        request(&self.d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()))
    }

    /// The first `/token/init` step of a webauthn token (PIN `1234`) for `user` in realm `test`:
    /// its `webAuthnRegisterRequest` (the token waits, `clientwait`, under the serial it names).
    pub fn begin(&self, user: &str) -> Value {
        let v = self.admin("/token/init", &[("type", "webauthn"), ("user", user), ("realm", "test"), ("pin", "1234")]);
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        let request = v["detail"]["webAuthnRegisterRequest"].clone();
        assert_eq!(v["detail"]["serial"], request["serialNumber"], "{v}");
        request
    }

    /// The second `/token/init` step answering `request` with the registration `made` (its
    /// `attestation_object` and `client_data_json`, as the software authenticator and passkey-rs
    /// answer): status and answer.
    pub fn finish(&self, request: &Value, made: &Value) -> (u16, Value) {
        self.finish_with(request, text(made, "attestation_object"), text(made, "client_data_json"))
    }

    /// [`RelyingParty::finish`] with the registration's parts as privacyIDEA's client sends them
    /// (`regdata`, `clientdata`).
    pub fn finish_with(&self, request: &Value, regdata: &str, clientdata: &str) -> (u16, Value) {
        self.admin_status(
            "/token/init",
            &[
                ("type", "webauthn"),
                ("serial", text(request, "serialNumber")),
                ("transaction_id", text(request, "transaction_id")),
                ("regdata", regdata),
                ("clientdata", clientdata),
            ],
        )
    }

    /// A PIN-only (`1234`) check of `user`: the transaction id and the sign request of its one
    /// challenge, a webauthn one, whose response input the client hides.
    pub fn challenge(&self, user: &str) -> (String, Value) {
        let v = self.check(&[("user", user), ("realm", "test"), ("pass", "1234")]);
        assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
        let c = &v["detail"]["multi_challenge"][0];
        assert_eq!(c["client_mode"], "webauthn", "{v}");
        assert_eq!(c["attributes"]["hideResponseInput"], true, "{v}");
        (text(c, "transaction_id").to_owned(), c["attributes"]["webAuthnSignRequest"].clone())
    }

    /// The answer to transaction `tx` with `assertion` (a `get` answer of the software
    /// authenticator or passkey-rs: `credential_id`, `client_data_json`, `signature`,
    /// `authenticator_data`), as `user` in realm `test` when given, with `userhandle` when
    /// given: the check's answer.
    pub fn answer_with(&self, user: Option<&str>, tx: &str, assertion: &Value, userhandle: Option<&str>) -> Value {
        let mut params = vec![
            ("transaction_id", tx),
            ("pass", ""),
            ("credentialid", text(assertion, "credential_id")),
            ("clientdata", text(assertion, "client_data_json")),
            ("signaturedata", text(assertion, "signature")),
            ("authenticatordata", text(assertion, "authenticator_data")),
        ];
        if let Some(u) = user {
            params.extend([("user", u), ("realm", "test")]);
        }
        if let Some(h) = userhandle {
            params.push(("userhandle", h));
        }
        self.check(&params)
    }

    /// [`RelyingParty::answer_with`] without a user handle.
    pub fn answer(&self, user: Option<&str>, tx: &str, assertion: &Value) -> Value {
        self.answer_with(user, tx, assertion, None)
    }

    /// [`RelyingParty::answer_with`] as privacyIDEA's client (`pi-webauthn.js`) sends it, as
    /// `user`: a user handle only when the authenticator gave one, as the text its bytes spell.
    pub fn answer_as_client(&self, user: &str, tx: &str, assertion: &Value) -> Value {
        let handle = &assertion["user_handle"];
        let handle = (!handle.is_null()).then(|| String::from_utf8(unb64url(handle)).unwrap());
        self.answer_with(Some(user), tx, assertion, handle.as_deref())
    }

    /// The first `/token/init` step of a passkey for `user` in realm `test`: the serial, the
    /// transaction id and `passkey_registration` (a resident key required).
    pub fn begin_passkey(&self, user: &str) -> (String, String, Value) {
        let v = self.admin("/token/init", &[("type", "passkey"), ("user", user), ("realm", "test")]);
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        let reg = v["detail"]["passkey_registration"].clone();
        assert_eq!(reg["authenticatorSelection"]["residentKey"], "required", "{v}");
        (text(&v["detail"], "serial").to_owned(), text(&v["detail"], "transaction_id").to_owned(), reg)
    }

    /// The second `/token/init` step of passkey `serial` in transaction `tx` with the
    /// registration `made` (`attestation_object`, `client_data_json`, `credential_id`), as a
    /// form: status and answer.
    pub fn finish_passkey(&self, serial: &str, tx: &str, made: &Value) -> (u16, Value) {
        self.admin_status(
            "/token/init",
            &[
                ("type", "passkey"),
                ("serial", serial),
                ("transaction_id", tx),
                ("attestationObject", text(made, "attestation_object")),
                ("clientDataJSON", text(made, "client_data_json")),
                ("credential_id", text(made, "credential_id")),
            ],
        )
    }

    /// A usernameless sign-in's start (`/validate/initialize type=passkey`, a form):
    /// `detail.passkey`, for this relying party.
    pub fn initialize_passkey(&self) -> Value {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/initialize", &[("type", "passkey")], &[]);
        assert_eq!(status, 200, "{v}");
        let p = v["detail"]["passkey"].clone();
        assert_eq!(p["rpId"], self.rp_id.as_str(), "{v}");
        p
    }

    /// A passkey's `assertion` (`credential_id`, `authenticator_data`, `client_data_json`,
    /// `signature`, and `user_handle` when it gave one) answering sign-in `tx` at `path`
    /// (`/validate/check`, or `/auth` for an API admin), as privacyIDEA's clients send it (JSON,
    /// no user): status and answer.
    pub fn passkey_answer(&self, path: &str, tx: &str, assertion: &Value) -> (u16, Value) {
        let mut body = json!({
            "transaction_id": tx,
            "credential_id": text(assertion, "credential_id"),
            "authenticatorData": text(assertion, "authenticator_data"),
            "clientDataJSON": text(assertion, "client_data_json"),
            "signature": text(assertion, "signature"),
        });
        if let Some(h) = assertion["user_handle"].as_str() {
            body["userHandle"] = json!(h);
        }
        self.post_json(path, &body, None)
    }

    /// The newest audit row of token `serial`.
    pub fn last_audit(&self, serial: &str) -> Value {
        self.d
            .auth_audit()
            .into_iter()
            .filter(|r| r["serial"] == serial)
            .max_by_key(|r| r["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no audit row for {serial}"))
    }

    /// The newest audit row.
    pub fn newest_audit(&self) -> Value {
        self.d.auth_audit().into_iter().max_by_key(|r| r["id"].as_i64().unwrap()).unwrap()
    }

    /// The newest `api/auth` audit row (an API admin's login).
    pub fn last_login_audit(&self) -> Value {
        let rows = self.d.auth_audit();
        rows.into_iter().filter(|r| r["action"] == "api/auth").max_by_key(|r| r["id"].as_i64().unwrap()).unwrap()
    }

    /// The detail of the newest audit row of `serial`, which must be an accepted assertion.
    pub fn accepted_detail(&self, serial: &str) -> String {
        let row = self.last_audit(serial);
        let detail = row["detail"].as_str().unwrap_or_default().to_owned();
        assert!(row["result"] == "accept" && detail.contains("WebAuthn assertion"), "{row}");
        detail
    }

    /// The sign count the newest audit row of `serial` reports for an accepted assertion.
    pub fn audited_sign_count(&self, serial: &str) -> u64 {
        let detail = self.accepted_detail(serial);
        let at = detail.find("sign count ").unwrap_or_else(|| panic!("no sign count audited: {detail}"));
        detail[at + "sign count ".len()..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    }
}

// ---- privacyIDEA's client ----

/// The creation options privacyIDEA's client (`pi_webauthn.register` in its `pi-webauthn.js`;
/// its newer web UI maps the same fields) builds from `webAuthnRegisterRequest`, in
/// PublicKeyCredentialCreationOptionsJSON (byte strings base64url, which the browser decodes as
/// the client does): `challenge` is the `nonce` (the client decodes it, the browser encodes it
/// again), `user.id` the UTF-8 bytes of `serialNumber`, `rp` the `relyingParty`,
/// `pubKeyCredParams` the `pubKeyCredAlgorithms`, `timeout` (60000) and `attestation` (`direct`)
/// as given, `authenticatorSelection` when given, the `authenticatorSelectionList` as the
/// `authnSel` extension, `excludeCredentials` by id.
pub fn pi_creation_options(request: &Value) -> Value {
    let serial = text(request, "serialNumber");
    let mut options = json!({
        "challenge": request["nonce"],
        "rp": request["relyingParty"],
        "user": { "id": b64url(serial.as_bytes()), "name": request["name"], "displayName": request["displayName"] },
        "pubKeyCredParams": request["pubKeyCredAlgorithms"],
        "timeout": request.get("timeout").cloned().unwrap_or(json!(60000)),
        "attestation": request.get("attestation").cloned().unwrap_or(json!("direct")),
        "extensions": {},
    });
    if let Some(s) = request.get("authenticatorSelection") {
        options["authenticatorSelection"] = s.clone();
    }
    if let Some(list) = request.get("authenticatorSelectionList") {
        options["extensions"]["authnSel"] = list.clone();
    }
    if let Some(exclude) = request.get("excludeCredentials").and_then(Value::as_array) {
        options["excludeCredentials"] = exclude
            .iter()
            .map(|x| json!({ "id": x["id"], "transports": x["transports"], "type": x["type"] }))
            .collect();
    }
    options
}

/// The request options privacyIDEA's client (`pi_webauthn.sign`) builds from
/// `webAuthnSignRequest`: the challenge (base64url-decoded by the client), `allowCredentials` by
/// id with their type and transports, `rpId`, `userVerification`, `timeout` (60000).
pub fn pi_request_options(sign: &Value) -> Value {
    json!({
        "challenge": sign["challenge"],
        "allowCredentials": sign["allowCredentials"].as_array().unwrap().iter()
            .map(|x| json!({ "id": x["id"], "type": x["type"], "transports": x["transports"] }))
            .collect::<Vec<_>>(),
        "rpId": sign["rpId"],
        "userVerification": sign["userVerification"],
        "timeout": sign.get("timeout").cloned().unwrap_or(json!(60000)),
    })
}

// ---- The software authenticator ----

/// `tests/tools/soft_authenticator.py`.
pub fn soft_authenticator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/soft_authenticator.py")
}

/// `command` started with its standard streams piped; `runs` says what must be there when it
/// cannot start.
fn spawn_piped(command: &mut Command, runs: &str) -> Child {
    let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    child.unwrap_or_else(|e| panic!("{runs}: {e}"))
}

/// Runs `command` with `input` on stdin: the JSON object it prints, or its stderr when it fails.
fn run_json(command: &mut Command, runs: &str, input: &str) -> Result<Value, String> {
    let mut child = spawn_piped(command, runs);
    child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("the program reads its input");
    let out = child.wait_with_output().expect("the program finishes");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `python3` with `args`, `input` on stdin: the JSON object it prints, or its stderr when it
/// fails.
pub fn python(args: &[&OsStr], input: &str) -> Result<Value, String> {
    run_json(
        // Importing the module must not leave a __pycache__ in the source tree.
        Command::new("python3").args(args).env("PYTHONDONTWRITEBYTECODE", "1"),
        "python3 runs (scripts/install-deps.sh installs it, with the cryptography package)",
        input,
    )
}

/// Runs the software authenticator's `command` (`create`, `get`, `make-root`) with `options`: its
/// JSON answer, or its stderr when it refuses.
pub fn try_soft(command: &str, options: &Value) -> Result<Value, String> {
    python(&[soft_authenticator().as_os_str(), command.as_ref()], &options.to_string())
}

/// [`try_soft`], which must succeed.
pub fn soft(command: &str, options: &Value) -> Value {
    try_soft(command, options).unwrap_or_else(|e| panic!("soft_authenticator {command}: {e}"))
}

/// One credential of the software authenticator, kept in its state file.
#[derive(Debug)]
pub struct SoftCredential {
    pub state: PathBuf,
}

impl SoftCredential {
    /// A registration answering `request` (privacyIDEA's `webAuthnRegisterRequest`) as a browser
    /// at [`ORIGIN`] makes it with a packed self attestation, `extra` options (`origin`,
    /// `attestation`, `uv`, a root, ...) added or replaced; the credential is kept in `state`.
    /// The credential and the authenticator's answer.
    pub fn create(state: PathBuf, request: &Value, extra: Value) -> (SoftCredential, Value) {
        let options = json!({
            "rp_id": request["relyingParty"]["id"],
            "origin": ORIGIN,
            // The client decodes the nonce and the browser encodes it again: the same string.
            "challenge": request["nonce"],
            "user_id": b64url(text(request, "serialNumber").as_bytes()),
            "user_name": request["name"],
            "attestation": "packed-self",
            "state": state.to_str().unwrap(),
        });
        let made = soft("create", &with(options, extra));
        (SoftCredential { state }, made)
    }

    /// An assertion answering `sign` (its `rpId` and `challenge`, as a `webAuthnSignRequest` has
    /// them) from [`ORIGIN`], `extra` options added or replaced.
    pub fn get(&self, sign: &Value, extra: Value) -> Value {
        let options = json!({
            "state": self.state.to_str().unwrap(),
            "rp_id": sign["rpId"],
            "origin": ORIGIN,
            "challenge": sign["challenge"],
        });
        soft("get", &with(options, extra))
    }
}

// ---- passkey-rs ----

/// The passkey-rs authenticator program: `PASSKEY_RS_AUTHENTICATOR`, else where `make test`
/// builds it; fails naming the build step when it is missing.
pub fn passkey_rs_program() -> PathBuf {
    let path = std::env::var_os("PASSKEY_RS_AUTHENTICATOR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/passkey-rs-authenticator/target/debug/passkey-rs-authenticator")
    });
    assert!(
        path.is_file(),
        "{} is missing: build it with `make passkey-rs-authenticator` (a step of `make test`), i.e. \
         cargo build --locked --manifest-path tests/tools/passkey-rs-authenticator/Cargo.toml \
         --target-dir tests/tools/passkey-rs-authenticator/target",
        path.display()
    );
    path
}

/// Runs the passkey-rs program's `command` with `options`: its JSON answer, or its stderr when it
/// refuses.
pub fn passkey_rs(command: &str, options: &Value) -> Result<Value, String> {
    run_json(Command::new(passkey_rs_program()).arg(command), "the passkey-rs authenticator runs", &options.to_string())
}

/// One passkey-rs authenticator (its credentials in a state file, AAGUID [`PASSKEY_RS_AAGUID`])
/// behind passkey-rs's client, as a browser at `origin`.
#[derive(Debug)]
pub struct PasskeyRs {
    pub state: PathBuf,
    /// Whether the authenticator can verify its user.
    pub can_verify: bool,
    /// Whether it keeps a sign counter (a synced passkey does not).
    pub counter: bool,
    /// The browser's origin ([`ORIGIN`] unless changed).
    pub origin: String,
}

impl PasskeyRs {
    pub fn new(state: PathBuf, can_verify: bool, counter: bool) -> PasskeyRs {
        PasskeyRs { state, can_verify, counter, origin: ORIGIN.to_owned() }
    }

    /// `navigator.credentials.create({publicKey})`, `public_key` being WebAuthn's
    /// PublicKeyCredentialCreationOptionsJSON: the answer, or passkey-rs's refusal.
    pub fn try_create(&self, public_key: &Value) -> Result<Value, String> {
        passkey_rs(
            "create",
            &json!({
                "public_key": public_key,
                "origin": self.origin,
                "state": self.state.to_str().unwrap(),
                "uv": self.can_verify,
                "counter": self.counter,
                "aaguid": PASSKEY_RS_AAGUID,
            }),
        )
    }

    /// [`PasskeyRs::try_create`], which must succeed.
    pub fn create(&self, public_key: &Value) -> Value {
        self.try_create(public_key).unwrap_or_else(|e| panic!("passkey-rs refused to register with {public_key}: {e}"))
    }

    /// `navigator.credentials.get({publicKey})` with PublicKeyCredentialRequestOptionsJSON, which
    /// must succeed.
    pub fn get(&self, public_key: &Value) -> Value {
        passkey_rs(
            "get",
            &json!({ "public_key": public_key, "origin": self.origin, "state": self.state.to_str().unwrap() }),
        )
        .unwrap_or_else(|e| panic!("passkey-rs refused to assert with {public_key}: {e}"))
    }
}

// ---- Chromium ----

const INSTALL: &str = "run scripts/install-deps.sh (`make deps`), or set COUNTERSIGN_SKIP_BROWSER=1 to skip locally";
/// How long one answer of the driver may take (the browser's start included, for the first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium driver (`tests/tools/webauthn_browser/driver.mjs`: headless Chromium with one
/// virtual authenticator, on a page at `http://localhost:<port>`), spoken to in JSON lines.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// `http://localhost:<port>`, the page's origin.
    pub origin: String,
    /// The page's RP id, `localhost`.
    pub rp_id: String,
}

impl Browser {
    /// Starts the driver with its `args` (`--transport=usb`, `--user-verification=false`, ...)
    /// for `test`; `None` when the browser tests are skipped ([`SKIP_BROWSER`]` = 1`). Fails
    /// naming `scripts/install-deps.sh` when Node.js, Chromium or playwright-core is missing.
    pub fn start(test: &str, args: &[&str]) -> Option<Browser> {
        if std::env::var(SKIP_BROWSER).as_deref() == Ok("1") {
            println!("{test}: skipped ({SKIP_BROWSER}=1): the Chromium WebAuthn checks did not run");
            return None;
        }
        let chromium = std::env::var("COUNTERSIGN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let playwright = repo().join(".tools/node/node_modules/playwright-core/package.json");
        let node = Command::new("node").arg("--version").output();
        assert!(node.is_ok_and(|o| o.status.success()), "node (Node.js) is missing: {INSTALL}");
        assert!(Path::new(&chromium).exists(), "Chromium is missing at {chromium}: {INSTALL}");
        assert!(playwright.exists(), "playwright-core is missing ({} not found): {INSTALL}", playwright.display());

        let started = Instant::now();
        let driver = repo().join("tests/tools/webauthn_browser/driver.mjs");
        let mut child = spawn_piped(Command::new("node").arg(driver).args(args), "node starts the driver");
        let stdout = child.stdout.take().expect("driver stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let child_stderr = child.stderr.take().expect("driver stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(child_stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("driver: {line}");
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let stdin = child.stdin.take();
        let mut browser = Browser { child, stdin, answers, stderr, origin: String::new(), rp_id: String::new() };
        let info = browser.ok(json!({ "op": "info" }));
        assert_eq!(info["rp_id"], "localhost", "{info}");
        browser.origin = text(&info, "origin").to_owned();
        browser.rp_id = text(&info, "rp_id").to_owned();
        println!(
            "{test}: Chromium {} ready at {} in {} ms (browser and authenticator {} ms)",
            info["browser"].as_str().unwrap_or("?"),
            browser.origin,
            started.elapsed().as_millis(),
            info["startup_ms"]
        );
        Some(browser)
    }

    /// Sends `command`: the answer, whatever it says.
    pub fn call(&mut self, command: &Value) -> Value {
        let stdin = self.stdin.as_mut().expect("driver stdin");
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).unwrap_or_else(|e| {
            panic!("cannot write to the driver ({e}); its stderr: {}", self.stderr.lock().unwrap())
        });
        match self.answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver answered non-JSON {line:?}: {e}"))
            }
            Err(e) => {
                // Give a driver that is exiting a moment to say why.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "no answer from the driver to {} ({e}); its stderr: {}",
                    command["op"],
                    self.stderr.lock().unwrap()
                )
            }
        }
    }

    /// Sends `command`: the answer, which must be `ok`.
    pub fn ok(&mut self, command: Value) -> Value {
        let answer = self.call(&command);
        assert_eq!(answer["ok"], true, "{} failed: {answer}", command["op"]);
        answer
    }

    /// Runs a ceremony (`create` or `get`) with `public_key`, printing how long it took: the
    /// browser's answer (`ok` false when it refused).
    pub fn ceremony(&mut self, label: &str, op: &str, public_key: Value) -> Value {
        let t = Instant::now();
        let answer = self.call(&json!({ "op": op, "publicKey": public_key }));
        println!("  {label}: {} ms", t.elapsed().as_millis());
        answer
    }

    /// The virtual authenticator's record of `credential_id` (base64url): its id, RP id, user
    /// handle, sign count, whether it is resident.
    pub fn credential(&mut self, credential_id: &str) -> Value {
        let creds = self.ok(json!({ "op": "credentials" }));
        let c = creds["credentials"].as_array().unwrap().iter().find(|c| c["id"] == credential_id).cloned();
        c.unwrap_or_else(|| panic!("the authenticator has no credential {credential_id}: {creds}"))
    }

    /// The sign count the virtual authenticator keeps for `credential_id` (base64url).
    pub fn sign_count(&mut self, credential_id: &str) -> u64 {
        self.credential(credential_id)["signCount"].as_u64().unwrap()
    }

    /// Makes the authenticator's user verification succeed or fail.
    pub fn set_uv(&mut self, verified: bool) {
        self.ok(json!({ "op": "set_uv", "verified": verified }));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, r#"{{"op":"quit"}}"#);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
