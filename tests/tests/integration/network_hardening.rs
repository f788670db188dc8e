//! The network listener and the HTTP API under attack (issue 13): every route behind one
//! authentication layer, admin policies judged on the token as stored, connection floods and
//! slowloris against a daemon with a small descriptor limit, sessions that die with their
//! admin and at logout, and login backoff that slows guessing without locking the admin out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use countersign_tests::{Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

const SEED: &str = "3132333435363738393031323334353637383930";
const FORM: &str = "application/x-www-form-urlencoded";
const PW: &str = "correct horse battery";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon with the HTTP listener on a free loopback port; `extra` is more configuration.
fn daemon_with_http(http_extra: &str, extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::with_plugins(
        &[HOTP_PLUGIN],
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}[validate]\ndetailed_errors = false\n{extra}"),
    );
    (d, port)
}

/// A TCP connection to the listener from source address `src` (any 127/8 address works).
fn connect_from(src: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        sock.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// One HTTP/1.1 request from `src`: (status, body). Status 0: the server closed the connection
/// without an answer.
fn http_from(src: &str, port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = connect_from(src, port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    if resp.len() < 12 {
        return (0, resp);
    }
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn form(port: u16, path: &str, body: &str, auth: Option<&str>) -> (u16, Value) {
    form_from("127.0.0.1", port, path, body, auth)
}

fn form_from(src: &str, port: u16, path: &str, body: &str, auth: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> =
        [("Content-Type", FORM)].into_iter().chain(auth.map(|a| ("Authorization", a))).collect();
    let (s, b) = http_from(src, port, "POST", path, &headers, body);
    (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

/// Runs `f` on a thread and fails the test when it does not finish within `limit` (a starved
/// daemon would otherwise hang the test instead of failing it).
fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

fn add_api_admin(d: &Daemon, name: &str) {
    let out = d.cli_stdin(&["privacyidea", "admin-add", name], &format!("{PW}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn login(port: u16, name: &str) -> String {
    let (status, v) = form(port, "/auth", &format!("username={name}&password={}", PW.replace(' ', "+")), None);
    assert_eq!(status, 200, "{v}");
    v["result"]["value"]["token"].as_str().unwrap().to_owned()
}

/// Every `.route(PATH` of the HTTP layer's source, with `{param}` segments filled in: the
/// test follows the code, so a route added later is tested too. A route whose path is not a
/// literal is refused here unless it is one the test knows how to list (the push endpoints,
/// one per `PushFlavour`), so no route can leave the test by being computed.
fn every_route() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>, computed: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out, computed);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for part in text.split(".route(").skip(1) {
                    let part = part.trim_start();
                    let Some(literal) = part.strip_prefix('"') else {
                        computed.push(format!("{}: {}", p.display(), part.lines().next().unwrap_or_default()));
                        continue;
                    };
                    let path = literal.split('"').next().unwrap();
                    let filled: Vec<String> = path
                        .split('/')
                        .map(|seg| if seg.starts_with('{') { "x".to_owned() } else { seg.to_owned() })
                        .collect();
                    out.push(filled.join("/"));
                }
            }
        }
    }
    let (mut out, mut computed) = (Vec::new(), Vec::new());
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../http/src"), &mut out, &mut computed);
    // The push endpoints are routed from PushFlavour::ALL (http/src/privacyidea/push.rs).
    computed.retain(|c| !(c.contains("privacyidea/push.rs: ") && c.contains("f.endpoint()")));
    assert!(computed.is_empty(), "routes whose path this test cannot list: {computed:?}");
    out.extend(countersign_core::policy::push::PushFlavour::ALL.iter().map(|f| f.endpoint().to_owned()));
    out.push("/no/such/route".into());
    out.sort();
    out.dedup();
    out
}

/// The console's paths that answer without a session: its sign-in page, its static files, and
/// the passkey challenge of the sign-in page (an open path; see issue 18's note).
const CONSOLE_PUBLIC: [&str; 3] = ["/console/sign-in", "/console/static/", "/console/passkey/challenge"];

/// Finding 4: with `http.require_api_key`, no route of the HTTP listener answers a caller
/// without a key (the native `/v1/validate/check` did), but `/auth`; a key opens them.
#[test]
fn require_api_key_covers_every_route_of_the_http_listener() {
    let (d, port) = daemon_with_http("require_api_key = true\n", "");
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"], &format!("{SEED}\n"));
    let routes = every_route();
    assert!(routes.contains(&"/v1/validate/check".to_owned()) && routes.len() > 40, "{routes:?}");
    let mut open = Vec::new();
    for path in &routes {
        for method in ["GET", "POST", "DELETE", "PUT"] {
            let body = if method == "POST" { r#"{"user":"alice","pass":"755224"}"# } else { "" };
            let (status, text) =
                http_from("127.0.0.1", port, method, path, &[("Content-Type", "application/json")], body);
            if path == "/auth" || CONSOLE_PUBLIC.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            // PowerAuth's server status answers anyone the server's time (no version), which the
            // SDK sets its clock from before it can authenticate anything.
            if path == "/pa/v3/status" {
                if method == "POST"
                    && !(status == 200 && text.contains("serverTime") && !text.contains("version\":\"0"))
                {
                    open.push(format!("{method} {path} -> {status} {text}"));
                }
                continue;
            }
            // The console authenticates browsers by its own session (no API key there): without
            // one, pages send the browser to sign in and anything else is refused.
            if path.starts_with("/console") {
                if !(status == 303 && method == "GET" || status == 403 || status == 405) {
                    open.push(format!("{method} {path} -> {status} {text}"));
                }
                continue;
            }
            // The PowerAuth mobile side (the mobile API and the Mobile Token API) and the push
            // phones' endpoint are authenticated by the protocol itself (ECIES to the server's
            // keys, signatures, MAC tokens, an enrolment credential), not by an API key, which a
            // phone does not have: without the protocol's credentials they refuse all the same.
            if path.starts_with("/pa/v3/")
                || path.starts_with("/api/auth/token/app/")
                || path == "/ttype/push"
                || path == "/ttype/edupush"
            {
                if (200..300).contains(&status) {
                    open.push(format!("{method} {path} -> {status} {text}"));
                }
                continue;
            }
            if status != 401 {
                open.push(format!("{method} {path} -> {status} {text}"));
            }
        }
    }
    assert!(open.is_empty(), "routes that answered without an API key:\n{}", open.join("\n"));
    // The code was not consumed by any of those attempts; with a key the native check works.
    let out = d.cli(&["--json", "privacyidea", "service-add", "radius"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"].as_str().unwrap().to_owned();
    let (status, text) = http_from(
        "127.0.0.1",
        port,
        "POST",
        "/v1/validate/check",
        &[("Content-Type", "application/json"), ("Authorization", &key)],
        r#"{"user":"alice","pass":"755224"}"#,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["accepted"], true, "{text}");
    // A wrong key is refused on every kind of route, also without require_api_key's help.
    let (status, _) = http_from("127.0.0.1", port, "GET", "/v1/health", &[("Authorization", "cs_00_wrong")], "");
    assert_eq!(status, 401);
}

/// Two realms over passwd files: `helpdesk` (hugo) and `corp` (carol).
fn two_realms(d: &Daemon) {
    for (realm, login) in [("helpdesk", "hugo"), ("corp", "carol")] {
        let file = d.work.path().join(format!("{realm}.passwd"));
        std::fs::write(&file, format!("{login}:x:2001:2001:{login}:/home/{login}:/bin/sh\n")).unwrap();
        let o = json!({ "path": file.display().to_string() }).to_string();
        d.cli_json(&["resolver", "add", realm, "--kind", "passwd", "--options", &o]);
        d.cli_json(&["realm", "add", realm, "--resolvers", realm]);
    }
}

fn token_of(d: &Daemon, user: &str, realm: &str) -> String {
    let e = d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", user, "--realm", realm, "--seed-stdin"],
        &format!("{SEED}\n"),
    );
    e["token"]["serial"].as_str().unwrap().to_owned()
}

/// Finding 5: an admin whose policies are limited to realm `helpdesk` cannot disable, set the
/// PIN of, unassign, reset, delete or even see a token of realm `corp`, whatever realm the
/// request names; the same actions on a helpdesk token work.
#[test]
fn a_realm_limited_admin_cannot_touch_another_realms_tokens() {
    let (d, port) = daemon_with_http("", "");
    two_realms(&d);
    let corp = token_of(&d, "carol", "corp");
    let help = token_of(&d, "hugo", "helpdesk");
    add_api_admin(&d, "ops");
    let all = ["tokenlist=true", "disable=true", "enable=true", "setpin=true", "unassign=true", "reset=true"];
    let mut args =
        vec!["policy", "set", "ops-helpdesk", "--scope", "admin", "--admin-user", "ops", "--realm", "helpdesk"];
    for a in &all {
        args.extend_from_slice(&["--action", a]);
    }
    args.extend_from_slice(&["--action", "delete=true", "--action", "assign=true", "--action", "enrollHOTP=true"]);
    args.extend_from_slice(&["--action", "triggerchallenge=true"]);
    let out = d.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = login(port, "ops");
    let auth = Some(t.as_str());

    for action in ["disable", "setpin", "unassign", "reset", "enable"] {
        for extra in ["", "&realm=helpdesk", "&user=hugo&realm=helpdesk"] {
            let (status, v) = form(port, &format!("/token/{action}"), &format!("serial={corp}{extra}&pin=1234"), auth);
            assert_eq!(status, 403, "{action}{extra}: {v}");
        }
    }
    let (status, v) =
        http_from("127.0.0.1", port, "DELETE", &format!("/token/{corp}?realm=helpdesk"), &[("Authorization", &t)], "");
    assert_eq!(status, 403, "{v}");
    // Assigning the corp token away, or a helpdesk token to carol in corp: refused.
    let (status, v) = form(port, "/token/assign", &format!("serial={corp}&user=hugo&realm=helpdesk"), auth);
    assert_eq!(status, 403, "{v}");
    let (status, v) = form(port, "/token/assign", &format!("serial={help}&user=carol&realm=corp"), auth);
    assert_eq!(status, 403, "{v}");
    // Enrolling for a corp user, naming no realm when corp is the default, also judged on corp.
    let (status, v) = form(port, "/token/init", "type=hotp&genkey=1&user=carol&realm=corp", auth);
    assert_eq!(status, 403, "{v}");
    // The corp token is untouched.
    let shown = d.cli_json(&["token", "show", &corp]);
    assert_eq!(shown["active"], true, "{shown}");
    assert_eq!(shown["user"], "carol", "{shown}");
    // Listing shows helpdesk tokens only, whatever the filter claims.
    for query in ["", "?realm=helpdesk", "?user=carol&realm=corp", &format!("?serial={corp}&realm=helpdesk")] {
        let (status, body) =
            http_from("127.0.0.1", port, "GET", &format!("/token/{query}"), &[("Authorization", &t)], "");
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains(&corp), "{query}: {body}");
    }
    let (_, body) = http_from("127.0.0.1", port, "GET", "/token/", &[("Authorization", &t)], "");
    assert!(body.contains(&help), "{body}");
    // The helpdesk token: allowed.
    let (status, v) = form(port, "/token/disable", &format!("serial={help}"), auth);
    assert_eq!(status, 200, "{v}");
    assert_eq!(d.cli_json(&["token", "show", &help])["active"], false);
    // By user: every token of the user is judged on its own realm.
    let (status, v) = form(port, "/token/enable", "user=hugo&realm=helpdesk", auth);
    assert_eq!((status, v["result"]["value"].clone()), (200, json!(1)), "{v}");
    let (status, v) = form(port, "/token/disable", "user=carol&realm=corp", auth);
    assert_eq!(status, 403, "{v}");
    // System-wide actions are not granted by a realm-limited policy either.
    let (status, v) = form(port, "/policy/sneaky", "scope=admin&action=disable&realm=helpdesk", auth);
    assert_eq!(status, 403, "{v}");
    // Challenges (texts, e-mails, push prompts) go only to the admin's own realm's users and
    // tokens, judged on the user resolved and on the token as stored, whatever realm is named.
    for body in [
        "user=carol&realm=corp",
        "user=carol@corp",
        &format!("serial={corp}"),
        &format!("serial={corp}&realm=helpdesk"),
    ] {
        let (status, v) = form(port, "/validate/triggerchallenge", body, auth);
        assert_eq!(status, 403, "{body}: {v}");
        assert!(v["result"]["error"]["message"].as_str().unwrap().contains("triggerchallenge"), "{v}");
    }
    for body in ["user=hugo&realm=helpdesk", &format!("serial={help}")] {
        let (status, v) = form(port, "/validate/triggerchallenge", body, auth);
        assert_eq!(status, 200, "{body}: {v}");
    }
    // An unknown serial is judged as system-wide: refused, the same as another realm's.
    let (status, _) = form(port, "/validate/triggerchallenge", "serial=NO-SUCH-TOKEN", auth);
    assert_eq!(status, 403);
    // Without `enrollpin`, a PIN sent at enrolment is dropped, as privacyIDEA drops it: the
    // token answers its OTP alone.
    let key = "3132333435363738393031323334353637383930";
    let body = format!("type=hotp&otpkey={key}&user=hugo&realm=helpdesk&pin=1234&serial=HPIN1");
    let (status, v) = form(port, "/token/init", &body, auth);
    assert_eq!(status, 200, "{v}");
    let (_, v) = d.check(json!({ "serial": "HPIN1", "pass": "1234755224" }));
    assert_eq!(v["accepted"], false, "the PIN sent was set: {v}");
    let (_, v) = d.check(json!({ "serial": "HPIN1", "pass": "755224" }));
    assert_eq!(v["accepted"], true, "{v}");
}

/// The file descriptors of process `pid` open now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Finding 6: a flood of idle connections (more than the daemon's descriptor limit) and
/// slowloris clients against the HTTP listener neither stop validation on api.sock, admin
/// requests on admin.sock nor a fresh HTTP check from another address; the server closes
/// idle and slow connections after `connections.header_timeout_ms`, and then 127.0.0.1 is
/// served again.
#[test]
fn idle_and_slow_connections_cannot_starve_the_daemon() {
    let port = free_port();
    let mut d = Daemon::configure("");
    // 512 descriptors in all, so the flood below is larger than the process may open.
    d.wrapper = vec!["prlimit".into(), "--nofile=512:512".into(), "--".into()];
    d.install_plugins(
        &[HOTP_PLUGIN],
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\ndetailed_errors = false\n\
             [connections]\nfd_reserve = 256\nheader_timeout_ms = 2000\nhttp_max_per_peer = 32\n"
        ),
    );
    d.spawn().expect("countersignd starts");
    d.cli_json(&["user", "add", "alice"]);
    let e =
        d.cli_json_stdin(&["token", "init", "--type", "hotp", "--user", "alice", "--seed-stdin"], &format!("{SEED}\n"));
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();
    let pid = d.pid().unwrap();
    let before = open_fds(pid);

    // 600 idle connections from 127.0.0.1 (bounded; each closed when the test ends).
    let idle: Vec<TcpStream> = (0..600).map(|_| connect_from("127.0.0.1", port)).collect();
    // 40 slowloris clients from 127.0.0.3: partial headers, a byte every 300 ms.
    let slow: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect_from("127.0.0.3", port);
            let _ = s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-a: ");
            s
        })
        .collect();
    let slow_clones: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
    let trickle = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end {
            for mut s in &slow_clones {
                let _ = s.write_all(b"a");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // Let the daemon accept what it will (the backlog drains as it accepts or refuses).
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) < before + 64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = open_fds(pid);
    eprintln!("descriptors: {before} before the flood, {during} during it (limit 512)");
    assert!(during < 512 - 128, "the flood took {during} of 512 descriptors");

    // Validation on api.sock, an admin request on admin.sock, a check over HTTP from another
    // address: all served while the flood is open.
    let sock = d.api_sock();
    let s2 = serial.clone();
    let accepted = within(Duration::from_secs(20), "validation on api.sock", move || {
        countersign_tests::request(
            &sock,
            "POST",
            "/v1/validate/check",
            Some(serde_json::to_vec(&json!({ "serial": s2, "pass": "755224" })).unwrap()),
        )
    });
    assert_eq!((accepted.0, accepted.1["accepted"].clone()), (200, json!(true)), "{accepted:?}");
    let admin_sock = d.admin_sock();
    let (status, tokens) = within(Duration::from_secs(20), "a request on admin.sock", move || {
        countersign_tests::request(&admin_sock, "GET", "/v1/admin/tokens", None)
    });
    assert_eq!(status, 200, "{tokens}");
    let (status, v) = within(Duration::from_secs(20), "a check over HTTP from 127.0.0.2", move || {
        form_from("127.0.0.2", port, "/validate/check", "user=alice&pass=287082", None)
    });
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["authentication"], "ACCEPT", "{v}");

    // Every idle and slow connection is closed by the server within the header timeout (plus
    // slack); the ones beyond the caps were closed at once.
    let started = Instant::now();
    let mut closed = 0;
    for mut s in idle.into_iter().chain(slow) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(_) => closed += 1, // EOF, or a 408 and then EOF
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(e) => panic!("connection still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert_eq!(closed, 640);
    trickle.join().unwrap();
    // 127.0.0.1 is served again.
    let (status, v) = form(port, "/validate/check", "user=alice&pass=359152", None);
    assert_eq!((status, v["result"]["authentication"].clone()), (200, json!("ACCEPT")), "{v}");
    d.stop();
}

/// Finding 12: a session token dies when its admin is deleted, also when an admin of the same
/// name (and password) is created again; logout ends every session of the admin; an admin's
/// sessions can be revoked on admin.sock.
#[test]
fn sessions_die_with_their_admin_and_at_logout() {
    let (d, port) = daemon_with_http("", "");
    add_api_admin(&d, "ops");
    let old = login(port, "ops");
    let list = |t: &str| http_from("127.0.0.1", port, "GET", "/token/", &[("Authorization", t)], "").0;
    assert_eq!(list(&old), 200);
    assert!(d.cli(&["privacyidea", "admin-remove", "ops"]).status.success());
    assert_eq!(list(&old), 401);
    add_api_admin(&d, "ops");
    assert_eq!(list(&old), 401, "the old session does not come back with a new admin of the same name");

    // Logout: both sessions of the admin end.
    let a = login(port, "ops");
    let b = login(port, "ops");
    assert_eq!(list(&a), 200);
    let (status, text) = http_from("127.0.0.1", port, "POST", "/v1/auth/logout", &[("Authorization", &a)], "");
    assert_eq!(status, 204, "{text}");
    assert_eq!(list(&a), 401);
    assert_eq!(list(&b), 401);
    // Logging out again with the dead token is refused.
    let (status, _) = http_from("127.0.0.1", port, "POST", "/v1/auth/logout", &[("Authorization", &a)], "");
    assert_eq!(status, 401);

    // Revoked by an appliance admin on admin.sock.
    let c = login(port, "ops");
    assert_eq!(list(&c), 200);
    let (status, v) =
        countersign_tests::request(&d.admin_sock(), "POST", "/v1/admin/privacyidea/admins/ops/logout", None);
    assert_eq!(status, 204, "{v}");
    assert_eq!(list(&c), 401);
    assert!(d.auth_audit().iter().any(|r| r["action"] == "api/logout"));
    assert!(d.auth_audit().iter().any(|r| r["action"] == "api-admin/revoke-sessions"));
}

fn auth_from(src: &str, port: u16, password: &str) -> (u16, Value) {
    form_from(src, port, "/auth", &format!("username=ops&password={}", password.replace(' ', "+")), None)
}

/// Finding 13: guesses from one client back off (growing delay, at most a minute), never a
/// 15-minute lockout; other clients, the admin's known client and api.sock are not slowed.
#[test]
fn failed_logins_back_off_per_client_without_locking_the_admin_out() {
    let (d, port) = daemon_with_http("", "");
    add_api_admin(&d, "ops");
    // The admin's usual client (127.0.0.2) logged in before.
    assert_eq!(auth_from("127.0.0.2", port, PW).0, 200);

    // A local guesser on 127.0.0.1: five free failures, then it must wait.
    for _ in 0..5 {
        assert_eq!(auth_from("127.0.0.1", port, "wrong").0, 401);
    }
    let (status, v) = auth_from("127.0.0.1", port, PW);
    assert_eq!(status, 401, "{v}");
    let msg = v["result"]["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("try again in 1 seconds"), "{msg}");
    // It keeps guessing (each time it may): its delay grows to a minute at most.
    let mut offset = 0_i64;
    for _ in 0..12 {
        offset += 61_000;
        d.set_clock_offset_ms(offset);
        assert_eq!(auth_from("127.0.0.1", port, "wrong").0, 401);
    }
    let (_, v) = auth_from("127.0.0.1", port, PW);
    assert!(v["result"]["error"]["message"].as_str().unwrap().contains("try again in 60 seconds"), "{v}");
    // Guessing other names from the admin's known client does not slow the admin there.
    for _ in 0..10 {
        form_from("127.0.0.2", port, "/auth", "username=root&password=x", None);
    }
    assert_eq!(auth_from("127.0.0.2", port, PW).0, 200);
    // Nor on api.sock (by uid).
    let body = serde_json::to_vec(&json!({ "username": "ops", "password": PW })).unwrap();
    let (status, v) = countersign_tests::request(&d.api_sock(), "POST", "/auth", Some(body));
    assert_eq!(status, 200, "{v}");
    // And the guesser's own address works again a minute later, not 15 minutes later.
    d.set_clock_offset_ms(offset + 61_000);
    assert_eq!(auth_from("127.0.0.1", port, PW).0, 200);
    let refused = d
        .auth_audit()
        .into_iter()
        .filter(|a| a["action"] == "api/auth" && a["result"] == "refused" && a["caller"] == "ip:127.0.0.1")
        .count();
    assert_eq!(refused, 2);
}
