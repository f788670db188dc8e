//! Tokens for users who live in a directory: an LDAP user of a realm gets a token, passes
//! PIN + OTP at /validate/check, and is refused (within the resolver's time limit, never
//! accepted) when the directory is down or no longer knows them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use countersign_tests::slapd::Slapd;
use countersign_tests::{Daemon, HOTP_PLUGIN};
use serde_json::{json, Value};

/// RFC 4226's seed; its codes for counters 0, 1, 2, ...
const SEED: &str = "3132333435363738393031323334353637383930";
const CODES: [&str; 4] = ["755224", "287082", "359152", "969429"];

fn setup(slapd: &Slapd) -> Daemon {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN], "[validate]\ndetailed_errors = true\n");
    slapd.add_resolver(&d, "corp");
    d.cli_json(&["realm", "add", "staff", "--resolvers", "corp"]);
    d
}

fn check(d: &Daemon, user: &str, pass: &str) -> Value {
    let (status, v) = d.check(json!({ "user": user, "realm": "staff", "pass": pass }));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn an_ldap_user_authenticates_and_is_refused_when_the_directory_fails() {
    let mut slapd = Slapd::start();
    let d = setup(&slapd);
    // A token for alice, who exists only in LDAP.
    let e = d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--realm", "staff", "--seed-stdin", "--pin-stdin"],
        &format!("{SEED}\nrabbit\n"),
    );
    assert_eq!(e["token"]["user"], "alice");
    assert_eq!(e["token"]["realm"], "staff");
    assert_eq!(e["token"]["resolver"], "corp");
    // Someone the directory does not know cannot own a token.
    let out = d.cli_stdin(
        &["token", "init", "--type", "hotp", "--user", "mallory", "--realm", "staff", "--seed-stdin"],
        &format!("{SEED}\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user mallory in realm staff"));
    // The directory user is not an internal user.
    let internal = d.cli_json(&["user", "list", "--realm", "staff"]);
    assert!(!internal.to_string().contains("alice"), "{internal}");

    assert_eq!(check(&d, "alice", &format!("rabbit{}", CODES[0]))["accepted"], true);
    assert_eq!(check(&d, "alice", &format!("wrong{}", CODES[1]))["accepted"], false);

    // Directory down: no accept, within the resolver's time limit, and the audit says why.
    slapd.stop();
    let t = Instant::now();
    let v = check(&d, "alice", &format!("rabbit{}", CODES[1]));
    assert_eq!(v["accepted"], false);
    assert!(t.elapsed() < Duration::from_millis(1000 + 1000), "{:?}", t.elapsed());
    assert_eq!(v["message"], "the user store could not be reached; try again", "{v}");
    let row = d.auth_audit().into_iter().find(|r| r["action"] == "validate/check").unwrap();
    assert!(row["detail"].as_str().unwrap().contains("user store could not be asked"), "{row}");

    // Back up: the same (unused) code is accepted, so the refusal used nothing up.
    slapd.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = check(&d, "alice", &format!("rabbit{}", CODES[1]));
        if v["accepted"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the directory did not come back: {v}");
    }
}

#[test]
fn assigning_to_a_directory_user_and_a_user_the_directory_forgot() {
    let slapd = Slapd::start();
    let d = setup(&slapd);
    let e = d.cli_json_stdin(&["token", "init", "--type", "hotp", "--seed-stdin"], &format!("{SEED}\n"));
    let serial = e["token"]["serial"].as_str().unwrap().to_owned();
    d.cli_json(&["token", "assign", &serial, "--user", "bob", "--realm", "staff"]);
    assert_eq!(check(&d, "bob", CODES[0])["accepted"], true);
    // The realm stops asking that directory: bob is gone for the check, whatever his token says.
    d.cli_json(&[
        "resolver",
        "add",
        "files",
        "--kind",
        "passwd",
        "--options",
        &json!({ "path": "/dev/null" }).to_string(),
    ]);
    d.cli_json(&["realm", "set-resolvers", "staff", "files"]);
    let v = check(&d, "bob", CODES[1]);
    assert_eq!(v["accepted"], false);
    assert!(v["message"].as_str().unwrap().contains("no such user"), "{v}");
}

#[test]
fn a_silent_directory_fails_the_check_within_its_time_limit() {
    use countersign_tests::slapd::SilentServer;
    let slapd = Slapd::start();
    let d = setup(&slapd);
    d.cli_json_stdin(
        &["token", "init", "--type", "hotp", "--user", "alice", "--realm", "staff", "--seed-stdin", "--pin-stdin"],
        &format!("{SEED}\nrabbit\n"),
    );
    // The directory now accepts connections and never answers.
    let silent = SilentServer::start();
    let options = Slapd::resolver_options(&format!("ldap://127.0.0.1:{}", silent.port));
    d.cli_json(&["resolver", "set", "corp", "--options", &options.to_string()]);
    let t = Instant::now();
    let v = check(&d, "alice", &format!("rabbit{}", CODES[0]));
    let took = t.elapsed();
    assert_eq!(v["accepted"], false);
    assert_eq!(v["message"], "the user store could not be reached; try again", "{v}");
    assert!(took < Duration::from_millis(1000 + 1000), "{took:?}");
}
