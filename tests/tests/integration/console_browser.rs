//! The web console (issue 18), against a real daemon:
//! - in a real browser (headless Chromium through playwright-core,
//!   `tests/tools/console_browser/flow.mjs`): sign in with password and TOTP, find a user,
//!   enrol a TOTP token and read its secret once, authenticate with it at `/validate/check`,
//!   reset a fail counter, disable the token and see the check refused, a form without its CSRF
//!   token refused, the audit holding each action, sign out; every page with the CSP and no
//!   inline code; screenshots in `target/console-screenshots/`;
//! - below the browser, by forged requests: a helpdesk user cannot act outside their realms, an
//!   auditor changes nothing, and a tampered session cookie is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::process::Command;

use countersign_tests::console::{appliance, console_user, csrf, exchange, form, sign_in, PASSWORD};
use countersign_tests::webauthn::SKIP_BROWSER;
use countersign_tests::Daemon;
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
    let (d, port) = appliance();
    let secret = console_user(&d, "root-admin", "admin", &[]);
    let shots = repo().join("target/console-screenshots");
    let cfg = json!({
        "base": format!("http://127.0.0.1:{port}"),
        "admin": { "name": "root-admin", "password": PASSWORD, "secret": secret },
        "user": { "login": "alice", "realm": "default" },
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
    let pages = seen["pages"].as_array().unwrap();
    assert!(pages.len() >= 8, "{seen}");
    for p in pages {
        assert!(p["csp"].as_str().unwrap().contains("script-src 'self'"), "no CSP on {p}");
        assert!(p["csp"].as_str().unwrap().contains("frame-ancestors 'none'"), "{p}");
        assert_eq!(p["inline"], false, "inline code on {p}");
    }
    for shot in ["sign-in", "dashboard", "users", "user", "enrolled", "audit", "policies"] {
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
    // In their realm the same post works; without the CSRF token it does not.
    assert_eq!(post(&format!("/console/tokens/{alice}/disable"), &cookie, ""), 403);
    assert_eq!(post(&format!("/console/tokens/{alice}/disable"), &cookie, &form(&[("_csrf", &token)])), 303);
    let bob_token = d.cli_json(&["token", "show", &bob]);
    assert_eq!(bob_token["active"], true, "{bob_token}");
    assert_eq!(d.cli_json(&["token", "show", &alice])["active"], false);
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
