//! The bank and its customers' phones, for the PowerAuth integration tests: a daemon with a
//! PowerAuth application `bank` (version 3.3) and an HTTP listener, whose back-end is called on
//! `api.sock` as root (an admin uid), and phones played by the independent Python mobile client
//! `tests/tools/powerauth_mobile.py` (each phone's state in its own file).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::Daemon;

/// A bank: its appliance, its PowerAuth application's keys, and where its phones keep state.
#[derive(Debug)]
pub struct Bank {
    pub d: Daemon,
    pub port: u16,
    pub app_key: String,
    pub app_secret: String,
    pub master_public_key: String,
    pub dir: tempfile::TempDir,
}

/// What the phone printed: `Ok` when it exited 0, `Err` (with the server's answer) when not.
pub type Outcome = Result<Value, Value>;

impl Bank {
    pub fn start() -> Bank {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // With the test clock (through the plugin set-up, here without plugins), so expiry can be
        // reached by moving the clock.
        let d = Daemon::with_plugins(&[], &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
        let app = d.cli_json(&["powerauth", "app", "create", "bank"]);
        let version = d.cli_json(&["powerauth", "app", "version-add", "bank", "3.3"]);
        Bank {
            port,
            app_key: version["version"]["app_key"].as_str().unwrap().to_owned(),
            app_secret: version["app_secret"].as_str().unwrap().to_owned(),
            master_public_key: app["master_public_key"].as_str().unwrap().to_owned(),
            d,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A back-end call on api.sock (as root: an admin uid): its `responseObject`.
    pub fn backend(&self, method: &str, request: Value) -> (u16, Value) {
        let (status, body) =
            self.d.api("POST", &format!("/rest/v3/{method}"), Some(json!({ "requestObject": request })));
        (status, body["responseObject"].clone())
    }

    pub fn backend_ok(&self, method: &str, request: Value) -> Value {
        let (status, body) = self.backend(method, request);
        assert_eq!(status, 200, "{method}: {body}");
        body
    }

    pub fn init(&self, user: &str, extra: Value) -> Value {
        let mut req = json!({"applicationId": "bank", "userId": user});
        req.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.backend_ok("activation/init", req)
    }

    pub fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.json"))
    }

    /// Runs the phone's `command` with `args` on state file `phone`.
    pub fn phone(&self, phone: &str, command: &str, args: &[&str]) -> Outcome {
        run_phone(&self.state(phone), command, args)
    }

    pub fn activate(&self, phone: &str, init: &Value, extra: &[&str]) -> Outcome {
        let base = self.base();
        let mut args = vec![
            "--base",
            &base,
            "--app-key",
            &self.app_key,
            "--app-secret",
            &self.app_secret,
            "--master-public-key",
            &self.master_public_key,
            "--code",
            init["activationCode"].as_str().unwrap(),
            "--code-signature",
            init["activationSignature"].as_str().unwrap(),
            "--password",
            "1234",
        ];
        args.extend_from_slice(extra);
        self.phone(phone, "activate", &args)
    }

    /// An ACTIVE activation of `user` on phone `phone`.
    pub fn active(&self, phone: &str, user: &str, extra: Value) -> String {
        let init = self.init(user, extra);
        let id = init["activationId"].as_str().unwrap().to_owned();
        self.activate(phone, &init, &[]).unwrap();
        self.backend_ok("activation/commit", json!({"activationId": id}));
        id
    }

    pub fn sign(&self, phone: &str, factors: &str, body: &str, extra: &[&str]) -> Value {
        let mut args = vec!["--factors", factors, "--method", "POST", "--uri-id", "/payment/submit", "--body", body];
        args.extend_from_slice(extra);
        self.phone(phone, "sign", &args).unwrap()
    }

    /// The back-end's verification of what the phone signed.
    pub fn verify(&self, signed: &Value, activation: &str) -> Value {
        self.backend_ok(
            "signature/verify",
            json!({
                "activationId": activation,
                "applicationKey": self.app_key,
                "data": signed["normalizedData"],
                "signature": signed["signature"],
                "signatureType": signed["signatureType"],
                "signatureVersion": signed["version"],
            }),
        )
    }

    pub fn status(&self, phone: &str) -> Value {
        let base = self.base();
        self.phone(phone, "status", &["--base", &base]).unwrap()
    }

    pub fn audit_results(&self, action: &str) -> Vec<String> {
        self.d
            .auth_audit()
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["result"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    // ---- MAC tokens and operations (issue 19, part 3) ----

    /// The phone's `/pa/v3/token/create` with `factors`.
    pub fn token_create(&self, phone: &str, factors: &str, extra: &[&str]) -> Outcome {
        let base = self.base();
        let mut args = vec!["--base", &base, "--factors", factors];
        args.extend_from_slice(extra);
        self.phone(phone, "token-create", &args)
    }

    /// The phone's `X-PowerAuth-Token` for its last token (or `--token ID` in `extra`).
    pub fn token_header(&self, phone: &str, extra: &[&str]) -> Value {
        self.phone(phone, "token-header", extra).unwrap()
    }

    /// The back-end's `/rest/v3/token/validate` of what the phone's header says.
    pub fn validate(&self, header: &Value) -> (u16, Value) {
        self.backend(
            "token/validate",
            json!({
                "tokenId": header["tokenId"],
                "tokenDigest": header["digest"],
                "nonce": header["nonce"],
                "timestamp": header["timestamp"].as_str().unwrap().parse::<i64>().unwrap(),
                "protocolVersion": header["version"],
            }),
        )
    }

    /// An operation template (as an admin).
    pub fn template(&self, name: &str, data_template: &str, types: &[&str], max_failures: i64, expiration_s: i64) {
        self.backend_ok(
            "operation/template/create",
            json!({
                "templateName": name,
                "operationType": name,
                "dataTemplate": data_template,
                "signatureType": types,
                "maxFailureCount": max_failures,
                "expiration": expiration_s,
            }),
        );
    }

    /// A new operation of `user` from `template` with `parameters`: its detail.
    pub fn operation(&self, user: &str, template: &str, parameters: Value) -> Value {
        self.backend_ok(
            "operation/create",
            json!({"userId": user, "applications": ["bank"], "templateName": template, "parameters": parameters}),
        )
    }

    /// The back-end's view of operation `id`.
    pub fn operation_detail(&self, id: &str) -> Value {
        self.backend_ok("operation/detail", json!({ "operationId": id }))
    }
}

/// Runs the Python phone's `command` with `args` on state file `state` (see [`Bank::phone`]).
pub fn run_phone(state: &Path, command: &str, args: &[&str]) -> Outcome {
    let out = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/powerauth_mobile.py"))
        .arg(command)
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .expect("python3 runs (scripts/install-deps.sh installs it with the cryptography package)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{command}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    if out.status.code() == Some(2) {
        panic!("{command} failed locally: {v} {}", String::from_utf8_lossy(&out.stderr));
    }
    if out.status.success() {
        Ok(v)
    } else {
        Err(v)
    }
}
