//! WebAuthn and passkey tokens (issue 17) against 1Password's passkey-rs (`passkey-authenticator`
//! as the authenticator, `passkey-client` as the browser that builds clientDataJSON), driven as a
//! program (`tests/tools/passkey-rs-authenticator`, its own workspace; `make test` builds it), the
//! real daemon and its sandboxed `token-webauthn` plugin:
//! - through privacyIDEA's API: `/token/init` twice with the options privacyIDEA's client builds
//!   from `webAuthnRegisterRequest`; passkey-rs's `none` attestation refused under the default
//!   level `untrusted` and accepted with `webauthn_authenticator_attestation_level=none`; a
//!   PIN-only `/validate/check` answered with its assertion, twice (passkey-rs keeps no sign
//!   count: 0 both times, accepted as "no counter"), a replay refused; a counting passkey-rs
//!   (1, 2 audited) and a clone of it (its state file copied) refused when its count does not
//!   advance; an assertion without user verification refused once a policy requires it;
//! - through the native API: `webauthn.public_key` (WebAuthn's creation options JSON) and a
//!   challenge's `webauthn` sign request given to passkey-rs as they are, the second step on
//!   admin.sock and the answers on api.sock's `/v1/validate/check`, with the user and without
//!   (the credential names its token);
//! - a passkey: `/token/init type=passkey`'s `passkey_registration` given to passkey-rs as it
//!   is (its challenge string's UTF-8 bytes being what is signed), a second passkey of the same
//!   user on the same authenticator refused by passkey-rs for `excludeCredentials`, then
//!   usernameless sign-ins (`/validate/initialize type=passkey`, `/validate/check` with the
//!   assertion alone) answered with the user's name, once per challenge; a cloned passkey's
//!   count that does not advance, and an assertion without UV where a policy requires it,
//!   refused; a webauthn token's (also discoverable) credential answers no usernameless sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use countersign_tests::privacyidea::{send, session, Shape, ADMIN};
use countersign_tests::{request, Daemon, WEBAUTHN_PLUGIN};
use serde_json::{json, Value};

const RP: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const AAGUID_HEX: &str = "1d2a3b4c5d6e7f8091a2b3c4d5e6f708";

/// The passkey-rs authenticator program: `PASSKEY_RS_AUTHENTICATOR`, else where `make test`
/// builds it.
fn program() -> PathBuf {
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

/// Runs the program's `command` with `options`: its JSON answer, or its stderr when it refuses.
fn passkey_rs(command: &str, options: &Value) -> Result<Value, String> {
    let mut child = Command::new(program())
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the passkey-rs authenticator runs");
    child.stdin.take().unwrap().write_all(options.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// One passkey-rs authenticator (its credentials in a state file) behind passkey-rs's client,
/// as a browser at [`ORIGIN`].
struct Device {
    state: PathBuf,
    can_verify: bool,
    counter: bool,
}

impl Device {
    fn new(dir: &Path, name: &str, can_verify: bool, counter: bool) -> Device {
        Device { state: dir.join(format!("{name}.json")), can_verify, counter }
    }

    /// `navigator.credentials.create({publicKey})`, `public_key` being WebAuthn's
    /// PublicKeyCredentialCreationOptionsJSON: the answer, or passkey-rs's refusal.
    fn try_create(&self, public_key: &Value) -> Result<Value, String> {
        passkey_rs(
            "create",
            &json!({
                "public_key": public_key,
                "origin": ORIGIN,
                "state": self.state.to_str().unwrap(),
                "uv": self.can_verify,
                "counter": self.counter,
                "aaguid": AAGUID_HEX,
            }),
        )
    }

    fn create(&self, public_key: &Value) -> Value {
        self.try_create(public_key).unwrap_or_else(|e| panic!("passkey-rs refused to register with {public_key}: {e}"))
    }

    /// `navigator.credentials.get({publicKey})` with PublicKeyCredentialRequestOptionsJSON.
    fn get(&self, public_key: &Value) -> Value {
        passkey_rs("get", &json!({ "public_key": public_key, "origin": ORIGIN, "state": self.state.to_str().unwrap() }))
            .unwrap_or_else(|e| panic!("passkey-rs refused to assert with {public_key}: {e}"))
    }
}

fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("{name} is not a string in {v}"))
}

/// The creation options privacyIDEA's client (`pi_webauthn.register` in `pi-webauthn.js`)
/// builds from `webAuthnRegisterRequest`: the nonce as the challenge (the client decodes it),
/// the serial's characters as `user.id`, privacyIDEA's algorithm list and selection.
fn pi_creation_options(request: &Value) -> Value {
    let serial = request["serialNumber"].as_str().unwrap();
    let mut options = json!({
        "challenge": request["nonce"],
        "rp": request["relyingParty"],
        "user": { "id": b64url(serial.as_bytes()), "name": request["name"], "displayName": request["displayName"] },
        "pubKeyCredParams": request["pubKeyCredAlgorithms"],
        "timeout": request.get("timeout").cloned().unwrap_or(json!(60000)),
        "attestation": request.get("attestation").cloned().unwrap_or(json!("direct")),
    });
    if let Some(s) = request.get("authenticatorSelection") {
        options["authenticatorSelection"] = s.clone();
    }
    options
}

/// The request options privacyIDEA's client (`pi_webauthn.sign`) builds from
/// `webAuthnSignRequest`.
fn pi_request_options(sign: &Value) -> Value {
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

/// A daemon with the webauthn plugin and an HTTP listener, an API admin, a realm `test` over a
/// passwd resolver with alice and bob, and the relying party's policies.
struct Rp {
    d: Daemon,
    port: u16,
    auth: String,
    dir: tempfile::TempDir,
}

impl Rp {
    fn start() -> Rp {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Daemon::with_plugins(
            &[WEBAUTHN_PLUGIN],
            &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\nthrottle_base_ms = 0\n"),
        );
        let out = d.cli_stdin(&["privacyidea", "admin-add", ADMIN.0], &format!("{}\n", ADMIN.1));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let auth = session(port);
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "alice:x:1000:1000:alice,,,:/home/alice:/bin/sh\nbob:x:1001:1001:bob,,,:/home/bob:/bin/sh\n",
        )
        .unwrap();
        let rp = Rp { d, port, auth, dir };
        rp.admin("/resolver/files", &[("type", "passwdresolver"), ("fileName", passwd.to_str().unwrap())]);
        rp.admin("/realm/test", &[("resolvers", "files")]);
        rp.policy(
            "rp",
            "enrollment",
            &format!("webauthn_relying_party_id={RP}, webauthn_relying_party_name=Example Corp"),
        );
        rp
    }

    fn device(&self, name: &str, can_verify: bool, counter: bool) -> Device {
        Device::new(self.dir.path(), name, can_verify, counter)
    }

    fn admin(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = self.admin_status(path, params);
        assert!(status == 200 && v["result"]["status"] == true, "POST {path} -> {status} {v}");
        v
    }

    fn admin_status(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        send(self.port, Shape::Form, "POST", path, params, &[("Authorization", &self.auth)])
    }

    fn policy(&self, name: &str, scope: &str, action: &str) {
        self.admin(&format!("/policy/{name}"), &[("scope", scope), ("action", action), ("active", "true")]);
    }

    fn check(&self, params: &[(&str, &str)]) -> Value {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/check", params, &[]);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The first `/token/init` step for `user`: its `webAuthnRegisterRequest`.
    fn begin(&self, user: &str) -> Value {
        let v = self.admin("/token/init", &[("type", "webauthn"), ("user", user), ("realm", "test"), ("pin", "1234")]);
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        v["detail"]["webAuthnRegisterRequest"].clone()
    }

    /// The second `/token/init` step with passkey-rs's registration: status and answer.
    fn finish(&self, request: &Value, made: &Value) -> (u16, Value) {
        self.admin_status(
            "/token/init",
            &[
                ("type", "webauthn"),
                ("serial", text(request, "serialNumber")),
                ("transaction_id", text(request, "transaction_id")),
                ("regdata", text(made, "attestation_object")),
                ("clientdata", text(made, "client_data_json")),
            ],
        )
    }

    /// Enrols a webauthn token for `user` with `device` (attestation level `none` set): the
    /// serial.
    fn enrol(&self, user: &str, device: &Device) -> String {
        let request = self.begin(user);
        let made = device.create(&pi_creation_options(&request));
        let (status, v) = self.finish(&request, &made);
        assert_eq!(status, 200, "{v}");
        text(&request, "serialNumber").to_owned()
    }

    /// A PIN-only check of `user`: the challenge's transaction id and sign request.
    fn challenge(&self, user: &str) -> (String, Value) {
        let v = self.check(&[("user", user), ("realm", "test"), ("pass", "1234")]);
        assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
        let c = &v["detail"]["multi_challenge"][0];
        assert_eq!(c["client_mode"], "webauthn", "{v}");
        (text(c, "transaction_id").to_owned(), c["attributes"]["webAuthnSignRequest"].clone())
    }

    /// The answer to transaction `tx` with `assertion` as `user`, as privacyIDEA's client sends
    /// it (the user handle as the text its bytes spell, when the authenticator gave one).
    fn answer(&self, user: &str, tx: &str, assertion: &Value) -> Value {
        let handle =
            assertion["user_handle"].as_str().map(|h| String::from_utf8(URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap());
        let mut params = vec![
            ("user", user),
            ("realm", "test"),
            ("transaction_id", tx),
            ("pass", ""),
            ("credentialid", text(assertion, "credential_id")),
            ("clientdata", text(assertion, "client_data_json")),
            ("signaturedata", text(assertion, "signature")),
            ("authenticatordata", text(assertion, "authenticator_data")),
        ];
        if let Some(h) = &handle {
            params.push(("userhandle", h));
        }
        self.check(&params)
    }

    /// The newest audit row of token `serial`.
    fn last_audit(&self, serial: &str) -> Value {
        self.d
            .auth_audit()
            .into_iter()
            .filter(|r| r["serial"] == serial)
            .max_by_key(|r| r["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no audit row for {serial}"))
    }

    /// The detail of the newest audit row of `serial`, which must be an accepted assertion.
    fn accepted_detail(&self, serial: &str) -> String {
        let row = self.last_audit(serial);
        let detail = row["detail"].as_str().unwrap_or_default().to_owned();
        assert!(row["result"] == "accept" && detail.contains("WebAuthn assertion"), "{row}");
        detail
    }

    /// `POST /v1/admin/tokens` on admin.sock: status and answer.
    fn native_admin(&self, body: Value) -> (u16, Value) {
        request(&self.d.admin_sock(), "POST", "/v1/admin/tokens", Some(body.to_string().into_bytes()))
    }
}

fn accepted(v: &Value) -> bool {
    v["result"]["authentication"] == "ACCEPT" && v["result"]["value"] == true
}

/// privacyIDEA's API, passkey-rs answering: its `none` attestation refused by default and
/// accepted at level `none`, two sign-ins without a sign count, a replay refused, a counting
/// passkey-rs, and UV missing where a policy requires it.
#[test]
fn passkey_rs_registers_and_signs_in_through_privacyideas_api() {
    let rp = Rp::start();
    let refused = rp.device("refused", true, false);
    let request = rp.begin("alice");
    let serial = text(&request, "serialNumber").to_owned();
    assert_eq!(request["pubKeyCredAlgorithms"][0], json!({ "type": "public-key", "alg": -7 }), "{request}");
    // passkey-rs attests `none` whatever is asked: refused under the default level `untrusted`.
    let made = refused.create(&pi_creation_options(&request));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("webauthn_authenticator_attestation_level"), "{v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("attestation"), "{row}");
    // The token still waits: with level `none`, a new registration for the same challenge is
    // accepted.
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let device = rp.device("alice", true, false);
    let made = device.create(&pi_creation_options(&request));
    assert_eq!(made["alg"], -7, "passkey-rs picks ES256, privacyIDEA's first");
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["detail"]["attestation"], &v["detail"]["aaguid"]), (&json!("none/none"), &json!(AAGUID_HEX)), "{v}");
    let registered = rp.last_audit(&serial)["detail"].as_str().unwrap().to_owned();
    assert!(
        registered.contains(&format!("AAGUID {AAGUID_HEX}")) && registered.contains("flags UP UV BE BS"),
        "{registered}"
    );

    // Two PIN-triggered challenges, each answered once; passkey-rs keeps no sign count (0).
    let mut first = None;
    for i in 1..=2 {
        let (tx, sign) = rp.challenge("alice");
        assert_eq!(sign["allowCredentials"][0]["id"], made["credential_id"], "{sign}");
        let assertion = device.get(&pi_request_options(&sign));
        // The discoverable credential gives its user handle: user.id, the serial's characters.
        assert_eq!(assertion["user_handle"], json!(b64url(serial.as_bytes())), "{assertion}");
        let v = rp.answer("alice", &tx, &assertion);
        assert!(accepted(&v), "sign-in #{i}: {v}");
        assert_eq!(v["detail"]["serial"], serial.as_str(), "{v}");
        let detail = rp.accepted_detail(&serial);
        assert!(detail.contains("flags UP UV BE BS, sign count 0"), "sign-in #{i}: {detail}");
        first.get_or_insert((tx, assertion));
    }
    // The first answer again: its challenge is spent.
    let (tx, assertion) = first.unwrap();
    assert!(!accepted(&rp.answer("alice", &tx, &assertion)), "a replayed assertion");
    let newest = rp.d.auth_audit().into_iter().max_by_key(|r| r["id"].as_i64().unwrap()).unwrap();
    let detail = newest["detail"].as_str().unwrap_or_default();
    assert!(newest["result"] == "reject" && detail.contains("no open challenge"), "{newest}");

    // A passkey-rs that counts: 1, then 2, audited.
    let counting = rp.device("bob", true, true);
    let bob = rp.enrol("bob", &counting);
    for count in [1, 2] {
        let (tx, sign) = rp.challenge("bob");
        let v = rp.answer("bob", &tx, &counting.get(&pi_request_options(&sign)));
        assert!(accepted(&v), "count {count}: {v}");
        let detail = rp.accepted_detail(&bob);
        assert!(detail.contains(&format!("sign count {count}")), "{detail}");
    }

    // A clone of that authenticator (its state file copied, keys and counter) signs once in
    // each copy: the clone's count does not advance past the stored one, and is refused.
    let clone = rp.device("bob-clone", true, true);
    std::fs::copy(&counting.state, &clone.state).unwrap();
    let (tx, sign) = rp.challenge("bob");
    assert!(accepted(&rp.answer("bob", &tx, &counting.get(&pi_request_options(&sign)))), "count 3");
    let (tx, sign) = rp.challenge("bob");
    let v = rp.answer("bob", &tx, &clone.get(&pi_request_options(&sign)));
    assert!(!accepted(&v), "the clone's count 3 again: {v}");
    let row = rp.last_audit(&bob);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("sign count"), "{row}");

    // User verification required by policy: passkey-rs without UV (a client that asked for none)
    // is refused; with UV it signs in.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["userVerification"], "required", "{sign}");
    let mut options = pi_request_options(&sign);
    options["userVerification"] = json!("discouraged");
    let without_uv = device.get(&options);
    let v = rp.answer("alice", &tx, &without_uv);
    assert!(!accepted(&v), "{v}");
    let row = rp.last_audit(&serial);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("UV"), "{row}");
    let (tx, sign) = rp.challenge("alice");
    assert!(accepted(&rp.answer("alice", &tx, &device.get(&pi_request_options(&sign)))));
}

/// The native API, passkey-rs given `webauthn.public_key` and the challenge's `webauthn` sign
/// request as they are: registered (`none/none` at level `none`), signed in twice with the
/// user and once with the credential alone naming the token.
#[test]
fn passkey_rs_registers_and_signs_in_through_the_native_api() {
    let rp = Rp::start();
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let device = rp.device("bob", true, false);
    let (status, v) = rp.native_admin(json!({ "type": "webauthn", "user": "bob", "realm": "test", "pin": "1234" }));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["webauthn"]["step"], "register", "{v}");
    let serial = v["token"]["serial"].as_str().unwrap().to_owned();
    let public_key = &v["webauthn"]["public_key"];
    assert_eq!(public_key["rp"], json!({ "id": RP, "name": "Example Corp" }), "{v}");
    let made = device.create(public_key);
    let (status, answer) = rp.native_admin(json!({
        "type": "webauthn",
        "serial": serial,
        "webauthn": {
            "transaction_id": v["webauthn"]["transaction_id"],
            "attestation_object": made["attestation_object"],
            "client_data_json": made["client_data_json"],
        },
    }));
    assert!((200..300).contains(&status), "passkey-rs's registration refused: {status} {answer}");
    assert_eq!(answer["webauthn"], json!({ "step": "registered", "attestation": "none/none", "aaguid": AAGUID_HEX }));

    let sign_in = |with_user: bool| -> Value {
        let (status, v) = rp.d.check(json!({ "user": "bob", "realm": "test", "pass": "1234" }));
        assert_eq!((status, &v["result"]), (200, &json!("challenge")), "{v}");
        let c = &v["challenges"][0];
        assert_eq!((&c["serial"], &c["client_mode"]), (&json!(serial), &json!("webauthn")), "{v}");
        assert_eq!(c["webauthn"]["allowCredentials"][0]["id"], made["credential_id"], "{v}");
        // The sign request is already the JSON form of the request options.
        let got = device.get(&c["webauthn"]);
        assert_eq!(got["user_handle"], json!(b64url(serial.as_bytes())), "{got}");
        let mut body = json!({
            "transaction_id": v["transaction_id"],
            "webauthn": {
                "credential_id": got["credential_id"],
                "client_data_json": got["client_data_json"],
                "authenticator_data": got["authenticator_data"],
                "signature": got["signature"],
                "user_handle": got["user_handle"],
            },
        });
        if with_user {
            body["user"] = json!("bob");
            body["realm"] = json!("test");
        }
        let (status, answer) = rp.d.check(body);
        assert_eq!(status, 200, "{answer}");
        answer
    };
    for with_user in [true, true, false] {
        let v = sign_in(with_user);
        assert_eq!(
            (&v["result"], &v["accepted"], &v["serial"]),
            (&json!("accept"), &json!(true), &json!(serial)),
            "with user {with_user}: {v}"
        );
        let detail = rp.accepted_detail(&serial);
        assert!(detail.contains(&format!("AAGUID {AAGUID_HEX}")) && detail.contains("sign count 0"), "{detail}");
    }
}

impl Rp {
    /// The first passkey enrolment step for `user`: the serial, transaction id and
    /// `passkey_registration`.
    fn begin_passkey(&self, user: &str) -> (String, String, Value) {
        let v = self.admin("/token/init", &[("type", "passkey"), ("user", user), ("realm", "test")]);
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        let reg = v["detail"]["passkey_registration"].clone();
        assert_eq!(reg["authenticatorSelection"]["residentKey"], "required", "{v}");
        (text(&v["detail"], "serial").to_owned(), text(&v["detail"], "transaction_id").to_owned(), reg)
    }

    /// Enrols a passkey for `user` with `device`, given `passkey_registration` as it is but for
    /// the challenge: privacyIDEA's clients sign the UTF-8 bytes of the challenge string, so the
    /// browser is handed those bytes. The serial.
    fn enrol_passkey(&self, user: &str, device: &Device) -> String {
        let (serial, tx, reg) = self.begin_passkey(user);
        let mut public_key = reg.clone();
        public_key["challenge"] = json!(b64url(text(&reg, "challenge").as_bytes()));
        let made = device.create(&public_key);
        let client_data: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text(&made, "client_data_json")).unwrap()).unwrap();
        assert_eq!(client_data["challenge"], public_key["challenge"], "{client_data}");
        let (status, v) = self.admin_status(
            "/token/init",
            &[
                ("type", "passkey"),
                ("serial", &serial),
                ("transaction_id", &tx),
                ("attestationObject", text(&made, "attestation_object")),
                ("clientDataJSON", text(&made, "client_data_json")),
                ("credential_id", text(&made, "credential_id")),
            ],
        );
        assert_eq!(status, 200, "{v}");
        serial
    }

    /// A usernameless sign-in with `device`: `/validate/initialize type=passkey`, then
    /// `/validate/check` with the assertion alone (no allowCredentials: passkey-rs picks the
    /// RP's credential). The check's answer, the transaction id and the assertion.
    fn passkey_sign_in(&self, device: &Device) -> (Value, String, Value) {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/initialize", &[("type", "passkey")], &[]);
        assert_eq!(status, 200, "{v}");
        let p = &v["detail"]["passkey"];
        assert_eq!(p["rpId"], json!(RP), "{v}");
        let tx = text(p, "transaction_id").to_owned();
        let assertion = device.get(&json!({
            "challenge": b64url(text(p, "challenge").as_bytes()),
            "rpId": p["rpId"],
            "userVerification": p["user_verification"],
            "timeout": p["timeout"],
        }));
        (self.passkey_answer(&tx, &assertion), tx, assertion)
    }

    /// `/validate/check` with a passkey's answer to `tx` (JSON, as privacyIDEA's clients send it).
    fn passkey_answer(&self, tx: &str, a: &Value) -> Value {
        let (status, v) = send(
            self.port,
            Shape::Json,
            "POST",
            "/validate/check",
            &[
                ("transaction_id", tx),
                ("credential_id", text(a, "credential_id")),
                ("authenticatorData", text(a, "authenticator_data")),
                ("clientDataJSON", text(a, "client_data_json")),
                ("signature", text(a, "signature")),
                ("userHandle", text(a, "user_handle")),
            ],
            &[],
        );
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// Passkeys (privacyIDEA 3.11's `passkey` token) with passkey-rs: enrolled from
/// `passkey_registration` as it is, `excludeCredentials` honoured by passkey-rs, then
/// usernameless sign-ins that name their user, each challenge answered once.
#[test]
fn passkey_rs_enrols_a_passkey_and_signs_in_without_a_user_name() {
    let rp = Rp::start();
    let alice_device = rp.device("alice", true, false);
    let alice = rp.enrol_passkey("alice", &alice_device);
    let bob_device = rp.device("bob", true, true);
    let bob = rp.enrol_passkey("bob", &bob_device);

    // A second passkey of alice's: the registration excludes her first credential, which this
    // authenticator holds, so passkey-rs (as a browser would) makes no second one there.
    let (_, _, reg) = rp.begin_passkey("alice");
    let excluded = reg["excludeCredentials"].as_array().unwrap_or_else(|| panic!("no excludeCredentials: {reg}"));
    assert_eq!(excluded.len(), 1, "{reg}");
    let mut public_key = reg.clone();
    public_key["challenge"] = json!(b64url(text(&reg, "challenge").as_bytes()));
    let refused = alice_device.try_create(&public_key).unwrap_err();
    assert!(refused.contains("CredentialExcluded"), "{refused}");

    // Usernameless sign-ins: the answer names the user and the token, and is audited.
    for (device, user, serial) in
        [(&alice_device, "alice", &alice), (&bob_device, "bob", &bob), (&alice_device, "alice", &alice)]
    {
        let (v, _, assertion) = rp.passkey_sign_in(device);
        assert!(accepted(&v), "{user}: {v}");
        assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!(user), &json!(serial)), "{v}");
        assert!(assertion["user_handle"].is_string(), "a passkey gives its user handle: {assertion}");
        let row = rp.last_audit(serial);
        assert!(row["result"] == "accept" && row["detail"].as_str().unwrap().contains("passkey sign-in"), "{row}");
    }
    // bob's passkey-rs counts: his one sign-in was the credential's first use.
    assert!(rp.last_audit(&bob)["detail"].as_str().unwrap().contains("sign count 1"), "{}", rp.last_audit(&bob));

    // A clone of bob's authenticator signs once in each copy: the clone's count (2 again) is
    // refused.
    let clone = rp.device("bob-clone", true, true);
    std::fs::copy(&bob_device.state, &clone.state).unwrap();
    assert!(accepted(&rp.passkey_sign_in(&bob_device).0), "bob's count 2");
    let (v, _, _) = rp.passkey_sign_in(&clone);
    assert!(!accepted(&v), "the clone's count 2 again: {v}");
    let row = rp.last_audit(&bob);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("sign count"), "{row}");

    // A challenge is answered once: the same assertion again is refused.
    let (v, tx, assertion) = rp.passkey_sign_in(&alice_device);
    assert!(accepted(&v), "{v}");
    assert!(!accepted(&rp.passkey_answer(&tx, &assertion)), "a second answer to one sign-in");

    // User verification required by policy: an assertion without UV is refused.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let (status, v) = send(rp.port, Shape::Form, "POST", "/validate/initialize", &[("type", "passkey")], &[]);
    assert_eq!(status, 200, "{v}");
    let p = &v["detail"]["passkey"];
    assert_eq!(p["user_verification"], "required", "{v}");
    let without_uv = alice_device.get(&json!({
        "challenge": b64url(text(p, "challenge").as_bytes()),
        "rpId": RP,
        "userVerification": "discouraged",
    }));
    let v = rp.passkey_answer(text(p, "transaction_id"), &without_uv);
    assert!(!accepted(&v), "{v}");
    let row = rp.last_audit(&alice);
    assert!(row["result"] == "reject" && row["detail"].as_str().unwrap().contains("UV"), "{row}");
    let (v, _, _) = rp.passkey_sign_in(&alice_device);
    assert!(accepted(&v), "with UV: {v}");

    // A webauthn token's credential is discoverable too in passkey-rs, but it is a second factor
    // behind a PIN: it does not answer a usernameless sign-in.
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=none");
    let second_factor = rp.device("bob-webauthn", true, false);
    let serial = rp.enrol("bob", &second_factor);
    let (v, _, assertion) = rp.passkey_sign_in(&second_factor);
    assert_eq!(assertion["user_handle"], json!(b64url(serial.as_bytes())), "{assertion}");
    assert!(!accepted(&v), "a webauthn token signed in without its PIN: {v}");
    let newest = rp.d.auth_audit().into_iter().max_by_key(|r| r["id"].as_i64().unwrap()).unwrap();
    assert!(newest["detail"].as_str().unwrap_or_default().contains("no passkey has this credential"), "{newest}");
}
