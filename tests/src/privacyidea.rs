//! privacyIDEA itself, the reference server of the conformance suite: the pinned release from
//! PyPI that `scripts/install-deps.sh` puts into `.tools/privacyidea`, set up with `pi-manage`
//! (SQLite, its own encryption and audit keys, one admin) in a directory of its own and served
//! by its Flask app on 127.0.0.1. Also the request shapes both servers are sent
//! ([`Shape`]) and the comparison of their answers ([`differences`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::{Daemon, PluginSpec};

/// The admin the reference server is set up with.
pub const ADMIN: (&str, &str) = ("admin", "admin-password-0");

/// A running privacyIDEA.
#[derive(Debug)]
pub struct PrivacyIdea {
    pub port: u16,
    pub dir: TempDir,
    child: Child,
}

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/privacyidea/bin")
}

impl PrivacyIdea {
    /// Sets up a fresh privacyIDEA and starts it; fails with what to do when it is not
    /// installed.
    pub fn start() -> PrivacyIdea {
        let bin = tools();
        assert!(
            bin.join("pi-manage").exists(),
            "privacyIDEA is not installed in {}: run `make deps` (scripts/install-deps.sh)",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("cs-pi-").tempdir().unwrap();
        let d = dir.path();
        let cfg = d.join("pi.cfg");
        std::fs::write(
            &cfg,
            format!(
                "SQLALCHEMY_DATABASE_URI = 'sqlite:///{db}'\n\
                 SECRET_KEY = 'conformance-secret-key-0123456789abcdef'\n\
                 PI_PEPPER = 'conformance-pepper-0123456789'\n\
                 PI_ENCFILE = '{enc}'\n\
                 PI_AUDIT_KEY_PRIVATE = '{private}'\n\
                 PI_AUDIT_KEY_PUBLIC = '{public}'\n\
                 PI_LOGFILE = '{log}'\n\
                 PI_LOGLEVEL = 30\n",
                db = d.join("pi.sqlite").display(),
                enc = d.join("enckey").display(),
                private = d.join("private.pem").display(),
                public = d.join("public.pem").display(),
                log = d.join("pi.log").display(),
            ),
        )
        .unwrap();
        let manage = |args: &[&str]| {
            let out = Command::new(bin.join("pi-manage"))
                .args(args)
                .env("PRIVACYIDEA_CONFIGFILE", &cfg)
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "pi-manage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        manage(&["setup", "create_enckey"]);
        manage(&["setup", "create_audit_keys"]);
        manage(&["setup", "create_tables"]);
        manage(&["admin", "add", ADMIN.0, "-p", ADMIN.1]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(d.join("server.log")).unwrap();
        let child = Command::new(bin.join("pi-manage"))
            .args(["run", "-h", "127.0.0.1", "-p", &port.to_string()])
            .env("PRIVACYIDEA_CONFIGFILE", &cfg)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        crate::wait_for_port(port, "privacyIDEA");
        PrivacyIdea { port, dir, child }
    }
}

impl Drop for PrivacyIdea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a client puts its parameters into a request: privacyIDEA reads all of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `application/x-www-form-urlencoded` body (the FreeRADIUS module, the PAM module, curl).
    Form,
    /// A JSON object body (the Keycloak provider, the PHP client's newer versions).
    Json,
    /// The query string of a GET.
    Query,
    /// `multipart/form-data` (browsers' forms, some scripts).
    Multipart,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::Form, Shape::Json, Shape::Query, Shape::Multipart];

    /// The request line's path, the headers and the body for `params` sent to `path` by `method`
    /// (`Query` always sends a GET).
    pub fn request(
        self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> (String, String, Vec<(String, String)>, String) {
        let form = || {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                s.append_pair(k, v);
            }
            s.finish()
        };
        match self {
            Shape::Form => (
                method.to_owned(),
                path.to_owned(),
                vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                form(),
            ),
            Shape::Json => {
                let mut o = serde_json::Map::new();
                for (k, v) in params {
                    o.insert((*k).to_owned(), Value::String((*v).to_owned()));
                }
                (
                    method.to_owned(),
                    path.to_owned(),
                    vec![("Content-Type".into(), "application/json".into())],
                    Value::Object(o).to_string(),
                )
            }
            Shape::Query => ("GET".into(), format!("{path}?{}", form()), Vec::new(), String::new()),
            Shape::Multipart => {
                let boundary = "----conformance-boundary-7d1f";
                let mut body = String::new();
                for (k, v) in params {
                    body.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    ));
                }
                body.push_str(&format!("--{boundary}--\r\n"));
                (
                    method.to_owned(),
                    path.to_owned(),
                    vec![("Content-Type".into(), format!("multipart/form-data; boundary={boundary}"))],
                    body,
                )
            }
        }
    }
}

/// Sends `params` to `path` on 127.0.0.1:`port` in `shape`, with `extra` headers
/// (`Authorization`, `User-Agent`): the status and the answer as JSON (`Null` when it is not
/// JSON).
pub fn send(
    port: u16,
    shape: Shape,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let (method, path, mut headers, body) = shape.request(method, path, params);
    headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, text) = crate::http(port, &method, &path, &headers, &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The fields both servers fill with their own values, and why they may differ:
/// - `time`: when each answered;
/// - `id`: privacyIDEA's JSON-RPC request counter;
/// - `version`, `versionnumber`: the product and release;
/// - `signature`: each server signs with its own key;
/// - `detail.threadid`: privacyIDEA's worker thread.
pub const OWN_FIELDS: &[&str] = &["time", "id", "version", "versionnumber", "signature", "detail.threadid"];

/// Where `countersign`'s answer differs from `privacyidea`'s, field by field (dotted paths),
/// apart from [`OWN_FIELDS`] and the fields in `also_own` (each caller says why).
pub fn differences(privacyidea: &Value, countersign: &Value, also_own: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    walk("", privacyidea, countersign, also_own, &mut out);
    out
}

fn walk(at: &str, a: &Value, b: &Value, own: &[&str], out: &mut Vec<String>) {
    // List elements are named by `*` in the lists of own fields (`detail.multi_challenge.*.transaction_id`).
    let general: String =
        at.split('.').map(|p| if p.parse::<usize>().is_ok() { "*" } else { p }).collect::<Vec<_>>().join(".");
    if OWN_FIELDS.contains(&general.as_str()) || own.contains(&general.as_str()) {
        return;
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(&format!("{at}.{i}"), p, q, own, out);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                walk(&path, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), own, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{}: privacyIDEA {a}, Countersign {b}", if at.is_empty() { "(answer)" } else { at })),
    }
}

// ---- Both servers side by side ----

/// A reject's detail: Countersign never says whether the PIN or the OTP was wrong, or that a
/// code was used before, and names no token (privacyIDEA says `wrong otp pin`, `wrong otp
/// value`, `previous otp used again`, with the serial, type and length of the token that the
/// PIN matched): each would tell a guesser what to try next.
pub const REJECT_DETAIL: &[&str] = &["detail.message", "detail.serial", "detail.type", "detail.otplen"];

/// A login no resolver knows: privacyIDEA answers ERR904 ("The user can not be found", status
/// false, HTTP 400); Countersign rejects it like a wrong PIN, so an answer never tells who
/// exists. Both deny, which is all a client acts on.
pub const UNKNOWN_USER: &[&str] =
    &["result.status", "result.value", "result.authentication", "result.error", "detail", "HTTP status"];

/// Name-value pairs for each server: (privacyIDEA's, Countersign's).
pub type PerServer<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);

/// Both servers, set up alike, with an admin session on each.
#[derive(Debug)]
pub struct Pair {
    pub pi: PrivacyIdea,
    pub cs: Daemon,
    pub cs_port: u16,
    pub pi_auth: String,
    pub cs_auth: String,
}

/// A session token of [`ADMIN`] on the server at `port`.
pub fn session(port: u16) -> String {
    let (status, v) = send(port, Shape::Form, "POST", "/auth", &[("username", ADMIN.0), ("password", ADMIN.1)], &[]);
    assert_eq!(status, 200, "{v}");
    v["result"]["value"]["token"].as_str().unwrap_or_else(|| panic!("no session token: {v}")).to_owned()
}

/// A daemon with `plugins`, an HTTP listener on 127.0.0.1 and `config` (more TOML), and the API
/// admin [`ADMIN`]: the daemon, the listener's port, and the admin's session token.
pub fn api_daemon(plugins: &[PluginSpec], config: &str) -> (Daemon, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = Daemon::with_plugins(plugins, &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{config}"));
    let out = d.cli_stdin(&["privacyidea", "admin-add", ADMIN.0], &format!("{}\n", ADMIN.1));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let auth = session(port);
    (d, port, auth)
}

impl Pair {
    /// Both servers, Countersign with these plugins and `config` (more TOML) besides its HTTP
    /// listener.
    pub fn start_with(plugins: &[PluginSpec], config: &str) -> Pair {
        let (cs, cs_port, cs_auth) = api_daemon(plugins, config);
        let pi = PrivacyIdea::start();
        let pi_auth = session(pi.port);
        Pair { pi, cs, cs_port, pi_auth, cs_auth }
    }

    /// An admin request both servers must accept (`result.status` true): both answers.
    pub fn admin(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (Value, Value) {
        let answer = |who: &str, port: u16, auth: &str| {
            let (status, v) = send(port, Shape::Form, method, path, params, &[("Authorization", auth)]);
            assert!(status == 200 && v["result"]["status"] == true, "{who}: {method} {path} -> {status} {v}");
            v
        };
        (answer("privacyIDEA", self.pi.port, &self.pi_auth), answer("Countersign", self.cs_port, &self.cs_auth))
    }

    /// An admin request to privacyIDEA alone (its own configuration, such as its mail server).
    pub fn pi_admin(&self, path: &str, params: &[(&str, &str)]) {
        let (status, v) = send(self.pi.port, Shape::Form, "POST", path, params, &[("Authorization", &self.pi_auth)]);
        assert!(status == 200 && v["result"]["status"] == true, "privacyIDEA: POST {path} -> {status} {v}");
    }

    /// The same request to both: both answers, and where Countersign's differs (the HTTP
    /// status as the field `HTTP status`).
    pub fn both(
        &self,
        shape: Shape,
        path: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (Value, Value, Vec<String>) {
        self.both_owning(shape, path, params, headers, &[])
    }

    /// [`Pair::both`], with more fields each server fills with its own values.
    pub fn both_owning(
        &self,
        shape: Shape,
        path: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
        own: &[&str],
    ) -> (Value, Value, Vec<String>) {
        self.both_with(shape, "POST", path, (params, params), (headers, headers), own)
    }

    /// One request to each server, each with its own parameters and headers (`(privacyIDEA's,
    /// Countersign's)`: a transaction id or a session each made): both answers, and where
    /// Countersign's differs.
    pub fn both_with(
        &self,
        shape: Shape,
        method: &str,
        path: &str,
        params: PerServer<'_>,
        headers: PerServer<'_>,
        own: &[&str],
    ) -> (Value, Value, Vec<String>) {
        let (ps, pv) = send(self.pi.port, shape, method, path, params.0, headers.0);
        let (cs, cv) = send(self.cs_port, shape, method, path, params.1, headers.1);
        let mut diff = differences(&pv, &cv, own);
        if ps != cs {
            diff.push(format!("HTTP status: privacyIDEA {ps}, Countersign {cs}"));
        }
        (pv, cv, diff)
    }
}

/// The differences of one exchange that are not allowed: what the two decided must agree, and
/// only the fields its kind of answer lets differ may.
pub fn disallowed(pv: &Value, cv: &Value, diff: Vec<String>) -> Vec<String> {
    let field = |d: &str| d.split(':').next().unwrap_or("").to_owned();
    let allowed: &[&str] = if pv["result"]["error"]["code"] == 904 {
        // Both must deny.
        if cv["result"]["value"] != false {
            return vec![format!("an unknown user was not rejected: {cv}")];
        }
        UNKNOWN_USER
    } else if pv["result"]["authentication"] == "REJECT" {
        REJECT_DETAIL
    } else {
        &[]
    };
    diff.into_iter().filter(|d| !allowed.contains(&field(d).as_str())).collect()
}

/// The exchanges of one test that differ beyond what is allowed, reported together at the end.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<String>);

impl Findings {
    /// One exchange. `want`: what privacyIDEA must have answered (`result.authentication`),
    /// so that the case is the one it claims to be and agreement is not agreement on a mistake.
    pub fn exchange(&mut self, what: &str, answers: (Value, Value, Vec<String>), want: Option<&str>) {
        self.exchange_allowing(what, answers, want, &[]);
    }

    /// [`Findings::exchange`], with more fields this exchange lets differ.
    pub fn exchange_allowing(
        &mut self,
        what: &str,
        (pv, cv, diff): (Value, Value, Vec<String>),
        want: Option<&str>,
        allowed: &[&str],
    ) {
        if let Some(want) = want.filter(|w| pv["result"]["authentication"] != *w) {
            self.0.push(format!("{what}: privacyIDEA answered {pv}, not {want}: the case is wrong"));
        }
        let field = |d: &str| d.split(':').next().unwrap_or("").to_owned();
        let bad: Vec<String> =
            disallowed(&pv, &cv, diff).into_iter().filter(|d| !allowed.contains(&field(d).as_str())).collect();
        if !bad.is_empty() {
            self.0.push(format!("{what}:\n  {}\n  privacyIDEA: {pv}\n  Countersign: {cv}", bad.join("\n  ")));
        }
    }

    /// Two values that must be equal (a count, a list of serials).
    pub fn same(&mut self, what: &str, pv: &Value, cv: &Value) {
        if pv != cv {
            self.0.push(format!("{what}: privacyIDEA {pv}, Countersign {cv}"));
        }
    }

    pub fn assert_none(self) {
        assert!(self.0.is_empty(), "{} exchanges differ:\n{}", self.0.len(), self.0.join("\n"));
    }
}
