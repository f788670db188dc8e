//! What the web console's tests share (integration modules `console_browser` and
//! `console_system`): a daemon with an HTTP listener and users in two realms, console users
//! with their TOTP second factor, and requests forged below the browser (one raw HTTP/1.1
//! exchange each), signed in by posting the sign-in form as a browser would.

use std::io::{Read, Write};

use crate::{Daemon, PluginSpec};

/// Every console user's password in these tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// A daemon with `plugins` (the TOTP plugin for the console's second factors among them), an
/// HTTP listener, user alice (e-mail alice@example.org) in the default realm and bob in realm
/// `partners`; and the listener's port.
pub fn appliance_with(plugins: &[PluginSpec]) -> (Daemon, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = Daemon::with_plugins(
        plugins,
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\nthrottle_base_ms = 0\n"),
    );
    d.cli_json(&["user", "add", "alice", "--email", "alice@example.org"]);
    d.cli_json(&["realm", "add", "partners"]);
    d.cli_json(&["user", "add", "bob", "--realm", "partners"]);
    (d, port)
}

/// [`appliance_with`] the TOTP plugin alone.
pub fn appliance() -> (Daemon, u16) {
    appliance_with(&[crate::TOTP_PLUGIN])
}

/// Adds console user `name` with `role` (and `realms`): the base32 secret of their TOTP.
pub fn console_user(d: &Daemon, name: &str, role: &str, realms: &[&str]) -> String {
    let mut args = vec!["console", "user-add", name, "--role", role];
    for r in realms {
        args.extend(["--realm", r]);
    }
    let v = d.cli_json_stdin(&args, &format!("{PASSWORD}\n"));
    let uri = v["otpauth_uri"].as_str().unwrap_or_else(|| panic!("no otpauth URI: {v}"));
    let url = url::Url::parse(uri).unwrap();
    url.query_pairs().find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()).unwrap()
}

/// The TOTP code of base32 `secret` at the step `offset` steps from now.
pub fn totp_now(secret: &str, offset: i64) -> String {
    let seed = data_encoding::BASE32_NOPAD.decode(secret.trim_end_matches('=').as_bytes()).unwrap();
    let step = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 30;
    crate::hotp(&seed, (step + offset) as u64)
}

/// One raw HTTP/1.1 exchange: status, headers (lower-case names) and body.
pub fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Signs `name` in by posting the form: the session cookie (`cs_console=...`).
pub fn sign_in(port: u16, name: &str, secret: &str) -> String {
    let body = form(&[("name", name), ("password", PASSWORD), ("code", &totp_now(secret, 0)), ("next", "/console/")]);
    let (status, headers, text) =
        exchange(port, "POST", "/console/sign-in", &[("Content-Type", "application/x-www-form-urlencoded")], &body);
    assert_eq!(status, 303, "sign-in of {name}: {text}");
    let cookie =
        headers.iter().find(|(k, _)| k == "set-cookie").map(|(_, v)| v.split(';').next().unwrap().to_owned()).unwrap();
    assert!(cookie.starts_with("cs_console="), "{cookie}");
    cookie
}

/// The CSRF token of a signed-in page.
pub fn csrf(port: u16, cookie: &str) -> String {
    let (status, _, page) = exchange(port, "GET", "/console/", &[("Cookie", cookie)], "");
    assert_eq!(status, 200, "{page}");
    let at = page.find("name=\"_csrf\" value=\"").unwrap() + 20;
    page[at..at + 32].to_owned()
}
