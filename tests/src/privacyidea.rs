//! privacyIDEA itself, the reference server of the conformance suite: the pinned release from
//! PyPI that `scripts/install-deps.sh` puts into `.tools/privacyidea`, set up with `pi-manage`
//! (SQLite, its own encryption and audit keys, one admin) in a directory of its own and served
//! by its Flask app on 127.0.0.1. Also the request shapes both servers are sent
//! ([`Shape`]) and the comparison of their answers ([`differences`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

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
