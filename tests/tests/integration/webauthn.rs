//! WebAuthn tokens (issue 17) through privacyIDEA's API, against the real daemon, its sandboxed
//! `token-webauthn` plugin and an independent software authenticator
//! (`tests/tools/soft_authenticator.py`, written from the standard, not from our verifier):
//! the two `/token/init` steps, a PIN-triggered challenge answered with an assertion, and every
//! refusal the relying party owes (replay, another challenge, wrong origin, wrong RP id, missing
//! user verification, a sign counter going backwards, another user's credential, a tampered
//! authenticator-data byte), each audited with its reason; attestation judged against the
//! configured roots and the AAGUID allow-list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use countersign_tests::privacyidea::{send, session, Shape, ADMIN};
use countersign_tests::{Daemon, WEBAUTHN_PLUGIN};
use serde_json::{json, Value};

const RP: &str = "example.com";
const ORIGIN: &str = "https://example.com";

/// One credential of the software authenticator, kept in its state file.
struct Authenticator {
    state: PathBuf,
}

fn authenticator_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/soft_authenticator.py")
}

/// Runs the software authenticator's `command` with `options`: its JSON answer.
fn soft(command: &str, options: &Value) -> Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(authenticator_script())
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .spawn()
        .expect("python3 runs (scripts/install-deps.sh installs it)");
    child.stdin.take().unwrap().write_all(options.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "soft_authenticator {command}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Authenticator {
    /// A registration answering `request` (the first step's `webAuthnRegisterRequest`) from
    /// `origin`, with `extra` options (attestation, uv, root, ...): the credential and the
    /// answer's parts.
    fn create(dir: &Path, name: &str, request: &Value, origin: &str, extra: Value) -> (Authenticator, Value) {
        let state = dir.join(format!("{name}.json"));
        let serial = request["serialNumber"].as_str().unwrap();
        let mut options = json!({
            "rp_id": request["relyingParty"]["id"],
            "origin": origin,
            // The client decodes the nonce and the browser encodes it again: the same string.
            "challenge": request["nonce"],
            "user_id": base64url(serial.as_bytes()),
            "user_name": request["name"],
            "attestation": "packed-self",
            "state": state.to_str().unwrap(),
        });
        for (k, v) in extra.as_object().unwrap() {
            options[k] = v.clone();
        }
        let made = soft("create", &options);
        (Authenticator { state }, made)
    }

    /// An assertion for the challenge `sign` (a `webAuthnSignRequest`), with `extra` options.
    fn get(&self, sign: &Value, extra: Value) -> Value {
        let mut options = json!({
            "state": self.state.to_str().unwrap(),
            "rp_id": sign["rpId"],
            "origin": ORIGIN,
            "challenge": sign["challenge"],
        });
        for (k, v) in extra.as_object().unwrap() {
            options[k] = v.clone();
        }
        soft("get", &options)
    }
}

fn base64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
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
    fn start(config: &str) -> Rp {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Daemon::with_plugins(
            &[WEBAUTHN_PLUGIN],
            &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\nthrottle_base_ms = 0\n{config}"),
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

    fn admin(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = send(self.port, Shape::Form, "POST", path, params, &[("Authorization", &self.auth)]);
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

    /// The first enrolment step for `user`: its answer's `webAuthnRegisterRequest`.
    fn begin(&self, user: &str) -> Value {
        let v = self.admin("/token/init", &[("type", "webauthn"), ("user", user), ("realm", "test"), ("pin", "1234")]);
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        v["detail"]["webAuthnRegisterRequest"].clone()
    }

    /// The second step with the authenticator's answer: status and answer.
    fn finish(&self, request: &Value, made: &Value) -> (u16, Value) {
        self.admin_status(
            "/token/init",
            &[
                ("type", "webauthn"),
                ("serial", request["serialNumber"].as_str().unwrap()),
                ("transaction_id", request["transaction_id"].as_str().unwrap()),
                ("regdata", made["attestation_object"].as_str().unwrap()),
                ("clientdata", made["client_data_json"].as_str().unwrap()),
            ],
        )
    }

    /// Enrols a webauthn token for `user` with a packed self attestation.
    fn enrol(&self, user: &str) -> (Authenticator, Value, String) {
        let request = self.begin(user);
        let (a, made) = Authenticator::create(self.dir.path(), user, &request, ORIGIN, json!({}));
        let (status, v) = self.finish(&request, &made);
        assert_eq!(status, 200, "{v}");
        (a, made, request["serialNumber"].as_str().unwrap().to_owned())
    }

    /// A PIN-only check of `user`: the challenge's transaction id and sign request.
    fn challenge(&self, user: &str) -> (String, Value) {
        let v = self.check(&[("user", user), ("realm", "test"), ("pass", "1234")]);
        assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
        let c = &v["detail"]["multi_challenge"][0];
        assert_eq!(c["client_mode"], "webauthn", "{v}");
        assert_eq!(c["attributes"]["hideResponseInput"], true, "{v}");
        (c["transaction_id"].as_str().unwrap().to_owned(), c["attributes"]["webAuthnSignRequest"].clone())
    }

    /// The answer to transaction `tx` with `assertion`, as `user`: the check's answer.
    fn answer(&self, user: Option<&str>, tx: &str, assertion: &Value) -> Value {
        let mut params = vec![
            ("transaction_id", tx),
            ("pass", ""),
            ("credentialid", assertion["credential_id"].as_str().unwrap()),
            ("clientdata", assertion["client_data_json"].as_str().unwrap()),
            ("signaturedata", assertion["signature"].as_str().unwrap()),
            ("authenticatordata", assertion["authenticator_data"].as_str().unwrap()),
        ];
        if let Some(u) = user {
            params.extend([("user", u), ("realm", "test")]);
        }
        self.check(&params)
    }

    /// The detail of the newest audit row of `action` for `serial`.
    fn last_audit(&self, serial: &str) -> Value {
        self.d
            .auth_audit()
            .into_iter()
            .filter(|r| r["serial"] == serial)
            .max_by_key(|r| r["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no audit row for {serial}"))
    }
}

fn accepted(v: &Value) -> bool {
    v["result"]["authentication"] == "ACCEPT" && v["result"]["value"] == true
}

#[test]
fn a_webauthn_token_registers_in_two_steps_and_answers_its_challenges_once() {
    let rp = Rp::start("");
    // privacyIDEA refuses `none` attestation by default (level untrusted): so does Countersign.
    let request = rp.begin("alice");
    assert_eq!(request["relyingParty"], json!({ "id": RP, "name": "Example Corp" }));
    assert_eq!(request["pubKeyCredAlgorithms"][0], json!({ "type": "public-key", "alg": -7 }));
    assert_eq!(request["authenticatorSelection"]["userVerification"], "preferred");
    let serial = request["serialNumber"].as_str().unwrap().to_owned();
    // A token waiting for its registration takes part in no check.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "1234")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    let (_, none) = Authenticator::create(rp.dir.path(), "none", &request, ORIGIN, json!({ "attestation": "none" }));
    let (status, v) = rp.finish(&request, &none);
    assert_eq!(status, 400, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("attestation"), "{v}");
    let refused = rp.last_audit(&serial);
    assert_eq!(refused["result"], "reject", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("webauthn registration refused"), "{refused}");
    // A registration from another origin does not verify.
    let (_, elsewhere) = Authenticator::create(rp.dir.path(), "o", &request, "https://evil.example", json!({}));
    assert_eq!(rp.finish(&request, &elsewhere).0, 400);
    // The packed self attestation is accepted, once.
    let (a, made) = Authenticator::create(rp.dir.path(), "alice", &request, ORIGIN, json!({}));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["detail"]["webAuthnRegisterResponse"]["subject"], "Generic WebAuthn Token", "{v}");
    assert_eq!(v["detail"]["attestation"], "packed/self", "{v}");
    let registered = rp.last_audit(&serial);
    assert!(registered["detail"].as_str().unwrap().contains("AAGUID"), "{registered}");
    assert_eq!(rp.finish(&request, &made).0, 400, "the registration's challenge is spent");

    // The PIN asks for a challenge naming the credential; the assertion answers it once.
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["rpId"], RP);
    assert_eq!(sign["allowCredentials"][0]["id"], made["credential_id"]);
    let assertion = a.get(&sign, json!({}));
    let v = rp.answer(Some("alice"), &tx, &assertion);
    assert!(accepted(&v), "{v}");
    let audit = rp.last_audit(&serial);
    assert!(audit["detail"].as_str().unwrap().contains("flags UP UV"), "{audit}");
    assert!(!accepted(&rp.answer(Some("alice"), &tx, &assertion)), "a replayed assertion");

    // Each of these is refused, and audited with its reason.
    let refusals: [(&str, Value, &str); 6] = [
        ("a wrong origin", json!({ "origin": "https://evil.example" }), "origin"),
        ("a backup eligibility that changed", json!({ "be": true }), "backup eligibility"),
        ("a wrong RP id", json!({ "rp_id": "evil.example" }), "rpIdHash"),
        ("a tampered authenticator-data byte", json!({ "tamper_authenticator_data": 33 }), "signature"),
        ("a sign count that goes backwards", json!({ "counter": 1 }), "sign count did not advance"),
        ("a tampered signature", json!({ "tamper_signature": true }), "signature"),
    ];
    for (what, extra, reason) in refusals {
        let (tx, sign) = rp.challenge("alice");
        let v = rp.answer(Some("alice"), &tx, &a.get(&sign, extra));
        assert!(!accepted(&v), "{what}: {v}");
        let audit = rp.last_audit(&serial);
        let detail = audit["detail"].as_str().unwrap_or_default();
        assert!(audit["result"] == "reject" && detail.contains(reason), "{what}: {audit}");
    }
    // A user handle that is not the credential owner's (the serial, for a webauthn token).
    let (tx, sign) = rp.challenge("alice");
    let handled = a.get(&sign, json!({ "counter": 50 }));
    let mut params = vec![
        ("transaction_id", tx.as_str()),
        ("user", "alice"),
        ("realm", "test"),
        ("pass", ""),
        ("credentialid", handled["credential_id"].as_str().unwrap()),
        ("clientdata", handled["client_data_json"].as_str().unwrap()),
        ("signaturedata", handled["signature"].as_str().unwrap()),
        ("authenticatordata", handled["authenticator_data"].as_str().unwrap()),
    ];
    params.push(("userhandle", "someone-else"));
    assert!(!accepted(&rp.check(&params)), "another user's handle");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("user handle"));
    // The serial's characters as sent, as privacyIDEA's clients have sent them, are the owner's.
    params.pop();
    params.push(("userhandle", &serial));
    let v = rp.check(&params);
    assert!(accepted(&v), "the serial as user handle: {v}");

    // An assertion made for one challenge does not answer another.
    let (tx1, sign1) = rp.challenge("alice");
    let (tx2, _) = rp.challenge("alice");
    let for_first = a.get(&sign1, json!({ "counter": 100 }));
    assert!(!accepted(&rp.answer(Some("alice"), &tx2, &for_first)), "another challenge's assertion");
    assert!(accepted(&rp.answer(Some("alice"), &tx1, &for_first)), "its own challenge");

    // User verification required by policy: an assertion without UV is refused.
    rp.policy("uv", "authentication", "webauthn_user_verification_requirement=required");
    let (tx, sign) = rp.challenge("alice");
    assert_eq!(sign["userVerification"], "required");
    let v = rp.answer(Some("alice"), &tx, &a.get(&sign, json!({ "uv": false, "counter": 200 })));
    assert!(!accepted(&v), "{v}");
    let (tx, sign) = rp.challenge("alice");
    assert!(accepted(&rp.answer(Some("alice"), &tx, &a.get(&sign, json!({ "counter": 201 })))));

    // Another user's credential does not answer alice's challenge, even when sent as alice.
    let (b, _, _) = rp.enrol("bob");
    let (tx, sign) = rp.challenge("alice");
    let v = rp.answer(Some("alice"), &tx, &b.get(&sign, json!({})));
    assert!(!accepted(&v), "{v}");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("another credential"));

    // Without a user, the credential names its token (privacyIDEA's way for such clients).
    let (tx, sign) = rp.challenge("alice");
    let v = rp.answer(None, &tx, &a.get(&sign, json!({ "counter": 300 })));
    assert!(accepted(&v), "{v}");
    assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!("alice"), &json!(serial)), "{v}");

    // A disabled token gets no challenge.
    rp.admin("/token/disable", &[("serial", &serial)]);
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "1234")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
}

#[test]
fn attestation_is_trusted_only_through_a_configured_root_and_aaguids_are_allowed_by_policy() {
    let roots = tempfile::tempdir().unwrap();
    let make_root = |name: &str| -> (String, String) {
        let r = soft("make-root", &json!({}));
        let path = roots.path().join(format!("{name}.pem"));
        std::fs::write(&path, r["cert_pem"].as_str().unwrap()).unwrap();
        (r["key_pem"].as_str().unwrap().to_owned(), r["cert_pem"].as_str().unwrap().to_owned())
    };
    let trusted = make_root("trusted");
    let other = make_root("other");
    let trusted_path = roots.path().join("trusted.pem");
    let rp = Rp::start(&format!("[webauthn]\nattestation_roots = [\"{}\"]\n", trusted_path.display()));
    rp.policy("level", "enrollment", "webauthn_authenticator_attestation_level=trusted");
    let aaguid = "0102030405060708090a0b0c0d0e0f10";
    let x5c = |root: &(String, String)| json!({ "attestation": "packed-x5c", "ca_key_pem": root.0, "ca_cert_pem": root.1, "aaguid": aaguid });
    // From another root: refused; self attestation: refused; from the configured root: accepted.
    let request = rp.begin("alice");
    let (_, made) = Authenticator::create(rp.dir.path(), "o", &request, ORIGIN, x5c(&other));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "another root: {v}");
    let (_, made) = Authenticator::create(rp.dir.path(), "s", &request, ORIGIN, json!({}));
    assert_eq!(rp.finish(&request, &made).0, 400, "self attestation under level trusted");
    let (_, made) = Authenticator::create(rp.dir.path(), "t", &request, ORIGIN, x5c(&trusted));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!((status, &v["detail"]["attestation"]), (200, &json!("packed/basic-trusted")), "{v}");
    assert_eq!(v["detail"]["aaguid"], aaguid);

    // The AAGUID allow-list: another model is refused at registration.
    rp.policy("models", "enrollment", "webauthn_authenticator_selection_list=ffffffffffffffffffffffffffffffff");
    let request = rp.begin("bob");
    assert_eq!(request["authenticatorSelectionList"], json!(["ffffffffffffffffffffffffffffffff"]));
    let (_, made) = Authenticator::create(rp.dir.path(), "b", &request, ORIGIN, x5c(&trusted));
    let (status, v) = rp.finish(&request, &made);
    assert_eq!(status, 400, "{v}");
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("webauthn_authenticator_selection_list"));
    let (_, made) = Authenticator::create(
        rp.dir.path(),
        "b2",
        &request,
        ORIGIN,
        json!({ "attestation": "packed-x5c", "ca_key_pem": trusted.0, "ca_cert_pem": trusted.1,
                "aaguid": "ffffffffffffffffffffffffffffffff" }),
    );
    assert_eq!(rp.finish(&request, &made).0, 200);
}

impl Rp {
    /// Enrols a passkey for `user` in two steps (`detail.passkey_registration`, whose challenge
    /// the authenticator signs as the string's UTF-8 bytes, as privacyIDEA's clients do).
    fn enrol_passkey(&self, user: &str) -> (Authenticator, String) {
        let v = self.admin("/token/init", &[("type", "passkey"), ("user", user), ("realm", "test")]);
        let reg = &v["detail"]["passkey_registration"];
        assert_eq!(reg["authenticatorSelection"]["residentKey"], "required", "{v}");
        assert_eq!(reg["rp"], json!({ "id": RP, "name": "Example Corp" }));
        let serial = v["detail"]["serial"].as_str().unwrap().to_owned();
        let challenge = reg["challenge"].as_str().unwrap();
        let state = self.dir.path().join(format!("{user}-passkey.json"));
        let made = soft(
            "create",
            &json!({
                "rp_id": RP,
                "origin": ORIGIN,
                // The UTF-8 bytes of the challenge string are what is signed.
                "challenge": base64url(challenge.as_bytes()),
                "user_id": reg["user"]["id"],
                "user_name": user,
                "attestation": "none",
                "state": state.to_str().unwrap(),
            }),
        );
        let (status, v) = self.admin_status(
            "/token/init",
            &[
                ("type", "passkey"),
                ("serial", &serial),
                ("transaction_id", v["detail"]["transaction_id"].as_str().unwrap()),
                ("attestationObject", made["attestation_object"].as_str().unwrap()),
                ("clientDataJSON", made["client_data_json"].as_str().unwrap()),
                ("credential_id", made["credential_id"].as_str().unwrap()),
            ],
        );
        assert_eq!(status, 200, "{v}");
        (Authenticator { state }, serial)
    }

    /// A usernameless sign-in's challenge: its transaction id and challenge string.
    fn initialize(&self) -> (String, String) {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/initialize", &[("type", "passkey")], &[]);
        assert_eq!(status, 200, "{v}");
        let p = v["detail"]["passkey"].clone();
        assert_eq!(p["rpId"], json!(RP), "{v}");
        (p["transaction_id"].as_str().unwrap().to_owned(), p["challenge"].as_str().unwrap().to_owned())
    }

    /// The passkey's answer to sign-in `tx` sent to `path` (`/validate/check` or `/auth`), with
    /// `extra` authenticator options: status and answer.
    fn passkey_answer(&self, path: &str, who: &Authenticator, tx: &str, challenge: &str, extra: Value) -> (u16, Value) {
        let a = who.get(&json!({ "rpId": RP, "challenge": base64url(challenge.as_bytes()) }), extra);
        let mut params = vec![
            ("transaction_id", tx),
            ("credential_id", a["credential_id"].as_str().unwrap()),
            ("authenticatorData", a["authenticator_data"].as_str().unwrap()),
            ("clientDataJSON", a["client_data_json"].as_str().unwrap()),
            ("signature", a["signature"].as_str().unwrap()),
        ];
        if let Some(h) = a["user_handle"].as_str() {
            params.push(("userHandle", h));
        }
        send(self.port, Shape::Json, "POST", path, &params, &[])
    }
}

/// A passkey: enrolled in two steps, then a usernameless sign-in: `/validate/initialize
/// type=passkey`, and `/validate/check` with the assertion alone answers with the user. Once
/// per challenge; refused for a disabled token and for a user the resolver no longer knows.
#[test]
fn a_passkey_signs_in_without_a_user_name_once_per_challenge() {
    let rp = Rp::start("");
    let (alice, serial) = rp.enrol_passkey("alice");
    let (bob, _) = rp.enrol_passkey("bob");
    // A passkey takes part in no PIN check.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "{v}");
    let sign_in = |who: &Authenticator, tx: &str, challenge: &str| {
        let (status, v) = rp.passkey_answer("/validate/check", who, tx, challenge, json!({}));
        assert_eq!(status, 200, "{v}");
        v
    };
    let (tx, challenge) = rp.initialize();
    let v = sign_in(&alice, &tx, &challenge);
    assert!(accepted(&v), "{v}");
    assert_eq!((&v["detail"]["username"], &v["detail"]["serial"]), (&json!("alice"), &json!(serial)), "{v}");
    assert!(rp.last_audit(&serial)["detail"].as_str().unwrap().contains("passkey sign-in"));
    // Without its user handle a sign-in identifies nobody: refused.
    let (tx2, challenge2) = rp.initialize();
    let (_, v) = rp.passkey_answer("/validate/check", &alice, &tx2, &challenge2, json!({ "user_handle": false }));
    assert!(!accepted(&v), "no user handle: {v}");
    // The challenge is spent: neither a replay nor another passkey answers it.
    assert!(!accepted(&sign_in(&alice, &tx, &challenge)), "a second answer to one sign-in");
    assert!(!accepted(&sign_in(&bob, &tx, &challenge)), "another passkey, same sign-in");
    // passkey_trigger_by_pin: the (empty) PIN asks for a challenge the passkey answers, its
    // fields on the multi_challenge entry as privacyIDEA puts them.
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "REJECT", "without the policy: {v}");
    rp.policy("by-pin", "authentication", "passkey_trigger_by_pin");
    let v = rp.check(&[("user", "alice"), ("realm", "test"), ("pass", "")]);
    assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
    let entry = &v["detail"]["multi_challenge"][0];
    assert_eq!(
        (&entry["type"], &entry["client_mode"], &entry["rpId"]),
        (&json!("passkey"), &json!("webauthn"), &json!(RP))
    );
    let (tx, challenge) = (entry["transaction_id"].as_str().unwrap(), entry["challenge"].as_str().unwrap());
    let (_, v) = rp.passkey_answer("/validate/check", &alice, tx, challenge, json!({}));
    assert!(accepted(&v), "{v}");
    assert_eq!(v["detail"]["username"], "alice", "{v}");
    let (_, v) = rp.passkey_answer("/validate/check", &alice, tx, challenge, json!({}));
    assert!(!accepted(&v), "its challenge is spent: {v}");
    // A disabled passkey signs in no more.
    rp.admin("/token/disable", &[("serial", &serial)]);
    let (tx, challenge) = rp.initialize();
    assert!(!accepted(&sign_in(&alice, &tx, &challenge)), "a disabled passkey");
    // Nor does the passkey of a user the resolver no longer knows.
    let (tx, challenge) = rp.initialize();
    assert!(accepted(&sign_in(&bob, &tx, &challenge)), "bob, while he exists");
    std::fs::write(rp.dir.path().join("passwd"), "alice:x:1000:1000:alice,,,:/home/alice:/bin/sh\n").unwrap();
    let (tx, challenge) = rp.initialize();
    let v = sign_in(&bob, &tx, &challenge);
    assert!(!accepted(&v), "a deleted user's passkey: {v}");
}

/// privacyIDEA 3.11's passkey login at `/auth`: the passkey of `alice` in a realm of
/// `webauthn.admin_realms` opens a session of the API admin `alice`, with user verification
/// only; a passkey of a user who is no API admin, or of a realm not listed, opens none.
#[test]
fn a_passkey_signs_an_api_admin_in_from_an_admin_realm_with_user_verification() {
    let rp = Rp::start("[webauthn]\nadmin_realms = [\"test\"]\n");
    let out = rp.d.cli_stdin(&["privacyidea", "admin-add", "alice"], "a long admin password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (alice, _) = rp.enrol_passkey("alice");
    let (bob, _) = rp.enrol_passkey("bob");
    // Without user verification: refused, whatever the policies say.
    let (tx, challenge) = rp.initialize();
    let (status, v) = rp.passkey_answer("/auth", &alice, &tx, &challenge, json!({ "uv": false }));
    assert_eq!(status, 401, "{v}");
    let (tx, challenge) = rp.initialize();
    let (status, v) = rp.passkey_answer("/auth", &alice, &tx, &challenge, json!({}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["value"]["username"], "alice", "{v}");
    let token = v["result"]["value"]["token"].as_str().unwrap();
    let (status, v) = send(rp.port, Shape::Query, "GET", "/token/", &[], &[("Authorization", token)]);
    assert_eq!(status, 200, "the session works: {v}");
    // bob has a passkey in the admin realm but is no API admin.
    let (tx, challenge) = rp.initialize();
    assert_eq!(rp.passkey_answer("/auth", &bob, &tx, &challenge, json!({})).0, 401);
    let audit = rp.d.auth_audit();
    let last = audit.iter().filter(|r| r["action"] == "api/auth").max_by_key(|r| r["id"].as_i64().unwrap()).unwrap();
    assert!(last["detail"].as_str().unwrap().contains("no API admin"), "{last}");
}

/// Without `webauthn.admin_realms`, no passkey signs an API admin in.
#[test]
fn no_passkey_signs_an_api_admin_in_unless_its_realm_is_listed() {
    let rp = Rp::start("");
    let out = rp.d.cli_stdin(&["privacyidea", "admin-add", "alice"], "a long admin password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (alice, _) = rp.enrol_passkey("alice");
    let (tx, challenge) = rp.initialize();
    assert_eq!(rp.passkey_answer("/auth", &alice, &tx, &challenge, json!({})).0, 401);
}
