//! What the push tests share (the integration modules `push` and `pi_push`): a server set up
//! for push tokens, and the phone that answers it.
//!
//! - [`PushServer`]: a daemon with an HTTP listener, an API admin logged in, a realm `test` over
//!   a passwd resolver with alice and bob, and the push policies ([`enrol_policy`],
//!   [`AUTH_POLICY`]); privacyIDEA's requests of the login client (`/token/init`, a PIN-only
//!   check, `/validate/polltransaction`, the finalising check).
//! - [`Phone`]: the phone simulator `tests/tools/push_phone.py` (written from privacyIDEA's and
//!   the app's sources, sharing no code with the server), one state file per phone.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::privacyidea::{api_daemon, send, Shape};
use crate::webauthn::PASSWD;
use crate::Daemon;

/// alice's push tokens' PIN in these tests.
pub const PIN: &str = "pushpin";

/// The authentication policy the push tests start with.
pub const AUTH_POLICY: &str = "push_text_on_mobile=Log in as {user}?, push_title_on_mobile=Countersign test";

/// The enrollment policy of a server listening on `port`: poll only, two minutes to enrol.
pub fn enrol_policy(port: u16) -> String {
    format!(
        "push_registration_url=http://127.0.0.1:{port}/ttype/push, push_firebase_configuration=poll only, \
         push_ttl=2"
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate lies in the workspace").to_path_buf()
}

/// Runs the phone simulator with `args`: its exit status (0 done, 1 the server refused, 2 a
/// local error) and its JSON answer (`Null` when it printed none).
pub fn phone(args: &[&str]) -> (i32, Value) {
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/tools/push_phone.py"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 runs (scripts/install-deps.sh installs it, with python3-cryptography): {e}")
        });
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 2, "the phone failed locally: {}", String::from_utf8_lossy(&out.stderr));
    (code, serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

/// One phone with one push token: its state file.
#[derive(Debug, Clone)]
pub struct Phone {
    pub state: PathBuf,
}

impl Phone {
    /// Scans `uri` and finishes the enrolment with a key of `bits` (the app's 4096 when `None`):
    /// the phone and the simulator's answer (`response` is the server's).
    pub fn enrol(uri: &str, state: PathBuf, bits: Option<u32>) -> (Phone, i32, Value) {
        Phone::enrol_with(uri, state, bits, &[])
    }

    /// [`Phone::enrol`] with more flags (`--fbtoken T`).
    pub fn enrol_with(uri: &str, state: PathBuf, bits: Option<u32>, extra: &[&str]) -> (Phone, i32, Value) {
        let bits = bits.map(|b| b.to_string());
        let mut args = vec!["enrol", "--uri", uri, "--state", state.to_str().unwrap()];
        if let Some(b) = &bits {
            args.extend(["--key-bits", b.as_str()]);
        }
        args.extend(extra);
        let (code, v) = phone(&args);
        (Phone { state }, code, v)
    }

    fn run(&self, command: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![command, "--state", self.state.to_str().unwrap()];
        args.extend(extra);
        phone(&args)
    }

    /// A poll (with `extra` flags): exit status and answer (`challenges`, each with
    /// `server_signature_ok`).
    pub fn poll(&self, extra: &[&str]) -> (i32, Value) {
        self.run("poll", extra)
    }

    /// The open challenges of a poll that must succeed, their server signatures verified.
    pub fn challenges(&self) -> Vec<Value> {
        let (code, v) = self.poll(&[]);
        assert_eq!(code, 0, "{v}");
        v["challenges"].as_array().unwrap_or_else(|| panic!("no challenges in {v}")).clone()
    }

    /// Answers the challenge `nonce` (with `extra` flags: `--decline`, `--presence X`,
    /// `--forge`, ...): exit status and answer.
    pub fn answer(&self, nonce: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--nonce", nonce];
        args.extend(extra);
        self.run("answer", &args)
    }
}

/// A daemon set up for push tokens (see the module's doc).
#[derive(Debug)]
pub struct PushServer {
    pub d: Daemon,
    pub port: u16,
    pub auth: String,
    pub dir: TempDir,
}

impl PushServer {
    /// The server, with `config` (more TOML) for the daemon.
    pub fn start(config: &str) -> PushServer {
        PushServer::start_with(&[], config)
    }

    /// [`PushServer::start`] with `plugins` installed (an FCM gateway's).
    pub fn start_with(plugins: &[crate::PluginSpec], config: &str) -> PushServer {
        let (d, port, auth) = api_daemon(plugins, &format!("[validate]\nthrottle_base_ms = 0\n{config}"));
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, PASSWD).unwrap();
        let s = PushServer { d, port, auth, dir };
        s.admin("/resolver/files", &[("type", "passwdresolver"), ("fileName", passwd.to_str().unwrap())]);
        s.admin("/realm/test", &[("resolvers", "files")]);
        s.policy("push-enrol", "enrollment", &enrol_policy(port));
        s.policy("push-auth", "authentication", AUTH_POLICY);
        s
    }

    /// An admin's form POST that must succeed: the answer.
    pub fn admin(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = self.admin_status(path, params);
        assert!(status == 200 && v["result"]["status"] == true, "POST {path} -> {status} {v}");
        v
    }

    /// An admin's form POST: status and answer.
    pub fn admin_status(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        send(self.port, Shape::Form, "POST", path, params, &[("Authorization", &self.auth)])
    }

    /// An admin's GET: the answer.
    pub fn admin_get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = send(self.port, Shape::Query, "GET", path, params, &[("Authorization", &self.auth)]);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Sets the active policy `name` in `scope` to `action`.
    pub fn policy(&self, name: &str, scope: &str, action: &str) {
        self.admin(&format!("/policy/{name}"), &[("scope", scope), ("action", action), ("active", "true")]);
    }

    /// Deletes policy `name`.
    pub fn delete_policy(&self, name: &str) {
        let (status, text) =
            crate::http(self.port, "DELETE", &format!("/policy/{name}"), &[("Authorization", &self.auth)], "");
        assert_eq!(status, 200, "{text}");
    }

    /// `/validate/check` as a form, which must answer HTTP 200.
    pub fn check(&self, params: &[(&str, &str)]) -> Value {
        let (status, v) = send(self.port, Shape::Form, "POST", "/validate/check", params, &[]);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// A PIN-only check of `user`, which must answer with a push challenge: the answer.
    pub fn challenge(&self, user: &str) -> Value {
        let v = self.check(&[("user", user), ("realm", "test"), ("pass", PIN)]);
        assert_eq!(v["result"]["authentication"], "CHALLENGE", "{v}");
        assert_eq!(v["detail"]["multi_challenge"][0]["client_mode"], "poll", "{v}");
        v
    }

    /// The finalising check of `user`'s transaction `tx`, with an empty pass.
    pub fn finish(&self, user: &str, tx: &str) -> Value {
        self.check(&[("user", user), ("realm", "test"), ("pass", ""), ("transaction_id", tx)])
    }

    /// `/validate/polltransaction` of `tx`.
    pub fn poll_transaction(&self, tx: &str) -> Value {
        let (status, v) =
            send(self.port, Shape::Query, "GET", "/validate/polltransaction", &[("transaction_id", tx)], &[]);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The first enrolment step of a push token for `user` (PIN [`PIN`]): the answer.
    pub fn init(&self, user: &str) -> Value {
        let v = self.admin(
            "/token/init",
            &[("type", "push"), ("genkey", "1"), ("user", user), ("realm", "test"), ("pin", PIN)],
        );
        assert_eq!(v["detail"]["rollout_state"], "clientwait", "{v}");
        v
    }

    /// A push token for `user` enrolled on a new phone (RSA of `bits`, 2048 unless given):
    /// its serial and the phone.
    pub fn enrolled(&self, user: &str, bits: Option<u32>) -> (String, Phone) {
        let v = self.init(user);
        let serial = v["detail"]["serial"].as_str().unwrap().to_owned();
        let uri = v["detail"]["pushurl"]["value"].as_str().unwrap();
        let (phone, code, answer) =
            Phone::enrol(uri, self.dir.path().join(format!("{serial}.json")), Some(bits.unwrap_or(2048)));
        assert_eq!(code, 0, "{answer}");
        (serial, phone)
    }

    /// The newest audit row of `serial` with `action`.
    pub fn last_audit(&self, serial: &str, action: &str) -> Value {
        self.d
            .auth_audit()
            .into_iter()
            .filter(|r| r["serial"] == serial && r["action"] == action)
            .max_by_key(|r| r["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no {action} audit row for {serial}"))
    }
}
