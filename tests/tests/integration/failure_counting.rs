//! How failures count: a wrong PIN counts on every token of the user (so a user with two
//! tokens is not an unlimited PIN oracle), per-user limits apply whatever names the target,
//! failed guesses back off per user and per source before any hard lock (refused attempts
//! count nowhere), and a replay of an accepted code is not a guess. Time moves by the
//! daemon's injected clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::{Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

/// RFC 4226's seed and its codes for counters 0, 1, 2, ...
const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];
/// Another seed (RFC 4226's reversed) for a second token.
const SEED_B: &str = "3039383736353433323130393837363534333231";

fn daemon(validate: &str) -> Daemon {
    Daemon::with_plugins(&[HOTP_PLUGIN], &format!("[validate]\ndetailed_errors = true\n{validate}"))
}

fn token(d: &Daemon, user: &str, seed: &str, pin: &str) -> String {
    let e = d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", user, "--seed-stdin", "--pin-stdin"],
        &format!("{seed}\n{pin}\n"),
    );
    e["token"]["serial"].as_str().unwrap().to_owned()
}

fn check(d: &Daemon, body: Value) -> Value {
    let (status, v) = d.check(body);
    assert_eq!(status, 200, "{v}");
    v
}

fn fail_count(d: &Daemon, serial: &str) -> u64 {
    d.cli_json(&["token", "show", serial])["fail_count"].as_u64().unwrap()
}

#[test]
fn wrong_pins_against_a_user_with_two_tokens_count_on_both_and_lock_them() {
    let d = daemon("");
    d.cli_json(&["user", "add", "alice"]);
    let a = token(&d, "alice", SEED, "1234");
    let b = token(&d, "alice", SEED_B, "5678");
    for i in 0..10 {
        // An hour apart: past any back-off delay, so this is about the hard fail counter alone.
        d.set_clock_offset_ms(i * 3_601_000);
        let v = check(&d, json!({ "user": "alice", "pass": format!("{i:04}999999") }));
        assert_eq!(v["accepted"], false, "{v}");
    }
    // Before, a PIN that matched neither token counted nowhere: guessable without limit.
    assert_eq!(fail_count(&d, &a), 10);
    assert_eq!(fail_count(&d, &b), 10);
    d.set_clock_offset_ms(10 * 3_601_000);
    let v = check(&d, json!({ "user": "alice", "pass": format!("1234{}", CODES[0]) }));
    assert_eq!(v["accepted"], false, "the right PIN and code opened a locked token: {v}");
    assert!(v["message"].as_str().unwrap().contains("locked"), "{v}");
}

#[test]
fn auth_max_fail_applies_to_checks_by_serial() {
    let d = daemon("");
    d.cli_json(&["user", "add", "alice"]);
    let serial = token(&d, "alice", SEED, "1234");
    let out = d.cli(&["policy", "set", "lockout", "--scope", "authorization", "--action", "auth_max_fail=2/5m"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Guesses by serial count against the owner...
    for _ in 0..2 {
        assert_eq!(check(&d, json!({ "serial": serial, "pass": "1234000000" }))["accepted"], false);
    }
    // ...and the limit refuses further checks by serial and by user alike, unchecked.
    let v = check(&d, json!({ "serial": serial, "pass": format!("1234{}", CODES[0]) }));
    assert_eq!(v["message"], "too many failed authentications; try again later", "{v}");
    let v = check(&d, json!({ "user": "alice", "pass": format!("1234{}", CODES[0]) }));
    assert_eq!(v["message"], "too many failed authentications; try again later", "{v}");
    assert_eq!(fail_count(&d, &serial), 2, "refused checks are not counted");
    d.set_clock_offset_ms(301_000);
    assert!(d.accepts(&serial, &format!("1234{}", CODES[0])));
}

#[test]
fn failed_guesses_back_off_before_the_hard_lock_and_refusals_count_nowhere() {
    // The shipped defaults: 5 free failures per source, then 30 s doubling.
    let d = daemon("");
    d.cli_json(&["user", "add", "alice"]);
    let serial = token(&d, "alice", SEED, "1234");
    let guess = |d: &Daemon| check(d, json!({ "user": "alice", "pass": "1234000000" }));
    for _ in 0..5 {
        assert_eq!(guess(&d)["message"], "wrong PIN or OTP");
    }
    // The sixth attempt inside the delay is refused unchecked, even with the right code.
    let v = check(&d, json!({ "user": "alice", "pass": format!("1234{}", CODES[0]) }));
    assert_eq!(v["accepted"], false);
    assert_eq!(v["message"], "too many failed attempts; wait before trying again", "{v}");
    for _ in 0..20 {
        assert_eq!(guess(&d)["message"], "too many failed attempts; wait before trying again");
    }
    assert_eq!(fail_count(&d, &serial), 5, "refused attempts must not count towards the lock");
    let rows = d.auth_audit();
    let refused = rows.iter().filter(|r| r["action"] == "validate/check" && r["result"] == "refused").count();
    assert_eq!(refused, 21);
    let last = rows.iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(last["detail"].as_str().unwrap().contains("throttled"), "{last}");
    // After 30 s one more guess; then the delay doubles to 60 s.
    d.set_clock_offset_ms(30_500);
    assert_eq!(guess(&d)["message"], "wrong PIN or OTP");
    d.set_clock_offset_ms(61_000);
    assert_eq!(guess(&d)["message"], "too many failed attempts; wait before trying again");
    d.set_clock_offset_ms(91_000);
    // The right code after the delay: accepted, and the back-off is forgotten.
    assert!(d.accepts(&serial, &format!("1234{}", CODES[0])));
    for _ in 0..5 {
        assert_eq!(guess(&d)["message"], "wrong PIN or OTP");
    }
    // An admin reset opens the back-off too.
    assert_eq!(guess(&d)["message"], "too many failed attempts; wait before trying again");
    d.cli_json(&["token", "reset", &serial]);
    assert!(d.accepts(&serial, &format!("1234{}", CODES[1])));
}

#[test]
fn replays_of_an_accepted_code_are_not_guesses() {
    let d = daemon("");
    d.cli_json(&["user", "add", "alice"]);
    let serial = token(&d, "alice", SEED, "1234");
    let seen = format!("1234{}", CODES[0]);
    assert!(d.accepts(&serial, &seen));
    // Someone who saw that code replays it: refused, but neither counted nor throttled.
    for _ in 0..12 {
        let v = check(&d, json!({ "user": "alice", "pass": seen }));
        assert_eq!(v["accepted"], false);
        assert_eq!(v["message"], "the OTP was already used", "{v}");
    }
    assert_eq!(fail_count(&d, &serial), 0);
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(row["detail"].as_str().unwrap().contains("replay"), "{row}");
    // alice is neither locked nor throttled: her next code works.
    assert!(d.accepts(&serial, &format!("1234{}", CODES[1])));
}

/// How many of each HSM operation the daemon ran so far (`/metrics` on admin.sock).
fn hsm_ops(d: &Daemon) -> std::collections::BTreeMap<String, u64> {
    let (status, text) = countersign_tests::request(&d.admin_sock(), "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    text.as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("countersign_hsm_operation_duration_seconds_count{op=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(op, n)| (op.to_owned(), n.trim().parse().unwrap()))
        .collect()
}

/// The HSM operations one check ran.
fn ops_of(d: &Daemon, body: Value) -> std::collections::BTreeMap<String, u64> {
    let before = hsm_ops(d);
    let v = check(d, body);
    assert_eq!(v["accepted"], false, "{v}");
    let after = hsm_ops(d);
    after
        .into_iter()
        .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn an_unknown_user_a_wrong_pin_and_a_wrong_otp_cost_the_same_hsm_work() {
    let d = daemon("");
    d.cli_json(&["user", "add", "alice"]);
    d.cli_json(&["user", "add", "bob"]);
    token(&d, "alice", SEED, "1234");
    // Warm up: the stand-in token is made on first use.
    check(&d, json!({ "user": "nobody", "pass": "1234999999" }));
    let unknown = ops_of(&d, json!({ "user": "mallory", "pass": "1234999999" }));
    let no_token = ops_of(&d, json!({ "user": "bob", "pass": "1234999999" }));
    let wrong_pin = ops_of(&d, json!({ "user": "alice", "pass": "4321999999" }));
    let wrong_otp = ops_of(&d, json!({ "user": "alice", "pass": "1234999999" }));
    // One PIN verification and one row seal (C_Sign: the failure counted on the token seals
    // its row again; the stand-in's seal MAC where there is no token) and one seed opened for
    // the plugin (C_Decrypt) each.
    assert_eq!(wrong_otp.get("C_Sign"), Some(&2), "{wrong_otp:?}");
    assert_eq!(wrong_otp.get("C_Decrypt"), Some(&1), "{wrong_otp:?}");
    assert_eq!(unknown, wrong_otp, "unknown user vs wrong OTP");
    assert_eq!(no_token, wrong_otp, "user without token vs wrong OTP");
    assert_eq!(wrong_pin, wrong_otp, "wrong PIN vs wrong OTP");
    // A user whose only token is disabled (no PIN is verified for it), and a locked token
    // with its right PIN (no plugin is asked): the same work, so timing tells neither.
    d.cli_json(&["user", "add", "carol"]);
    d.cli_json(&["user", "add", "dave"]);
    let carols = token(&d, "carol", SEED, "1234");
    d.cli_json(&["token", "disable", &carols]);
    let daves = token(&d, "dave", SEED, "1234");
    d.cli_json(&["token", "set", &daves, "--max-fail", "1"]);
    check(&d, json!({ "user": "dave", "pass": "1234999999" }));
    assert_eq!(fail_count(&d, &daves), 1, "dave's token is locked");
    let disabled = ops_of(&d, json!({ "user": "carol", "pass": "1234999999" }));
    let locked = ops_of(&d, json!({ "user": "dave", "pass": "1234999999" }));
    assert_eq!(disabled, wrong_otp, "only a disabled token vs wrong OTP");
    assert_eq!(locked, wrong_otp, "a locked token's right PIN vs wrong OTP");
}
