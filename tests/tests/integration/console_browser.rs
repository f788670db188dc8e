//! The web console (issue 18), against a real daemon:
//! - in a real browser (headless Chromium through playwright-core,
//!   `tests/tools/console_browser/flow.mjs`): sign in with password and TOTP, find a user,
//!   enrol a TOTP token and read its secret once, authenticate with it at `/validate/check`,
//!   reset a fail counter, disable the token and see the check refused, a form without its CSRF
//!   token refused, a delete asking for both factors again first, a passkey registered on the
//!   account page (the DevTools protocol's virtual authenticator) and a sign-in with it instead
//!   of a code, a security key registered for the user on their page, the audit holding each action, sign out; every page with the CSP and no
//!   inline code; screenshots in `target/console-screenshots/`;
//! - below the browser, by forged requests: a helpdesk user cannot act outside their realms, an
//!   auditor changes nothing, and a tampered session cookie is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::io::{Read, Write};
use std::process::Command;

use countersign_tests::console::{appliance, appliance_with, console_user, csrf, exchange, form, sign_in, PASSWORD};
use countersign_tests::webauthn::SKIP_BROWSER;
use countersign_tests::{Daemon, TOTP_PLUGIN, WEBAUTHN_PLUGIN};
use serde_json::{json, Value};

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn serial_of(d: &Daemon, login: &str, realm: &str) -> String {
    let v = d.cli_json(&["token", "init", "--type", "totp", "--user", login, "--realm", realm]);
    v.pointer("/token/serial").and_then(Value::as_str).unwrap_or_else(|| panic!("no serial: {v}")).to_owned()
}

#[test]
fn a_help_desk_day_in_a_real_browser() {
    if std::env::var(SKIP_BROWSER).as_deref() == Ok("1") {
        println!("skipped ({SKIP_BROWSER}=1)");
        return;
    }
    let (d, port) = appliance_with(&[TOTP_PLUGIN, WEBAUTHN_PLUGIN]);
    let secret = console_user(&d, "root-admin", "admin", &[]);
    // Passkeys: the console's origin is the browser's http://localhost:PORT, relying party
    // `localhost` (a secure context over plain HTTP).
    let rp = countersign_tests::webauthn::rp_policy(
        "localhost",
        "Countersign console",
        Some(&format!("http://localhost:{port}")),
    );
    let mut args = vec!["policy", "set", "console-passkeys", "--scope", "enrollment"];
    for a in rp.split(", ") {
        args.extend(["--action", a]);
    }
    d.cli_json(&args);
    let shots = repo().join("target/console-screenshots");
    let cfg = json!({
        "base": format!("http://localhost:{port}"),
        "api": format!("http://127.0.0.1:{port}"),
        "admin": { "name": "root-admin", "password": PASSWORD, "secret": secret },
        "user": { "login": "alice", "realm": "default" },
        "clock_file": d.clock_file(),
        "shots": shots,
    });
    let out = Command::new("node")
        .arg(repo().join("tests/tools/console_browser/flow.mjs"))
        .arg(cfg.to_string())
        .output()
        .expect("node runs");
    assert!(out.status.success(), "the browser flow failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let s = &seen["steps"];
    assert_eq!(s["redirected_to_sign_in"], true, "{seen}");
    assert_eq!(s["wrong_password_refused"], true, "{seen}");
    assert_eq!(s["signed_in"], true, "{seen}");
    assert_eq!(s["cookie"], json!({ "httpOnly": true, "secure": true, "sameSite": "Strict" }), "{seen}");
    assert_eq!(s["user_page"], true, "{seen}");
    assert!(s["enrolled"]["secret_len"].as_u64().unwrap_or(0) >= 16, "{seen}");
    assert_eq!(s["secret_gone"], true, "the secret is shown once: {seen}");
    assert_eq!(s["check_accepted"], true, "{seen}");
    assert_eq!(s["fails_before_reset"], "2 of 10", "{seen}");
    assert_eq!(s["fails_after_reset"], "0 of 10", "{seen}");
    assert_eq!(s["disabled_state"], "disabled", "{seen}");
    assert_eq!(s["check_after_disable"], false, "a disabled token's code is refused: {seen}");
    assert_eq!(s["forged_without_csrf"], 403, "{seen}");
    for (action, n) in s["audit"].as_object().unwrap() {
        assert!(n.as_u64().unwrap_or(0) >= 1, "the audit search found no {action}: {seen}");
    }
    assert_eq!(s["after_sign_out_sign_in"], true, "{seen}");
    assert_eq!(s["reauth_asked"], true, "a delete first asks for both factors again: {seen}");
    assert_eq!(s["deleted_after_reauth"], true, "{seen}");
    assert_eq!(s["passkey_registered"], true, "{seen}");
    assert_eq!(s["passkey_sign_in"], true, "{seen}");
    assert_eq!(s["user_key_registered"], true, "{seen}");
    assert_eq!(s["dashboard_chain_verifies"], true, "{seen}");
    assert_eq!(s["keyboard"], json!({ "first": "skip", "after": "main" }), "{seen}");
    assert_eq!(s["tablet_fits"], true, "the user page fits a tablet's width: {seen}");
    let pages = seen["pages"].as_array().unwrap();
    assert!(pages.len() >= 8, "{seen}");
    for p in pages {
        assert!(p["csp"].as_str().unwrap().contains("script-src 'self'"), "no CSP on {p}");
        assert!(p["csp"].as_str().unwrap().contains("frame-ancestors 'none'"), "{p}");
        assert_eq!(p["inline"], false, "inline code on {p}");
    }
    for shot in
        ["sign-in", "dashboard", "users", "user", "user-tablet", "enrolled", "reauth", "account", "audit", "policies"]
    {
        assert!(shots.join(format!("{shot}.png")).exists(), "no screenshot {shot}");
    }
    // The audit names the console user as the caller of their changes.
    let rows = d.cli_json(&["audit", "auth", "--action", "token/disable"]);
    assert!(rows.to_string().contains("console:root-admin"), "{rows}");
}

#[test]
fn a_helpdesk_user_acts_only_in_their_realms_and_an_auditor_changes_nothing() {
    let (d, port) = appliance();
    let hd = console_user(&d, "hd", "helpdesk", &["default"]);
    let au = console_user(&d, "au", "auditor", &[]);
    let alice = serial_of(&d, "alice", "default");
    let bob = serial_of(&d, "bob", "partners");

    let cookie = sign_in(port, "hd", &hd);
    let token = csrf(port, &cookie);
    let post = |path: &str, cookie: &str, body: &str| {
        exchange(port, "POST", path, &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")], body)
            .0
    };
    // The page of a user in another realm is refused, and so is a forged post on their token.
    let (status, _, _) = exchange(port, "GET", "/console/users/partners/bob", &[("Cookie", &cookie)], "");
    assert_eq!(status, 403);
    assert_eq!(post(&format!("/console/tokens/{bob}/disable"), &cookie, &form(&[("_csrf", &token)])), 403);
    // ... with the same answer as a serial that does not exist (no oracle of other realms' serials).
    let form_headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let csrf_only = form(&[("_csrf", &token)]);
    let other_realm = exchange(port, "POST", &format!("/console/tokens/{bob}/disable"), &form_headers, &csrf_only);
    let missing = exchange(port, "POST", "/console/tokens/NOSUCH0001/disable", &form_headers, &csrf_only);
    assert_eq!((other_realm.0, other_realm.2), (missing.0, missing.2), "another realm's token reads as a missing one");
    // In their realm the same post works; without the CSRF token it does not.
    assert_eq!(post(&format!("/console/tokens/{alice}/disable"), &cookie, ""), 403);
    assert_eq!(post(&format!("/console/tokens/{alice}/disable"), &cookie, &form(&[("_csrf", &token)])), 303);
    let bob_token = d.cli_json(&["token", "show", &bob]);
    assert_eq!(bob_token["active"], true, "{bob_token}");
    assert_eq!(d.cli_json(&["token", "show", &alice])["active"], false);
    // Registering an authenticator for a user of another realm is refused, and so is finishing
    // a registration with a token that is another user's (the form names a serial; the token as
    // loaded decides).
    assert_eq!(
        post("/console/users/partners/bob/webauthn/options", &cookie, &form(&[("_csrf", &token), ("type", "passkey")])),
        403
    );
    let finish = form(&[
        ("_csrf", &token),
        ("serial", &bob),
        ("transaction_id", "1"),
        ("attestation_object", "AA"),
        ("client_data", "AA"),
    ]);
    assert_eq!(post("/console/users/default/alice/webauthn", &cookie, &finish), 403);
    // The audit and system pages are not a helpdesk's.
    assert_eq!(exchange(port, "GET", "/console/audit", &[("Cookie", &cookie)], "").0, 403);
    // A tampered cookie is no session. (That a session works only from the address it was
    // opened from has no test yet: this listener is on 127.0.0.1 only; see issue 18's note.)
    let tampered = format!("{}x", cookie);
    assert_eq!(exchange(port, "GET", "/console/users", &[("Cookie", &tampered)], "").0, 303);

    let cookie = sign_in(port, "au", &au);
    let token = csrf(port, &cookie);
    assert_eq!(exchange(port, "GET", "/console/audit", &[("Cookie", &cookie)], "").0, 200);
    assert_eq!(post(&format!("/console/tokens/{alice}/enable"), &cookie, &form(&[("_csrf", &token)])), 403);
    assert_eq!(exchange(port, "GET", "/console/users/default/alice", &[("Cookie", &cookie)], "").0, 403);
    assert_eq!(d.cli_json(&["token", "show", &alice])["active"], false, "the auditor changed nothing");
}

/// [`exchange`] from the local address `from` (another loopback address than the one the
/// session was opened from): only the status.
fn status_from(from: std::net::Ipv4Addr, port: u16, path: &str, cookie: &str) -> u16 {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((from, 0)).into()).unwrap();
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp[9..12].parse().unwrap()
}

#[test]
fn a_session_works_only_from_its_address_and_passkey_challenges_are_limited_per_address() {
    let (d, port) = appliance();
    let secret = console_user(&d, "ad", "admin", &[]);
    let cookie = sign_in(port, "ad", &secret);
    assert_eq!(exchange(port, "GET", "/console/users", &[("Cookie", &cookie)], "").0, 200);
    // The same cookie from another address (127.0.0.2, also this machine's loopback) is no
    // session: a stolen cookie is useless elsewhere.
    assert_eq!(status_from(std::net::Ipv4Addr::new(127, 0, 0, 2), port, "/console/users", &cookie), 303);
    assert_eq!(status_from(std::net::Ipv4Addr::LOCALHOST, port, "/console/users", &cookie), 200);

    // Anyone may ask for a passkey challenge, but one address only a few a minute (each is a
    // stored row); the eleventh is refused with 429 before anything is stored.
    let ask = || exchange(port, "POST", "/console/passkey/challenge", &[("Content-Type", "application/json")], "{}");
    let limit = countersign::console_access::PASSKEY_CHALLENGES_PER_MINUTE as usize;
    for i in 0..limit {
        let (status, _, body) = ask();
        assert_ne!(status, 429, "challenge {i} of {limit}: {body}");
    }
    let (status, _, body) = ask();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("Too many passkey sign-ins"), "{body}");
}

#[test]
fn an_admin_defines_explains_and_deletes_a_policy_and_an_auditor_only_reads_them() {
    let (d, port) = appliance();
    let ad = console_user(&d, "ad", "admin", &[]);
    let au = console_user(&d, "au", "auditor", &[]);
    let cookie = sign_in(port, "ad", &ad);
    let token = csrf(port, &cookie);
    let post = |path: &str, cookie: &str, body: &str| {
        exchange(port, "POST", path, &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")], body)
    };
    let get = |path: &str, cookie: &str| exchange(port, "GET", path, &[("Cookie", cookie)], "");
    let policy = |token: &str, actions: &str, existing: &str| {
        form(&[
            ("_csrf", token),
            ("existing", existing),
            ("name", "staff-pin"),
            ("scope", "authentication"),
            ("active", "on"),
            ("priority", "2"),
            ("actions", actions),
            ("realms", "default"),
            ("description", "PINs of the staff from the directory"),
        ])
    };

    // The engine's catalogue judges the form: an unknown action comes back in the form, with the
    // reason and the admin's own input kept; nothing is stored.
    let (status, _, page) =
        post("/console/system/policies/save", &cookie, &policy(&token, "otppin=userstore\nno_such_action", ""));
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("no_such_action") && page.contains("unknown action"), "{page}");
    assert!(page.contains("otppin=userstore"), "the input is kept: {page}");
    assert!(!d.cli(&["policy", "show", "staff-pin"]).status.success(), "nothing stored");

    // A valid one is stored and in effect.
    let (status, _, page) = post("/console/system/policies/save", &cookie, &policy(&token, "otppin=userstore", ""));
    assert_eq!(status, 303, "{page}");
    let shown = d.cli_json(&["policy", "show", "staff-pin"]);
    assert_eq!(shown["actions"]["otppin"], "userstore", "{shown}");
    assert_eq!(shown["realms"], json!(["default"]), "{shown}");
    assert_eq!(shown["priority"], 2, "{shown}");
    // A new policy of an existing name does not overwrite it; an edit does.
    let (status, _, _) = post("/console/system/policies/save", &cookie, &policy(&token, "otppin=none", ""));
    assert_eq!(status, 422);
    assert_eq!(d.cli_json(&["policy", "show", "staff-pin"])["actions"]["otppin"], "userstore");
    let (status, _, _) = post("/console/system/policies/save", &cookie, &policy(&token, "otppin=tokenpin", "yes"));
    assert_eq!(status, 303);
    assert_eq!(d.cli_json(&["policy", "show", "staff-pin"])["actions"]["otppin"], "tokenpin");

    // `policy check`: which policy gives the value for a request, and that another realm's
    // users get the default.
    let (status, _, page) = get("/console/system/policies?action=otppin&realm=default&user=alice", &cookie);
    assert_eq!(status, 200);
    assert!(page.contains("tokenpin") && page.contains("(effective)"), "{page}");
    let (_, _, page) = get("/console/system/policies?action=otppin&realm=partners", &cookie);
    assert!(page.contains("no policy sets it"), "{page}");

    // Disable, from the list's button.
    assert_eq!(post("/console/system/policies/staff-pin/disable", &cookie, &form(&[("_csrf", &token)])).0, 303);
    assert_eq!(d.cli_json(&["policy", "show", "staff-pin"])["active"], false);

    // An auditor reads the policies and explanations but changes nothing, even by a forged post.
    let au_cookie = sign_in(port, "au", &au);
    let au_token = csrf(port, &au_cookie);
    let (status, _, page) = get("/console/system/policies", &au_cookie);
    assert_eq!(status, 200);
    assert!(page.contains("staff-pin") && !page.contains("New policy"), "{page}");
    assert_eq!(post("/console/system/policies/save", &au_cookie, &policy(&au_token, "otppin=none", "yes")).0, 403);
    assert_eq!(post("/console/system/policies/staff-pin/enable", &au_cookie, &form(&[("_csrf", &au_token)])).0, 403);
    assert_eq!(post("/console/system/policies/staff-pin/delete", &au_cookie, &form(&[("_csrf", &au_token)])).0, 403);
    assert_eq!(get("/console/system/policies/edit?name=staff-pin", &au_cookie).0, 403);
    assert_eq!(d.cli_json(&["policy", "show", "staff-pin"])["actions"]["otppin"], "tokenpin");

    // Deleting needs both factors proved within five minutes: six minutes on, it asks first.
    d.set_clock_offset_ms(6 * 60 * 1000);
    let (status, headers, _) = post("/console/system/policies/staff-pin/delete", &cookie, &form(&[("_csrf", &token)]));
    assert_eq!(status, 303);
    let to = headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(to.starts_with("/console/reauth"), "{to}");
    assert!(d.cli(&["policy", "show", "staff-pin"]).status.success(), "not deleted");

    // Every change is audited under the console user.
    for action in ["policy/create", "policy/set", "policy/disable"] {
        let rows = d.cli_json(&["audit", "auth", "--action", action]);
        assert!(rows.to_string().contains("console:ad"), "{action}: {rows}");
    }
}

#[test]
fn a_console_user_add_that_fails_after_enrolling_the_second_factor_leaves_no_token() {
    let (d, _port) = appliance();
    console_user(&d, "first", "admin", &[]);
    // The store refuses the new row (a trigger stands in for any failure of the last step:
    // a second add of the same name that won the race, a full disk), after the new user's TOTP
    // token was enrolled.
    match &d.pg {
        Some(pg) => pg
            .client()
            .batch_execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON console_user FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            .unwrap(),
        None => rusqlite::Connection::open(d.db())
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON console_user BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap(),
    }
    let out = d.cli_stdin(&["console", "user-add", "second", "--role", "auditor"], &format!("{PASSWORD}\n"));
    assert!(!out.status.success(), "the add must fail: {}", String::from_utf8_lossy(&out.stdout));
    // Its second factor is gone again: no working TOTP of the name whose secret an admin saw
    // for an add that did not happen.
    let tokens = d.cli_json(&["token", "list", "--user", "second", "--realm", "console"]);
    assert_eq!(tokens["tokens"], json!([]), "{tokens}");
    let deleted = d.cli_json(&["audit", "auth", "--action", "token/delete"]);
    assert!(deleted.to_string().contains("TOTP"), "the removal is audited: {deleted}");
}
